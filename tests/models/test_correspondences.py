import math

import pytest
import torch

from bopnp.errors import ShapeError
from bopnp.geometry import project_points
from bopnp.models.correspondences import crop_correspondences, crop_pixel_centres
from bopnp.pnp import solve_pnp


def test_pixel_centres_follow_the_crop_convention():
    box = torch.tensor([[10.0, 20.0, 18.0, 28.0]], dtype=torch.float64)  # 8 image px -> 4 crop px: s = 0.5
    uv = crop_pixel_centres(box, 4).view(4, 4, 2)
    torch.testing.assert_close(uv[0, 0], torch.tensor([10.0, 20.0], dtype=torch.float64))
    torch.testing.assert_close(uv[2, 3], torch.tensor([10.0 + 3 * 2, 20.0 + 2 * 2], dtype=torch.float64))


def _plane_scene(S=16):
    """A plane z_m = 0 seen by a camera; exact model coordinates for every crop pixel by ray casting."""
    K = torch.tensor([[600.0, 0, 320], [0, 600.0, 240], [0, 0, 1]], dtype=torch.float64)
    a = 0.4
    R = torch.tensor([[1, 0, 0], [0, math.cos(a), -math.sin(a)], [0, math.sin(a), math.cos(a)]], dtype=torch.float64)
    t = torch.tensor([5.0, -3.0, 400.0], dtype=torch.float64)
    box = torch.tensor([[280.0, 200.0, 360.0, 280.0]], dtype=torch.float64)
    uv = crop_pixel_centres(box, S)[0]
    rays = torch.linalg.solve(K, torch.cat([uv, torch.ones(S * S, 1, dtype=torch.float64)], 1).T).T  # (N, 3) camera
    # points X = R^T (s * ray - t) with X_z = 0: s = (R^T t)_z / (R^T ray)_z
    Rt_t, Rt_ray = R.T @ t, rays @ R
    s = Rt_t[2] / Rt_ray[:, 2]
    X = s[:, None] * Rt_ray - Rt_t
    return K, R, t, box, X


def test_exact_coordinates_give_the_exact_pose():
    S = 16
    K, R, t, box, X_mm = _plane_scene(S)
    centre, half = (
        torch.tensor([[0.0, 0.0, 0.0]], dtype=torch.float64),
        torch.tensor([[60.0, 60.0, 10.0]], dtype=torch.float64),
    )
    xyz = ((X_mm - centre) / half).T.reshape(1, 3, S, S)
    err = torch.zeros(1, 1, S, S, dtype=torch.float64)
    x2d, x3d, w = crop_correspondences(xyz, err, box, centre, half)
    torch.testing.assert_close(x3d[0], X_mm)
    torch.testing.assert_close(project_points((x3d[0] @ R.T + t)[None], K[None])[0], x2d[0], atol=1e-9, rtol=0)
    res = solve_pnp(x2d, x3d, K, w)
    assert bool(res.valid.all())
    torch.testing.assert_close(res.R[0], R, atol=1e-6, rtol=0)
    torch.testing.assert_close(res.t[0], t, atol=1e-3, rtol=0)


def test_weights_drop_background_and_uncertain_pixels_and_follow_the_error_map():
    S = 4
    xyz = torch.full((1, 3, S, S), 0.5)
    xyz[0, :, 0, 0] = 0.0  # background
    err = torch.zeros(1, 1, S, S, requires_grad=True)
    with torch.no_grad():
        err[0, 0, 1, 1] = 0.6  # above max_err
        err[0, 0, 2, 2] = 0.25
    box = torch.tensor([[0.0, 0.0, 4.0, 4.0]])
    _, _, w = crop_correspondences(xyz, err, box, torch.zeros(1, 3), torch.ones(1, 3), max_err=0.5)
    w = w.view(S, S)
    assert w[0, 0] == 0 and w[1, 1] == 0
    torch.testing.assert_close(w[2, 2], torch.tensor(0.5))
    assert w[3, 3] == 1
    w.sum().backward()
    assert err.grad[0, 0, 2, 2] == -2.0  # d(1 - e / 0.5) / de


def test_a_pessimistic_error_map_still_leaves_the_best_share_of_object_pixels():
    S = 8
    xyz = torch.full((2, 3, S, S), 0.5)
    xyz[:, :, :, :2] = 0.0  # two background columns: 48 object pixels per item
    err = torch.linspace(0.7, 0.99, S * S).view(1, 1, S, S).repeat(2, 1, 1, 1)  # all above max_err
    err[1] = 0.1  # item 1: confident everywhere, the fixed limit decides
    box = torch.tensor([[0.0, 0.0, 8.0, 8.0]]).repeat(2, 1)
    args = (xyz, err, box, torch.zeros(2, 3), torch.ones(2, 3))
    _, _, w0 = crop_correspondences(*args, max_err=0.5, min_share=0.0)
    assert (w0[0] > 0).sum() == 0  # without the share, a network that is still learning leaves nothing
    _, _, w = crop_correspondences(*args, max_err=0.5, min_share=0.25)
    on_object = xyz[0].abs().amax(0).flatten() > 0.1
    kept = w[0] > 0
    assert int(kept.sum()) == 12 and bool((kept <= on_object).all())  # ceil(0.25 * 48) - 1 below the quantile, + it
    e = err[0, 0].flatten()
    assert e[kept].max() < e[on_object & ~kept].min()  # the lowest-error object pixels, no others
    torch.testing.assert_close(w[1], w0[1])  # a confident item is unchanged: 1 - 0.1 / 0.5 on its object pixels


def test_a_mask_limits_the_object_pixels():
    S = 4
    xyz = torch.full((1, 3, S, S), 0.5)
    err = torch.zeros(1, 1, S, S)
    mask = torch.zeros(1, S, S, dtype=torch.bool)
    mask[0, 1:3, 1:3] = True
    box = torch.tensor([[0.0, 0.0, 4.0, 4.0]])
    _, _, w = crop_correspondences(xyz, err, box, torch.zeros(1, 3), torch.ones(1, 3), mask=mask)
    torch.testing.assert_close(w.view(S, S), mask[0].float())


def test_weighted_first_keeps_the_weighted_points_in_order_and_their_gradients():
    from bopnp.models.correspondences import weighted_first

    w = torch.tensor([[0.0, 0.5, 0.0, 1.0, 0.2, 0.0, 0.3, 0.0], [0.0] * 6 + [0.7, 0.0]], requires_grad=True)
    x3d = torch.arange(2 * 8 * 3, dtype=torch.float32).reshape(2, 8, 3).requires_grad_(True)
    x2d = torch.arange(2 * 8 * 2, dtype=torch.float32).reshape(2, 8, 2)
    u, x, ww = weighted_first(x2d, x3d, w)
    assert ww.shape == (2, 4) and x.shape == (2, 4, 3) and u.shape == (2, 4, 2)  # 4 weighted points at most
    torch.testing.assert_close(ww[0], torch.tensor([0.5, 1.0, 0.2, 0.3]))  # their order kept
    torch.testing.assert_close(x[0], x3d[0, [1, 3, 4, 6]].detach())
    torch.testing.assert_close(u[1], x2d[1, [6, 0, 1, 2]])  # one weighted point, then points of weight 0
    torch.testing.assert_close(ww[1], torch.tensor([0.7, 0.0, 0.0, 0.0]))
    (x.sum() + ww.sum()).backward()
    assert x3d.grad[0, [1, 3, 4, 6]].eq(1).all() and x3d.grad[0, [0, 2, 5, 7]].eq(0).all()
    assert w.grad[0].tolist() == [0.0, 1.0, 0.0, 1.0, 1.0, 0.0, 1.0, 0.0]
    # at least PnP's 4 points, at most N; an explicit count
    assert weighted_first(x2d[:, :3], x3d[:, :3], torch.zeros(2, 3))[2].shape == (2, 3)
    assert weighted_first(x2d, x3d, torch.zeros(2, 8))[2].shape == (2, 4)
    assert weighted_first(x2d, x3d, w, keep=6)[2].shape == (2, 6)
    with pytest.raises(ShapeError, match="x3d"):
        weighted_first(x2d, x3d[:, :5], w)

import cv2
import numpy as np
import torch

from bopnp.geometry import backproject_depth, crop_intrinsics, project_points, random_rotation, transform_points


def _K(dtype=torch.float64):
    return torch.tensor([[572.4114, 0.0, 325.2611], [0.0, 573.57043, 242.04899], [0.0, 0.0, 1.0]], dtype=dtype)


def test_project_matches_opencv():
    rng = np.random.default_rng(0)
    x = rng.uniform(-50, 50, size=(30, 3))
    R = random_rotation(1, generator=torch.Generator().manual_seed(0), dtype=torch.float64)[0]
    t = torch.tensor([10.0, -20.0, 800.0], dtype=torch.float64)
    uv = project_points(transform_points(R, t, torch.from_numpy(x)), _K())
    rvec, _ = cv2.Rodrigues(R.numpy())
    uv_cv, _ = cv2.projectPoints(x, rvec, t.numpy(), _K().numpy(), None)
    np.testing.assert_allclose(uv.numpy(), uv_cv[:, 0], atol=1e-9)


def test_backproject_then_project_returns_pixel_grid():
    depth = torch.full((4, 6), 700.0, dtype=torch.float64)
    pts = backproject_depth(depth, _K())
    uv = project_points(pts.reshape(-1, 3), _K()).reshape(4, 6, 2)
    v, u = torch.meshgrid(torch.arange(4.0, dtype=torch.float64), torch.arange(6.0, dtype=torch.float64), indexing="ij")
    assert torch.allclose(uv[..., 0], u) and torch.allclose(uv[..., 1], v)


def test_crop_intrinsics_maps_pixels_like_warp_affine():
    K = _K()
    box = torch.tensor([100.0, 50.0, 228.0, 178.0], dtype=torch.float64)
    Kc = crop_intrinsics(K, box, 64)
    x = torch.tensor([[5.0, -3.0, 600.0]], dtype=torch.float64)
    uv = project_points(x, K)[0]
    uv_c = project_points(x, Kc)[0]
    s = 64 / 128
    assert torch.allclose(uv_c, torch.stack([(uv[0] - 100) * s, (uv[1] - 50) * s]))


def test_batched_broadcast():
    K = _K().repeat(3, 1, 1)
    K[:, 0, 0] *= torch.tensor([1.0, 1.1, 0.9], dtype=torch.float64)  # per-item intrinsics
    K[1, 0, 1] = 2.5  # and a skew
    g = torch.Generator().manual_seed(0)
    x = torch.rand(3, 7, 3, generator=g, dtype=torch.float64) * 50 + torch.tensor([0, 0, 500.0], dtype=torch.float64)
    uv = project_points(x, K)
    assert uv.shape == (3, 7, 2)
    for i in range(3):
        torch.testing.assert_close(uv[i], project_points(x[i], K[i]), atol=0, rtol=0)
    # one K for the whole batch broadcasts over it
    torch.testing.assert_close(project_points(x, _K()), torch.stack([project_points(xi, _K()) for xi in x]))

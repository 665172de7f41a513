"""Closed-form initialisation: exact on noise-free general and planar point sets."""

from __future__ import annotations

import pytest
import torch
from pnp_problems import make_problem

from bopnp.geometry import nearest_rotation, rotation_angle_deg
from bopnp.pnp.init import epnp_candidates, homography_pose, initial_pose, normalised_coords, weighted_pca


def _centred(p, w):
    mean, evals, evecs = weighted_pca(p["x3d"].mT, w)
    x = (p["x3d"] - mean.unsqueeze(1)).mT
    t_centred = p["t"] + (p["R"] @ mean.unsqueeze(-1)).squeeze(-1)
    return x, t_centred, (evals, evecs)


@pytest.mark.parametrize("N, planar", [(5, False), (6, False), (50, False), (4, True), (6, True), (50, True)])
def test_initial_pose_is_exact_without_noise(N, planar):
    p = make_problem(B=40, N=N, planar=planar, seed=N)
    w = torch.ones(40, N, dtype=torch.float64)
    x, t_c, pca = _centred(p, w)
    R, t, cost = initial_pose(x, p["x2d"].mT, p["K"][:, :2, :2], p["K"][:, :2, 2], w, pca=pca)
    assert (rotation_angle_deg(R, p["R"]) < 1e-4).all()
    assert ((t - t_c).norm(dim=-1) < 1e-6 * t_c.norm(dim=-1)).all()
    assert (cost < 1e-8).all()  # px^2: the normal equations square the conditioning; LM polishes the rest


def test_initial_pose_ignores_zero_weight_points_and_returns_sorted_candidates():
    p = make_problem(B=5, N=30, seed=3)
    w = torch.ones(5, 30, dtype=torch.float64)
    w[:, :10] = 0
    x2d = p["x2d"].clone()
    x2d[:, :10] = 1e4
    x, _, _ = _centred(p, w)
    R, t, cost = initial_pose(x, x2d.mT, p["K"][:, :2, :2], p["K"][:, :2, 2], w, all_candidates=True)
    assert R.shape == (5, 4, 3, 3) and t.shape == (5, 4, 3)
    assert (cost[:, 1:] >= cost[:, :-1]).all()
    assert (rotation_angle_deg(R[:, 0], p["R"]) < 1e-4).all()


def test_normalised_coords_inverts_the_intrinsics():
    p = make_problem(B=2, N=7)
    K = p["K"].clone()
    K[:, 0, 1] = 2.5  # skew
    un = normalised_coords(p["x2d"].mT, K[:, :2, :2], K[:, :2, 2])
    back = K[:, :2, :2] @ un + K[:, :2, 2, None]
    torch.testing.assert_close(back, p["x2d"].mT)


def test_weighted_pca_of_a_plane_has_a_zero_variance_axis():
    p = make_problem(B=3, N=40, planar=True)
    w = torch.rand(3, 40, dtype=torch.float64) + 0.1
    mean, evals, evecs = weighted_pca(p["x3d"].mT, w)
    torch.testing.assert_close(mean, (w.unsqueeze(-1) * p["x3d"]).sum(1) / w.sum(1, keepdim=True))
    assert (evals[:, 0] < 1e-9 * evals[:, 2]).all()
    normal = evecs[..., 0]
    assert (((p["x3d"] - mean.unsqueeze(1)) * normal.unsqueeze(1)).sum(-1).abs() < 1e-9).all()


@pytest.mark.parametrize("planar", [False, True])
def test_each_closed_form_solver_alone(planar):
    # the homography is exact on planar sets, EPnP on general ones: neither may hide a bug in the other
    p = make_problem(B=20, N=12, planar=planar, seed=7)
    w = torch.ones(20, 12, dtype=torch.float64)
    x, t_c, (evals, evecs) = _centred(p, w)
    un = normalised_coords(p["x2d"].mT, p["K"][:, :2, :2], p["K"][:, :2, 2])
    if planar:
        M, t = homography_pose(x, un, w, evals, evecs)
    else:
        M, t = epnp_candidates(x, un, w, evals, evecs)
        M, t = M[:, 0], t[:, 0]
    assert (rotation_angle_deg(nearest_rotation(M), p["R"]) < 1e-4).all()
    assert ((t - t_c).norm(dim=-1) < 1e-8 * t_c.norm(dim=-1)).all()

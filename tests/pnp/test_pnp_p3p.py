"""The batched P3P minimal solver and its cubic."""

from __future__ import annotations

import numpy as np
import torch

from bopnp.geometry import random_rotation, rotation_angle_deg
from bopnp.pnp.p3p import cubic_real_roots, p3p


def test_cubic_real_roots_match_numpy():
    g = torch.Generator().manual_seed(0)
    c = torch.randn(200, 4, generator=g, dtype=torch.float64)
    roots, ok = cubic_real_roots(c[:, 0], c[:, 1], c[:, 2], c[:, 3])
    for i in range(200):
        ref = np.roots(c[i].numpy())
        real = np.sort(ref[np.abs(ref.imag) < 1e-9].real)
        got = np.sort(roots[i][ok[i]].numpy())
        assert len(got) == len(real), (c[i], ref, roots[i], ok[i])
        np.testing.assert_allclose(got, real, rtol=1e-7, atol=1e-9)


def test_p3p_finds_the_true_pose_among_its_solutions():
    M = 2000
    g = torch.Generator().manual_seed(1)
    x = torch.randn(M, 3, 3, generator=g, dtype=torch.float64) * 50
    R = random_rotation(M, generator=g, dtype=torch.float64)
    t = torch.randn(M, 3, generator=g, dtype=torch.float64) * 30 + torch.tensor([0, 0, 700.0], dtype=torch.float64)
    X = x @ R.transpose(1, 2) + t[:, None]
    Rs, ts, ok = p3p(X / X[..., 2:], x)
    assert Rs.shape == (M, 4, 3, 3) and ok.any(1).all()
    err = torch.where(ok, rotation_angle_deg(Rs, R[:, None]), torch.full(ok.shape, 1e9, dtype=torch.float64))
    best = err.argmin(1)
    assert (err.gather(1, best[:, None]) < 1e-3).all()
    t_best = ts.gather(1, best[:, None, None].expand(M, 1, 3)).squeeze(1)
    assert ((t_best - t).norm(dim=-1) < 1e-6 * t.norm(dim=-1)).all()
    # every returned solution puts the three points exactly on their rays, in front of the camera
    Xs = torch.einsum("mkij,mpj->mkpi", Rs, x) + ts[:, :, None]
    on_ray = torch.linalg.cross(Xs, X.unsqueeze(1).expand_as(Xs)).norm(dim=-1) / (
        Xs.norm(dim=-1) * X.norm(dim=-1).unsqueeze(1)
    )
    assert (on_ray[ok] < 1e-9).all() and (Xs[..., 2][ok] > 0).all()


def test_p3p_degenerate_samples_give_no_solution_and_no_nan():
    x = torch.tensor([[[0.0, 0, 0], [10, 0, 0], [20, 0, 0]], [[0.0, 0, 0], [0, 0, 0], [0, 0, 0]]], dtype=torch.float64)
    y = torch.tensor([[[0.0, 0, 1], [0.01, 0, 1], [0.02, 0, 1]]] * 2, dtype=torch.float64)
    R, t, ok = p3p(y, x)
    assert torch.isfinite(R).all() and torch.isfinite(t).all()
    assert not ok.any()  # collinear points (item 0) and coincident points (item 1)

"""Synthetic PnP problems with known poses for the tests of ``bopnp.pnp``."""

from __future__ import annotations

import torch

from bopnp.geometry import project_points, random_rotation, transform_points

K_LM = [[572.4114, 0.0, 325.2611], [0.0, 573.57043, 242.04899], [0.0, 0.0, 1.0]]


def make_problem(B=4, N=30, *, noise_px=0.0, planar=False, dtype=torch.float64, seed=0, radius_mm=60.0, depth_mm=700.0):
    """Random model points, poses and their projections (plus Gaussian pixel noise).

    Returns:
        dict with x2d (B, N, 2), x3d (B, N, 3), K (B, 3, 3), R (B, 3, 3), t (B, 3), x2d_clean (B, N, 2).
    """
    g = torch.Generator().manual_seed(seed)
    x3d = torch.randn(B, N, 3, generator=g, dtype=torch.float64) * radius_mm
    if planar:
        x3d[..., 2] = 0.0
        tilt = random_rotation(B, generator=g, dtype=torch.float64)
        x3d = x3d @ tilt.transpose(1, 2) + torch.randn(B, 1, 3, generator=g, dtype=torch.float64) * 20
    R = random_rotation(B, generator=g, dtype=torch.float64)
    t = torch.randn(B, 3, generator=g, dtype=torch.float64) * torch.tensor([40.0, 40.0, 60.0], dtype=torch.float64)
    t[:, 2] += depth_mm
    K = torch.tensor(K_LM, dtype=torch.float64).repeat(B, 1, 1)
    clean = project_points(transform_points(R, t, x3d), K)
    x2d = clean + noise_px * torch.randn(B, N, 2, generator=g, dtype=torch.float64)
    out = dict(x2d=x2d, x3d=x3d, K=K, R=R, t=t, x2d_clean=clean)
    return {k: v.to(dtype) for k, v in out.items()}


def with_outliers(B=6, N=200, *, frac=0.5, seed=0, planar=False, dtype=torch.float64):
    """A noise-free :func:`make_problem` whose pixels are, with probability ``frac`` each, replaced by uniform junk in
    a 640 x 480 image (only where it lands at least 20 px from the true projection).

    Returns:
        the problem dict (``x2d`` with the outliers) and the (B, N) bool mask of the inliers.
    """
    p = make_problem(B=B, N=N, planar=planar, seed=seed, dtype=torch.float64)
    g = torch.Generator().manual_seed(seed + 100)
    out = torch.rand(B, N, generator=g) < frac
    junk = torch.rand(B, N, 2, generator=g, dtype=torch.float64) * torch.tensor([640.0, 480.0], dtype=torch.float64)
    far = (junk - p["x2d"]).norm(dim=-1, keepdim=True) > 20
    x2d = torch.where((out.unsqueeze(-1) & far), junk, p["x2d"])
    truth = ~(out & far.squeeze(-1))
    return {**{k: v.to(dtype) for k, v in p.items()}, "x2d": x2d.to(dtype)}, truth

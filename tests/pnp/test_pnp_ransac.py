"""Batched RANSAC: sampling, outlier rejection, gradients on the inliers only, config validation."""

from __future__ import annotations

import pytest
import torch
from pnp_problems import with_outliers

from bopnp.errors import ConfigError
from bopnp.geometry import rotation_angle_deg
from bopnp.pnp import RansacConfig, solve_pnp
from bopnp.pnp.ransac import sample_distinct


def test_sample_distinct_gives_distinct_uniform_indices():
    n = torch.tensor([5, 9, 1000])
    s = sample_distinct(n, 4000, 5, torch.Generator().manual_seed(0))
    assert s.shape == (3, 4000, 5)
    assert ((s >= 0) & (s < n[:, None, None])).all()
    srt = s.sort(-1).values
    assert (srt[..., 1:] != srt[..., :-1]).all()
    counts = torch.bincount(s[1].flatten(), minlength=9).double()
    assert (counts / counts.mean() - 1).abs().max() < 0.1  # every index equally likely
    assert s[0].sort(-1).values.eq(torch.arange(5)).all()  # n == s: the whole set
    big = sample_distinct(torch.tensor([50, 300]), 3, 40, torch.Generator().manual_seed(1), n_max=300)
    srt = big.sort(-1).values
    assert big.shape == (2, 3, 40) and (srt[..., 1:] != srt[..., :-1]).all() and (big[0] < 50).all()
    few = sample_distinct(torch.tensor([5]), 2, 12, torch.Generator().manual_seed(2), n_max=5)  # n_max < s
    assert few.shape == (1, 2, 12) and ((few >= 0) & (few < 5)).all()


@pytest.mark.parametrize("solver", ["p3p", "epnp"])
@pytest.mark.parametrize("planar", [False, True])
def test_half_outliers_recovers_the_pose(planar, solver):
    p, truth = with_outliers(seed=1, planar=planar)
    # epnp on 4-point sets: a clean one among 100 with probability 1 - (15/16)^100 (5-point sets: only 1 - (31/32)^100)
    cfg = RansacConfig(threshold_px=2.0, iterations=100, seed=0, solver=solver, sample_size=4)
    res = solve_pnp(p["x2d"], p["x3d"], p["K"], ransac=cfg)
    assert res.valid.all()
    assert (rotation_angle_deg(res.R, p["R"]) < 0.1).all()
    assert ((res.t - p["t"]).norm(dim=-1) < 1e-6 * p["t"].norm(dim=-1)).all()
    assert torch.equal(res.inliers, truth)
    # without RANSAC the same data gives a poor pose
    plain = solve_pnp(p["x2d"], p["x3d"], p["K"])
    assert (rotation_angle_deg(plain.R, p["R"]) > 0.5).any()


def test_ransac_float32_and_opencv_reference_agree():
    p, truth = with_outliers(B=3, N=300, seed=2, dtype=torch.float32)
    cfg = RansacConfig(threshold_px=3.0, iterations=100)
    res = solve_pnp(p["x2d"], p["x3d"], p["K"], ransac=cfg)
    cv = solve_pnp(p["x2d"], p["x3d"], p["K"], ransac=cfg, backend="opencv")
    assert res.valid.all() and cv.valid.all()
    assert (rotation_angle_deg(res.R, p["R"]) < 0.1).all()
    assert (rotation_angle_deg(res.R, cv.R) < 0.1).all()
    assert (res.inliers == truth).float().mean() > 0.99


def test_gradients_flow_only_to_inliers():
    p, _ = with_outliers(B=2, N=60, frac=0.3, seed=3)
    x2d = p["x2d"] + 0.5 * torch.randn(p["x2d"].shape, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    x2d.requires_grad_(True)
    w = torch.ones(2, 60, dtype=torch.float64, requires_grad=True)
    res = solve_pnp(x2d, p["x3d"], p["K"], w, ransac=RansacConfig(threshold_px=4.0))
    res.pose.sum().backward()
    assert (x2d.grad[~res.inliers] == 0).all() and (w.grad[~res.inliers] == 0).all()
    assert (x2d.grad[res.inliers].abs().sum(-1) > 0).float().mean() > 0.9
    # and equal the gradient of a plain solve on the inliers alone
    for b in range(2):
        keep = res.inliers[b]
        u = x2d.detach()[b : b + 1, keep].clone().requires_grad_(True)
        r = solve_pnp(u, p["x3d"][b : b + 1, keep], p["K"][b : b + 1])
        r.pose.sum().backward()
        torch.testing.assert_close(x2d.grad[b, keep], u.grad[0], atol=1e-8, rtol=1e-6)


def test_ransac_degenerate_items_are_invalid_not_errors():
    p, _ = with_outliers(B=3, N=40, seed=4)
    w = torch.ones(3, 40, dtype=torch.float64)
    w[1, 3:] = 0
    w[2] = 0
    res = solve_pnp(p["x2d"], p["x3d"], p["K"], w, ransac=RansacConfig())
    assert res.valid.tolist() == [True, False, False]
    assert torch.isfinite(res.pose).all()


def test_ransac_seed_makes_it_reproducible():
    p, _ = with_outliers(B=2, N=100, seed=5)
    a = solve_pnp(p["x2d"], p["x3d"], p["K"], ransac=RansacConfig(seed=3, iterations=20))
    b = solve_pnp(p["x2d"], p["x3d"], p["K"], ransac=RansacConfig(seed=3, iterations=20))
    assert torch.equal(a.pose, b.pose) and torch.equal(a.inliers, b.inliers)


@pytest.mark.parametrize(
    "kwargs, field",
    [
        ({"threshold_px": 0}, "threshold_px"),
        ({"iterations": 0}, "iterations"),
        ({"sample_size": 3}, "sample_size"),
        ({"refine_rounds": 0}, "refine_rounds"),
        ({"threshold_px": -1.0}, "threshold_px"),
        ({"threshold_px": float("nan")}, "threshold_px"),
        ({"threshold_px": float("inf")}, "threshold_px"),
        ({"threshold_px": "5"}, "threshold_px"),
        ({"iterations": 10**9}, r"iterations must be an integer in \[1, 100000\]"),
        ({"iterations": 2.5}, "iterations"),
        ({"iterations": True}, "iterations"),
        ({"sample_size": 1000}, "sample_size"),
        ({"refine_rounds": 10**6}, "refine_rounds"),
        ({"prescore_points": -1}, "prescore_points"),
        ({"prescore_keep": 0}, "prescore_keep"),
        ({"max_chunk_elems": 0}, "max_chunk_elems"),
        ({"max_memory_bytes": float("nan")}, "max_memory_bytes"),
        ({"seed": 1.5}, "seed"),
        ({"solver": "dlt"}, "solver"),
    ],
)
def test_config_validation(kwargs, field):
    with pytest.raises(ConfigError, match=field):
        RansacConfig(**kwargs)


def test_batches_over_the_memory_budget_are_refused_before_any_work():
    p, _ = with_outliers(B=64, N=10, seed=3)
    cfg = RansacConfig(iterations=100_000)  # 64 x 100,000 P3P hypotheses: about 24 GiB at once
    assert cfg.memory_bytes(64) > cfg.max_memory_bytes
    with pytest.raises(ConfigError, match="max_memory_bytes.*lower RansacConfig.iterations"):
        solve_pnp(p["x2d"], p["x3d"], p["K"], ransac=cfg)
    small = RansacConfig(iterations=100, max_memory_bytes=RansacConfig(iterations=100).memory_bytes(64))
    assert solve_pnp(p["x2d"], p["x3d"], p["K"], ransac=small).R.shape == (64, 3, 3)  # exactly at the budget: runs

"""``solve_pnp`` keeps the results of the reference file (``make_reference.py``): pose, validity, cost, inliers and
gradients, on the fuzz set, a weighted batch with degenerate items, and a RANSAC batch (all float64).

Tolerances: rotation 1e-6 degrees, translation 1e-4 mm, cost 1e-6 relative; gradients 1e-5 relative to the largest
entry of each tensor (they are stored in float32); invalid items exactly zero gradients.
"""

from __future__ import annotations

import pytest
import torch
from make_reference import OUT, _loss_weights, batch_problem, compute, ransac_problem, solve_with_grads

pytestmark = pytest.mark.skipif(not OUT.exists(), reason="reference file missing: run tests/pnp/make_reference.py")


@pytest.fixture(scope="module")
def reference():
    return torch.load(OUT)


@pytest.fixture(scope="module")
def current():
    return compute()


def _angle_deg(R1: torch.Tensor, R2: torch.Tensor) -> torch.Tensor:
    """(B,) angle between rotations, degrees, accurate near 0 (``||R1 - R2||_F = 2 sqrt(2) sin(angle / 2)``, where
    the arccos of the trace loses everything below about 1e-6 degrees)."""
    f = (R1 - R2).flatten(1).norm(dim=-1) / (2 * 2**0.5)
    return torch.rad2deg(2 * torch.asin(f.clamp(max=1.0)))


def _close_pose(got: dict, ref: dict) -> None:
    assert torch.equal(got["valid"], ref["valid"])
    deg = _angle_deg(got["R"], ref["R"])
    assert float(deg.max()) <= 1e-6, f"rotation differs by {float(deg.max()):.3g} deg"
    dt = (got["t"] - ref["t"]).abs().max()
    assert float(dt) <= 1e-4, f"translation differs by {float(dt):.3g} mm"
    torch.testing.assert_close(got["cost"], ref["cost"], rtol=1e-6, atol=1e-9)


def _close_grad(got: torch.Tensor, ref: torch.Tensor, name: str) -> None:
    scale = float(ref.abs().max().clamp_min(1e-30))
    torch.testing.assert_close(got.float(), ref, rtol=1e-5, atol=1e-5 * scale, msg=lambda m: f"{name}: {m}")


def test_fuzz_set_matches_reference(reference, current):
    ref, got = reference["fuzz"], current["fuzz"]
    assert torch.equal(got["n"], ref["n"])
    _close_pose(got, ref)
    for i in range(len(ref["n"])):
        _close_grad(got["g_x2d"][i], ref["g_x2d"][i], f"fuzz {i} x2d")
    _close_grad(got["g_K"], ref["g_K"], "fuzz K")


def test_weighted_batch_with_degenerate_items_matches_reference(reference, current):
    ref, got = reference["batch"], current["batch"]
    _close_pose(got, ref)
    assert not bool(got["valid"][3]) and not bool(got["valid"][7])
    for k in ("g_x2d", "g_x3d", "g_K", "g_w"):
        _close_grad(got[k], ref[k], k)
        assert torch.equal(got[k][~got["valid"]], torch.zeros_like(got[k][~got["valid"]]))


def test_ransac_batch_matches_reference(reference, current):
    ref, got = reference["ransac"], current["ransac"]
    _close_pose(got, ref)
    assert torch.equal(got["inliers"], ref["inliers"])
    for k in ("g_x2d", "g_x3d", "g_K"):
        _close_grad(got[k], ref[k], k)


def test_the_comparison_detects_a_changed_pose():
    # the helpers above fail on a solution moved by a little more than the tolerances
    b = batch_problem()
    got = solve_with_grads(b["x2d"], b["x3d"], b["K"], b["w"], seed=1)
    moved = dict(got, t=got["t"] + 2e-4)
    with pytest.raises(AssertionError):
        _close_pose(moved, got)
    c, s = torch.cos(torch.tensor(3e-8)), torch.sin(torch.tensor(3e-8))  # 1.7e-6 degrees about z
    Rz = torch.tensor([[c, -s, 0], [s, c, 0], [0, 0, 1]], dtype=torch.float64)
    with pytest.raises(AssertionError):
        _close_pose(dict(got, R=Rz @ got["R"]), got)
    with pytest.raises(AssertionError):
        _close_grad(got["g_x2d"] * (1 + 1e-4), got["g_x2d"], "x2d")
    assert _loss_weights((2, 6), 0).shape == (2, 6)
    assert ransac_problem()[1].threshold_px == 3.0

"""projection_loss: the mean squared pixel distance of projected model points."""

from __future__ import annotations

import pytest
import torch
from pnp_problems import make_problem

from bopnp.errors import ConfigError, ShapeError
from bopnp.geometry import project_points, transform_points
from bopnp.pnp import projection_loss


def test_zero_at_the_true_pose_and_matches_a_direct_computation():
    p = make_problem(B=3, N=25, seed=1)
    assert projection_loss(p["R"], p["t"], p["x3d"], p["x2d"], p["K"]).abs() < 1e-18
    t2 = p["t"] + torch.tensor([1.0, -2.0, 5.0], dtype=torch.float64)
    uv = project_points(transform_points(p["R"], t2, p["x3d"]), p["K"])
    ref = ((uv - p["x2d"]) ** 2).sum(-1).mean(-1)
    torch.testing.assert_close(projection_loss(p["R"], t2, p["x3d"], p["x2d"], p["K"], reduction="none"), ref)
    torch.testing.assert_close(projection_loss(p["R"], t2, p["x3d"], p["x2d"], p["K"]), ref.mean())


def test_shared_points_and_intrinsics_and_gradients():
    p = make_problem(B=2, N=10, seed=2)
    pts = p["x3d"][0]
    gt = project_points(transform_points(p["R"], p["t"], pts.expand(2, -1, -1)), p["K"])
    t = (p["t"] + 3.0).requires_grad_(True)
    loss = projection_loss(p["R"], t, pts, gt, p["K"][0])
    loss.backward()
    assert loss > 0 and torch.isfinite(t.grad).all() and t.grad.abs().sum() > 0
    t0 = t.detach().clone().requires_grad_(True)
    assert torch.autograd.gradcheck(lambda tt: projection_loss(p["R"], tt, pts, gt, p["K"][0]), (t0,))


def test_bad_shapes_and_reduction():
    p = make_problem(B=2, N=10)
    with pytest.raises(ShapeError, match="pts_m"):
        projection_loss(p["R"], p["t"], p["x3d"], p["x2d"][:, :5], p["K"])
    with pytest.raises(ShapeError, match="R"):
        projection_loss(p["R"][:, :2], p["t"], p["x3d"], p["x2d"], p["K"])
    with pytest.raises(ConfigError, match="reduction"):
        projection_loss(p["R"], p["t"], p["x3d"], p["x2d"], p["K"], reduction="sum")

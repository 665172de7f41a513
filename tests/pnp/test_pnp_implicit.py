"""Gradients of solve_pnp: the exact derivative of the solution (gradcheck, central finite differences)."""

from __future__ import annotations

import pytest
import torch
from pnp_problems import make_problem

from bopnp.pnp import objective as obj
from bopnp.pnp import projection_loss, solve_pnp
from bopnp.pnp import solver as solver_mod


def _noisy(seed=0, B=2, N=8):
    p = make_problem(B=B, N=N, noise_px=2.0, seed=seed)
    w = torch.rand(B, N, dtype=torch.float64, generator=torch.Generator().manual_seed(seed)) + 0.5
    return p, w


@pytest.mark.parametrize("name", ["x2d", "x3d", "K", "weights"])
def test_gradcheck_every_input_on_noisy_problems(name):
    p, w = _noisy(seed=1)
    args = dict(x2d=p["x2d"], x3d=p["x3d"], K=p["K"], weights=w)

    def f(v):
        a = dict(args)
        a[name] = v
        r = solve_pnp(a["x2d"], a["x3d"], a["K"], a["weights"])
        return r.R, r.t, r.pose

    assert torch.autograd.gradcheck(f, (args[name].clone().requires_grad_(True),), eps=1e-6, atol=1e-6, rtol=1e-5)


def _jacobian_fd(p, w, h=1e-5):
    """Central differences of the pose w.r.t. every pixel coordinate: (B, 6, B, N, 2)."""
    x2d = p["x2d"]
    J = torch.zeros(6 * x2d.shape[0], x2d.numel(), dtype=torch.float64)
    for i in range(x2d.numel()):
        d = torch.zeros(x2d.numel(), dtype=torch.float64)
        d[i] = h
        d = d.view_as(x2d)
        plus = solve_pnp(x2d + d, p["x3d"], p["K"], w, tol=1e-13).pose
        minus = solve_pnp(x2d - d, p["x3d"], p["K"], w, tol=1e-13).pose
        J[:, i] = ((plus - minus) / (2 * h)).reshape(-1)
    return J


def _jacobian_autograd(p, w):
    return torch.autograd.functional.jacobian(lambda u: solve_pnp(u, p["x3d"], p["K"], w).pose, p["x2d"]).reshape(
        6 * p["x2d"].shape[0], -1
    )


def test_jacobian_matches_central_differences_and_gauss_newton_would_not(monkeypatch):
    p, w = _noisy(seed=2, B=2, N=10)
    J_fd = _jacobian_fd(p, w)
    J = _jacobian_autograd(p, w)
    scale = J_fd.abs().max()
    err = (J - J_fd).abs().max() / scale
    assert err < 1e-5, err
    # The Gauss-Newton matrix in place of the true Hessian (what an approximate layer would use) is visibly off.
    monkeypatch.setattr(solver_mod.obj, "true_hessian", lambda pt, A: obj.gauss_newton_system(pt, A)[1])
    J_gn = _jacobian_autograd(p, w)
    err_gn = (J_gn - J_fd).abs().max() / scale
    assert err_gn > 100 * err and err_gn > 1e-3, (err, err_gn)


def test_noise_free_gradient_has_zero_residual_limit(monkeypatch):
    # On exact data the Gauss-Newton and true Hessians coincide: both gradients agree.
    p = make_problem(B=1, N=8, seed=3)
    w = torch.ones(1, 8, dtype=torch.float64)
    J = _jacobian_autograd(p, w)
    J_fd = _jacobian_fd(p, w)
    assert ((J - J_fd).abs().max() / J_fd.abs().max()) < 1e-5
    monkeypatch.setattr(solver_mod.obj, "true_hessian", lambda pt, A: obj.gauss_newton_system(pt, A)[1])
    J_gn = _jacobian_autograd(p, w)
    err_gn = (J_gn - J).abs().max() / J.abs().max()
    assert err_gn < 1e-10, err_gn


def test_projection_loss_through_the_solver_matches_finite_differences():
    p, w = _noisy(seed=4, B=2, N=12)
    pts = p["x3d"][:, :6]
    gt = p["x2d_clean"][:, :6]
    x2d = p["x2d"].clone().requires_grad_(True)
    res = solve_pnp(x2d, p["x3d"], p["K"], w)
    loss = projection_loss(res.R, res.t, pts, gt, p["K"])
    loss.backward()
    i, h = (1, 3, 0), 1e-5
    vals = []
    for s in (1, -1):
        u = p["x2d"].clone()
        u[i] += s * h
        r = solve_pnp(u, p["x3d"], p["K"], w, tol=1e-13)
        vals.append(projection_loss(r.R, r.t, pts, gt, p["K"]))
    fd = (vals[0] - vals[1]) / (2 * h)
    torch.testing.assert_close(x2d.grad[i], fd, rtol=1e-5, atol=1e-9)


def test_backward_keeps_grad_mode_and_gradient_descent_reduces_the_loss():
    p, w = _noisy(seed=5, B=3, N=20)
    x2d = p["x2d"].clone().requires_grad_(True)
    opt = torch.optim.SGD([x2d], lr=5.0)
    losses = []
    for _ in range(5):
        opt.zero_grad()
        res = solve_pnp(x2d, p["x3d"], p["K"], w)
        loss = projection_loss(res.R, res.t, p["x3d"], p["x2d_clean"], p["K"])
        assert torch.is_grad_enabled()
        loss.backward()
        assert torch.is_grad_enabled()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < 0.5 * losses[0], losses


def test_no_graph_without_grad_inputs():
    p = make_problem(B=2, N=10)
    res = solve_pnp(p["x2d"], p["x3d"], p["K"])
    assert not res.R.requires_grad and not res.pose.requires_grad


def test_shared_model_points_and_intrinsics_receive_summed_gradients():
    p, w = _noisy(seed=6, B=3, N=15)
    from bopnp.geometry import project_points, transform_points

    x3d = p["x3d"][0].clone().requires_grad_(True)
    K = p["K"][0].clone().requires_grad_(True)
    x2d = project_points(transform_points(p["R"], p["t"], x3d.detach().expand(3, -1, -1)), p["K"]) + 1.0
    solve_pnp(x2d, x3d, K, w).pose.sum().backward()
    assert x3d.grad.shape == (15, 3) and K.grad.shape == (3, 3)
    xb = x3d.detach().expand(3, -1, -1).clone().requires_grad_(True)
    Kb = K.detach().expand(3, -1, -1).clone().requires_grad_(True)
    solve_pnp(x2d, xb, Kb, w).pose.sum().backward()
    torch.testing.assert_close(x3d.grad, xb.grad.sum(0))
    torch.testing.assert_close(K.grad, Kb.grad.sum(0))
    assert (K.grad[2] == 0).all()

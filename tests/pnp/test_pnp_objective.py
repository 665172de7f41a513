"""The closed-form derivatives of the objective against torch autograd on the same formula."""

from __future__ import annotations

import torch
from torch.autograd.functional import hessian, jacobian

from bopnp.geometry import axis_angle_to_matrix, random_rotation
from bopnp.pnp import objective as obj

DT = torch.float64


def _problem(B=3, N=12, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(B, N, 3, generator=g, dtype=DT) * 40
    R = random_rotation(B, generator=g, dtype=DT)
    t = torch.randn(B, 3, generator=g, dtype=DT) * 20 + torch.tensor([0, 0, 600.0], dtype=DT)
    K = torch.tensor([[600.0, 1.5, 320.0], [0.3, 590.0, 240.0], [0, 0, 1]], dtype=DT).repeat(B, 1, 1)
    A, c = K[:, :2, :2], K[:, :2, 2]
    X = x @ R.transpose(-1, -2) + t[:, None]
    u = (X[..., :2] / X[..., 2:]) @ A.transpose(-1, -2) + c[:, None] + torch.randn(B, N, 2, generator=g, dtype=DT) * 3
    w = torch.rand(B, N, generator=g, dtype=DT) + 0.2
    w[:, 0] = 0.0  # an unused point
    return R, t, x.transpose(1, 2), A, c, u.transpose(1, 2), w  # points-last layout


def _energy_of_local(R, t, x, A, c, u, w):
    def f(y):
        Rl = axis_angle_to_matrix(y[:, :3]) @ R
        return obj.cost(obj.point_terms(Rl, t + y[:, 3:], x, A, c, u, w)).sum()

    return f


def test_gradient_and_true_hessian_match_autograd():
    R, t, x, A, c, u, w = _problem()
    y0 = torch.zeros(R.shape[0], 6, dtype=DT)
    f = _energy_of_local(R, t, x, A, c, u, w)
    g_ref = jacobian(f, y0)
    H_ref = hessian(f, y0)  # (B, 6, B, 6), block diagonal
    pt = obj.point_terms(R, t, x, A, c, u, w)
    g, H_gn = obj.gauss_newton_system(pt, A)
    H = obj.true_hessian(pt, A)
    torch.testing.assert_close(g, g_ref, rtol=1e-10, atol=1e-8)
    for b in range(R.shape[0]):
        torch.testing.assert_close(H[b], H_ref[b, :, b], rtol=1e-9, atol=1e-6)
    # with noise, the Gauss-Newton matrix is visibly not the Hessian
    assert (H_gn - H).abs().max() > 1e-3 * H.abs().max()


def test_implicit_vjp_matches_autograd_of_the_contracted_gradient():
    R, t, x, A, c, u, w = _problem(seed=1)
    lam = torch.randn(R.shape[0], 6, dtype=DT, generator=torch.Generator().manual_seed(5))
    x, A, c, u, w = (v.clone().requires_grad_(True) for v in (x, A, c, u, w))
    y0 = torch.zeros(R.shape[0], 6, dtype=DT, requires_grad=True)
    Rl = axis_angle_to_matrix(y0[:, :3]) @ R
    E = obj.cost(obj.point_terms(Rl, t + y0[:, 3:], x, A, c, u, w)).sum()
    (gy,) = torch.autograd.grad(E, y0, create_graph=True)
    s = (gy * lam).sum()
    ref = torch.autograd.grad(s, (u, x, A, c, w))
    with torch.no_grad():
        got = obj.implicit_vjp(obj.point_terms(R, t, x, A, c, u, w), R, A, lam)
    for name, r_, g_ in zip("u x A c w".split(), ref, (got.u, got.x, got.A, got.c, got.w)):
        torch.testing.assert_close(g_, -r_, rtol=1e-9, atol=1e-9, msg=name)


def test_rotation_grad_to_local_is_the_directional_derivative():
    g = torch.Generator().manual_seed(2)
    R = random_rotation(4, generator=g, dtype=DT)
    G = torch.randn(4, 3, 3, generator=g, dtype=DT)
    phi = torch.zeros(4, 3, dtype=DT, requires_grad=True)
    L = ((axis_angle_to_matrix(phi) @ R) * G).sum()
    (ref,) = torch.autograd.grad(L, phi)
    torch.testing.assert_close(obj.rotation_grad_to_local(G, R), ref)

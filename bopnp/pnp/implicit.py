"""Exact gradients of the PnP solution by the implicit function theorem, as a ``torch.autograd.Function``.

At the solution ``y* = (R*, t*)`` the gradient of the objective vanishes, ``f(y*, theta) = dE/dy = 0``, for the inputs
``theta = (x2d, x3d, K, w)``. Differentiating that identity gives ``dy*/dtheta = -H^{-1} df/dtheta`` with ``H = df/dy``
the true Hessian of ``E`` (second-order residual terms included). The backward pass computes the vector-Jacobian
product ``-(H^{-1} g) . df/dtheta`` in closed form (:func:`bopnp.pnp.objective.implicit_vjp`): one 6x6 solve per item
and O(B * N) memory.

The Hessian is factorised in the forward pass (it is needed there to decide validity), so the backward pass only runs
two triangular solves and one pass over the points.
"""

from __future__ import annotations

import torch
from torch import Tensor
from torch.autograd.function import once_differentiable

from bopnp.geometry import axis_angle_vjp_left, matrix_to_axis_angle
from bopnp.pnp import objective as obj
from bopnp.pnp.finite import all_finite


def hessian_factor(H: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """Cholesky factor of the Jacobi-scaled Hessian ``S H S`` with ``S = diag(H)^{-1/2}``.

    Args:
        H: (B, 6, 6) symmetric.
    Returns:
        L: (B, 6, 6) lower factor (identity where the factorisation failed). s: (B, 6) scaling ``diag(S)``.
        rcond: (B,) smallest squared pivot of ``L`` (<= the smallest eigenvalue of ``S H S``; 0 where ``H`` is not
        positive definite): a cheap, synchronisation-free conditioning measure.
    """
    diag = H.diagonal(dim1=-2, dim2=-1)
    pos = (diag > 0).all(-1) & all_finite(H)
    s = torch.where(diag > 0, diag, torch.ones_like(diag)).rsqrt()
    Hs = H * s.unsqueeze(-1) * s.unsqueeze(-2)
    eye = torch.eye(6, dtype=H.dtype, device=H.device).expand_as(H)
    Hs = torch.where(pos[:, None, None], Hs, eye)
    L, info = torch.linalg.cholesky_ex(Hs)
    ok = pos & (info == 0) & all_finite(L)
    L = torch.where(ok[:, None, None], L, eye)
    piv = L.diagonal(dim1=-2, dim2=-1).amin(-1) ** 2
    return L, s, torch.where(ok, piv, torch.zeros_like(piv))


class ImplicitPnP(torch.autograd.Function):
    """Identity on a precomputed PnP solution ``(R, t)`` whose backward is the implicit-function-theorem gradient.

    Inputs: ``x2d`` (B, N, 2) px, ``x3d`` (B, N, 3) mm, ``K`` (B, 3, 3), ``w`` (B, N) (the weights the solution was
    refined with, 0 for unused points; all four may require grad), then without gradient: ``R`` (B, 3, 3), ``t``
    (B, 3) mm, ``centre`` (B, 3) mm (any fixed point near the model; used for conditioning), ``L`` (B, 6, 6) and ``s``
    (B, 6) from :func:`hessian_factor` of the true Hessian at the solution in the centred parametrisation, and
    ``valid`` (B,) bool (invalid items get zero gradients).
    Outputs: ``R`` (B, 3, 3), ``t`` (B, 3), and the axis-angle of ``R`` (B, 3), whose gradient is pulled back in
    closed form (:func:`bopnp.geometry.axis_angle_vjp_left`) rather than through an autograd graph of the log map.
    """

    @staticmethod
    def forward(ctx, x2d, x3d, K, w, R, t, centre, L, s, valid):  # noqa: D102
        aa = matrix_to_axis_angle(R)
        ctx.save_for_backward(x2d, x3d, K, w, R, t, centre, L, s, valid, aa)
        return R.clone(), t.clone(), aa

    @staticmethod
    @once_differentiable
    def backward(ctx, grad_R: Tensor | None, grad_t: Tensor | None, grad_aa: Tensor | None):  # noqa: D102
        x2d, x3d, K, w, R, t, centre, L, s, valid, aa = ctx.saved_tensors
        B = R.shape[0]
        g_phi = torch.zeros(B, 3, dtype=R.dtype, device=R.device)
        g_t = torch.zeros_like(g_phi)
        if grad_R is not None:
            g_phi = obj.rotation_grad_to_local(grad_R, R)
        if grad_aa is not None:
            g_phi = g_phi + axis_angle_vjp_left(aa, grad_aa)
        if grad_t is not None:
            g_t = grad_t
        Rm = (R @ centre.unsqueeze(-1)).squeeze(-1)
        # gradients for the centred parametrisation (phi, tau), tau = t + R m
        g = torch.cat([g_phi - torch.linalg.cross(Rm, g_t), g_t], -1)
        # lam = H^{-1} g with H = S^{-1} L L^T S^{-1}; triangular solves never check for errors, so never sync
        z = torch.linalg.solve_triangular(L, (g * s).unsqueeze(-1), upper=False)
        lam = torch.linalg.solve_triangular(L.transpose(-1, -2), z, upper=True).squeeze(-1) * s
        lam = torch.where((valid & all_finite(lam)).unsqueeze(-1), lam, torch.zeros_like(lam))
        A, c = K[:, :2, :2], K[:, :2, 2]
        xc = (x3d - centre.unsqueeze(1)).transpose(1, 2)  # points-last layout
        tau = t + Rm
        Z = (R[:, 2:] @ xc).squeeze(1) + tau[:, 2:]
        # zero-weight points in front of the camera still get the derivative w.r.t. their weight
        mask = (w > 0) | (Z > obj.z_eps(Z.dtype))
        pt = obj.point_terms(R, tau, xc, A, c, x2d.transpose(1, 2), w, mask)
        grads = obj.implicit_vjp(pt, R, A, lam)
        gK = None
        if ctx.needs_input_grad[2]:
            gK = torch.zeros_like(K)
            gK[:, :2, :2] = grads.A
            gK[:, :2, 2] = grads.c
        return (
            grads.u.transpose(1, 2) if ctx.needs_input_grad[0] else None,
            grads.x.transpose(1, 2) if ctx.needs_input_grad[1] else None,
            gK,
            grads.w if ctx.needs_input_grad[3] else None,
            None,
            None,
            None,
            None,
            None,
            None,
        )


__all__ = ["ImplicitPnP", "hessian_factor"]

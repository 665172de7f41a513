"""The objective the PnP layer minimises, and its first and second derivatives, closed-form and batched.

The weighted geometric reprojection error of a pose ``(R, t)``::

    E(R, t) = sum_i w_i || A n_i + c - u_i ||^2,   n_i = (X_i / Z_i, Y_i / Z_i),   X_i = R x_i + t,

with ``A = K[:2, :2]`` and ``c = K[:2, 2]`` (the third row of ``K`` is taken to be ``[0, 0, 1]``, as in
:func:`bopnp.geometry.project_points`). Poses are perturbed locally: ``R <- exp([phi]x) R``, ``t <- t + dt``, so the
six local coordinates are ``y = (phi, dt)`` (radians, mm) and every derivative here is taken at ``y = 0``.

Layout: per-point tensors here are *points-last*, ``x: (B, 3, N)``, ``u: (B, 2, N)``, ``w: (B, N)``, so that every
elementwise operation runs over long contiguous rows of N values (several times faster on CPUs than ``(B, N, 3)``
with its tiny innermost dimension) and the sums over points are batched matrix products. Points with weight 0
contribute nothing (their values may be anything finite). Everything costs O(B * N) time and memory.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor


def z_eps(dtype: torch.dtype) -> float:
    """Smallest |Z| (mm) a projection divides by; keeps points on the image plane finite."""
    return 1e-9 if dtype == torch.float64 else 1e-6


@dataclass
class PointTerms:
    """Per-point quantities of the objective at one pose.

    Attributes:
        p: (B, 3, N) rotated model points ``R x``, mm.
        X: (B, 3, N) camera-frame points ``R x + t``, mm.
        zinv: (B, N) ``1 / Z``; 0 outside the evaluated points.
        n: (B, 2, N) normalised image coordinates ``(X / Z, Y / Z)``.
        An: (B, 2, N) ``A n``, px.
        r: (B, 2, N) residuals ``A n + c - u``, px; 0 outside the evaluated points.
        w: (B, N) weights (0 for unused points).
    """

    p: Tensor
    X: Tensor
    zinv: Tensor
    n: Tensor
    An: Tensor
    r: Tensor
    w: Tensor


def point_terms(
    R: Tensor, t: Tensor, x: Tensor, A: Tensor, c: Tensor, u: Tensor, w: Tensor, mask: Tensor | None = None
) -> PointTerms:
    """Evaluate the per-point terms of the objective.

    Args:
        R: (B, 3, 3) rotation. t: (B, 3) translation, mm.
        x: (B, 3, N) model points, mm. A: (B, 2, 2) ``K[:2, :2]``. c: (B, 2) ``K[:2, 2]``, px.
        u: (B, 2, N) observed pixels. w: (B, N) weights >= 0.
        mask: (B, N) bool, points whose terms are evaluated (default ``w > 0``); the others get zero terms. A point
            with weight 0 inside the mask contributes nothing to ``E`` but has a (nonzero) derivative w.r.t. its weight.
    Returns:
        :class:`PointTerms`.
    """
    p = R @ x
    X = p + t.unsqueeze(-1)
    Z = X[:, 2]
    eps = z_eps(X.dtype)
    Zs = torch.where(Z.abs() < eps, eps, Z)
    used = w > 0 if mask is None else mask
    zinv = torch.where(used, Zs.reciprocal(), 0.0)
    n = X[:, :2] * zinv.unsqueeze(1)
    An = A @ n
    r = torch.where(used.unsqueeze(1), An + c.unsqueeze(-1) - u, 0.0)
    return PointTerms(p=p, X=X, zinv=zinv, n=n, An=An, r=r, w=w)


def cost(pt: PointTerms) -> Tensor:
    """Weighted sum of squared residuals, (B,) px^2."""
    return (pt.w * (pt.r * pt.r).sum(1)).sum(-1)


def _dn_t(pt: PointTerms, v: Tensor) -> Tensor:
    """``(dn/dX)^T v`` for every point: v (B, 2, N) -> (B, 3, N)."""
    v1, v2 = v[:, 0], v[:, 1]
    nx, ny = pt.n[:, 0], pt.n[:, 1]
    return torch.stack([v1, v2, -(v1 * nx + v2 * ny)], 1) * pt.zinv.unsqueeze(1)


def jacobian(pt: PointTerms, A: Tensor) -> Tensor:
    """(B, 6, 2, N) derivative of the residuals with respect to ``(phi, t)``; 0 outside the evaluated points.

    Row ``k`` of ``dr/dX`` is ``j_k = zinv (A_k0, A_k1, -(A n)_k)``; since ``dX/dphi = -[p]x`` the rotation part of
    that row is ``p x j_k``. Both rows are computed together (14 tensor operations, whatever B and N).
    """
    zi = pt.zinv.unsqueeze(1)  # (B, 1, N); every term below is (B, 2, N): both rows k at once
    jx, jy, jz = A[:, :, 0, None] * zi, A[:, :, 1, None] * zi, -(pt.An * zi)
    px, py, pz = (pt.p[:, i : i + 1] for i in range(3))
    return torch.stack([py * jz - pz * jy, pz * jx - px * jz, px * jy - py * jx, jx, jy, jz], 1)


def _weighted_gram(J: Tensor, w: Tensor) -> Tensor:
    """``sum_i w_i J_i^T J_i`` for J (B, m, k, N): (B, m, m)."""
    B, m = J.shape[:2]
    Jf = J.reshape(B, m, -1)
    Jw = (J * w[:, None, None, :]).reshape(B, m, -1)
    return Jw @ Jf.transpose(1, 2)


def gauss_newton_system(pt: PointTerms, A: Tensor) -> tuple[Tensor, Tensor]:
    """Gradient and Gauss-Newton approximation of the Hessian of ``E``.

    Args:
        pt: terms at the pose. A: (B, 2, 2).
    Returns:
        g: (B, 6) ``dE/dy``. H: (B, 6, 6) ``2 sum_i w_i J_i^T J_i``.
    """
    J = jacobian(pt, A)
    B = J.shape[0]
    wr = (pt.w.unsqueeze(1) * pt.r).reshape(B, -1, 1)
    g = 2 * (J.reshape(B, 6, -1) @ wr).squeeze(-1)
    return g, 2 * _weighted_gram(J, pt.w)


def _second_order(pt: PointTerms, A: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """Second-derivative pieces of ``r . (A n)`` w.r.t. ``X`` with ``a = A^T r``.

    Returns:
        a: (B, 2, N). an: (B, N) ``a . n``. g3: (B, 3, N) ``(dn/dX)^T a``. The matrix
        ``S = sum_m a_m d^2 n_m / dX^2`` is ``zinv^2 [[0, 0, -a1], [0, 0, -a2], [-a1, -a2, 2 a.n]]``.
    """
    a = A.transpose(1, 2) @ pt.r
    an = (a * pt.n).sum(1)
    return a, an, _dn_t(pt, a)


def _S_times(pt: PointTerms, a: Tensor, an: Tensor, v: Tensor) -> Tensor:
    """``S v`` for every point (see :func:`_second_order`): v (B, 3, N) -> (B, 3, N)."""
    a1, a2 = a[:, 0], a[:, 1]
    v0, v1, v2 = v[:, 0], v[:, 1], v[:, 2]
    z2 = pt.zinv * pt.zinv
    return torch.stack([-a1 * v2, -a2 * v2, -a1 * v0 - a2 * v1 + 2 * an * v2], 1) * z2.unsqueeze(1)


def true_hessian(pt: PointTerms, A: Tensor) -> Tensor:
    """Exact Hessian of ``E`` with respect to the local pose coordinates ``(phi, t)`` at 0.

    Unlike the Gauss-Newton matrix it keeps the terms ``r_k d^2 r_k / dy^2`` (of the projection and of the rotation
    map), which do not vanish when the residuals are nonzero.

    Args:
        pt: terms at the pose. A: (B, 2, 2).
    Returns:
        (B, 6, 6), symmetric.
    """
    H = _weighted_gram(jacobian(pt, A), pt.w)
    a, an, g3 = _second_order(pt, A)
    # B^T S B with B = dX/dy = [-[p]x, I] (rows b0, b1, b2) and S sparse equals v b2^T + b2 v^T,
    # v = s02 b0 + s12 b1 + s22 / 2 b2 with s02 = -a1 zinv^2, s12 = -a2 zinv^2, s22 = 2 a.n zinv^2.
    px, py, pz = pt.p[:, 0], pt.p[:, 1], pt.p[:, 2]
    z2w = pt.zinv * pt.zinv * pt.w
    c0, c1, c2 = -a[:, 0] * z2w, -a[:, 1] * z2w, an * z2w  # weighted coefficients of b0, b1, b2
    zero, one = torch.zeros_like(px), torch.ones_like(px)
    v = torch.stack([-c1 * pz + c2 * py, c0 * pz - c2 * px, -c0 * py + c1 * px, c0, c1, c2], 1)  # (B, 6, N)
    b2 = torch.stack([py, -px, zero, zero, zero, one], 1)
    M = v @ b2.transpose(1, 2)
    H = H + M + M.transpose(1, 2)
    # second derivative of exp([phi]x) p: d2 X_j / dphi_a dphi_b = (delta_ja p_b + delta_jb p_a) / 2 - delta_ab p_j
    P = (g3 * pt.w.unsqueeze(1)) @ pt.p.transpose(1, 2)  # (B, 3, 3): sum_i w g p^T
    gp = P.diagonal(dim1=-2, dim2=-1).sum(-1)
    P = 0.5 * (P + P.transpose(1, 2)) - gp[:, None, None] * torch.eye(3, dtype=P.dtype, device=P.device)
    H = H + torch.nn.functional.pad(P, (0, 3, 0, 3))
    H = 2 * H
    return 0.5 * (H + H.transpose(1, 2))


@dataclass
class ImplicitGrads:
    """Gradients ``-d(lambda . dE/dy)/d(theta)`` of the implicit-function-theorem vector-Jacobian product.

    Attributes:
        u: (B, 2, N) w.r.t. the observed pixels. x: (B, 3, N) w.r.t. the model points (as given to
        :func:`point_terms`). A: (B, 2, 2). c: (B, 2). w: (B, N).
    """

    u: Tensor
    x: Tensor
    A: Tensor
    c: Tensor
    w: Tensor


def implicit_vjp(pt: PointTerms, R: Tensor, A: Tensor, lam: Tensor) -> ImplicitGrads:
    """Closed-form ``-d s / d theta`` with ``s(theta) = lam . dE/dy (y*, theta)`` and ``lam`` held fixed.

    With ``lam = H^{-1} dL/dy`` (``H`` the true Hessian), this is the gradient of a loss ``L`` through the solution
    ``y*(theta)`` of ``dE/dy = 0`` (implicit function theorem).

    Args:
        pt: terms at the solution. R: (B, 3, 3) rotation at the solution. A: (B, 2, 2). lam: (B, 6).
    Returns:
        :class:`ImplicitGrads`.
    """
    lphi, lt = lam[:, :3, None], lam[:, 3:, None]
    dX = torch.linalg.cross(lphi.expand_as(pt.p), pt.p, dim=1) + lt  # (B, 3, N) directional change of X
    nx, ny = pt.n[:, 0], pt.n[:, 1]
    q = torch.stack([dX[:, 0] - nx * dX[:, 2], dX[:, 1] - ny * dX[:, 2]], 1) * pt.zinv.unsqueeze(1)
    d = A @ q  # (B, 2, N) directional change of the projection
    w2 = 2 * pt.w.unsqueeze(1)
    wd = w2 * d
    grad_w = -2 * (pt.r * d).sum(1)
    grad_c = -wd.sum(-1)
    grad_A = -(wd @ pt.n.transpose(1, 2) + (w2 * pt.r) @ q.transpose(1, 2))
    a, an, g3 = _second_order(pt, A)
    gX = _dn_t(pt, A.transpose(1, 2) @ d) + _S_times(pt, a, an, dX) - torch.linalg.cross(lphi.expand_as(g3), g3, dim=1)
    grad_x = -(R.transpose(1, 2) @ (w2 * gX))
    return ImplicitGrads(u=wd, x=grad_x, A=grad_A, c=grad_c, w=grad_w)


def sq_errors(R: Tensor, t: Tensor, x: Tensor, A: Tensor, c: Tensor, u: Tensor) -> tuple[Tensor, Tensor]:
    """Squared reprojection errors of several poses per item (for scoring candidates and hypotheses).

    Args:
        R: (B, H, 3, 3). t: (B, H, 3) mm. x: (B, 3, N) mm. A: (B, 2, 2). c: (B, 2). u: (B, 2, N) px.
    Returns:
        err2: (B, H, N) px^2. z: (B, H, N) depths, mm.
    """
    B, H = R.shape[:2]
    N = x.shape[-1]
    # P = [[A, c], [0, 0, 1]] [R | t]: one (B, 3H, 4) x (B, 4, N) product gives all homogeneous projections
    Kp = torch.zeros(B, 1, 3, 3, dtype=x.dtype, device=x.device)
    Kp[:, 0, :2, :2] = A
    Kp[:, 0, :2, 2] = c
    Kp[:, 0, 2, 2] = 1
    P = Kp @ torch.cat([R, t.unsqueeze(-1)], -1)  # (B, H, 3, 4)
    xh = torch.cat([x, torch.ones_like(x[:, :1])], 1)  # (B, 4, N)
    Y = (P.reshape(B, 3 * H, 4) @ xh).view(B, H, 3, N)
    z = Y[:, :, 2]
    eps = z_eps(x.dtype)
    inv = torch.where(z.abs() < eps, torch.full_like(z, eps), z).reciprocal()
    du = Y[:, :, 0] * inv - u[:, None, 0]
    dv = Y[:, :, 1] * inv - u[:, None, 1]
    return du * du + dv * dv, z


def rotation_grad_to_local(grad_R: Tensor, R: Tensor) -> Tensor:
    """Gradient w.r.t. the left perturbation ``phi`` of ``R <- exp([phi]x) R`` from a gradient w.r.t. ``R``.

    Args:
        grad_R: (B, 3, 3). R: (B, 3, 3).
    Returns:
        (B, 3).
    """
    G = grad_R @ R.transpose(-1, -2)
    return torch.stack([G[:, 2, 1] - G[:, 1, 2], G[:, 0, 2] - G[:, 2, 0], G[:, 1, 0] - G[:, 0, 1]], -1)


__all__ = [
    "PointTerms",
    "ImplicitGrads",
    "point_terms",
    "cost",
    "jacobian",
    "gauss_newton_system",
    "true_hessian",
    "implicit_vjp",
    "rotation_grad_to_local",
    "sq_errors",
    "z_eps",
]

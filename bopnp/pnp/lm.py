"""Batched Levenberg-Marquardt on the weighted geometric reprojection error (see :mod:`bopnp.pnp.objective`).

Every item of the batch has its own damping, acceptance and stopping; the loop runs a fixed maximum number of
iterations over the whole batch and only looks at the host every ``check_every`` iterations to stop early once every
item has converged (on CUDA that is the only synchronisation of the loop).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from bopnp.geometry import axis_angle_to_matrix
from bopnp.pnp import objective as obj
from bopnp.pnp.finite import all_finite


def default_tol(dtype: torch.dtype) -> float:
    """Default step tolerance: radians for the rotation, relative for the translation."""
    return 1e-11 if dtype == torch.float64 else 1e-6


@dataclass
class LMResult:
    """R: (B, 3, 3). t: (B, 3) mm. cost: (B,) px^2. iterations: (B,) int."""

    R: Tensor
    t: Tensor
    cost: Tensor
    iterations: Tensor


def _scaled_solve(H: Tensor, g: Tensor, mu: Tensor) -> tuple[Tensor, Tensor]:
    """Solve ``(H + mu diag(H)) d = -g`` with symmetric Jacobi scaling; returns (d, ok)."""
    diag = H.diagonal(dim1=-2, dim2=-1)
    floor = diag.amax(-1, keepdim=True).clamp_min(torch.finfo(H.dtype).tiny) * 1e-12
    D = diag.clamp_min(0).maximum(floor)
    s = D.rsqrt()
    Hs = H * s.unsqueeze(-1) * s.unsqueeze(-2)
    Hs = Hs + (mu.unsqueeze(-1) * torch.ones_like(D)).diag_embed()
    z, info = torch.linalg.solve_ex(Hs, -(g * s).unsqueeze(-1))
    d = z.squeeze(-1) * s
    ok = (info == 0) & all_finite(d)
    return torch.where(ok.unsqueeze(-1), d, torch.zeros_like(d)), ok


def _scaled_norm(g: Tensor, H: Tensor) -> Tensor:
    """(B,) norm of the gradient scaled by ``diag(H)^{-1/2}`` (invariant to the units of the parameters)."""
    diag = H.diagonal(dim1=-2, dim2=-1)
    return (g * g / diag.clamp_min(torch.finfo(H.dtype).tiny)).sum(-1)


def _cost_noise(pt: obj.PointTerms, usize: Tensor) -> Tensor:
    """(B,) rounding error of ``E``: residuals are differences of pixel-sized numbers (``usize``: (B, N), px), so
    they carry an absolute error of about ``eps * |u|``, which dominates once the fit is tight."""
    eps = torch.finfo(usize.dtype).eps
    rn = (pt.r * pt.r).sum(1).sqrt()  # (not .norm(dim=1): a slow strided reduction on CPUs)
    return 32 * eps * (pt.w * rn * (usize + rn)).sum(-1)


def levenberg_marquardt(
    R: Tensor,
    t: Tensor,
    x: Tensor,
    A: Tensor,
    c: Tensor,
    u: Tensor,
    w: Tensor,
    *,
    max_iters: int = 30,
    tol: float | None = None,
    check_every: int | None = None,
) -> LMResult:
    """Minimise ``E(R, t)`` from an initial pose, all items at once.

    Args:
        R: (B, 3, 3) initial rotation. t: (B, 3) initial translation, mm.
        x: (B, 3, N) model points, mm (centred on their centroid for good conditioning).
        A: (B, 2, 2) ``K[:2, :2]``. c: (B, 2) ``K[:2, 2]``. u: (B, 2, N) px. w: (B, N) weights >= 0.
        max_iters: iteration cap. tol: step tolerance (:func:`default_tol` when None).
        check_every: iterations between early-stop checks (1 on CPU, 4 on CUDA when None).
    Returns:
        :class:`LMResult`.
    """
    B = R.shape[0]
    dt = R.dtype
    tol = default_tol(dt) if tol is None else tol
    if check_every is None:
        check_every = 1 if R.device.type == "cpu" else 4
    pt = obj.point_terms(R, t, x, A, c, u, w)
    E = obj.cost(pt)
    g, H = obj.gauss_newton_system(pt, A)
    # items with a non-finite start are returned unchanged, with 0 iterations
    active = all_finite(E, g, H)
    usize = (u * u).sum(1).sqrt() + c.norm(dim=-1, keepdim=True)
    noise = _cost_noise(pt, usize)
    mu = torch.full((B,), 1e-3, dtype=dt, device=R.device)
    iters = torch.zeros(B, dtype=torch.long, device=R.device)
    tscale = (x * x).sum(1).amax(-1).sqrt()  # (B,) size of the model, mm
    gs = _scaled_norm(g, H)
    for it in range(max_iters):
        d, ok = _scaled_solve(H, g, mu)
        R_new = axis_angle_to_matrix(d[:, :3]) @ R
        t_new = t + d[:, 3:]
        pt_new = obj.point_terms(R_new, t_new, x, A, c, u, w)
        E_new = obj.cost(pt_new)
        g_new, H_new = obj.gauss_newton_system(pt_new, A)
        finite = all_finite(E_new, g_new, H_new)
        # Near the minimum the cost stops resolving progress (rounding): there, a step that shrinks the
        # (Jacobi-scaled) gradient is accepted too, so the solution reaches stationarity, which the gradients need.
        flat = finite & ((E_new - E).abs() <= noise)
        gs_new = _scaled_norm(g_new, H_new)
        accept = active & ok & finite & ((E_new < E) | (flat & (gs_new < gs)))
        small = (d[:, :3].norm(dim=-1) <= tol) & (d[:, 3:].norm(dim=-1) <= tol * (t.norm(dim=-1) + tscale))
        exact = E <= noise  # residuals at rounding level: nothing left to fit
        done = active & ((accept & small) | (~accept & ok & flat) | exact | (mu > 1e16))
        a3 = accept.view(B, 1, 1)
        R = torch.where(a3, R_new, R)
        t = torch.where(a3.view(B, 1), t_new, t)
        E = torch.where(accept, E_new, E)
        noise = torch.where(accept, _cost_noise(pt_new, usize), noise)
        g = torch.where(a3.view(B, 1), g_new, g)
        gs = torch.where(accept, gs_new, gs)
        H = torch.where(a3, H_new, H)
        mu = torch.where(accept, (mu / 10).clamp_min(1e-12), mu * 10)
        iters = iters + active.long()
        active = active & ~done
        if (it + 1) % check_every == 0 and not bool(active.any()):
            break
    return LMResult(R=R, t=t, cost=E, iterations=iters)


__all__ = ["levenberg_marquardt", "LMResult", "default_tol"]

"""Batched Levenberg-Marquardt on the weighted geometric reprojection error (see :mod:`bopnp.pnp.objective`).

Every item of the batch has its own damping, acceptance and stopping; the loop runs a fixed maximum number of
iterations over the whole batch and only looks at the host every ``check_every`` iterations to stop early once every
item has converged (on CUDA that is the only synchronisation of the loop), or never (``check_every=0``): converged
items keep their state, so the result is the same. One iteration (:func:`lm_step`) is a fixed sequence of batched
operations on a packed per-item state, which a CUDA graph can replay (:mod:`bopnp.pnp.graphs`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor

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
    """Solve ``(H + mu diag(H)) d = -g`` with symmetric Jacobi scaling (batched LU without a host check); returns
    (d, ok)."""
    diag = H.diagonal(dim1=-2, dim2=-1)
    floor = diag.amax(-1, keepdim=True).clamp_min(torch.finfo(H.dtype).tiny) * 1e-12
    s = diag.clamp_min(0).maximum(floor).rsqrt()
    Hs = H * (s.unsqueeze(-1) * s.unsqueeze(-2))
    Hs.diagonal(dim1=-2, dim2=-1).add_(mu.unsqueeze(-1))
    z, info = torch.linalg.solve_ex(Hs, -(g * s).unsqueeze(-1))
    d = z.squeeze(-1) * s
    ok = (info == 0) & all_finite(d)
    return torch.where(ok.unsqueeze(-1), d, 0.0), ok


def _scaled_norm(g: Tensor, H: Tensor) -> Tensor:
    """(B,) norm of the gradient scaled by ``diag(H)^{-1/2}`` (invariant to the units of the parameters)."""
    diag = H.diagonal(dim1=-2, dim2=-1)
    return (g * g / diag.clamp_min(torch.finfo(H.dtype).tiny)).sum(-1)


def _cost_noise(r: Tensor, wu: Tensor, E: Tensor) -> Tensor:
    """(B,) rounding error of ``E``: residuals ``r`` (B, 2, N) px are differences of pixel-sized numbers, so they carry
    an absolute error of about ``eps * |u|``, which dominates once the fit is tight. ``wu``: (B, N) weight x pixel
    size; ``E``: (B,) the cost (``sum w |r|^2``)."""
    eps = torch.finfo(r.dtype).eps
    rn = (r * r).sum(1).sqrt()  # (not .norm(dim=1): a slow strided reduction on CPUs)
    return 32 * eps * ((wu * rn).sum(-1) + E)


#: (3, 9) map of a vector to its flattened cross-product matrix: ``(v @ SKEW_MAP).view(3, 3) == skew(v)``
SKEW_MAP = [[0, 0, 0, 0, 0, -1, 0, 1, 0], [0, 0, 1, 0, 0, 0, -1, 0, 0], [0, -1, 0, 1, 0, 0, 0, 0, 0]]


def rotate_left(phi: Tensor, R: Tensor, skew_map: Tensor) -> Tensor:
    """``exp([phi]x) R`` by Rodrigues' formula in a few batched operations, exact at ``phi = 0``
    (``sin(a) / a = sinc(a)`` and ``(1 - cos a) / a^2 = sinc(a / 2)^2 / 2`` through ``torch.sinc``).

    Args:
        phi: (B, 3) rotation vector, radians. R: (B, 3, 3). skew_map: ``SKEW_MAP`` as a (3, 9) tensor like ``phi``.
    Returns:
        (B, 3, 3).
    """
    ang = (phi * phi).sum(-1, keepdim=True).sqrt().unsqueeze(-1) / math.pi  # (B, 1, 1), in units of pi (torch.sinc)
    half = torch.sinc(ang * 0.5)
    Kx = (phi @ skew_map).view(-1, 3, 3)
    KR = Kx @ R
    return R + torch.sinc(ang) * KR + (0.5 * half * half) * (Kx @ KR)


@dataclass
class LMProblem:
    """The fixed data of a Levenberg-Marquardt run (:func:`lm_setup`).

    Attributes:
        x: (B, 3, N) mm. A: (B, 2, 2). c: (B, 2). u: (B, 2, N) px. w: (B, N) weights. used: (B, N) ``w > 0``.
        w2: (B, 2N) the weights once per residual row. wu: (B, N) weight x pixel size (rounding level of E).
        tscale: (B,) model size, mm. skew_map: (3, 9) constant of :func:`rotate_left`.
    """

    x: Tensor
    A: Tensor
    c: Tensor
    u: Tensor
    w: Tensor
    used: Tensor
    w2: Tensor
    wu: Tensor
    tscale: Tensor
    skew_map: Tensor

    def tensors(self) -> list[Tensor]:
        return [getattr(self, f) for f in self.__dataclass_fields__]


def _system(R: Tensor, t: Tensor, P: LMProblem) -> Tensor:
    """Everything one Levenberg-Marquardt iteration needs at a pose, packed into one (B, STATE) row per item (so that
    accepting or rejecting a step is one ``where``): ``R`` (9), ``t`` (3), cost ``E`` (1), its rounding level (1),
    gradient ``g`` (6), scaled gradient norm (1), Gauss-Newton matrix ``H`` (36). ``E``, ``g`` and ``H`` come out of
    one weighted Gram matrix of the Jacobian and the residuals."""
    B = R.shape[0]
    pt = obj.point_terms(R, t, P.x, P.A, P.c, P.u, P.w, P.used)
    Jr = torch.cat([obj.jacobian(pt, P.A), pt.r.unsqueeze(1)], 1).reshape(B, 7, -1)  # (B, 7, 2N)
    M = (Jr * P.w2.unsqueeze(1)) @ Jr.transpose(1, 2)  # (B, 7, 7)
    E = M[:, 6, 6]
    M2 = 2 * M[:, :6]
    g, H = M2[:, :, 6], M2[:, :, :6]
    noise = _cost_noise(pt.r, P.wu, E)
    gs = _scaled_norm(g, H)
    return torch.cat([R.reshape(B, 9), t, E[:, None], noise[:, None], g, gs[:, None], H.reshape(B, 36)], 1)


#: columns of the packed state of :func:`_system`
STATE = 57


def _unpack(S: Tensor) -> tuple[Tensor, ...]:
    """Views of a packed state: R (B, 3, 3), t (B, 3), E (B,), noise (B,), g (B, 6), gs (B,), H (B, 6, 6)."""
    B = S.shape[0]
    return (
        S[:, :9].view(B, 3, 3),
        S[:, 9:12],
        S[:, 12],
        S[:, 13],
        S[:, 14:20],
        S[:, 20],
        S[:, 21:].reshape(B, 6, 6),
    )


def lm_step(
    S: Tensor, mu: Tensor, active: Tensor, iters: Tensor, P: LMProblem, tol: float
) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """One Levenberg-Marquardt iteration of every item, without a host read: items that are not ``active`` keep their
    state (only their damping changes, which they no longer use), so running more iterations than needed changes
    nothing.

    Args:
        S: (B, STATE) packed state (:func:`_system`). mu: (B,) damping. active: (B,) bool. iters: (B,) long.
        P: the problem (:func:`lm_setup`). tol: step tolerance.
    Returns:
        S, mu, active, iters after the iteration.
    """
    R, t, E, noise, g, gs, H = _unpack(S)
    d, ok = _scaled_solve(H, g, mu)
    S_new = _system(rotate_left(d[:, :3], R, P.skew_map), t + d[:, 3:], P)
    E_new, gs_new = S_new[:, 12], S_new[:, 20]
    finite = all_finite(S_new)
    # Near the minimum the cost stops resolving progress (rounding): there, a step that shrinks the
    # (Jacobi-scaled) gradient is accepted too, so the solution reaches stationarity, which the gradients need.
    flat = finite & ((E_new - E).abs() <= noise)
    accept = active & ok & finite & ((E_new < E) | (flat & (gs_new < gs)))
    d2 = d * d
    small = (d2[:, :3].sum(-1) <= tol * tol) & (d2[:, 3:].sum(-1).sqrt() <= tol * (t.norm(dim=-1) + P.tscale))
    exact = E <= noise  # residuals at rounding level: nothing left to fit
    done = (accept & small) | (~accept & ok & flat) | exact | (mu > 1e16)
    S = torch.where(accept.unsqueeze(-1), S_new, S)
    mu = torch.where(accept, (mu * 0.1).clamp_min(1e-12), mu * 10)
    return S, mu, active & ~done, iters + active.long()


def lm_setup(
    R: Tensor, t: Tensor, x: Tensor, A: Tensor, c: Tensor, u: Tensor, w: Tensor, skew_map: Tensor | None = None
) -> tuple[Tensor, Tensor, Tensor, Tensor, LMProblem]:
    """Initial state of :func:`lm_step`: S, mu, active (False where the start is not finite: such items are returned
    unchanged, with 0 iterations), iters, and the problem's constants (``skew_map``: ``SKEW_MAP`` on the device, made
    here when None; a CUDA graph passes its own, made before capture)."""
    B = R.shape[0]
    usize = (u * u).sum(1).sqrt() + c.norm(dim=-1, keepdim=True)
    P = LMProblem(
        x=x,
        A=A,
        c=c,
        u=u,
        w=w,
        used=w > 0,
        w2=w.repeat(1, 2),
        wu=w * usize,
        tscale=(x * x).sum(1).amax(-1).sqrt(),  # (B,) size of the model, mm
        skew_map=torch.tensor(SKEW_MAP, dtype=R.dtype, device=R.device) if skew_map is None else skew_map,
    )
    S = _system(R, t, P)
    active = all_finite(S)
    mu = torch.full((B,), 1e-3, dtype=R.dtype, device=R.device)
    iters = torch.zeros(B, dtype=torch.long, device=R.device)
    return S, mu, active, iters, P


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
        check_every: iterations between early-stop checks, each one host read (1 on CPU, 4 on CUDA when None);
            0: never check, run all ``max_iters`` iterations without a host read (same result: converged items
            keep their state).
    Returns:
        :class:`LMResult`.
    """
    tol = default_tol(R.dtype) if tol is None else tol
    if check_every is None:
        check_every = 1 if R.device.type == "cpu" else 4
    S, mu, active, iters, P = lm_setup(R, t, x, A, c, u, w)
    for it in range(max_iters):
        S, mu, active, iters = lm_step(S, mu, active, iters, P, tol)
        if check_every and (it + 1) % check_every == 0 and not bool(active.any()):
            break
    return lm_result(S, iters)


def lm_result(S: Tensor, iters: Tensor) -> LMResult:
    """The :class:`LMResult` of a packed state."""
    R, t, E = _unpack(S)[:3]
    return LMResult(R=R, t=t, cost=E, iterations=iters)


__all__ = [
    "levenberg_marquardt",
    "lm_setup",
    "lm_step",
    "lm_result",
    "rotate_left",
    "LMProblem",
    "LMResult",
    "default_tol",
    "STATE",
    "SKEW_MAP",
]

"""Levenberg-Marquardt replayed from CUDA graphs: the whole fixed-iteration loop (:func:`bopnp.pnp.lm.lm_step`, about
a hundred small kernels per iteration) is captured once per shape bucket and replayed with one launch.

Small PnP problems on a GPU are bound by kernel launches, not arithmetic: a graph replays the captured kernels
without the Python and launch overhead of each. Graphs need fixed shapes, so a batch is padded to a bucket (B to a
power of two, N to a multiple of 128) with weight-0 points and inactive items, which change nothing: the padded
points contribute exact zeros and padded items never move. A bucket is captured on first use and kept (at most
``MAX_GRAPHS``, least recently used dropped; :func:`clear_graphs` frees them all).

Where capture fails (a linear-algebra kernel that synchronises, a driver that cannot capture), the loop runs eagerly
without host reads (the ``sync_free`` execution of :func:`bopnp.pnp.solve_pnp`, same result) and a warning says so
once per bucket.
"""

from __future__ import annotations

import math
import warnings
from collections import OrderedDict

import torch
from torch import Tensor

from bopnp.pnp.lm import SKEW_MAP, LMResult, default_tol, levenberg_marquardt, lm_result, lm_setup, lm_step

#: graphs kept at once (each holds its bucket's buffers: about 40 * B * N values)
MAX_GRAPHS = 16
#: padding granularity of the number of points
POINT_BUCKET = 128

_GRAPHS: OrderedDict[tuple, _LMGraph | None] = OrderedDict()


def bucket(B: int, N: int) -> tuple[int, int]:
    """Padded (B, N) of a batch: B up to a power of two, N up to a multiple of ``POINT_BUCKET``."""
    return 1 << max(0, math.ceil(math.log2(max(B, 1)))), POINT_BUCKET * max(1, math.ceil(N / POINT_BUCKET))


class _LMGraph:
    """One captured loop: static input buffers, the graph, and its outputs (packed state, iterations)."""

    def __init__(self, B: int, N: int, dtype: torch.dtype, device: torch.device, max_iters: int, tol: float):
        z = lambda *s: torch.zeros(*s, dtype=dtype, device=device)  # noqa: E731
        self.R, self.t, self.x, self.u, self.w = z(B, 3, 3), z(B, 3), z(B, 3, N), z(B, 2, N), z(B, N)
        self.A, self.c = z(B, 2, 2), z(B, 2)
        self.R[:] = torch.eye(3, dtype=dtype, device=device)
        self.A[:] = torch.eye(2, dtype=dtype, device=device)
        self.t[:, 2] = 1
        self.rows = torch.zeros(B, dtype=torch.bool, device=device)
        self.skew = torch.tensor(SKEW_MAP, dtype=dtype, device=device)
        self.max_iters, self.tol = max_iters, tol
        side = torch.cuda.Stream(device)
        side.wait_stream(torch.cuda.current_stream(device))
        with torch.cuda.stream(side):
            for _ in range(2):  # warm-up outside capture: lazy initialisation of libraries and workspaces
                self._body()
        torch.cuda.current_stream(device).wait_stream(side)
        self.graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(self.graph):
            self.S, self.iters = self._body()

    def _body(self) -> tuple[Tensor, Tensor]:
        S, mu, active, iters, P = lm_setup(self.R, self.t, self.x, self.A, self.c, self.u, self.w, self.skew)
        active = active & self.rows
        for _ in range(self.max_iters):
            S, mu, active, iters = lm_step(S, mu, active, iters, P, self.tol)
        return S, iters

    def __call__(self, R, t, x, A, c, u, w) -> LMResult:
        B, N = x.shape[0], x.shape[-1]
        self.rows.zero_()
        self.rows[:B] = True
        for buf in (self.x, self.u, self.w):  # padded points weigh 0 and sit at 0, whatever an earlier call left
            buf.zero_()
        for buf, v in ((self.R, R), (self.t, t), (self.A, A), (self.c, c)):
            buf[:B].copy_(v)
        self.x[:B, :, :N].copy_(x)
        self.u[:B, :, :N].copy_(u)
        self.w[:B, :N].copy_(w)
        self.graph.replay()
        res = lm_result(self.S[:B], self.iters[:B])
        return LMResult(R=res.R.clone(), t=res.t.clone(), cost=res.cost.clone(), iterations=res.iterations.clone())


def graphed_levenberg_marquardt(
    R: Tensor, t: Tensor, x: Tensor, A: Tensor, c: Tensor, u: Tensor, w: Tensor, *, max_iters: int, tol: float | None
) -> LMResult:
    """:func:`bopnp.pnp.lm.levenberg_marquardt` with ``check_every=0`` (all ``max_iters`` iterations, no host read),
    replayed from a CUDA graph of the batch's shape bucket. Same arguments and result.

    Args:
        R: (B, 3, 3). t: (B, 3) mm. x: (B, 3, N) mm. A: (B, 2, 2). c: (B, 2). u: (B, 2, N) px. w: (B, N), all on
            one CUDA device (in one dtype).
    """
    tol = default_tol(R.dtype) if tol is None else float(tol)
    B, N = x.shape[0], x.shape[-1]
    Bp, Np = bucket(B, N)
    key = (R.device, R.dtype, Bp, Np, int(max_iters), tol)
    if key not in _GRAPHS:
        try:
            _GRAPHS[key] = _LMGraph(Bp, Np, R.dtype, R.device, int(max_iters), tol)
        except RuntimeError as e:  # capture refused: keep the answer for this bucket, run without a graph
            warnings.warn(
                f"CUDA graph capture of the PnP refinement failed for bucket B={Bp} N={Np} ({e}); "
                f"running it without a graph (same result, slower)",
                RuntimeWarning,
                stacklevel=2,
            )
            _GRAPHS[key] = None
        while len(_GRAPHS) > MAX_GRAPHS:
            _GRAPHS.popitem(last=False)
    _GRAPHS.move_to_end(key)
    g = _GRAPHS[key]
    if g is None:
        return levenberg_marquardt(R, t, x, A, c, u, w, max_iters=max_iters, tol=tol, check_every=0)
    return g(R, t, x, A, c, u, w)


def cached_graphs() -> int:
    """Number of captured graphs held (buckets whose capture failed not counted)."""
    return sum(g is not None for g in _GRAPHS.values())


def clear_graphs() -> None:
    """Free every captured graph and its buffers."""
    _GRAPHS.clear()


__all__ = ["graphed_levenberg_marquardt", "bucket", "cached_graphs", "clear_graphs", "MAX_GRAPHS", "POINT_BUCKET"]

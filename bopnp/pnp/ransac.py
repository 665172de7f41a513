"""Batched RANSAC for PnP: ``B x H`` minimal sets drawn, solved and scored at once.

Hypotheses come from minimal sets of three random distinct correspondences through the batched P3P solver
(:mod:`bopnp.pnp.p3p`, up to four poses per set), or from ``sample_size`` correspondences through the closed-form
initialisation (:func:`bopnp.pnp.init.initial_pose`: EPnP or a plane homography). Every hypothesis is scored against
every correspondence in one batched projection (chunked over hypotheses to bound memory); the best one per item (most
inliers, ties broken by the smaller truncated error) seeds the refinement that :func:`bopnp.pnp.solve_pnp` runs on its
inliers. Three-point sets make 100 draws enough for 50% outliers (a clean set with probability 1 - (7/8)^100). For
large N the hypotheses are first ranked on a few hundred random correspondences and only the best few are scored on
all of them (preemptive scoring), which keeps the cost near O(B * (H + N)) instead of O(B * H * N).
"""

from __future__ import annotations

import math
import numbers
from dataclasses import dataclass
from typing import Literal

import torch
from torch import Tensor

from bopnp.errors import ConfigError
from bopnp.pnp import objective as obj
from bopnp.pnp.init import initial_pose_any_frame, normalised_coords
from bopnp.pnp.p3p import p3p

#: bytes one hypothesis costs while the minimal problems are solved, all at once (measured peak on a CPU in float32:
#: about 3.2 KB for P3P and 9 to 10.5 KB for EPnP on 5 to 12 points; scoring is chunked by ``max_chunk_elems``)
HYPOTHESIS_BYTES = {"p3p": 4096, "epnp": 12288}
#: largest ``RansacConfig.iterations``: 100,000 draws of a 3-point set find an outlier-free one at 95.9% outliers
#: with 99.9% confidence; more only costs time
MAX_ITERATIONS = 100_000
#: largest ``RansacConfig.sample_size`` (sets are drawn one index at a time: O(sample_size^2) steps)
MAX_SAMPLE_SIZE = 64


def _is_int(v) -> bool:
    return isinstance(v, numbers.Integral) and not isinstance(v, bool)


@dataclass(frozen=True)
class RansacConfig:
    """Settings of the batched RANSAC.

    Attributes:
        threshold_px: reprojection error (px) under which a correspondence is an inlier.
        iterations: minimal sets drawn per item (all solved and scored in parallel).
        solver: ``"p3p"`` (three correspondences per set, up to four hypotheses each) or ``"epnp"`` (``sample_size``
            correspondences per set, one hypothesis each).
        sample_size: correspondences per set for ``solver="epnp"`` (>= 4).
        refine_rounds: rounds of (Levenberg-Marquardt on the inliers, re-selection of the inliers) after RANSAC.
        seed: seed of the sampling generator (None: torch's global generator).
        prescore_points: rank all hypotheses on this many random usable points first (0: score all on every point).
        prescore_keep: hypotheses kept from the pre-scoring and scored on every point.
        max_chunk_elems: bound on hypotheses x points scored at once (memory), elements.
        max_memory_bytes: bound on the memory of the batched minimal solves, about
            ``B * iterations * HYPOTHESIS_BYTES[solver]``; a larger batch is refused (:func:`ransac_hypothesis`).
    """

    threshold_px: float = 5.0
    iterations: int = 100
    solver: Literal["p3p", "epnp"] = "p3p"
    sample_size: int = 5
    refine_rounds: int = 2
    seed: int | None = 0
    prescore_points: int = 256
    prescore_keep: int = 16
    max_chunk_elems: int = 1 << 20
    max_memory_bytes: int = 2 << 30

    def __post_init__(self):
        self.validate()

    def validate(self) -> None:
        """Raise :class:`ConfigError` naming the bad field, its allowed range and how to fix it."""
        thr = self.threshold_px
        if isinstance(thr, bool) or not isinstance(thr, numbers.Real) or not math.isfinite(thr) or thr <= 0:
            raise ConfigError(
                f"RansacConfig.threshold_px must be a finite number of pixels > 0 (typically 2 to 10: a "
                f"few times the pixel noise), got {thr!r}"
            )
        ints = (
            ("iterations", 1, MAX_ITERATIONS, "minimal sets drawn per item; 100 suits 50% outliers"),
            ("sample_size", 4, MAX_SAMPLE_SIZE, "points per set of solver='epnp'; smaller sets are likelier clean"),
            ("refine_rounds", 1, 100, "refinement rounds after RANSAC; 2 is the default"),
            ("prescore_points", 0, None, "0 disables pre-scoring"),
            ("prescore_keep", 1, None, "hypotheses kept after pre-scoring"),
            ("max_chunk_elems", 1, None, "hypotheses x points scored at once"),
            ("max_memory_bytes", 1, None, "bytes the batched minimal solves may take"),
        )
        for name, lo, hi, what in ints:
            v = getattr(self, name)
            if not _is_int(v) or v < lo or (hi is not None and v > hi):
                rng = f"an integer in [{lo}, {hi}]" if hi is not None else f"an integer >= {lo}"
                raise ConfigError(f"RansacConfig.{name} must be {rng} ({what}), got {v!r}")
        if self.solver not in ("p3p", "epnp"):
            raise ConfigError(f"RansacConfig.solver must be 'p3p' or 'epnp', got {self.solver!r}")
        if self.seed is not None and not _is_int(self.seed):
            raise ConfigError(
                f"RansacConfig.seed must be an integer or None (torch's global generator), got {self.seed!r}"
            )

    def memory_bytes(self, B: int) -> int:
        """Estimated peak memory (bytes) of the batched minimal solves for ``B`` items."""
        return int(B) * int(self.iterations) * HYPOTHESIS_BYTES[self.solver]


def sample_distinct(
    n: Tensor, H: int, s: int, generator: torch.Generator | None = None, n_max: int | None = None
) -> Tensor:
    """``H`` uniformly random subsets of ``s`` distinct indices in ``[0, n_b)`` for every item ``b``.

    Args:
        n: (B,) population sizes (items with ``n < s`` get repeated indices).
        H: subsets per item. s: subset size.
        n_max: an upper bound of ``n`` (needed for large ``s``, which uses random keys over the whole range).
    Returns:
        (B, H, s) long.
    """
    B = n.shape[0]
    dev = n.device
    if s > 8 and n_max is not None and s <= n_max:
        # large subsets: the s smallest of n random keys (O(B * H * n_max))
        keys = torch.rand(B, H, n_max, generator=generator, device=dev)
        keys = torch.where(torch.arange(n_max, device=dev) < n[:, None, None], keys, torch.full_like(keys, 2.0))
        idx = keys.topk(s, dim=-1, largest=False).indices
        return torch.minimum(idx, (n - 1).clamp_min(0)[:, None, None])
    chosen = torch.empty(B, H, 0, dtype=torch.long, device=dev)
    for j in range(s):
        span = (n - j).clamp_min(1).to(torch.float64)[:, None]
        r = (torch.rand(B, H, generator=generator, device=dev, dtype=torch.float64) * span).long()
        r = torch.minimum(r, span.long() - 1)
        # r indexes the not-yet-chosen values; walk the chosen ones in ascending order to map it to a value
        ordered = chosen.sort(-1).values
        for k in range(j):
            r = r + (r >= ordered[..., k]).long()
        chosen = torch.cat([chosen, r.unsqueeze(-1)], -1)
    return torch.minimum(chosen, (n - 1).clamp_min(0)[:, None, None])


def inlier_mask(
    R: Tensor, t: Tensor, x: Tensor, A: Tensor, c: Tensor, u: Tensor, w: Tensor, threshold_px: float
) -> Tensor:
    """(B, N) bool: used points (w > 0) in front of the camera that reproject within ``threshold_px`` under (R, t).

    Args:
        R: (B, 3, 3). t: (B, 3) mm. x: (B, 3, N) mm. A: (B, 2, 2). c: (B, 2). u: (B, 2, N) px. w: (B, N).
    """
    err2, z = obj.sq_errors(R.unsqueeze(1), t.unsqueeze(1), x, A, c, u)
    return (err2[:, 0] <= threshold_px**2) & (z[:, 0] > 0) & (w > 0)


def ransac_hypothesis(
    x: Tensor, u: Tensor, A: Tensor, c: Tensor, w: Tensor, cfg: RansacConfig
) -> tuple[Tensor, Tensor, Tensor]:
    """Best RANSAC hypothesis per item.

    Args:
        x: (B, 3, N) model points, mm (centred for conditioning). u: (B, 2, N) px. A: (B, 2, 2). c: (B, 2).
        w: (B, N) weights; points with w > 0 take part. cfg: :class:`RansacConfig`.
    Returns:
        R: (B, 3, 3). t: (B, 3) mm. inliers: (B, N) bool under the best hypothesis.
    """
    B, _, N = x.shape
    if cfg.memory_bytes(B) > cfg.max_memory_bytes:
        raise ConfigError(
            f"RANSAC on {B} items x {cfg.iterations} hypotheses ({cfg.solver}) needs about "
            f"{cfg.memory_bytes(B) / 2**30:.2f} GiB at once, over RansacConfig.max_memory_bytes = "
            f"{cfg.max_memory_bytes / 2**30:.2f} GiB: lower RansacConfig.iterations, solve the batch in smaller "
            f"pieces, or raise max_memory_bytes if the device has the memory"
        )
    H = int(cfg.iterations)
    s = 3 if cfg.solver == "p3p" else int(cfg.sample_size)
    dev, dt = x.device, x.dtype
    gen = None
    if cfg.seed is not None:
        gen = torch.Generator(device=dev)
        gen.manual_seed(int(cfg.seed))
    used = w > 0
    n_used = used.sum(-1)
    order = torch.sort((~used).to(torch.int8), dim=-1, stable=True).indices  # used points first
    picks = sample_distinct(n_used, H, s, gen)
    idx = order.gather(1, picks.reshape(B, H * s)).unsqueeze(1)  # (B, 1, H * s)
    rep = lambda z: z.unsqueeze(1).expand(B, H, *z.shape[1:]).reshape(B * H, *z.shape[1:])  # noqa: E731
    # minimal problems are tiny: solve them in float64 for accuracy; (B * H, k, s) points-last samples
    f64 = torch.float64
    xs = x.gather(2, idx.expand(-1, 3, -1)).view(B, 3, H, s).transpose(1, 2).reshape(B * H, 3, s).to(f64)
    us = u.gather(2, idx.expand(-1, 2, -1)).view(B, 2, H, s).transpose(1, 2).reshape(B * H, 2, s).to(f64)
    if cfg.solver == "p3p":
        un = normalised_coords(us, rep(A).to(f64), rep(c).to(f64))
        rays = torch.cat([un, torch.ones_like(un[:, :1])], 1).transpose(1, 2)
        Rh, th, ok = p3p(rays, xs.transpose(1, 2))  # (B*H, 4, ...)
        Rh, th, ok = Rh.reshape(B, 4 * H, 3, 3), th.reshape(B, 4 * H, 3), ok.reshape(B, 4 * H)
    else:
        ws = w.gather(1, idx.squeeze(1)).view(B * H, s).clamp_min(torch.finfo(dt).tiny).to(f64)
        Rh, th = initial_pose_any_frame(xs, us, rep(A).to(f64), rep(c).to(f64), ws)
        Rh, th = Rh.reshape(B, H, 3, 3), th.reshape(B, H, 3)
        ok = torch.isfinite(Rh).flatten(2).all(-1) & torch.isfinite(th).all(-1)
    Rh, th = Rh.to(dt), th.to(dt)
    k, keep = int(cfg.prescore_points), int(cfg.prescore_keep)
    if 0 < k < N and keep < Rh.shape[1]:
        # Preemptive scoring: rank every hypothesis on k random usable points, fully score only the best `keep`.
        sub = order.gather(1, sample_distinct(n_used, 1, k, gen, n_max=N).view(B, k)).unsqueeze(1)
        key = _score(
            Rh,
            th,
            x.gather(2, sub.expand(-1, 3, -1)),
            A,
            c,
            u.gather(2, sub.expand(-1, 2, -1)),
            used.gather(1, sub.squeeze(1)),
            cfg,
        )
        top = torch.where(ok, key, torch.full_like(key, -2.0)).topk(keep, dim=-1).indices  # (B, keep)
        Rh = Rh.gather(1, top[:, :, None, None].expand(-1, -1, 3, 3))
        th = th.gather(1, top[:, :, None].expand(-1, -1, 3))
        ok = ok.gather(1, top)
    key = torch.where(ok, _score(Rh, th, x, A, c, u, used, cfg), torch.full((), -1.0, dtype=dt, device=dev))
    best = key.argmax(-1)
    R = Rh.gather(1, best[:, None, None, None].expand(B, 1, 3, 3)).squeeze(1)
    t = th.gather(1, best[:, None, None].expand(B, 1, 3)).squeeze(1)
    return R, t, inlier_mask(R, t, x, A, c, u, w, cfg.threshold_px)


def _score(R: Tensor, t: Tensor, x: Tensor, A: Tensor, c: Tensor, u: Tensor, used: Tensor, cfg: RansacConfig) -> Tensor:
    """(B, H) ranking key of each hypothesis: inlier count, ties broken by the smaller truncated error;
    -1 if not finite.

    Args:
        R: (B, H, 3, 3). t: (B, H, 3). x: (B, 3, N). A: (B, 2, 2). c: (B, 2). u: (B, 2, N). used: (B, N) bool.
    """
    B, H = R.shape[:2]
    N = x.shape[-1]
    thr2 = float(cfg.threshold_px) ** 2
    chunk = max(1, int(cfg.max_chunk_elems) // max(1, B * N))
    keys = []
    for h0 in range(0, H, chunk):
        err2, z = obj.sq_errors(R[:, h0 : h0 + chunk], t[:, h0 : h0 + chunk], x, A, c, u)
        inl = (err2 <= thr2) & (z > 0) & used.unsqueeze(1)
        cnt = inl.sum(-1).to(x.dtype)
        trunc = torch.where(inl, err2 / thr2, torch.zeros_like(err2)).sum(-1)
        keys.append(cnt - trunc / (cnt + 1))  # more inliers first, then smaller error among them
    key = torch.cat(keys, 1)
    return torch.where(torch.isfinite(key), key, torch.full_like(key, -1.0))


__all__ = ["RansacConfig", "ransac_hypothesis", "sample_distinct", "inlier_mask", "HYPOTHESIS_BYTES", "MAX_ITERATIONS"]

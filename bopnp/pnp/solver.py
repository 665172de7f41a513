"""``solve_pnp``: batched, backpropagatable Perspective-n-Point.

Forward: a closed-form batched initial pose (EPnP and a plane homography, best per item), optional batched RANSAC, then
batched Levenberg-Marquardt on the weighted geometric reprojection error to convergence. Backward: exact gradients of
that minimiser by the implicit function theorem (:mod:`bopnp.pnp.implicit`). Degenerate items never fail the batch:
they come back with ``valid=False``, a finite identity pose and zero gradients.
"""

from __future__ import annotations

import math
import numbers
from typing import Literal

import torch
from torch import Tensor

from bopnp.checks import check_shape
from bopnp.errors import ConfigError, ShapeError
from bopnp.geometry import axis_angle_to_matrix
from bopnp.pnp import objective as obj
from bopnp.pnp.finite import all_finite
from bopnp.pnp.implicit import ImplicitPnP, hessian_factor
from bopnp.pnp.init import initial_pose, spread_subset, weighted_pca
from bopnp.pnp.lm import levenberg_marquardt
from bopnp.pnp.ransac import RansacConfig, inlier_mask, ransac_hypothesis
from bopnp.pnp.result import PnPResult


def _check_inputs(x2d, x3d, K, weights, init):
    for name, v in (("x2d", x2d), ("x3d", x3d), ("K", K), ("weights", weights), ("init", init)):
        if v is not None and not isinstance(v, torch.Tensor):
            raise ShapeError(
                f"{name}: expected a torch.Tensor, got {type(v).__module__}.{type(v).__name__}; "
                f"convert it with torch.as_tensor({name})"
            )
    dims: dict[str, int] = {}
    check_shape(x2d, "B N 2", "x2d", dims)
    B, N = dims["B"], dims["N"]
    if x3d.dim() == 2:
        check_shape(x3d, "N 3", "x3d", dims)
        x3d = x3d.unsqueeze(0).expand(B, N, 3)
    else:
        check_shape(x3d, "B N 3", "x3d", dims)
    if K.dim() == 2:
        check_shape(K, "3 3", "K", dims)
        K = K.unsqueeze(0).expand(B, 3, 3)
    else:
        check_shape(K, "B 3 3", "K", dims)
    if weights is not None:
        check_shape(weights, "B N", "weights", dims)
    if init is not None:
        check_shape(init, "B 6", "init", dims)
    if not x2d.is_floating_point():
        raise ShapeError(f"x2d: expected a floating-point tensor, got {x2d.dtype}")
    for name, v in (("x3d", x3d), ("K", K), ("weights", weights), ("init", init)):
        if v is None:
            continue
        if v.dtype != x2d.dtype or v.device != x2d.device:
            raise ShapeError(
                f"{name}: expected dtype {x2d.dtype} on {x2d.device} like x2d, got {v.dtype} on {v.device}; "
                f"convert it with .to(x2d)"
            )
    return x3d, K


#: fewest usable correspondences of a valid item
MIN_POINTS = 4
#: below this many points, Levenberg-Marquardt starts from every closed-form candidate and keeps the best
#: (few points leave several local minima, e.g. four non-coplanar points; with 6 to 9 points of a small object under
#: a few px of noise the best-scoring candidate converges to a worse minimum than another in a few problems per 1,000)
MULTI_START_BELOW = 10
#: above this many points, the closed-form initialisation runs on this many usable points spread over the input
INIT_POINTS = 256
#: largest ``max_iters`` :func:`solve_pnp` accepts (converging items stop after a few iterations; one that has not
#: converged after thousands is stuck, and the cap bounds the time of a whole batch)
MAX_ITERS = 10_000
#: dtypes :func:`solve_pnp` computes in float32 (factorisations have no half-precision kernels, and pixel residuals
#: of a few tenths need more than half precision's 11 significant bits at image coordinates of several hundred)
LOW_PRECISION = (torch.float16, torch.bfloat16)


def _check_solver_args(max_iters, tol, ransac) -> None:
    if isinstance(max_iters, bool) or not isinstance(max_iters, numbers.Integral) or not 1 <= max_iters <= MAX_ITERS:
        raise ConfigError(
            f"max_iters must be an integer in [1, {MAX_ITERS}] (Levenberg-Marquardt iterations per "
            f"refinement round; the default 30 suits almost every problem), got {max_iters!r}"
        )
    if tol is not None and (
        isinstance(tol, bool) or not isinstance(tol, numbers.Real) or not math.isfinite(tol) or tol <= 0
    ):
        raise ConfigError(
            f"tol must be a finite number > 0 (step tolerance: radians, and relative for t) or None for "
            f"the default (1e-11 in float64, 1e-6 in float32), got {tol!r}"
        )
    if ransac is not None:
        if not isinstance(ransac, RansacConfig):
            raise ConfigError(
                f"ransac must be a RansacConfig or None, got {type(ransac).__name__}; "
                f"build one with RansacConfig(threshold_px=..., iterations=...)"
            )
        ransac.validate()  # a frozen dataclass can still be changed with object.__setattr__


def _all_invalid(x2d: Tensor, x3d: Tensor, K: Tensor, w: Tensor) -> PnPResult:
    """Result of a batch where no item can be solved (B = 0, or fewer than MIN_POINTS points per item): identity
    poses, ``valid=False`` and zero gradients, through the same autograd function as solved batches."""
    B, N, _ = x2d.shape
    dt, dev = x2d.dtype, x2d.device
    R = torch.eye(3, dtype=dt, device=dev).expand(B, 3, 3).contiguous()
    zeros3 = torch.zeros(B, 3, dtype=dt, device=dev)
    L = torch.eye(6, dtype=dt, device=dev).expand(B, 6, 6).contiguous()
    valid = torch.zeros(B, dtype=torch.bool, device=dev)
    s = torch.ones(B, 6, dtype=dt, device=dev)
    R_out, t_out, aa_out = ImplicitPnP.apply(x2d, x3d, K, w, R, zeros3, zeros3, L, s, valid)
    return PnPResult(
        R=R_out,
        t=t_out,
        pose=torch.cat([aa_out, t_out], -1),
        valid=valid,
        inliers=w > 0,
        cost=torch.zeros(B, dtype=dt, device=dev),
        iterations=torch.zeros(B, dtype=torch.long, device=dev),
    )


#: how the Levenberg-Marquardt loops run (see :func:`solve_pnp`)
EXECUTIONS = ("eager", "sync_free", "cuda_graph")


def _lm(R, t, x, A, c, u, w, max_iters, tol, execution):
    """:func:`levenberg_marquardt` as ``execution`` asks: early stops with host reads, all ``max_iters`` iterations
    without one, or those replayed as a CUDA graph (:mod:`bopnp.pnp.graphs`; eager without one on other devices)."""
    if execution == "cuda_graph" and R.device.type == "cuda":
        from bopnp.pnp.graphs import graphed_levenberg_marquardt

        return graphed_levenberg_marquardt(R, t, x, A, c, u, w, max_iters=max_iters, tol=tol)
    check_every = None if execution == "eager" else 0
    return levenberg_marquardt(R, t, x, A, c, u, w, max_iters=max_iters, tol=tol, check_every=check_every)


def _candidates(x, u, A, c, w, pca64):
    """Every closed-form candidate pose of the centred problem, best first, in float64: (B, 4, 3, 3), (B, 4, 3) mm."""
    f64 = torch.float64
    if x.shape[-1] > INIT_POINTS:
        # The closed form only has to land in the basin of the minimum: a spread subset does, at a fraction of the
        # cost. The subset is re-centred for the solvers, and the poses moved back to the full set's frame.
        xs, us, ws = (v.to(f64) for v in spread_subset(x, u, w, INIT_POINTS))
        mean, evals, evecs = weighted_pca(xs, ws)
        Rc, tc, _ = initial_pose(
            xs - mean.unsqueeze(-1), us, A.to(f64), c.to(f64), ws, pca=(evals, evecs), all_candidates=True
        )
        return Rc, tc - (Rc @ mean[:, None, :, None]).squeeze(-1)
    Rc, tc, _ = initial_pose(x.to(f64), u.to(f64), A.to(f64), c.to(f64), w.to(f64), pca=pca64, all_candidates=True)
    return Rc, tc


def _closed_form_init(x, u, A, c, w, pca64, max_iters, tol, execution):
    """Initial (R, t) of the centred problem (points-last layout): closed form in float64 (``pca64``: principal
    variances and axes of ``x`` in float64), multi-start Levenberg-Marquardt for tiny point sets.

    Returns:
        R0: (B, 3, 3). t0: (B, 3) mm. candidates: float64 ``(Rc, tc)``, (B, 4, 3, 3) and (B, 4, 3), every closed-form
        candidate, best first (what :func:`_retry_stuck` starts from again).
    """
    B, _, N = x.shape
    dt = x.dtype
    Rc, tc = _candidates(x, u, A, c, w, pca64)
    if N >= MULTI_START_BELOW:
        return Rc[:, 0].to(dt), tc[:, 0].to(dt), (Rc, tc)
    C = Rc.shape[1]
    rep = lambda z: z.unsqueeze(1).expand(B, C, *z.shape[1:]).reshape(B * C, *z.shape[1:])  # noqa: E731
    lm = _lm(
        Rc.reshape(B * C, 3, 3).to(dt),
        tc.reshape(B * C, 3).to(dt),
        *map(rep, (x, A, c, u, w)),
        max_iters,
        tol,
        execution,
    )
    err2, z = obj.sq_errors(lm.R.view(B, C, 3, 3), lm.t.view(B, C, 3), x, A, c, u)
    used = (w > 0).unsqueeze(1)
    cost = torch.where(used, err2 * w.unsqueeze(1), torch.zeros_like(err2)).sum(-1)
    cost = torch.where(torch.isfinite(cost) & ~((z <= 0) & used).any(-1), cost, torch.full_like(cost, float("inf")))
    best = cost.argmin(-1)
    R0 = lm.R.view(B, C, 3, 3).gather(1, best[:, None, None, None].expand(B, 1, 3, 3)).squeeze(1)
    t0 = lm.t.view(B, C, 3).gather(1, best[:, None, None].expand(B, 1, 3)).squeeze(1)
    return R0, t0, (Rc, tc)


def _retry_stuck(R, tau, iterations, x, u, A, c, w, candidates, retry, max_iters, tol, execution):
    """Second chance for items whose refinement from the best closed-form candidate hit ``max_iters`` or stopped where
    the true Hessian is not positive definite.

    Small objects under pixel noise (a few px over a few tens of px) make the closed-form candidates poor and leave
    long, flat valleys along the depth: Levenberg-Marquardt from the best-scoring candidate can crawl along one for
    many more than ``max_iters`` steps and stop mid-valley, at a saddle-like point (indefinite Hessian) that validity
    rejects, while another candidate lies in the basin of the minimum. Those items are refined again from every
    candidate and from where they stopped, and keep the lowest-cost end at a true minimum.

    Args:
        R: (B, 3, 3). tau: (B, 3) mm, pose of the centred points ``x`` (B, 3, N). iterations: (B,) long.
        u: (B, 2, N) px. A: (B, 2, 2). c: (B, 2). w: (B, N). candidates: the closed-form candidates of
        :func:`_closed_form_init`.
        retry: (B,) bool, the items to refine again. execution: "eager" refines only those (one host read to find
            them); otherwise every item is refined again and the retried ones take the result (no host read, the
            same result).
    Returns:
        R, tau, iterations (the retried items' iterations include those of the chosen start).
    """
    dt = x.dtype
    eps10 = 10 * torch.finfo(dt).eps
    Rc, tc = candidates
    if execution == "eager":
        idx = retry.nonzero().squeeze(1)
        xs, us, As, cs, ws = x[idx], u[idx], A[idx], c[idx], w[idx]
        Rc, tc, R_stop, t_stop = Rc[idx], tc[idx], R[idx], tau[idx]
    else:
        idx = None
        xs, us, As, cs, ws = x, u, A, c, w
        R_stop, t_stop = R, tau
    b = xs.shape[0]
    R_start = torch.cat([Rc.to(dt), R_stop.unsqueeze(1)], 1)  # (b, C, 3, 3): the candidates, and where it stopped
    t_start = torch.cat([tc.to(dt), t_stop.unsqueeze(1)], 1)
    C = R_start.shape[1]
    rep = lambda z: z.unsqueeze(1).expand(b, C, *z.shape[1:]).reshape(b * C, *z.shape[1:])  # noqa: E731
    lm = _lm(
        R_start.reshape(b * C, 3, 3),
        t_start.reshape(b * C, 3),
        *map(rep, (xs, As, cs, us, ws)),
        max_iters,
        tol,
        execution,
    )
    pt = obj.point_terms(lm.R, lm.t, rep(xs), rep(As), rep(cs), rep(us), rep(ws))
    _, _, rc = hessian_factor(obj.true_hessian(pt, rep(As)))
    cost = obj.cost(pt)
    front = ((pt.X[:, 2] > 0) | (pt.w <= 0)).all(-1)
    minimum = front & (rc > eps10) & torch.isfinite(cost)
    # a true minimum beats any other end; among them (or among the others, if none is one) the lowest cost wins
    key = torch.where(torch.isfinite(cost), cost, torch.full_like(cost, float("inf"))).view(b, C)
    best = torch.where(minimum.view(b, C), key, key + torch.finfo(dt).max / 4).argmin(-1)
    pick = best + torch.arange(b, device=x.device) * C
    if idx is None:
        return (
            torch.where(retry[:, None, None], lm.R[pick], R),
            torch.where(retry[:, None], lm.t[pick], tau),
            torch.where(retry, iterations + lm.iterations[pick], iterations),
        )
    R, tau, iterations = R.clone(), tau.clone(), iterations.clone()
    R[idx], tau[idx] = lm.R[pick], lm.t[pick]
    iterations[idx] = iterations[idx] + lm.iterations[pick]
    return R, tau, iterations


def solve_pnp(
    x2d: Tensor,
    x3d: Tensor,
    K: Tensor,
    weights: Tensor | None = None,
    *,
    ransac: RansacConfig | None = None,
    init: Tensor | None = None,
    max_iters: int = 30,
    tol: float | None = None,
    backend: Literal["torch", "opencv"] = "torch",
    execution: Literal["eager", "sync_free", "cuda_graph"] = "eager",
) -> PnPResult:
    """Pose of each item from 2D-3D correspondences, differentiable w.r.t. ``x2d``, ``x3d``, ``K`` and ``weights``.

    Minimises ``E(R, t) = sum_i w_i ||pi(K, R x_i + t) - u_i||^2`` (pixels). The gradient of ``R``, ``t`` and ``pose``
    is the exact derivative of that minimiser (implicit function theorem with the true Hessian), so it matches finite
    differences of the solution itself.

    Args:
        x2d: (B, N, 2) observed pixels (u, v). float16 and bfloat16 inputs are solved in float32 and ``R``, ``t``,
            ``pose`` (and the gradients) come back in their dtype. B = 0 and N < 4 give all-invalid results.
        x3d: (B, N, 3) or (N, 3) model points, mm.
        K: (B, 3, 3) or (3, 3) intrinsics (third row ``[0, 0, 1]``; its gradient there is 0).
        weights: (B, N) weights >= 0 (negative values count as 0; non-finite inputs drop a point); None: all 1.
        ransac: :class:`RansacConfig` to reject outliers first; the pose and its gradient are computed on the inliers.
        init: (B, 6) initial axis-angle + t (mm) instead of the closed-form initialisation (ignored with ``ransac``).
        max_iters: Levenberg-Marquardt iteration cap (per refinement round), 1 to ``MAX_ITERS``. Without RANSAC, an
            item that reaches it, or stops where the true Hessian is not positive definite, is refined once more from
            every closed-form candidate and from where it stopped, and keeps the best true minimum.
        tol: step tolerance (rad, and relative for t), finite and > 0; default 1e-11 in float64, 1e-6 in float32.
        backend: ``"torch"``, or ``"opencv"`` for a per-item ``cv2.solvePnP`` / ``cv2.solvePnPRansac`` reference
            (no gradient, CPU round trip).
        execution: how the Levenberg-Marquardt loops run, all with the same result: ``"eager"`` stops them early
            (a host read every iteration on the CPU, every 4 on CUDA) and refines again only the items that need it
            (one host read); ``"sync_free"`` runs ``max_iters`` iterations with convergence masks and refines every
            item again, keeping the retry only where needed: no host read outside the linear algebra of the
            closed-form start (more arithmetic, fewer waits: for GPUs); ``"cuda_graph"`` is ``"sync_free"`` with
            the loops replayed from CUDA graphs captured once per shape bucket (:mod:`bopnp.pnp.graphs`; on other
            devices ``"sync_free"``).
    Returns:
        :class:`PnPResult`. ``valid`` is False (with identity R, zero t, zero cost and zero gradients) where an item
        has fewer than 4 usable points, collinear points, a singular intrinsic matrix, points behind the camera at the
        solution, a singular (or indefinite) Hessian at the solution, or non-finite values. The Hessian test is what
        makes the gradient meaningful: the implicit function theorem needs a strict local minimum, so an item whose
        refinement ended off one (e.g. mid-valley at ``max_iters``, even after the retry) is not valid.
    Raises:
        ShapeError: a tensor of the wrong shape, dtype or device. ConfigError: a bad ``max_iters``, ``tol``,
            ``backend`` or ``ransac`` (also a RANSAC batch over ``RansacConfig.max_memory_bytes``).

    Example:
        >>> from bopnp.geometry import random_rotation, project_points, transform_points
        >>> K = torch.tensor([[600.0, 0, 320], [0, 600.0, 240], [0, 0, 1]], dtype=torch.float64)
        >>> x3d = torch.randn(2, 20, 3, dtype=torch.float64) * 50
        >>> R = random_rotation(2, dtype=torch.float64)
        >>> t = torch.tensor([[0.0, 0, 800], [20, -10, 900]], dtype=torch.float64)
        >>> x2d = project_points(transform_points(R, t, x3d), K).requires_grad_(True)
        >>> res = solve_pnp(x2d, x3d, K)
        >>> bool(res.valid.all()), torch.allclose(res.t, t)
        (True, True)
        >>> res.pose.sum().backward()  # gradients flow to x2d
        >>> x2d.grad.shape
        torch.Size([2, 20, 2])
    """
    x3d, K = _check_inputs(x2d, x3d, K, weights, init)
    _check_solver_args(max_iters, tol, ransac)
    if x2d.dtype in LOW_PRECISION:
        # computed in float32; the casts are differentiable, so the gradients come back in the input's dtype
        up = lambda v: None if v is None else v.float()  # noqa: E731
        res = solve_pnp(
            up(x2d),
            up(x3d),
            up(K),
            up(weights),
            ransac=ransac,
            init=up(init),
            max_iters=max_iters,
            tol=tol,
            backend=backend,
            execution=execution,
        )
        dt = x2d.dtype
        return PnPResult(
            R=res.R.to(dt),
            t=res.t.to(dt),
            pose=res.pose.to(dt),
            valid=res.valid,
            inliers=res.inliers,
            cost=res.cost,
            iterations=res.iterations,
        )
    if backend == "opencv":
        from bopnp.pnp.opencv import solve_pnp_opencv

        return solve_pnp_opencv(x2d, x3d, K, weights, ransac=ransac, init=init)
    if backend != "torch":
        raise ConfigError(f"backend must be 'torch' or 'opencv', got {backend!r}")
    if execution not in EXECUTIONS:
        raise ConfigError(f"execution must be one of {', '.join(map(repr, EXECUTIONS))}, got {execution!r}")
    B, N, _ = x2d.shape
    dt, dev = x2d.dtype, x2d.device
    if weights is None:
        weights = torch.ones(B, N, dtype=dt, device=dev)

    f64 = torch.float64
    # Sanitise: a point with a non-finite value is dropped; its gradient is 0.
    finite = torch.isfinite(x2d).all(-1) & torch.isfinite(x3d).all(-1) & torch.isfinite(weights)
    zero = torch.zeros((), dtype=dt, device=dev)
    x2d_s = torch.where(finite.unsqueeze(-1), x2d, zero)
    x3d_s = torch.where(finite.unsqueeze(-1), x3d, zero)
    w_s = torch.where(finite, weights.clamp_min(0), zero)
    K_ok = all_finite(K)
    K_s = torch.where(K_ok[:, None, None], K, torch.eye(3, dtype=dt, device=dev))
    A, c = K_s[:, :2, :2], K_s[:, :2, 2]
    detA = A[:, 0, 0] * A[:, 1, 1] - A[:, 0, 1] * A[:, 1, 0]
    K_ok = K_ok & (detA.abs() > torch.finfo(dt).eps * A.abs().flatten(1).amax(-1).clamp_min(torch.finfo(dt).tiny) ** 2)
    if B == 0 or N < MIN_POINTS:
        return _all_invalid(x2d_s, x3d_s, K_s, w_s)

    with torch.no_grad():
        # points-last layout inside (see bopnp.pnp.objective)
        u_d = x2d_s.detach().transpose(1, 2).contiguous()
        x_d = x3d_s.detach().transpose(1, 2).contiguous()
        w_d, A_d, c_d = w_s.detach(), A.detach(), c.detach()
        x64, w64 = x_d.to(f64), w_d.to(f64)
        centre64, evals64, evecs64 = weighted_pca(x64, w64)
        centre = centre64.to(dt)
        xc = x_d - centre.unsqueeze(-1)
        inliers = w_d > 0
        if ransac is not None:
            R0, tau0, inliers = ransac_hypothesis(xc, u_d, A_d, c_d, w_d, ransac)
            rounds = int(ransac.refine_rounds)
            candidates = None
        elif init is not None:
            R0 = axis_angle_to_matrix(init[:, :3].detach())
            tau0 = init[:, 3:].detach() + (R0 @ centre.unsqueeze(-1)).squeeze(-1)
            rounds = 1
            candidates = None
        else:
            R0, tau0, candidates = _closed_form_init(
                xc, u_d, A_d, c_d, w_d, (evals64, evecs64), max_iters, tol, execution
            )
            rounds = 1
        R, tau = R0, tau0
        iterations = torch.zeros(B, dtype=torch.long, device=dev)
        for r in range(rounds):
            w_in = torch.where(inliers, w_d, zero)
            lm = _lm(R, tau, xc, A_d, c_d, u_d, w_in, max_iters, tol, execution)
            R, tau = lm.R, lm.t
            iterations = iterations + lm.iterations
            if ransac is not None and r + 1 < rounds:
                inliers = inlier_mask(R, tau, xc, A_d, c_d, u_d, w_d, ransac.threshold_px)
        w_in = torch.where(inliers, w_d, zero)
        evals_in = evals64 if ransac is None else weighted_pca(x64, w_in.to(f64))[1]
        n_used = (w_in > 0).sum(-1)
        eligible = K_ok & (n_used >= MIN_POINTS) & (evals_in[:, 1] > torch.finfo(f64).eps * 1e3 * evals_in[:, 2])

        # Validity, and the factorised true Hessian the backward pass reuses.
        pt = obj.point_terms(R, tau, xc, A_d, c_d, u_d, w_in)
        L, s, rcond = hessian_factor(obj.true_hessian(pt, A_d))
        eps = torch.finfo(dt).eps
        if ransac is None:
            # eager: one host read, does any item need a second chance (see _retry_stuck; none on a typical batch)?
            retry = eligible & ((iterations >= max_iters) | ~(rcond > 10 * eps))
            if execution != "eager" or bool(retry.any()):
                if candidates is None:  # started from the caller's init: the closed form has not run yet
                    candidates = _candidates(xc, u_d, A_d, c_d, w_in, (evals64, evecs64))
                R, tau, iterations = _retry_stuck(
                    R, tau, iterations, xc, u_d, A_d, c_d, w_in, candidates, retry, max_iters, tol, execution
                )
                pt = obj.point_terms(R, tau, xc, A_d, c_d, u_d, w_in)
                L, s, rcond = hessian_factor(obj.true_hessian(pt, A_d))
        cost = obj.cost(pt)
        front = ((pt.X[:, 2] > 0) | (w_in <= 0)).all(-1)
        valid = (
            eligible  # a usable K, enough points, not collinear
            & front
            & (rcond > 10 * eps)
            & all_finite(cost, R, tau)
        )
        eye = torch.eye(3, dtype=dt, device=dev).expand(B, 3, 3)
        R = torch.where(valid[:, None, None], R, eye)
        t = torch.where(valid[:, None], tau - (R @ centre.unsqueeze(-1)).squeeze(-1), zero)
        centre = torch.where(valid[:, None], centre, zero)
        cost = torch.where(valid, cost, zero)

    w_eff = torch.where(inliers, w_s, zero)
    R_out, t_out, aa_out = ImplicitPnP.apply(x2d_s, x3d_s, K_s, w_eff, R, t, centre, L, s, valid)
    pose = torch.cat([aa_out, t_out], -1)
    return PnPResult(R=R_out, t=t_out, pose=pose, valid=valid, inliers=inliers, cost=cost, iterations=iterations)


__all__ = ["solve_pnp", "MIN_POINTS"]

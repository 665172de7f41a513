"""Reference backend: a per-item loop over ``cv2.solvePnP`` / ``cv2.solvePnPRansac`` (SOLVEPNP_ITERATIVE).

For comparisons and benchmarks only: it runs on the CPU in float64, ignores the weights' magnitudes (points with weight
<= 0 are left out) and returns tensors without gradient.
"""

from __future__ import annotations

import cv2
import numpy as np
import torch
from torch import Tensor

from bopnp.geometry import matrix_to_axis_angle
from bopnp.pnp import objective as obj
from bopnp.pnp.ransac import RansacConfig
from bopnp.pnp.result import PnPResult


def opencv_pose(
    x2d: np.ndarray,
    x3d: np.ndarray,
    K: np.ndarray,
    *,
    ransac: RansacConfig | None = None,
    init: np.ndarray | None = None,
) -> tuple[bool, np.ndarray, np.ndarray, np.ndarray]:
    """One item through OpenCV.

    Args:
        x2d: (N, 2) px. x3d: (N, 3) mm. K: (3, 3). ransac: settings for ``cv2.solvePnPRansac``. init: (6,)
        axis-angle + t used as the extrinsic guess.
    Returns:
        ok, R (3, 3), t (3,) mm, inliers (N,) bool.
    """
    n = x2d.shape[0]
    x2d = np.ascontiguousarray(x2d, dtype=np.float64).reshape(-1, 1, 2)
    x3d = np.ascontiguousarray(x3d, dtype=np.float64).reshape(-1, 1, 3)
    K = np.ascontiguousarray(K, dtype=np.float64)
    guess = init is not None
    rvec = np.asarray(init[:3], np.float64).reshape(3, 1).copy() if guess else np.zeros((3, 1))
    tvec = np.asarray(init[3:], np.float64).reshape(3, 1).copy() if guess else np.zeros((3, 1))
    inliers = np.ones(n, dtype=bool)
    try:
        if ransac is None:
            ok, rvec, tvec = cv2.solvePnP(x3d, x2d, K, None, rvec, tvec, guess, cv2.SOLVEPNP_ITERATIVE)
        else:
            ok, rvec, tvec, idx = cv2.solvePnPRansac(
                x3d,
                x2d,
                K,
                None,
                rvec,
                tvec,
                guess,
                int(ransac.iterations),
                float(ransac.threshold_px),
                0.99,
                None,
                cv2.SOLVEPNP_ITERATIVE,
            )
            inliers = np.zeros(n, dtype=bool)
            if idx is not None:
                inliers[np.asarray(idx).reshape(-1)] = True
    except cv2.error:
        return False, np.eye(3), np.zeros(3), np.zeros(n, dtype=bool)
    R, _ = cv2.Rodrigues(rvec)
    return bool(ok), R, np.asarray(tvec, np.float64).reshape(3), inliers


def solve_pnp_opencv(
    x2d: Tensor,
    x3d: Tensor,
    K: Tensor,
    weights: Tensor | None = None,
    *,
    ransac: RansacConfig | None = None,
    init: Tensor | None = None,
):
    """Same inputs and result type as :func:`bopnp.pnp.solve_pnp`, computed item by item with OpenCV.

    Args:
        x2d: (B, N, 2) px. x3d: (B, N, 3) mm. K: (B, 3, 3). weights: (B, N) or None. init: (B, 6) or None.
    Returns:
        :class:`bopnp.pnp.PnPResult` without gradients (``iterations`` is 0: OpenCV does not report it).
    """
    B, N, _ = x2d.shape
    dt, dev = x2d.dtype, x2d.device
    w = torch.ones(B, N, dtype=dt, device=dev) if weights is None else weights
    u_np, x_np, K_np = (v.detach().cpu().double().numpy() for v in (x2d, x3d, K))
    w_np = w.detach().cpu().double().numpy()
    init_np = None if init is None else init.detach().cpu().double().numpy()
    Rs, ts, valid, inl = np.tile(np.eye(3), (B, 1, 1)), np.zeros((B, 3)), np.zeros(B, bool), np.zeros((B, N), bool)
    for b in range(B):
        use = (w_np[b] > 0) & np.isfinite(u_np[b]).all(-1) & np.isfinite(x_np[b]).all(-1) & np.isfinite(w_np[b])
        if use.sum() < 4 or not np.isfinite(K_np[b]).all():
            continue
        ok, R, t, inliers = opencv_pose(
            u_np[b, use], x_np[b, use], K_np[b], ransac=ransac, init=None if init_np is None else init_np[b]
        )
        X = x_np[b, use] @ R.T + t
        ok = (
            ok
            and np.isfinite(R).all()
            and np.isfinite(t).all()
            and bool((X[inliers, 2] > 0).all())
            and inliers.sum() >= 4
        )
        if ok:
            Rs[b], ts[b], valid[b] = R, t, True
            inl[b, np.flatnonzero(use)[inliers]] = True
    R_t = torch.from_numpy(Rs).to(dev, dt)
    t_t = torch.from_numpy(ts).to(dev, dt)
    valid_t = torch.from_numpy(valid).to(dev)
    inl_t = torch.from_numpy(inl).to(dev)
    w_in = torch.where(inl_t, torch.nan_to_num(w.detach()).clamp_min(0), torch.zeros((), dtype=dt, device=dev))
    pt = obj.point_terms(
        R_t,
        t_t,
        torch.nan_to_num(x3d.detach()).transpose(1, 2),
        K[:, :2, :2].detach(),
        K[:, :2, 2].detach(),
        torch.nan_to_num(x2d.detach()).transpose(1, 2),
        w_in,
    )
    cost = torch.where(valid_t, obj.cost(pt), torch.zeros((), dtype=dt, device=dev))
    pose = torch.cat([matrix_to_axis_angle(R_t), t_t], -1)
    return PnPResult(
        R=R_t,
        t=t_t,
        pose=pose,
        valid=valid_t,
        inliers=inl_t,
        cost=cost,
        iterations=torch.zeros(B, dtype=torch.long, device=dev),
    )


__all__ = ["solve_pnp_opencv", "opencv_pose"]

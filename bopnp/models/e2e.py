"""The end-to-end objective: the pose PnP finds from the network's own correspondences, compared with the
ground truth by the projection loss, so its gradient reaches the network through :func:`bopnp.pnp.solve_pnp`.

The ground-truth pose is the one the coordinate target was rendered in (canonical for a continuous symmetry),
moved to the symmetry-pool member the transformer loss chose for the item: with targets ``x' = R_p x + t_p``, the
pixel that shows model point ``x`` under ``(R, t)`` is asked to predict ``x'``, and the pose that maps ``x'`` to that
pixel is ``(R R_p^T, t - R R_p^T t_p)``. The projected points are the eight corners of the object's normalisation
box (its extent along every axis), so the loss weighs rotation and translation errors as MSPD does.
"""

from __future__ import annotations

from contextlib import contextmanager
from dataclasses import dataclass, replace
from typing import Literal

import torch
from torch import Tensor

from bopnp.errors import ConfigError
from bopnp.geometry import project_points, transform_points, uncrop_intrinsics
from bopnp.models.correspondences import crop_correspondences, weighted_first
from bopnp.pnp import PnPResult, RansacConfig, projection_loss, solve_pnp
from bopnp.pnp.solver import EXECUTIONS


@dataclass(frozen=True)
class E2EConfig:
    """The end-to-end phase.

    Attributes:
        lambda_proj: weight of the projection loss next to L_trans. L_proj is in px^2 (tens to thousands at the
            start of an e2e phase) where L_trans is about 100, so 1e-3 keeps the two comparable; at 1 the projection
            loss swamped L_trans and the coordinate error rose during e2e (LM-O renders, 64 px, after 1500 steps).
        max_err: correspondences whose predicted error reaches this get weight 0.
        min_coord: pixels whose largest |normalised coordinate| is at most this are background.
        min_points: items with fewer weighted correspondences are degenerate (no projection loss).
        use_mask: only pixels of the item's visible mask (``mask_visib`` of the batch: the GT in training and
            validation, the detector's mask at inference) take part; off, the network's coordinates alone say which
            pixels are the object, which a network early in training cannot tell from the background.
        cap_px: per-item root-mean-square projection error beyond which the loss grows linearly instead of
            quadratically (Huber on the RMS error): a pose far off still pulls the network towards the right one, with
            a bounded gradient that cannot swamp the batch, pixels.
        pnp_execution: how the e2e loss's PnP runs its Levenberg-Marquardt loops (``execution`` of
            :func:`bopnp.pnp.solve_pnp`, the same result each way): ``auto`` is ``eager`` on a CPU (early stops cost
            nothing there) and ``sync_free`` on a GPU (no host read per iteration); ``cuda_graph`` replays them as
            CUDA graphs. Validation and inference (RANSAC) keep their own.
    """

    lambda_proj: float = 1e-3
    max_err: float = 0.5
    min_coord: float = 0.1
    min_points: int = 16
    cap_px: float = 50.0
    use_mask: bool = True
    pnp_execution: Literal["auto", "eager", "sync_free", "cuda_graph"] = "auto"

    def validate(self) -> None:
        if not 0 <= self.lambda_proj < float("inf"):
            raise ConfigError(f"lambda_proj must be a finite number >= 0, got {self.lambda_proj}")
        if not 0 < self.max_err <= 1:
            raise ConfigError(f"max_err must be in (0, 1] (the error map's range), got {self.max_err}")
        if not 0 <= self.min_coord < 1:
            raise ConfigError(f"min_coord must be in [0, 1), got {self.min_coord}")
        if self.min_points < 4:
            raise ConfigError(f"min_points must be at least 4 (PnP needs 4 points), got {self.min_points}")
        if not self.cap_px > 0:
            raise ConfigError(f"cap_px must be > 0 pixels, got {self.cap_px}")
        choices = ("auto", *EXECUTIONS)
        if self.pnp_execution not in choices:
            raise ConfigError(
                f"pnp_execution must be one of {', '.join(map(repr, choices))}, got {self.pnp_execution!r}"
            )


def box_corners(centre_mm: Tensor, half_extent_mm: Tensor) -> Tensor:
    """(B, 8, 3) corners of each item's normalisation box, mm, from (B, 3) centres and half extents."""
    # the sign pattern (x slowest, z fastest) made on the device: a tensor literal would be a host-to-device copy,
    # which waits for the device
    bits = torch.arange(8, device=centre_mm.device)
    signs = (torch.stack([bits // 4, bits // 2 % 2, bits % 2], -1) * 2 - 1).to(centre_mm.dtype)
    return centre_mm[:, None] + signs[None] * half_extent_mm[:, None]


def symmetric_gt_pose(R_m2c: Tensor, t_m2c: Tensor, pool: Tensor, best: Tensor) -> tuple[Tensor, Tensor]:
    """The ground-truth pose of the chosen pool member: ``(R R_p^T, t - R R_p^T t_p)``.

    Args:
        R_m2c: (B, 3, 3). t_m2c: (B, 3) mm. pool: (B, P, 4, 4). best: (B,) chosen member.
    """
    T = pool[torch.arange(pool.shape[0], device=pool.device), best].to(R_m2c.dtype)
    R = R_m2c @ T[:, :3, :3].mT
    return R, t_m2c - (R @ T[:, :3, 3:]).squeeze(-1)


LOW_PRECISION = (torch.float16, torch.bfloat16)


@contextmanager
def full_precision(device_type: str):
    """Autocast off for the geometry of the e2e objective: under a network's bf16/fp16 autocast, matrix products
    such as the uncropped intrinsics would come out in half precision (a 640 px image's pixels to ~2 px in bf16) and
    fail the PnP layer's dtype checks. Inputs are cast with :func:`solve_dtype` inside it."""
    with torch.autocast(device_type, enabled=False):
        yield


def solve_dtype(x: Tensor) -> torch.dtype:
    """float32 for a half-precision network output, else its own dtype (float32 or float64)."""
    return torch.float32 if x.dtype in LOW_PRECISION else x.dtype


def pose_from_prediction(
    xyz: Tensor, err: Tensor, batch: dict[str, Tensor], config: E2EConfig, ransac: RansacConfig | None = None
) -> tuple[PnPResult, Tensor]:
    """PnP on every crop pixel of the batch at once (image pixels, the image's intrinsics).

    Args:
        xyz: (B, 3, S, S). err: (B, 1, S, S). batch: the training batch (``box_xyxy``, ``K`` of the crop,
            ``centre_mm``, ``half_extent_mm``, and ``mask_visib`` when ``config.use_mask``).
        ransac: reject outliers first (validation and inference); None: weighted least squares on all
            weighted pixels (the differentiable training path).
    Returns:
        the :class:`PnPResult` (``valid`` is also False where fewer than ``config.min_points`` pixels have weight),
        and the (B, 3, 3) image intrinsics it was solved with. Solved in float32 outside autocast for a bf16/fp16
        ``xyz`` (the network's output under autocast), so it runs inside a bf16 training step.
    """
    with full_precision(xyz.device.type):
        dtype = solve_dtype(xyz)
        return _pose_from_prediction(xyz.to(dtype), err.to(dtype), batch, config, ransac)


def _pose_from_prediction(
    xyz: Tensor,
    err: Tensor,
    batch: dict[str, Tensor],
    config: E2EConfig,
    ransac: RansacConfig | None,
    training: bool = False,
) -> tuple[PnPResult, Tensor]:
    """See :func:`pose_from_prediction`. ``training``: the differentiable path of the e2e loss, solved as fast as
    each device allows with the same result: on a CPU only the weighted pixels go to PnP (:func:`weighted_first`;
    ``inliers`` then covers those; finding how many is a host read, free there), on a GPU every pixel; the
    solver's execution is ``config.pnp_execution``."""
    S = xyz.shape[-1]
    box = batch["box_xyxy"].to(xyz.dtype)
    mask = batch.get("mask_visib") if config.use_mask else None
    x2d, x3d, w = crop_correspondences(
        xyz,
        err,
        box,
        batch["centre_mm"],
        batch["half_extent_mm"],
        max_err=config.max_err,
        min_coord=config.min_coord,
        mask=mask,
    )
    K = uncrop_intrinsics(batch["K"].to(xyz.dtype), box, S)
    enough = (w > 0).sum(1) >= config.min_points
    w = w * enough[:, None]
    execution = "eager"
    if training and ransac is None:
        on_cpu = xyz.device.type == "cpu"
        if on_cpu:
            x2d, x3d, w = weighted_first(x2d, x3d, w)
        execution = config.pnp_execution if config.pnp_execution != "auto" else "eager" if on_cpu else "sync_free"
    res = solve_pnp(x2d, x3d, K, w, ransac=ransac, execution=execution)
    return replace(res, valid=res.valid & enough), K


def huber_rms(mse_px2: Tensor, cap_px: float) -> Tensor:
    """Huber's loss on a root-mean-square error: ``r^2`` up to ``r = cap_px``, then ``cap_px (2 r - cap_px)``.

    Args:
        mse_px2: (...) mean squared errors, px^2 (>= 0).
    Returns:
        (...) px^2, equal to ``mse_px2`` up to ``cap_px^2``; continuous, with a continuous gradient at the cap.
    """
    rms = mse_px2.clamp(min=0).sqrt()
    far = rms > cap_px
    linear = cap_px * (2.0 * torch.where(far, rms, torch.full_like(rms, cap_px)) - cap_px)
    return torch.where(far, linear, mse_px2)


def e2e_projection_loss(
    xyz: Tensor, err: Tensor, batch: dict[str, Tensor], best: Tensor, config: E2EConfig
) -> tuple[Tensor, Tensor, Tensor]:
    """The projection loss of the poses PnP finds from the prediction.

    Args:
        xyz, err, batch: as :func:`pose_from_prediction`; the batch also holds ``R_m2c_target``, ``t_m2c_target``
            and ``pool``. best: (B,) the pool members chosen by the transformer loss.
    Returns:
        loss: scalar, mean over the valid items of the robust per-item loss (:func:`huber_rms`), px^2 (0 with no
        valid item, still connected to the graph). per_item: (B,) mean squared error, px^2 (0 where invalid).
        valid: (B,) bool. float32 for a bf16/fp16 prediction: the loss runs outside autocast, as PnP does.

    The PnP call is the cheapest one each device allows for the same result: on a CPU only the weighted pixels go to
    the solver (points of weight 0 have no say in the pose or its gradient); on a GPU every pixel does, by default
    with the solver's ``sync_free`` execution (``config.pnp_execution``), so the loss and its backward wait for the
    device only in the solver's closed-form start.
    """
    with full_precision(xyz.device.type):
        dtype = solve_dtype(xyz)
        return _e2e_projection_loss(xyz.to(dtype), err.to(dtype), batch, best, config)


def _e2e_projection_loss(
    xyz: Tensor, err: Tensor, batch: dict[str, Tensor], best: Tensor, config: E2EConfig
) -> tuple[Tensor, Tensor, Tensor]:
    res, K = _pose_from_prediction(xyz, err, batch, config, None, training=True)
    R_gt, t_gt = symmetric_gt_pose(
        batch["R_m2c_target"].to(xyz.dtype), batch["t_m2c_target"].to(xyz.dtype), batch["pool"], best
    )
    pts = box_corners(batch["centre_mm"].to(xyz.dtype), batch["half_extent_mm"].to(xyz.dtype))
    x2d_gt = project_points(transform_points(R_gt, t_gt, pts), K)
    per_item = projection_loss(res.R, res.t, pts, x2d_gt, K, reduction="none")
    valid = res.valid & torch.isfinite(per_item)
    per_item = torch.where(valid, per_item, torch.zeros_like(per_item))
    robust = huber_rms(per_item, config.cap_px)
    loss = (robust * valid).sum() / valid.sum().clamp(min=1)
    return loss, per_item.detach(), valid


__all__ = ["E2EConfig", "box_corners", "huber_rms", "e2e_projection_loss", "pose_from_prediction", "symmetric_gt_pose"]

"""Pix2Pose's training losses for the coordinate network.

- ``L_r``: per-pixel L1 distance between predicted and target normalised coordinates (summed over x, y, z),
  averaged over the crop's pixels, with weight ``beta`` on the pixels of the full-object mask (the whole
  silhouette, occluded parts included: the network learns to complete them).
- ``L_3D`` (transformer loss): the minimum of ``L_r`` over the object's discrete symmetry pool ``{(R_p, t_p)}``,
  each member applied to the target, so every view that looks the same may be answered by any of its equivalent
  coordinate maps. Continuous symmetries are handled upstream by canonical targets (the crop cache).
- ``L_e``: squared error between the predicted error map and the per-pixel L1 error of the chosen target
  (``beta = 1``), clipped to 1 (the sigmoid's range); the target is not differentiated.
- ``L_trans = lambda_3d * L_3D + lambda_err * L_e``.

The projection loss of the end-to-end phase is :func:`bopnp.pnp.projection_loss`.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from bopnp.checks import check_shape
from bopnp.errors import ConfigError


@dataclass(frozen=True)
class CoordLossConfig:
    """Weights of the transformer and error losses (Pix2Pose's defaults).

    Attributes:
        beta: weight of the object's pixels in ``L_r`` relative to the background's.
        lambda_3d: weight of ``L_3D``. lambda_err: weight of ``L_e``.
    """

    beta: float = 3.0
    lambda_3d: float = 100.0
    lambda_err: float = 50.0

    def validate(self) -> None:
        for name in ("beta", "lambda_3d", "lambda_err"):
            v = getattr(self, name)
            if not (v == v and 0.0 <= v < float("inf")):
                raise ConfigError(f"{name} must be a finite number >= 0, got {v} (defaults: 3, 100, 50)")


def coord_error_per_pixel(xyz_pred: Tensor, xyz_gt: Tensor) -> Tensor:
    """L1 distance per pixel, summed over the three coordinates.

    Args:
        xyz_pred, xyz_gt: (B, 3, H, W) normalised coordinates.
    Returns:
        (B, H, W).
    """
    return (xyz_pred - xyz_gt).abs().sum(1)


def transform_targets(xyz_gt: Tensor, mask: Tensor, pool: Tensor, centre_mm: Tensor, half_extent_mm: Tensor) -> Tensor:
    """The target coordinate maps under every member of a symmetry pool.

    A pool member ``(R_p, t_p)`` maps the model onto itself; on the object's pixels the target point ``x`` (mm)
    becomes ``R_p x + t_p``, re-normalised; off the object the target stays 0.

    Args:
        xyz_gt: (B, 3, H, W) normalised targets, ``x_mm = centre_mm + xyz * half_extent_mm`` per axis.
        mask: (B, H, W) bool, the pixels where the target is defined (the full-object mask).
        pool: (B, P, 4, 4) symmetry transforms in the model frame, t in mm (pad short pools with the identity).
        centre_mm, half_extent_mm: (B, 3) the normalisation of each item's object.
    Returns:
        (B, P, 3, H, W).
    """
    c = centre_mm[:, None, :, None, None]
    h = half_extent_mm[:, None, :, None, None]
    x_mm = c + xyz_gt[:, None] * h  # (B, 1, 3, H, W)
    R, t = pool[..., :3, :3], pool[..., :3, 3]
    moved = torch.einsum("bpij,bqjhw->bpihw", R, x_mm) + t[..., None, None]
    return torch.where(mask[:, None, None], (moved - c) / h, torch.zeros_like(moved))


def symmetric_coord_loss(
    xyz_pred: Tensor,
    xyz_gt: Tensor,
    mask_full: Tensor,
    pool: Tensor,
    centre_mm: Tensor,
    half_extent_mm: Tensor,
    beta: float = 3.0,
) -> tuple[Tensor, Tensor, Tensor]:
    """``L_3D`` per item: the smallest ``L_r`` over the symmetry pool.

    Args:
        xyz_pred: (B, 3, H, W) predicted normalised coordinates. xyz_gt: (B, 3, H, W) targets.
        mask_full: (B, H, W) bool full-object mask. pool: (B, P, 4, 4) (identity among them).
        centre_mm, half_extent_mm: (B, 3).
        beta: weight of the object's pixels.
    Returns:
        loss: (B,) ``L_3D`` per item. best: (B,) int64 index of the chosen pool member.
        err_px: (B, H, W) per-pixel L1 error (``beta = 1``) against the chosen target.
    """
    dims = check_shape(xyz_pred, "B 3 H W", "xyz_pred")
    check_shape(xyz_gt, "B 3 H W", "xyz_gt", dims)
    check_shape(mask_full, "B H W", "mask_full", dims)
    check_shape(pool, "B P 4 4", "pool", dims)
    check_shape(centre_mm, "B 3", "centre_mm", dims)
    check_shape(half_extent_mm, "B 3", "half_extent_mm", dims)
    mask = mask_full.bool()
    targets = transform_targets(
        xyz_gt, mask, pool.to(xyz_gt.dtype), centre_mm.to(xyz_gt.dtype), half_extent_mm.to(xyz_gt.dtype)
    )
    err = (xyz_pred[:, None] - targets).abs().sum(2)  # (B, P, H, W)
    weight = 1.0 + (beta - 1.0) * mask[:, None].to(err.dtype)
    per_member = (weight * err).mean((-2, -1))  # (B, P)
    loss, best = per_member.min(1)
    err_px = err[torch.arange(err.shape[0], device=err.device), best]
    return loss, best, err_px


def error_map_loss(err_pred: Tensor, err_px: Tensor) -> Tensor:
    """``L_e``: mean squared difference between the predicted error map and the clipped L1 error.

    Args:
        err_pred: (B, 1, H, W) predicted error in [0, 1]. err_px: (B, H, W) per-pixel L1 error (not differentiated).
    Returns:
        (B,) per item.
    """
    dims = check_shape(err_pred, "B 1 H W", "err_pred")
    check_shape(err_px, "B H W", "err_px", dims)
    target = err_px.detach().clamp(max=1.0)
    return ((err_pred[:, 0] - target) ** 2).mean((-2, -1))


def transformer_loss(
    xyz_pred: Tensor,
    err_pred: Tensor,
    xyz_gt: Tensor,
    mask_full: Tensor,
    pool: Tensor,
    centre_mm: Tensor,
    half_extent_mm: Tensor,
    config: CoordLossConfig = CoordLossConfig(),
) -> dict[str, Tensor]:
    """``L_trans = lambda_3d * L_3D + lambda_err * L_e``, averaged over the batch.

    Args: as :func:`symmetric_coord_loss`, plus err_pred (B, 1, H, W).
    Returns:
        ``{"loss": L_trans, "l3d": L_3D, "lerr": L_e}`` scalars (batch means), and ``"best"`` (B,) the chosen
        pool members.
    """
    l3d, best, err_px = symmetric_coord_loss(xyz_pred, xyz_gt, mask_full, pool, centre_mm, half_extent_mm, config.beta)
    lerr = error_map_loss(err_pred, err_px)
    l3d, lerr = l3d.mean(), lerr.mean()
    return {"loss": config.lambda_3d * l3d + config.lambda_err * lerr, "l3d": l3d, "lerr": lerr, "best": best}


__all__ = [
    "CoordLossConfig",
    "coord_error_per_pixel",
    "error_map_loss",
    "symmetric_coord_loss",
    "transform_targets",
    "transformer_loss",
]

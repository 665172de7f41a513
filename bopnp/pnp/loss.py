"""Projection loss: how far model points land in the image under an estimated pose vs where they should."""

from __future__ import annotations

from typing import Literal

from torch import Tensor

from bopnp.checks import check_shape
from bopnp.errors import ConfigError
from bopnp.geometry import project_points, transform_points


def projection_loss(
    R: Tensor, t: Tensor, pts_m: Tensor, x2d_gt: Tensor, K: Tensor, reduction: Literal["mean", "none"] = "mean"
) -> Tensor:
    """Mean squared pixel distance between model points projected with ``(R, t)`` and their target pixels.

    Args:
        R: (B, 3, 3) model-to-camera rotation. t: (B, 3) translation, mm.
        pts_m: (B, M, 3) or (M, 3) model points, mm.
        x2d_gt: (B, M, 2) target pixels, e.g. the points projected with the ground-truth pose.
        K: (B, 3, 3) or (3, 3) intrinsics.
        reduction: ``"mean"`` (scalar, over items and points) or ``"none"`` ((B,) per-item means), px^2.
    Returns:
        px^2, differentiable w.r.t. every input.

    Example:
        >>> import torch
        >>> K = torch.tensor([[500.0, 0, 320], [0, 500.0, 240], [0, 0, 1]])
        >>> pts = torch.tensor([[0.0, 0.0, 0.0], [10.0, 0.0, 0.0]])
        >>> R, t = torch.eye(3)[None], torch.tensor([[0.0, 0.0, 500.0]])
        >>> gt = torch.tensor([[[322.0, 240.0], [330.0, 240.0]]])
        >>> projection_loss(R, t, pts, gt, K)
        tensor(2.)
    """
    dims: dict[str, int] = {}
    check_shape(R, "B 3 3", "R", dims)
    check_shape(t, "B 3", "t", dims)
    check_shape(x2d_gt, "B M 2", "x2d_gt", dims)
    check_shape(pts_m, "M 3" if pts_m.dim() == 2 else "B M 3", "pts_m", dims)
    check_shape(K, "3 3" if K.dim() == 2 else "B 3 3", "K", dims)
    if reduction not in ("mean", "none"):
        raise ConfigError(f"reduction must be 'mean' or 'none', got {reduction!r}")
    if pts_m.dim() == 2:
        pts_m = pts_m.unsqueeze(0)
    if K.dim() == 2:
        K = K.unsqueeze(0)
    uv = project_points(transform_points(R, t, pts_m), K)
    per_item = ((uv - x2d_gt) ** 2).sum(-1).mean(-1)
    return per_item.mean() if reduction == "mean" else per_item


__all__ = ["projection_loss"]

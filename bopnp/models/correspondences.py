"""2D-3D correspondences from the coordinate network's output, for :func:`bopnp.pnp.solve_pnp`.

Every crop pixel is one correspondence: its centre mapped to image pixels through the crop box (the crop's
convention, :mod:`bopnp.data.crop_geometry`: crop pixel ``(j, i)`` is image pixel ``(x1 + j / s, y1 + i / s)`` with
``s = S / (x2 - x1)``), and the predicted model point, de-normalised to mm. Pixels off the predicted object or with
a predicted error above ``max_err`` get weight 0, so the batch keeps one fixed ``N = S * S`` (PnP runs once over
the whole batch); the weight falls linearly with the predicted error, which keeps it differentiable in the error
map.

The predicted object is where the coordinates are away from the background's 0: every surface point of an
object normalised per axis to its box has one coordinate far from 0 (a box's faces reach +-1, a sphere's points
have a coordinate of at least 1/sqrt(3)), so ``max |xyz| > min_coord`` separates object from background.
"""

from __future__ import annotations

import torch
from torch import Tensor

from bopnp.checks import check_shape
from bopnp.pnp.solver import MIN_POINTS


def crop_pixel_centres(box_xyxy: Tensor, size: int) -> Tensor:
    """Image pixel coordinates of the centres of a crop's pixels.

    Args:
        box_xyxy: (B, 4) square crop boxes in image pixels. size: S, the crop's side in pixels.
    Returns:
        (B, S * S, 2) (u, v) image pixels, row-major over the crop (row i, column j).
    """
    check_shape(box_xyxy, "B 4", "box_xyxy")
    idx = torch.arange(size, device=box_xyxy.device, dtype=box_xyxy.dtype)
    ii, jj = torch.meshgrid(idx, idx, indexing="ij")
    scale = (box_xyxy[:, 2] - box_xyxy[:, 0]) / size  # image pixels per crop pixel
    u = box_xyxy[:, 0, None] + jj.reshape(1, -1) * scale[:, None]
    v = box_xyxy[:, 1, None] + ii.reshape(1, -1) * scale[:, None]
    return torch.stack([u, v], dim=-1)


def crop_correspondences(
    xyz: Tensor,
    err: Tensor,
    box_xyxy: Tensor,
    centre_mm: Tensor,
    half_extent_mm: Tensor,
    *,
    max_err: float = 0.5,
    min_coord: float = 0.1,
    min_share: float = 0.25,
    mask: Tensor | None = None,
) -> tuple[Tensor, Tensor, Tensor]:
    """Correspondences and weights of every crop pixel.

    A pixel's weight falls linearly from 1 at predicted error 0 to 0 at the item's error limit, which is
    ``max_err``, raised where needed so that at least the ``min_share`` of the item's object pixels with the lowest
    predicted error take part: a network that is still learning predicts a high error on the whole object, and
    a fixed limit would then leave only stray background pixels (or none) for PnP.

    Args:
        xyz: (B, 3, S, S) predicted normalised coordinates. err: (B, 1, S, S) predicted L1 error in [0, 1].
        box_xyxy: (B, 4) crop boxes in image pixels.
        centre_mm, half_extent_mm: (B, 3) each item's normalisation: ``x_mm = centre_mm + xyz * half_extent_mm``.
        max_err: pixels whose predicted error is at least this get weight 0.
        min_coord: pixels whose largest |coordinate| is at most this are background (weight 0).
        min_share: share of the object pixels that always pass the error limit (0: ``max_err`` alone decides).
        mask: (B, S, S) bool, optional: only these pixels can be object pixels (e.g. the detector's mask).
    Returns:
        x2d: (B, S * S, 2) image pixels. x3d: (B, S * S, 3) mm. w: (B, S * S) weights in [0, 1].
    """
    dims = check_shape(xyz, "B 3 S S", "xyz")
    check_shape(err, "B 1 S S", "err", dims)
    check_shape(box_xyxy, "B 4", "box_xyxy", dims)
    check_shape(centre_mm, "B 3", "centre_mm", dims)
    check_shape(half_extent_mm, "B 3", "half_extent_mm", dims)
    B, S = dims["B"], dims["S"]
    x2d = crop_pixel_centres(box_xyxy.to(xyz.dtype), S)
    flat = xyz.flatten(2).transpose(1, 2)  # (B, S*S, 3)
    x3d = centre_mm.to(xyz.dtype)[:, None] + flat * half_extent_mm.to(xyz.dtype)[:, None]
    on_object = flat.detach().abs().amax(-1) > min_coord
    if mask is not None:
        check_shape(mask, "B S S", "mask", dims)
        on_object = on_object & mask.reshape(B, -1).to(torch.bool)
    e = err.reshape(B, -1)
    limit = torch.full((B, 1), float(max_err), dtype=e.dtype, device=e.device)
    if min_share > 0:
        ranked = torch.where(on_object, e.detach(), torch.full_like(e, float("inf"))).sort(dim=1).values
        n_obj = on_object.sum(1, keepdim=True)
        k = (n_obj * min_share).ceil().long().clamp(min=1, max=e.shape[1]) - 1
        kth = ranked.gather(1, k)  # the error of the pixel at the min_share quantile (inf: no object pixel)
        limit = torch.where(torch.isfinite(kth), torch.maximum(limit, kth * 1.001 + 1e-6), limit)
    w = (1.0 - e / limit).clamp(min=0.0) * on_object
    return x2d, x3d, w


def weighted_first(x2d: Tensor, x3d: Tensor, w: Tensor, keep: int | None = None) -> tuple[Tensor, Tensor, Tensor]:
    """Each item's weighted correspondences (``w > 0``) first, in their order, cut to ``keep`` per item.

    A least-squares PnP gives a point of weight 0 no say (its residual is multiplied by 0), so dropping such points
    leaves the pose and its gradient as they were up to the order of floating-point sums, while the work of every
    solver iteration falls with the points: a crop's object covers a fraction of its pixels.

    Args:
        x2d: (B, N, 2) px. x3d: (B, N, 3) mm. w: (B, N) weights >= 0.
        keep: points kept per item; None: the largest number of weighted points of an item in the batch (one host
            read, free on a CPU and a synchronisation on a GPU), at least ``MIN_POINTS`` and at most N. Items with
            fewer weighted points are filled with their first points of weight 0.
    Returns:
        x2d: (B, keep, 2). x3d: (B, keep, 3). w: (B, keep); gradients flow back to the kept entries.
    """
    dims = check_shape(x2d, "B N 2", "x2d")
    check_shape(x3d, "B N 3", "x3d", dims)
    check_shape(w, "B N", "w", dims)
    N = dims["N"]
    used = w.detach() > 0
    if keep is None:
        keep = int(used.sum(1).amax()) if used.numel() else 0
        keep = min(N, max(keep, MIN_POINTS))
    order = torch.sort((~used).to(torch.int8), dim=1, stable=True).indices[:, :keep]  # weighted points first
    return (
        x2d.gather(1, order.unsqueeze(-1).expand(-1, -1, 2)),
        x3d.gather(1, order.unsqueeze(-1).expand(-1, -1, 3)),
        w.gather(1, order),
    )


__all__ = ["crop_correspondences", "crop_pixel_centres", "weighted_first"]

"""Visible Surface Discrepancy (Hodan et al., ECCV 2018), computed on image crops.

VSD compares the object's surface visible in the test depth image under the estimated and the GT
pose. Only pixels where one of the two renders is non-zero take part, so the computation runs on the
bounding box of the two renders (a crop) instead of the full image; the numbers are those of the
full image. Conventions, as bop_toolkit's BOP19 evaluation:

- depth images are turned into *distance* images (distance from the camera centre, mm), in float64
  (:func:`bopnp.bop.visibility.distance_image`);
- visibility ('bop19' mode, :func:`bopnp.bop.visibility.visible_mask`): a rendered pixel is visible where
  ``render - test <= delta`` (difference in float32) or where the test depth is missing (0: missing
  depth counts as visible); VSD's own rule: the estimate is also visible wherever the GT is visible
  and the estimate render is non-zero;
- pixel cost 'step': ``|d_gt - d_est| / diameter >= tau`` on the intersection of the two visible masks;
- error = (costly pixels + pixels of the union outside the intersection) / union; 1 for an empty union.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from bopnp.bop.visibility import distance_image, visible_mask
from bopnp.checks import check_shape


@dataclass(frozen=True)
class DepthCrop:
    """A rendered depth image of one instance alone, kept only on its bounding box.

    Attributes:
        depth_mm: (h, w) float32 depth along the optical axis, mm; 0 = background. Empty (0, 0) when the
            instance is not in the image.
        x0, y0: column and row of the crop's top-left pixel in the full image.
    """

    depth_mm: np.ndarray
    x0: int
    y0: int

    @property
    def box(self) -> tuple[int, int, int, int]:
        """(x0, y0, x1, y1), end exclusive."""
        h, w = self.depth_mm.shape
        return self.x0, self.y0, self.x0 + w, self.y0 + h

    @property
    def empty(self) -> bool:
        return self.depth_mm.size == 0

    @staticmethod
    def from_full(depth_mm: np.ndarray) -> DepthCrop:
        """Crop a full-image render (H, W) to its non-zero pixels."""
        ys, xs = np.nonzero(depth_mm > 0)
        if len(xs) == 0:
            return DepthCrop(np.zeros((0, 0), np.float32), 0, 0)
        x0, x1, y0, y1 = xs.min(), xs.max() + 1, ys.min(), ys.max() + 1
        return DepthCrop(np.ascontiguousarray(depth_mm[y0:y1, x0:x1], dtype=np.float32), int(x0), int(y0))


#: :func:`bopnp.bop.visibility.distance_image` under its name in this module (kept for callers)
depth_to_dist = distance_image


def _place(crop: DepthCrop, box: tuple[int, int, int, int]) -> np.ndarray:
    """The crop's depth pasted into a zero image covering ``box``."""
    x0, y0, x1, y1 = box
    out = np.zeros((y1 - y0, x1 - x0), np.float32)
    if not crop.empty:
        cx0, cy0, cx1, cy1 = crop.box
        out[cy0 - y0 : cy1 - y0, cx0 - x0 : cx1 - x0] = crop.depth_mm
    return out


def union_box(a: DepthCrop, b: DepthCrop) -> tuple[int, int, int, int] | None:
    """(x0, y0, x1, y1) covering both crops; None when both are empty."""
    boxes = [c.box for c in (a, b) if not c.empty]
    if not boxes:
        return None
    arr = np.array(boxes)
    return int(arr[:, 0].min()), int(arr[:, 1].min()), int(arr[:, 2].max()), int(arr[:, 3].max())


def vsd(
    depth_test_mm: np.ndarray,
    K: np.ndarray,
    est: DepthCrop,
    gt: DepthCrop,
    delta_mm: float,
    taus: np.ndarray,
    diameter_mm: float,
) -> np.ndarray:
    """VSD of one estimate against one GT instance, for every misalignment tolerance tau.

    Args:
        depth_test_mm: (H, W) test depth image, mm (0 = missing).
        K: (3, 3) intrinsics.
        est, gt: the two instances rendered alone (:class:`DepthCrop`).
        delta_mm: visibility tolerance, mm (15 for most BOP datasets, 5 for ITODD).
        taus: (T,) misalignment tolerances, fractions of the diameter.
        diameter_mm: object diameter, mm (the pixel distances are divided by it, as in BOP19).
    Returns:
        (T,) float64 errors in [0, 1].
    """
    taus = np.asarray(taus, dtype=np.float64)
    box = union_box(est, gt)
    if box is None:
        return np.ones(len(taus))
    x0, y0, x1, y1 = box
    d_test = distance_image(depth_test_mm[y0:y1, x0:x1], K, x0, y0)
    d_est = distance_image(_place(est, box), K, x0, y0)
    d_gt = distance_image(_place(gt, box), K, x0, y0)
    return vsd_from_dist(d_test, d_est, d_gt, delta_mm, taus, diameter_mm)


def vsd_from_dist(
    dist_test: np.ndarray,
    dist_est: np.ndarray,
    dist_gt: np.ndarray,
    delta_mm: float,
    taus: np.ndarray,
    diameter_mm: float | None,
) -> np.ndarray:
    """VSD from three aligned distance images (full images or the same crop of each).

    Args:
        dist_test, dist_est, dist_gt: (h, w) float64 distance images, mm (0 = none).
        delta_mm: visibility tolerance, mm.
        taus: (T,) tolerances.
        diameter_mm: normalise the pixel distances by it, or None for mm tolerances.
    Returns:
        (T,) float64 errors.
    """
    dims: dict[str, int] = {}
    check_shape(dist_test, "h w", "dist_test", dims)
    check_shape(dist_est, "h w", "dist_est", dims)
    check_shape(dist_gt, "h w", "dist_gt", dims)
    visib_gt = visible_mask(dist_test, dist_gt, delta_mm)
    visib_est = visible_mask(dist_test, dist_est, delta_mm)
    visib_est |= visib_gt & (dist_est > 0)  # VSD's rule, not bop_toolkit's GT masks'
    inter = visib_gt & visib_est
    union_count = int((visib_gt | visib_est).sum())
    taus = np.asarray(taus, dtype=np.float64)
    if union_count == 0:
        return np.ones(len(taus))
    comp_count = union_count - int(inter.sum())
    dists = np.abs(dist_gt[inter] - dist_est[inter])
    if diameter_mm is not None:
        dists /= diameter_mm
    costs = (dists[None, :] >= taus[:, None]).sum(axis=1)
    return (costs + comp_count) / float(union_count)


__all__ = ["DepthCrop", "depth_to_dist", "vsd", "vsd_from_dist", "union_box"]

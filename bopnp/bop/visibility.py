"""Distance images and visible masks with bop_toolkit's definitions (``bop_toolkit_lib/visibility.py``),
shared by the GT masks of synthetic scenes (``bopnp.render.gt_info``) and the VSD error (``bopnp.eval.vsd``).

* A *distance image* holds, per pixel, the distance from the camera centre to the pixel's back-projected
  3D point, ``sqrt(X^2 + Y^2 + Z^2)`` in float64 (bop_toolkit ``depth_im_to_dist_im_fast``); it can be
  computed on a crop of the image, given the crop's top-left pixel, with the numbers of the full image.
* The *visible mask* of an object ('bop19' mode, bop_toolkit ``estimate_visib_mask_gt``): pixels where
  the object rendered alone has depth and ``dist_obj - dist_scene <= delta`` (difference in float32) or
  the scene has no depth (missing sensor depth counts as visible); 'bop18' counts missing depth as hidden.
"""

from __future__ import annotations

from typing import Literal

import numpy as np

from bopnp.errors import ConfigError

#: bop_toolkit's visibility tolerance for every dataset but ITODD (5 mm there), mm
DEFAULT_DELTA_MM = 15.0
#: the visibility modes of :func:`visible_mask`
VISIB_MODES = ("bop19", "bop18")


def distance_image(depth_mm: np.ndarray, K: np.ndarray, x0: int = 0, y0: int = 0) -> np.ndarray:
    """Distance image of a depth image, or of a crop of one whose top-left pixel is (x0, y0).

    Args:
        depth_mm: (h, w) depth along the optical axis, mm; 0 = no data.
        K: (3, 3) intrinsics of the full image.
        x0, y0: column and row of the crop's top-left pixel in the full image.
    Returns:
        (h, w) float64 distance from the camera centre, mm; 0 where the depth is 0. A crop's values are
        those of the same pixels of the full image, to the bit.

    Example:
        >>> K = np.array([[500.0, 0, 2], [0, 500.0, 2], [0, 0, 1]])
        >>> float(distance_image(np.full((5, 5), 1000.0), K)[2, 2])
        1000.0
    """
    h, w = np.shape(depth_mm)
    K = np.asarray(K, np.float64)
    pre_x = (np.arange(x0, x0 + w)[None, :] - K[0, 2]) / K[0, 0]
    pre_y = (np.arange(y0, y0 + h)[:, None] - K[1, 2]) / K[1, 1]
    d = np.asarray(depth_mm).astype(np.float64)
    return np.sqrt((pre_x * d) ** 2 + (pre_y * d) ** 2 + d**2)


def visible_mask(
    dist_scene_mm: np.ndarray,
    dist_obj_mm: np.ndarray,
    delta_mm: float = DEFAULT_DELTA_MM,
    mode: Literal["bop19", "bop18"] = "bop19",
) -> np.ndarray:
    """Visible surface of an object (bop_toolkit ``visibility.estimate_visib_mask_gt``).

    Args:
        dist_scene_mm: (h, w) distance image of the scene, mm (0 = missing).
        dist_obj_mm: (h, w) distance image of the object rendered alone, mm (0 = background), aligned
            with ``dist_scene_mm`` (the full image or the same crop).
        delta_mm: tolerance, mm.
        mode: 'bop19' counts pixels with missing scene depth as visible; 'bop18' as not visible.
    Returns:
        (h, w) bool.

    Example:
        >>> visible_mask(np.array([[50.0, 85.0, 0.0]]), np.array([[100.0, 100.0, 100.0]])).tolist()
        [[False, True, True]]
    """
    check_visib_mode(mode)
    diff = dist_obj_mm.astype(np.float32) - dist_scene_mm.astype(np.float32)
    if mode == "bop19":
        return ((diff <= delta_mm) | (dist_scene_mm == 0)) & (dist_obj_mm > 0)
    return (diff <= delta_mm) & (dist_scene_mm > 0) & (dist_obj_mm > 0)


def check_visib_mode(mode: str) -> None:
    """Raise :class:`ConfigError` unless ``mode`` is one of :data:`VISIB_MODES`."""
    if mode not in VISIB_MODES:
        raise ConfigError(f"visibility mode must be 'bop19' or 'bop18', got {mode!r}")


__all__ = ["DEFAULT_DELTA_MM", "VISIB_MODES", "check_visib_mode", "distance_image", "visible_mask"]

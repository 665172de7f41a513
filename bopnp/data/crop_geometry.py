"""Crop geometry for Pix2Pose training crops: a square box around an instance, the affine map that
resamples it to ``out_size x out_size`` pixels, and the crop's intrinsics.

Pixels follow OpenCV/BOP (the centre of the top-left pixel is (0, 0)). A crop is defined by a box
``(x1, y1, x2, y2)`` in pixels of the full image; a pixel (u, v) of the image lands at
``((u - x1) * s, (v - y1) * s)`` of the crop with ``s = out_size / (x2 - x1)``: the affine matrix
``[[s, 0, -x1 s], [0, s, -y1 s]]`` that ``cv2.warpAffine`` uses, and the one
:func:`bopnp.geometry.crop_intrinsics` turns into the crop's ``K``. So a model point projected with the
crop's ``K`` lands exactly where ``cv2.warpAffine`` put that point's image pixel.

The box is square, centred on the instance's box and ``enlarge`` times its longer side; it may extend
outside the image (the crop is padded with zeros there). Its corner is shifted by half a crop pixel so that
the instance box's centre lands on the crop's centre ``((out_size - 1) / 2, (out_size - 1) / 2)``.

Example:
    >>> import numpy as np
    >>> box = square_box(np.array([100.0, 50.0, 40.0, 20.0]), enlarge=1.5, out_size=128)
    >>> np.round(box, 4)
    array([ 90.2344,  30.2344, 150.2344,  90.2344])
"""

from __future__ import annotations

import cv2
import numpy as np

from bopnp.checks import check_shape
from bopnp.errors import ConfigError

#: smallest side of a crop box, pixels (an instance box of a single pixel still gives a usable crop)
MIN_SIDE_PX = 2.0


def square_box(bbox_xywh: np.ndarray, enlarge: float = 1.5, out_size: int = 128) -> np.ndarray:
    """Square crop box around instance boxes.

    The instance box is BOP's ``(x, y, w, h)`` (``bbox_obj`` or ``bbox_visib``, as bop_toolkit's
    ``calc_2d_bbox``: the pixels x .. x + w, so its centre is ``x + w / 2``). The crop box has side
    ``max(max(w, h) * enlarge, MIN_SIDE_PX)`` and is centred on that centre, shifted by half a crop pixel
    (see the module docstring).

    Args:
        bbox_xywh: (..., 4) instance boxes, pixels.
        enlarge: side of the crop relative to the box's longer side (Pix2Pose: 1.5).
        out_size: side of the resampled crop, pixels.
    Returns:
        (..., 4) float64 boxes ``(x1, y1, x2, y2)`` in pixels of the full image, ``x2 - x1 == y2 - y1``.
    """
    bbox_xywh = np.asarray(bbox_xywh, dtype=np.float64)
    check_shape(bbox_xywh, " ".join(["*"] * (bbox_xywh.ndim - 1) + ["4"]), "bbox_xywh")
    if not enlarge > 0:
        raise ConfigError(f"enlarge must be > 0, got {enlarge}")
    x, y, w, h = np.moveaxis(bbox_xywh, -1, 0)
    side = np.maximum(np.maximum(w, h) * enlarge, MIN_SIDE_PX)
    cx, cy = x + w / 2.0, y + h / 2.0
    half_px = side / (2.0 * out_size)
    x1 = cx - side / 2.0 + half_px
    y1 = cy - side / 2.0 + half_px
    return np.stack([x1, y1, x1 + side, y1 + side], axis=-1)


def crop_affine(box_xyxy: np.ndarray, out_size: int) -> np.ndarray:
    """The ``cv2.warpAffine`` matrix that maps image pixels into the crop.

    Args:
        box_xyxy: (4,) crop box in pixels of the full image.
        out_size: side of the crop, pixels.
    Returns:
        (2, 3) float64 matrix ``[[sx, 0, -x1 sx], [0, sy, -y1 sy]]``.
    """
    x1, y1, x2, y2 = (float(v) for v in np.asarray(box_xyxy, dtype=np.float64).reshape(4))
    sx, sy = out_size / (x2 - x1), out_size / (y2 - y1)
    return np.array([[sx, 0.0, -x1 * sx], [0.0, sy, -y1 * sy]])


def crop_K(K: np.ndarray, box_xyxy: np.ndarray, out_size: int) -> np.ndarray:
    """Intrinsics of a crop: :func:`bopnp.geometry.crop_intrinsics` in numpy (tested equal), so that
    dataset preparation needs no torch.

    Args:
        K: (3, 3) intrinsics of the full image.
        box_xyxy: (4,) crop box, pixels.
        out_size: side of the crop, pixels.
    Returns:
        (3, 3) float64 intrinsics of the crop: ``[[sx, 0, -x1 sx], [0, sy, -y1 sy], [0, 0, 1]] @ K``.
    """
    A = np.eye(3)
    A[:2] = crop_affine(box_xyxy, out_size)
    return A @ np.asarray(K, dtype=np.float64)


def warp_crop(image: np.ndarray, box_xyxy: np.ndarray, out_size: int, nearest: bool = False) -> np.ndarray:
    """Resample the box of an image into an ``out_size x out_size`` crop, zeros outside the image.

    Args:
        image: (H, W) or (H, W, C) array (uint8, bool, float32 ...); bool is resampled as uint8.
        box_xyxy: (4,) crop box, pixels of ``image``.
        out_size: side of the crop, pixels.
        nearest: nearest-neighbour sampling (masks, coordinates: never blends values across an edge);
            else bilinear (images).
    Returns:
        (out_size, out_size[, C]) array of the input's dtype.
    """
    if image.ndim not in (2, 3):
        raise ValueError(f"image: expected (H, W) or (H, W, C), got {image.shape}")
    src = image.astype(np.uint8) if image.dtype == np.bool_ else image
    flags = cv2.INTER_NEAREST if nearest else cv2.INTER_LINEAR
    out = cv2.warpAffine(
        src,
        crop_affine(box_xyxy, out_size),
        (out_size, out_size),
        flags=flags,
        borderMode=cv2.BORDER_CONSTANT,
        borderValue=0,
    )
    if image.ndim == 3 and out.ndim == 2:  # cv2 drops a single channel
        out = out[..., None]
    return out.astype(np.bool_) if image.dtype == np.bool_ else out


def inside_image_mask(im_size_wh: tuple[int, int], box_xyxy: np.ndarray, out_size: int) -> np.ndarray:
    """Which crop pixels sample a pixel inside the image (the rest is zero padding).

    Args:
        im_size_wh: (width, height) of the full image, pixels.
        box_xyxy: (4,) crop box, pixels.
        out_size: side of the crop, pixels.
    Returns:
        (out_size, out_size) bool.
    """
    w, h = im_size_wh
    ones = np.ones((h, w), dtype=np.uint8)
    return warp_crop(ones, box_xyxy, out_size, nearest=True).astype(np.bool_)


__all__ = ["MIN_SIDE_PX", "square_box", "crop_affine", "crop_K", "warp_crop", "inside_image_mask"]

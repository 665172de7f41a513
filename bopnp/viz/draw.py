"""Drawing on (H, W, 3) uint8 RGB images: mask overlays with a contour, and poses as the projected 3D
bounding box (``models_info.json`` ``min`` and ``size``) and/or the model axes, with a label.

Every function returns a new image and leaves its inputs unchanged. Poses follow BOP:
``x_c = R_m2c @ x_m + t_m2c`` in mm; pixels (u, v) have the centre of the top-left pixel at (0, 0).

>>> img = np.zeros((480, 640, 3), np.uint8)
>>> K = np.array([[600.0, 0, 320], [0, 600.0, 240], [0, 0, 1]])
>>> corners = project_box(K, np.eye(3), np.array([0.0, 0, 500]), np.full(3, -50.0), np.full(3, 100.0))
>>> corners.shape
(8, 2)
>>> draw_pose(img, K, np.eye(3), np.array([0.0, 0, 500]), min_mm=np.full(3, -50.0), size_mm=np.full(3, 100.0)).shape
(480, 640, 3)
"""

from __future__ import annotations

import numpy as np

from bopnp.checks import check_shape
from bopnp.errors import ShapeError
from bopnp.viz.colors import RGB, text_color_on
from bopnp.viz.text import draw_text

#: the 12 edges of :func:`box3d_corners` (pairs of corner indices differing in one axis)
BOX_EDGES: tuple[tuple[int, int], ...] = tuple((i, i | b) for b in (4, 2, 1) for i in range(8) if not i & b)
#: colours of the model axes x, y, z
AXIS_COLORS: tuple[RGB, RGB, RGB] = ((230, 40, 40), (40, 200, 40), (40, 90, 255))
#: segments nearer to the camera than this are cut off before projection, mm
NEAR_MM = 1.0
#: sub-pixel bits of the line end points (OpenCV ``shift``)
_SHIFT = 4


def _rgb_image(image: np.ndarray, name: str = "image") -> np.ndarray:
    image = np.asarray(image)
    if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
        raise ShapeError(f"{name}: expected (H, W, 3) uint8 RGB, got {image.dtype} {image.shape}")
    return image


# ------------------------------------------------------------------------------------------- masks


def mask_boundary(mask: np.ndarray, thickness: int = 1) -> np.ndarray:
    """The inner boundary band of a mask: mask pixels within ``thickness`` 4-neighbour steps of a pixel
    outside it (outside the image counts as outside the mask).

    With ``thickness=1`` these are exactly the border pixels that OpenCV's contour tracing
    (``findContours``, 8-connected objects) visits, holes included.

    Args:
        mask: (H, W) bool.
        thickness: width of the band, pixels (>= 1).
    Returns:
        (H, W) bool, a subset of ``mask``.

    >>> m = np.zeros((5, 5), bool); m[1:4, 1:4] = True
    >>> int(mask_boundary(m).sum()), bool(mask_boundary(m)[2, 2])
    (8, False)
    """
    import cv2

    mask = np.asarray(mask, dtype=bool)
    check_shape(mask, "H W", "mask")
    if thickness < 1:
        raise ShapeError(f"thickness must be >= 1 pixel, got {thickness}")
    cross = cv2.getStructuringElement(cv2.MORPH_CROSS, (3, 3))
    inner = cv2.erode(
        mask.astype(np.uint8), cross, iterations=int(thickness), borderType=cv2.BORDER_CONSTANT, borderValue=0
    )
    return mask & ~inner.astype(bool)


def overlay_mask(
    image: np.ndarray,
    mask: np.ndarray,
    color: RGB,
    alpha: float = 0.35,
    thickness: int = 2,
    halo: RGB | None = None,
) -> np.ndarray:
    """Fill a mask with a translucent colour and draw its contour (opaque, inside the mask).

    Args:
        image: (H, W, 3) uint8 RGB.
        mask: (H, W) bool.
        color: RGB of fill and contour.
        alpha: opacity of the fill (0: contour only).
        thickness: contour width, pixels (0: no contour); see :func:`mask_boundary`.
        halo: RGB of a 1-pixel line just outside the mask that sets the contour off from any
            background (e.g. black), or None.
    Returns:
        (H, W, 3) uint8 RGB.
    """
    image = _rgb_image(image)
    mask = np.asarray(mask, dtype=bool)
    if mask.shape != image.shape[:2]:
        raise ShapeError(f"mask: expected shape {image.shape[:2]} (the image's), got {mask.shape}")
    out = image.copy()
    col = np.asarray(color, np.float32)
    if alpha > 0:
        out[mask] = np.rint(alpha * col + (1.0 - alpha) * out[mask]).astype(np.uint8)
    if thickness > 0:
        out[mask_boundary(mask, thickness)] = np.asarray(color, np.uint8)
        if halo is not None:
            out[_touches(mask) & ~mask] = np.asarray(halo, np.uint8)
    return out


def _touches(mask: np.ndarray) -> np.ndarray:
    """Pixels with a 4-neighbour in ``mask`` (the mask dilated by one step of a cross)."""
    import cv2

    cross = cv2.getStructuringElement(cv2.MORPH_CROSS, (3, 3))
    return cv2.dilate(mask.astype(np.uint8), cross).astype(bool)


# ------------------------------------------------------------------------------------------- poses


def box3d_corners(min_mm: np.ndarray, size_mm: np.ndarray) -> np.ndarray:
    """The 8 corners of a model's 3D bounding box (``models_info.json`` ``min_*`` and ``size_*``).

    Corner ``i`` is ``min + size * (bit 2, bit 1, bit 0 of i)``: corner 0 is the minimum, corner 7 the
    maximum; :data:`BOX_EDGES` lists the 12 edges.

    Args:
        min_mm: (3,) minimum corner, mm.
        size_mm: (3,) box size, mm.
    Returns:
        (8, 3) float64 corners in the model frame, mm.
    """
    min_mm = np.asarray(min_mm, np.float64)
    size_mm = np.asarray(size_mm, np.float64)
    check_shape(min_mm, "3", "min_mm")
    check_shape(size_mm, "3", "size_mm")
    bits = (np.arange(8)[:, None] >> np.array([2, 1, 0])) & 1
    return min_mm + bits * size_mm


def _pose(K, R_m2c, t_m2c) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    K = np.asarray(K, np.float64)
    R = np.asarray(R_m2c, np.float64)
    t = np.asarray(t_m2c, np.float64).reshape(-1)
    check_shape(K, "3 3", "K")
    check_shape(R, "3 3", "R_m2c")
    check_shape(t, "3", "t_m2c")
    return K, R, t


def project(K: np.ndarray, x3d_c: np.ndarray) -> np.ndarray:
    """Pixels of camera-frame points (no check of z > 0).

    Args:
        K: (3, 3) intrinsics.
        x3d_c: (N, 3) camera-frame points, mm.
    Returns:
        (N, 2) float64 pixel coordinates (u, v).
    """
    x = np.asarray(x3d_c, np.float64)
    z = np.where(np.abs(x[:, 2:3]) < 1e-9, 1e-9, x[:, 2:3])
    uvw = (x / z) @ np.asarray(K, np.float64).T
    return uvw[:, :2]


def project_box(
    K: np.ndarray, R_m2c: np.ndarray, t_m2c: np.ndarray, min_mm: np.ndarray, size_mm: np.ndarray
) -> np.ndarray:
    """Pixels of the 8 corners of :func:`box3d_corners` in the pose (R_m2c, t_m2c).

    Args:
        K: (3, 3) intrinsics. R_m2c: (3, 3). t_m2c: (3,) mm. min_mm, size_mm: (3,) mm.
    Returns:
        (8, 2) float64 pixel coordinates (meaningless for corners behind the camera).
    """
    K, R, t = _pose(K, R_m2c, t_m2c)
    return project(K, box3d_corners(min_mm, size_mm) @ R.T + t)


def projected_extent(
    K: np.ndarray,
    R_m2c: np.ndarray,
    t_m2c: np.ndarray,
    min_mm: np.ndarray | None = None,
    size_mm: np.ndarray | None = None,
) -> tuple[float, float, float, float] | None:
    """Where a pose's label goes: ``(u_min, v_min, u_max, v_max)`` of the projected corners of the
    model's 3D box (of the model origin without a box), over those in front of the near plane; None
    when none is.

    Args:
        K: (3, 3) intrinsics. R_m2c: (3, 3). t_m2c: (3,) mm. min_mm, size_mm: (3,) mm, or None.
    """
    K, R, t = _pose(K, R_m2c, t_m2c)
    pts = t[None] if min_mm is None or size_mm is None else box3d_corners(min_mm, size_mm) @ R.T + t
    pts = pts[pts[:, 2] >= NEAR_MM]
    if not len(pts):
        return None
    uv = project(K, pts)
    return float(uv[:, 0].min()), float(uv[:, 1].min()), float(uv[:, 0].max()), float(uv[:, 1].max())


def _clip_near(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray] | None:
    """The part of the camera-frame segment a-b in front of the near plane, or None."""
    za, zb = a[2], b[2]
    if za < NEAR_MM and zb < NEAR_MM:
        return None
    if za < NEAR_MM:
        a = a + (b - a) * (NEAR_MM - za) / (zb - za)
    elif zb < NEAR_MM:
        b = b + (a - b) * (NEAR_MM - zb) / (za - zb)
    return a, b


def _clip_rect(p: np.ndarray, q: np.ndarray, w: int, h: int) -> tuple[np.ndarray, np.ndarray] | None:
    """Liang-Barsky: the part of the 2D segment p-q inside [-2, w + 1] x [-2, h + 1], or None."""
    lo, hi = np.array([-2.0, -2.0]), np.array([w + 1.0, h + 1.0])
    d = q - p
    t0, t1 = 0.0, 1.0
    for k in range(2):
        if abs(d[k]) < 1e-12:
            if p[k] < lo[k] or p[k] > hi[k]:
                return None
            continue
        ta, tb = (lo[k] - p[k]) / d[k], (hi[k] - p[k]) / d[k]
        t0, t1 = max(t0, min(ta, tb)), min(t1, max(ta, tb))
        if t0 > t1:
            return None
    return p + t0 * d, p + t1 * d


def draw_segments_3d(
    image: np.ndarray,
    K: np.ndarray,
    segments_c: np.ndarray,
    colors: RGB | list[RGB],
    thickness: int = 2,
) -> np.ndarray:
    """Draw camera-frame 3D segments, cut at the near plane and the image border (anti-aliased).

    Args:
        image: (H, W, 3) uint8 RGB.
        K: (3, 3) intrinsics.
        segments_c: (S, 2, 3) segment end points in the camera frame, mm.
        colors: one RGB for all, or one per segment.
        thickness: line width, pixels.
    Returns:
        (H, W, 3) uint8 RGB.
    """
    import cv2

    out = _rgb_image(image).copy()
    segs = np.asarray(segments_c, np.float64)
    check_shape(segs, "S 2 3", "segments_c")
    H, W = out.shape[:2]
    per_segment = isinstance(colors, list)
    scale = float(1 << _SHIFT)
    for k, (a, b) in enumerate(segs):
        if not (np.all(np.isfinite(a)) and np.all(np.isfinite(b))):
            continue
        near = _clip_near(a, b)
        if near is None:
            continue
        p, q = project(K, np.stack(near))
        inside = _clip_rect(p, q, W, H)
        if inside is None:
            continue
        p, q = (np.rint(np.asarray(inside) * scale)).astype(np.int64)
        color = tuple(int(c) for c in (colors[k] if per_segment else colors))
        cv2.line(out, (int(p[0]), int(p[1])), (int(q[0]), int(q[1])), color, int(thickness), cv2.LINE_AA, _SHIFT)
    return out


def draw_pose(
    image: np.ndarray,
    K: np.ndarray,
    R_m2c: np.ndarray,
    t_m2c: np.ndarray,
    *,
    min_mm: np.ndarray | None = None,
    size_mm: np.ndarray | None = None,
    axes_mm: float | None = None,
    color: RGB = (40, 200, 80),
    thickness: int = 2,
    label: str | None = None,
    label_size: int = 16,
) -> np.ndarray:
    """Draw an object pose: its projected 3D bounding box, its model axes, and a label.

    Args:
        image: (H, W, 3) uint8 RGB.
        K: (3, 3) intrinsics. R_m2c: (3, 3). t_m2c: (3,) mm.
        min_mm, size_mm: (3,) the model's box (``ModelInfo.min_mm``, ``size_mm``); no box when None.
        axes_mm: length of the model's x (red), y (green) and z (blue) axes from its origin, mm; no axes
            when None.
        color: RGB of the box and of the label's background.
        thickness: line width, pixels.
        label: text written above the top-left of :func:`projected_extent` (e.g. the object id), or None.
    Returns:
        (H, W, 3) uint8 RGB.
    """
    K, R, t = _pose(K, R_m2c, t_m2c)
    out = _rgb_image(image).copy()
    if min_mm is not None and size_mm is not None:
        corners_c = box3d_corners(min_mm, size_mm) @ R.T + t
        segs = np.stack([np.stack([corners_c[i], corners_c[j]]) for i, j in BOX_EDGES])
        out = draw_segments_3d(out, K, segs, color, thickness)
    if axes_mm is not None:
        ends = t + float(axes_mm) * R.T  # rows: origin + length * model axis k, camera frame
        segs = np.stack([np.stack([t, e]) for e in ends])
        out = draw_segments_3d(out, K, segs, list(AXIS_COLORS), thickness + 1)
    extent = projected_extent(K, R, t, min_mm, size_mm) if label else None
    if extent is not None:
        xy = (extent[0], extent[1] - 2)
        out = draw_text(
            out, label, xy, size=label_size, color=text_color_on(color), bg=color, bg_alpha=0.85, anchor="lb"
        )
    return out

"""``scene_gt_info.json`` entries and the ``mask/`` and ``mask_visib/`` images of annotated instances,
with bop_toolkit's definitions (``scripts/calc_gt_info.py``, ``scripts/calc_gt_masks.py``,
``bop_toolkit_lib/visibility.py``):

* ``mask`` (full mask): pixels where the object rendered alone has depth.
* ``mask_visib``: 'bop19' visibility against the depth image of the scene, compared as distances from
  the camera centre: visible where ``dist_obj - dist_scene <= delta`` or the scene has no depth there
  (missing sensor depth counts as visible), and the object has depth. With a real depth image this
  tolerates sensor noise; for synthetic data the rendered depth of the whole scene serves as the depth
  image (pass the depth of everything in the scene, distractors included).
* ``px_count_all``: pixels of the object rendered alone in a canvas 3x the image size in each direction
  (the image in its centre), so parts outside the image count; ``px_count_valid``: pixels of the
  in-image mask where the depth image is valid (> 0); ``px_count_visib``: pixels of ``mask_visib``;
  ``visib_fract = px_count_visib / px_count_all`` (0 when nothing is rendered).
* ``bbox_obj``: (x, y, w, h) of the object's silhouette in the 3x canvas, in image coordinates (so x, y
  may be negative and x + w may exceed the width); ``bbox_visib``: of ``mask_visib``. As bop_toolkit's
  ``misc.calc_2d_bbox``, ``w = x_max - x_min`` and ``h = y_max - y_min`` (no +1), and both boxes are
  [-1, -1, -1, -1] when no pixel is visible.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import numpy as np

from bopnp.bop.images import mask_bbox_xywh
from bopnp.bop.visibility import DEFAULT_DELTA_MM, check_visib_mode, distance_image, visible_mask
from bopnp.errors import ConfigError, ShapeError


def bbox_xywh(mask: np.ndarray, offset_xy: tuple[int, int] = (0, 0)) -> list[int]:
    """(x, y, w, h) of a mask's pixels with ``w = x_max - x_min`` (bop_toolkit ``misc.calc_2d_bbox``).

    Args:
        mask: (H, W) bool, at least one pixel set.
        offset_xy: subtracted from the pixel coordinates (the image's origin in a larger canvas).
    """
    x, y, w, h = (int(v) for v in mask_bbox_xywh(mask))
    return [x - offset_xy[0], y - offset_xy[1], w, h]


def _check_inputs(renderer, K, depth_mm, im_size):
    W, H = renderer.width, renderer.height
    if im_size is not None and (int(im_size[0]), int(im_size[1])) != (W, H):
        raise ConfigError(
            f"im_size {tuple(im_size)} (width, height) differs from the renderer's {W}x{H}; "
            "use get_renderer(width, height)"
        )
    K = np.asarray(K, np.float64)
    if K.shape != (3, 3):
        raise ShapeError(f"K: expected shape (3, 3), got {K.shape}")
    if depth_mm is not None:
        depth_mm = np.asarray(depth_mm)
        if depth_mm.shape != (H, W):
            raise ShapeError(f"depth_mm: expected shape ({H}, {W}) (the image size), got {depth_mm.shape}")
    return K, depth_mm


def _may_leave_image(renderer, K: np.ndarray, instance, width: int, height: int) -> bool:
    """False when no pixel centre outside the image can be covered (conservative projected box)."""
    obj_id, R, t = instance
    box = renderer.projected_aabb_box_px(K, obj_id, R, t, 1e-3)
    return box is None or bool(box[0] <= -1 or box[1] <= -1 or box[2] >= width or box[3] >= height)


def _visible_masks(
    renderer, K: np.ndarray, instances: Sequence, depth_mm: np.ndarray | None, delta_mm: float, visib_mode: str
):
    """(full masks (N, H, W) bool, visible masks (N, H, W) bool, px_count_valid of each instance), N >= 1,
    for checked inputs. Distances are computed only on the box around each instance's rendered pixels
    (the visible mask and px_count_valid are 0 outside it), with the full image's numbers."""
    check_visib_mode(visib_mode)
    depths = renderer.render_depths(K, instances)
    if depth_mm is None:
        # the scene's depth is, per pixel, the nearest instance rendered alone: no separate scene render
        depth_mm = np.where(depths > 0, depths, np.inf).min(axis=0)
        depth_mm[np.isinf(depth_mm)] = 0
    fulls = depths > 0
    visibs = np.zeros(fulls.shape, bool)
    px_valid = []
    for i, (depth_obj, full) in enumerate(zip(depths, fulls)):
        rows, cols = np.flatnonzero(full.any(axis=1)), np.flatnonzero(full.any(axis=0))
        if len(rows) == 0:
            px_valid.append(0)
            continue
        box = np.s_[rows[0] : rows[-1] + 1, cols[0] : cols[-1] + 1]
        x0, y0 = int(cols[0]), int(rows[0])
        dist_scene = distance_image(depth_mm[box], K, x0, y0)
        visibs[i][box] = visible_mask(dist_scene, distance_image(depth_obj[box], K, x0, y0), delta_mm, visib_mode)
        px_valid.append(int((dist_scene[full[box]] > 0).sum()))
    return fulls, visibs, px_valid


def _gt_info_and_masks(
    renderer, K, instances, depth_mm, delta_mm, visib_mode
) -> tuple[list[dict], np.ndarray, np.ndarray]:
    """:func:`compute_gt_info_and_masks` for checked inputs."""
    from bopnp.render.renderer import get_renderer

    W, H = renderer.width, renderer.height
    if len(instances) == 0:
        empty = np.zeros((0, H, W), bool)
        return [], empty, empty.copy()
    fulls, visibs, px_valid = _visible_masks(renderer, K, instances, depth_mm, delta_mm, visib_mode)
    K_big = K.copy()
    K_big[0, 2] += W
    K_big[1, 2] += H
    infos = []
    for instance, full, visib, valid in zip(instances, fulls, visibs, px_valid):
        if _may_leave_image(renderer, K, instance, W, H):
            big = get_renderer(3 * W, 3 * H)
            big.add_model(instance[0], renderer.mesh(instance[0]))
            full_canvas, offset = big.render_depths(K_big, [instance])[0] > 0, (W, H)
            # the in-image part from the image-size render the visible mask comes from: the two renders can
            # disagree on a pixel at a triangle edge, which made px_count_visib exceed px_count_all
            full_canvas[H : 2 * H, W : 2 * W] = full
        else:
            full_canvas, offset = full, (0, 0)
        px_all = int(full_canvas.sum())
        px_visib = int(visib.sum())
        infos.append(
            {
                "bbox_obj": bbox_xywh(full_canvas, offset) if px_visib > 0 else [-1, -1, -1, -1],
                "bbox_visib": bbox_xywh(visib) if px_visib > 0 else [-1, -1, -1, -1],
                "px_count_all": px_all,
                "px_count_valid": valid,
                "px_count_visib": px_visib,
                "visib_fract": float(px_visib / px_all) if px_all > 0 else 0.0,
            }
        )
    return infos, fulls, visibs


def compute_gt_info_and_masks(
    renderer,
    K,
    instances: Sequence,
    depth_mm: np.ndarray | None = None,
    *,
    delta_mm: float = DEFAULT_DELTA_MM,
    visib_mode: Literal["bop19", "bop18"] = "bop19",
) -> tuple[list[dict], np.ndarray, np.ndarray]:
    """scene_gt_info entries, full masks and visible masks of the annotated instances of one image.

    Args:
        renderer: a :class:`bopnp.render.Renderer` of the image size holding the instances' models.
        K: (3, 3) intrinsics.
        instances: N tuples ``(obj_id, R_m2c (3, 3), t_m2c (3,) mm)`` in ``scene_gt`` order.
        depth_mm: (H, W) depth image of the scene, mm (0 = missing); None uses the depth of the scene of
            ``instances`` (synthetic data without sensor noise).
        delta_mm: visibility tolerance, mm (bop_toolkit: 15, ITODD 5).
        visib_mode: 'bop19' (default) or 'bop18', see :func:`bopnp.bop.visibility.visible_mask`.
    Returns:
        (infos, masks_full, masks_visib): N dicts with the keys of ``scene_gt_info.json`` (module
        docstring), and two (N, H, W) bool arrays for ``mask/`` and ``mask_visib/``.
    """
    K, depth_mm = _check_inputs(renderer, K, depth_mm, None)
    return _gt_info_and_masks(renderer, K, instances, depth_mm, delta_mm, visib_mode)


def compute_gt_info(
    renderer,
    K,
    instances: Sequence,
    depth_mm: np.ndarray | None = None,
    im_size: tuple[int, int] | None = None,
    *,
    delta_mm: float = DEFAULT_DELTA_MM,
    visib_mode: Literal["bop19", "bop18"] = "bop19",
) -> list[dict]:
    """``scene_gt_info.json`` entries of one image (see :func:`compute_gt_info_and_masks`).

    Args:
        im_size: (width, height) of the image; must equal the renderer's size (checked).
    Returns:
        N dicts: bbox_obj, bbox_visib ([x, y, w, h] ints), px_count_all, px_count_valid, px_count_visib
        (ints), visib_fract (float).
    """
    K, depth_mm = _check_inputs(renderer, K, depth_mm, im_size)
    return _gt_info_and_masks(renderer, K, instances, depth_mm, delta_mm, visib_mode)[0]


def compute_masks(
    renderer,
    K,
    instances: Sequence,
    depth_mm: np.ndarray | None = None,
    *,
    delta_mm: float = DEFAULT_DELTA_MM,
    visib_mode: Literal["bop19", "bop18"] = "bop19",
) -> tuple[np.ndarray, np.ndarray]:
    """(masks_full, masks_visib), each (N, H, W) bool, for ``mask/`` and ``mask_visib/`` (bop_toolkit
    ``calc_gt_masks``); arguments as :func:`compute_gt_info_and_masks`, without the 3x canvas renders."""
    K, depth_mm = _check_inputs(renderer, K, depth_mm, None)
    if len(instances) == 0:
        return np.zeros((0, renderer.height, renderer.width), bool), np.zeros(
            (0, renderer.height, renderer.width), bool
        )
    fulls, visibs, _ = _visible_masks(renderer, K, instances, depth_mm, delta_mm, visib_mode)
    return fulls, visibs

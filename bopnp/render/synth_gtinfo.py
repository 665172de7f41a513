"""Masks and scene_gt_info of synthetic images, with bop_toolkit's definitions (``calc_gt_info``,
``calc_gt_masks``, ``visib_mode='bop19'``, ``delta = 15 mm``): visibility compares *distance* images (depth
scaled by the ray length of each pixel); ``bbox_obj`` and ``px_count_all`` include the part of the
silhouette outside the image (rendered in an enlarged view when the silhouette touches the border).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

#: bop_toolkit's visibility tolerance, mm
VISIB_DELTA_MM = 15.0


def depth_to_distance(depth_mm: np.ndarray, K: np.ndarray) -> np.ndarray:
    """Distance from the camera centre of each pixel's surface point.

    Args:
        depth_mm: (..., H, W) depth along the optical axis, mm.
        K: (3, 3) intrinsics.
    Returns:
        (..., H, W) float32 distance, mm (0 where the depth is 0).
    """
    return depth_mm * _ray_lengths(depth_mm.shape[-2:], K)


def _ray_lengths(shape_hw: tuple[int, int], K: np.ndarray) -> np.ndarray:
    """(H, W) float32 length of the ray through each pixel per mm of depth."""
    H, W = shape_hw
    u = (np.arange(W) - K[0, 2]) / K[0, 0]
    v = (np.arange(H) - K[1, 2]) / K[1, 1]
    return np.sqrt(1.0 + u[None, :] ** 2 + v[:, None] ** 2).astype(np.float32)


def visible_mask(dist_alone_mm: np.ndarray, dist_scene_mm: np.ndarray, delta_mm: float = VISIB_DELTA_MM) -> np.ndarray:
    """bop_toolkit's visible mask (``visib_mode='bop19'``): the object's pixels that lie at most ``delta_mm``
    behind the scene surface, or where the scene has no measurement.

    Args:
        dist_alone_mm: (H, W) distance image of the object alone, mm (0 off the object).
        dist_scene_mm: (H, W) distance image of the scene, mm (0 = no measurement).
    Returns:
        (H, W) bool.
    """
    diff = dist_alone_mm - dist_scene_mm
    return (dist_alone_mm > 0) & ((diff <= delta_mm) | (dist_scene_mm == 0))


def _bbox(mask: np.ndarray, dx: int = 0, dy: int = 0) -> list[int]:
    """bop_toolkit's box (x, y, w, h) of the True pixels of a non-empty (H, W) mask, shifted by (-dx, -dy)."""
    xs = np.flatnonzero(mask.any(0))
    ys = np.flatnonzero(mask.any(1))
    return [int(xs[0]) - dx, int(ys[0]) - dy, int(xs[-1] - xs[0]), int(ys[-1] - ys[0])]


def gt_info_and_masks(renderer, K: np.ndarray, instances: Sequence, depth_scene_mm: np.ndarray, meshes):
    """scene_gt_info entries and (full, visible) masks of the annotated instances of one image.

    Args:
        renderer: a :class:`bopnp.render.Renderer` of the image size holding the instances' models.
        K: (3, 3) intrinsics.
        instances: N tuples ``(obj_id, R_m2c (3, 3), t_m2c (3,) mm)``.
        depth_scene_mm: (H, W) depth of the whole scene (distractors included), mm.
        meshes: obj_id -> mesh of the instances (for the enlarged view of truncated objects).
    Returns:
        (infos, masks_full, masks_visib): N json-ready dicts (bbox_obj, bbox_visib, px_count_all,
        px_count_valid, px_count_visib, visib_fract), and two (N, H, W) bool arrays.
    """
    from bopnp.render import get_renderer

    H, W = depth_scene_mm.shape
    depths = renderer.render_depths(K, instances)
    ray = _ray_lengths((H, W), K)
    dist_scene = depth_scene_mm * ray
    infos, fulls, visibs = [], [], []
    for inst, depth in zip(instances, depths):
        full = depth > 0
        visib = visible_mask(depth * ray, dist_scene)
        full_all, dx, dy = full, 0, 0
        touches = full[0].any() or full[-1].any() or full[:, 0].any() or full[:, -1].any()
        if touches:  # the silhouette may continue outside the image: render a 3x larger view
            big = get_renderer(3 * W, 3 * H)
            big.add_model(inst[0], meshes[inst[0]])
            K_big = np.array(K, np.float64)
            K_big[0, 2] += W
            K_big[1, 2] += H
            full_all, dx, dy = big.render_depths(K_big, [inst])[0] > 0, W, H
        px_all = int(full_all.sum())
        px_visib = int(visib.sum())
        infos.append(
            {
                "bbox_obj": _bbox(full_all, dx, dy) if px_visib > 0 else [-1, -1, -1, -1],
                "bbox_visib": _bbox(visib) if px_visib > 0 else [-1, -1, -1, -1],
                "px_count_all": int(px_all),
                "px_count_valid": int((dist_scene[full] > 0).sum()),
                "px_count_visib": px_visib,
                "visib_fract": px_visib / px_all if px_all > 0 else 0.0,
            }
        )
        fulls.append(full)
        visibs.append(visib)
    empty = np.zeros((0, H, W), bool)
    return infos, (np.stack(fulls) if fulls else empty), (np.stack(visibs) if visibs else empty)

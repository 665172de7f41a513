"""The debug sheet of one image: why is a pose wrong?

On top, the image with every selected detection's box (yellow, with its score), the estimated silhouettes and
boxes of the valid poses, and the GT. Below, one row per detection, five panels of its last crop:

1. **crop**: what the network saw, with the detection box (yellow) in it;
2. **coordinates**: the predicted normalised model coordinates as RGB (x -> red, y -> green, z -> blue),
   background black;
3. **error**: the predicted error (turbo colour map, 0 dark blue to 1 dark red) on the predicted object;
4. **PnP pixels**: the crop dimmed; RANSAC inliers cyan, rejected correspondences red, confident pixels not
   among the evenly spread subset given to PnP grey;
5. **pose**: the model rendered in the estimated pose (its silhouette's contour, magenta) and in the GT pose of the
   nearest GT instance of the object (green), when the image has GT.

The row's caption gives the object, the detection score, the pixels given to PnP and the inlier fraction, the
final score, and, with GT, the rotation and translation errors.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

import numpy as np

from bopnp.bop.dataset import BopDataset
from bopnp.bop.images import as_rgb
from bopnp.errors import RenderError
from bopnp.viz.colors import EST_COLOR, GT_COLOR, RGB, error_to_rgb, xyz_to_rgb
from bopnp.viz.draw import overlay_mask
from bopnp.viz.grid import resize_to_width, stack, tile, with_legend
from bopnp.viz.scene import Pose, _render_masks, _scaled, annotate_image
from bopnp.viz.text import draw_text

log = logging.getLogger(__name__)

DETECTION_COLOR: RGB = (255, 215, 0)
INLIER_COLOR: RGB = (0, 225, 235)
OUTLIER_COLOR: RGB = (235, 40, 40)
UNUSED_COLOR: RGB = (150, 150, 150)
PANELS = ("crop", "coordinates", "error", "PnP pixels", "pose")


def _rect(image: np.ndarray, xyxy, color: RGB, thickness: int = 1) -> np.ndarray:
    import cv2

    out = image.copy()
    x1, y1, x2, y2 = (int(round(v)) for v in xyxy)
    cv2.rectangle(out, (x1, y1), (x2, y2), tuple(int(c) for c in color), thickness)
    return out


def _nearest_gt(dataset: BopDataset, scene_id: int, im_id: int, obj_id: int, t_m2c: np.ndarray | None):
    if not dataset.has_gt(scene_id):
        return None
    mine = [g for g in dataset.scene_gt(scene_id).get(im_id, []) if g.obj_id == obj_id]
    if not mine:
        return None
    if t_m2c is None:
        return mine[0]
    return mine[int(np.argmin([np.linalg.norm(g.t_m2c - t_m2c) for g in mine]))]


def rotation_error_deg(R1: np.ndarray, R2: np.ndarray) -> float:
    """Angle of ``R1^T R2``, degrees."""
    c = (np.trace(np.asarray(R1).T @ np.asarray(R2)) - 1.0) / 2.0
    return float(np.degrees(np.arccos(np.clip(c, -1.0, 1.0))))


def detection_panels(
    dataset: BopDataset, scene_id: int, im_id: int, result, *, panel: int = 160, min_coord: float = 0.1
) -> tuple[list[np.ndarray], str]:
    """The five panels of one detection (see the module docstring) and the row's caption.

    Args:
        result: a :class:`bopnp.infer.pose.PoseResult` with ``debug``.
        panel: side of each panel, pixels.
        min_coord: pixels whose largest |coordinate| is at most this are background (as the pose stage's).
    """
    from bopnp.data.crop_geometry import crop_K

    d = result.debug
    box = d.box_second
    scale = panel / (box[2] - box[0])  # panel pixels per image pixel
    crop = resize_to_width(d.crop, panel)
    x, y, w, h = np.asarray(result.detection.bbox_xywh, np.float64)
    det_box = ((x - box[0]) * scale, (y - box[1]) * scale, (x + w - box[0]) * scale, (y + h - box[1]) * scale)
    p_crop = _rect(crop, det_box, DETECTION_COLOR)
    obj = np.abs(d.xyz).max(-1) > min_coord
    p_xyz = resize_to_width(xyz_to_rgb(d.xyz, obj), panel, nearest=True)
    p_err = resize_to_width(error_to_rgb(d.err, vmax=1.0, valid=obj), panel, nearest=True)
    pix = (d.crop.astype(np.float32) * 0.4).astype(np.uint8)
    pix[(d.weight > 0) & ~d.used] = UNUSED_COLOR
    pix[d.used & ~d.inliers] = OUTLIER_COLOR
    pix[d.used & d.inliers] = INLIER_COLOR
    p_pix = resize_to_width(pix, panel, nearest=True)
    p_pose = crop.copy()
    gt = _nearest_gt(dataset, scene_id, im_id, result.obj_id, result.t_m2c if result.valid else None)
    poses = ([(result.obj_id, result.R_m2c, result.t_m2c)] if result.valid else []) + (
        [(gt.obj_id, gt.R_m2c, gt.t_m2c)] if gt is not None else []
    )
    if poses:
        try:
            from bopnp.render import get_renderer

            r = get_renderer(panel, panel)
            r.add_model(result.obj_id, dataset.mesh(result.obj_id))
            masks = r.render_depths(crop_K(d.K, box, panel), poses) > 0
            colors = ([EST_COLOR] if result.valid else []) + ([GT_COLOR] if gt is not None else [])
            for m, c in zip(masks[::-1], colors[::-1]):  # the estimate last, on top
                p_pose = overlay_mask(p_pose, m, c, alpha=0.0, thickness=2)
        except RenderError as exc:
            log.warning("cannot render the model (%s): the pose panel shows the crop only", exc)
    if not result.valid:
        p_pose = draw_text(p_pose, "no pose", (panel / 2, panel / 2), size=16, anchor="mm", bg=(120, 0, 0))
    caption = (
        f"obj {result.obj_id} | detection {result.detection.score:.2f} | {result.n_points} px to PnP, "
        f"{100 * result.inlier_fraction:.0f}% inliers"
    )
    if result.valid:
        caption += f" | score {result.score:.2f}"
        if gt is not None:
            t_err = float(np.linalg.norm(result.t_m2c - gt.t_m2c))
            caption += f" | vs GT {rotation_error_deg(result.R_m2c, gt.R_m2c):.1f} deg, {t_err:.0f} mm"
    else:
        caption += " | no pose"
    return [p_crop, p_xyz, p_err, p_pix, p_pose], caption


def debug_sheet(
    dataset: BopDataset,
    scene_id: int,
    im_id: int,
    image: np.ndarray,
    K: np.ndarray,
    results: Sequence,
    *,
    panel: int = 160,
    tile_width: int = 640,
    title: str | None = None,
) -> np.ndarray:
    """The debug picture of one image (see the module docstring).

    Args:
        dataset: the dataset on the image's split. scene_id, im_id: the image.
        image: (H, W, 3) uint8 RGB. K: (3, 3) intrinsics.
        results: the :class:`bopnp.infer.pose.PoseResult` of its detections, with ``debug``
            (:func:`bopnp.infer.debug.estimate_image`).
        panel: side of each crop panel, pixels. tile_width: the image is shrunk to this width.
    Returns:
        (H, W, 3) uint8 RGB.
    """
    shown, Ks, s = _scaled(as_rgb(image), np.asarray(K, np.float64), tile_width)
    size = (shown.shape[1], shown.shape[0])
    gt = (
        [Pose(g.obj_id, g.R_m2c, g.t_m2c) for g in dataset.scene_gt(scene_id).get(im_id, [])]
        if dataset.has_gt(scene_id)
        else []
    )
    ests = [Pose(r.obj_id, r.R_m2c, r.t_m2c, r.score) for r in results if r.valid]
    est_masks: list[np.ndarray | None] = [None] * len(ests)
    try:
        est_masks = _render_masks(dataset, Ks, size, ests, together=False)
    except RenderError as exc:
        log.warning("cannot render silhouettes (%s): boxes only", exc)
    overview = annotate_image(shown, Ks, dataset.models_info, gt, None, ests, est_masks, gt_color=GT_COLOR)
    for r in results:
        x, y, w, h = np.asarray(r.detection.bbox_xywh, np.float64) * s
        overview = _rect(overview, (x, y, x + w, y + h), DETECTION_COLOR)
        overview = draw_text(
            overview, f"{r.obj_id}: {r.detection.score:.2f}", (x, y + h), size=12, color=(0, 0, 0),
            bg=DETECTION_COLOR, anchor="lt",
        )  # fmt: skip
    parts = [tile([overview], [f"scene {scene_id}, image {im_id}: {len(results)} detections, {len(ests)} poses"])]
    for r in results:
        panels, caption = detection_panels(dataset, scene_id, im_id, r, panel=panel)
        row = tile(panels, [caption] + [""] * 4, cols=len(panels), label_size=14)
        parts.append(row)
    if not results:
        parts.append(tile([np.full((40, 400, 3), 250, np.uint8)], ["no detection selected for this image"]))
    entries = [
        (DETECTION_COLOR, "detection"),
        (EST_COLOR, "estimate"),
        (GT_COLOR, "ground truth"),
        (INLIER_COLOR, "PnP inlier"),
        (OUTLIER_COLOR, "rejected by RANSAC"),
        (UNUSED_COLOR, "confident, not sampled"),
    ]
    notes = [
        "per detection, left to right: " + ", ".join(PANELS) + " (the second-pass crop); coordinates: x -> red, "
        "y -> green, z -> blue; error: turbo map from 0 (blue) to 1 (red)"
    ]
    return with_legend(stack(parts), title or f"{dataset.name} / {dataset.split}: pose stage debug", entries, notes)


__all__ = ["debug_sheet", "detection_panels", "rotation_error_deg"]

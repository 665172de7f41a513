"""Overview pictures of a split: images with their ground-truth instances and, optionally, the pose
estimates of a BOP19 results CSV.

Per image: each GT instance's visible mask (the split's ``mask_visib/`` png, else rendered from the GT
poses) as a translucent fill with a contour, its 3D bounding box (``models_info.json``) and its object
id; each estimate's silhouette (the model rendered alone in the estimated pose) as a contour, its 3D box
and ``obj id: score``. Without estimates the GT takes one colour per object; with estimates the GT is
green and the estimates magenta. A legend band on top says what is what.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from bopnp.bop.dataset import BopDataset
from bopnp.bop.images import as_rgb
from bopnp.bop.records import ModelInfo, ResultRow
from bopnp.errors import ConfigError, DatasetError, RenderError, ResultsFormatError
from bopnp.viz.colors import EST_COLOR, GT_COLOR, RGB, object_color, text_color_on
from bopnp.viz.draw import draw_pose, overlay_mask, projected_extent
from bopnp.viz.grid import tile, with_legend
from bopnp.viz.text import draw_text, text_box_size

if TYPE_CHECKING:
    from bopnp.viz.matches import EstimateMatch

log = logging.getLogger(__name__)

#: most estimates drawn per image (the best scores); the caption says when some were left out
MAX_ESTIMATES_PER_IMAGE = 40


@dataclass(frozen=True, eq=False)
class Pose:
    """An object pose to draw. R_m2c: (3, 3); t_m2c: (3,) mm; score: None for ground truth; color: of this estimate
    (None: the picture's estimate colour); note: appended to its label."""

    obj_id: int
    R_m2c: np.ndarray
    t_m2c: np.ndarray
    score: float | None = None
    color: RGB | None = None
    note: str = ""


# ----------------------------------------------------------------------------------- one image


def _label_rect(text: str, xy, anchor: str, size: int, W: int, H: int) -> tuple[int, int, int, int]:
    w, h = text_box_size(text, size)
    x = xy[0] - {"l": 0, "m": w / 2, "r": w}[anchor[0]]
    y = xy[1] - {"t": 0, "m": h / 2, "b": h}[anchor[1]]
    x = int(round(min(max(x, 0), max(W - w, 0))))
    y = int(round(min(max(y, 0), max(H - h, 0))))
    return x, y, w, h


def _place(rect, placed: list, H: int) -> tuple[int, int, int, int]:
    """Move a label rectangle down (then up) until it overlaps none already placed."""
    x, y, w, h = rect

    def free(yy):
        return all(x + w <= px or px + pw <= x or yy + h <= py or py + ph <= yy for px, py, pw, ph in placed)

    for step in range(0, 8):
        for yy in (y + step * (h + 1), y - step * (h + 1)):
            if 0 <= yy <= max(H - h, 0) and free(yy):
                return x, yy, w, h
    return rect


def _box_top_left(K, p: Pose, info: ModelInfo | None) -> tuple[float, float] | None:
    box = (None, None) if info is None else (info.min_mm, info.size_mm)
    extent = projected_extent(K, p.R_m2c, p.t_m2c, *box)
    return None if extent is None else extent[:2]


def annotate_image(
    image: np.ndarray,
    K: np.ndarray,
    models_info: dict[int, ModelInfo],
    gt: Sequence[Pose] = (),
    gt_masks: Sequence[np.ndarray | None] | None = None,
    estimates: Sequence[Pose] = (),
    est_masks: Sequence[np.ndarray | None] | None = None,
    *,
    gt_color: RGB | None = None,
    est_color: RGB = EST_COLOR,
    label_size: int = 15,
    line: int = 2,
) -> np.ndarray:
    """Draw GT instances and estimates on one image.

    Args:
        image: (H, W, 3) uint8 RGB (or (H, W) gray).
        K: (3, 3) intrinsics of ``image``.
        models_info: {obj_id: ModelInfo} for the 3D boxes (objects missing there get no box).
        gt: ground-truth poses; ``gt_masks``: their (H, W) bool visible masks (None: no mask).
        estimates: estimated poses (with ``score``); ``est_masks``: their (H, W) bool silhouettes.
        gt_color: one colour for all GT, or None for one colour per object (:func:`object_color`).
        est_color: colour of the estimates (of those whose :attr:`Pose.color` is None).
        label_size: font size of the labels, pixels.
        line: line width, pixels.
    Returns:
        (H, W, 3) uint8 RGB.
    """
    out = as_rgb(image)
    H, W = out.shape[:2]
    K = np.asarray(K, np.float64)
    gt_masks = list(gt_masks) if gt_masks is not None else [None] * len(gt)
    est_masks = list(est_masks) if est_masks is not None else [None] * len(estimates)
    if len(gt_masks) != len(gt) or len(est_masks) != len(estimates):
        raise ConfigError(
            f"annotate_image: {len(gt_masks)} masks for {len(gt)} GT, {len(est_masks)} for {len(estimates)} estimates"
        )
    gt_colors = [gt_color or object_color(p.obj_id) for p in gt]
    labels: list[tuple[str, tuple[float, float], str, RGB]] = []
    # GT: fills and contours, then boxes
    for _p, m, c in zip(gt, gt_masks, gt_colors):
        if m is not None:
            out = overlay_mask(out, m, c, alpha=0.3, thickness=line, halo=(0, 0, 0))
    for p, m, c in zip(gt, gt_masks, gt_colors):
        info = models_info.get(p.obj_id)
        if info is not None:
            out = draw_pose(
                out, K, p.R_m2c, p.t_m2c, min_mm=info.min_mm, size_mm=info.size_mm, color=c, thickness=max(1, line - 1)
            )
        if m is not None and m.any():
            ys, xs = np.nonzero(m)
            xy = (float(xs.min()), float(ys.min()) - 1)
        else:
            xy = _box_top_left(K, p, info)
        if xy is not None:
            labels.append((f"obj {p.obj_id}", xy, "lb", c))
    # estimates: silhouette contours, boxes
    for p, m in zip(estimates, est_masks):
        if m is not None:
            out = overlay_mask(out, m, p.color or est_color, alpha=0.0, thickness=line, halo=(0, 0, 0))
    for p, m in zip(estimates, est_masks):
        info = models_info.get(p.obj_id)
        if info is not None:
            out = draw_pose(
                out,
                K,
                p.R_m2c,
                p.t_m2c,
                min_mm=info.min_mm,
                size_mm=info.size_mm,
                color=p.color or est_color,
                thickness=max(1, line - 1),
            )
        if m is not None and m.any():
            ys, xs = np.nonzero(m)
            xy = (float(xs.max()), float(ys.max()) + 1)
        else:
            xy = _box_top_left(K, p, info)
        if xy is not None:
            score = "" if p.score is None else f": {p.score:.2f}"
            labels.append((f"obj {p.obj_id}{score}{p.note}", xy, "rt", p.color or est_color))
    placed: list[tuple[int, int, int, int]] = []
    for text, xy, anchor, c in labels:
        first = _label_rect(text, xy, anchor, label_size, W, H)
        x, y, w, h = _place(first, placed, H)
        placed.append((x, y, w, h))
        if (x, y) != first[:2]:  # moved away from its object: a leader line points back to it
            px, py = min(max(xy[0], 0), W - 1), min(max(xy[1], 0), H - 1)
            qx, qy = min(max(px, x), x + w - 1), min(max(py, y), y + h - 1)
            out = _line(out, (px, py), (qx, qy), c)
    for (text, _, _, c), (x, y, _, _) in zip(labels, placed):  # all text over all lines
        out = draw_text(out, text, (x, y), size=label_size, color=text_color_on(c), bg=c, bg_alpha=0.85)
    return out


def _line(image: np.ndarray, p, q, color: RGB) -> np.ndarray:
    import cv2

    out = image.copy()
    s = 16
    cv2.line(
        out,
        (int(p[0] * s), int(p[1] * s)),
        (int(q[0] * s), int(q[1] * s)),
        tuple(int(v) for v in color),
        1,
        cv2.LINE_AA,
        4,
    )
    return out


# ----------------------------------------------------------------------------------- choosing images


def _present_images(ds: BopDataset, scene_id: int) -> list[int]:
    """Image ids of a scene that have both a scene_camera entry and an image file."""
    try:
        files = ds.scene_files(scene_id, ds.modality(scene_id))
    except DatasetError:
        return []
    return [i for i in ds.image_ids(scene_id) if f"{i:06d}" in files]


def pick_images(
    dataset: BopDataset,
    n: int,
    results: Sequence[ResultRow] | None = None,
    scene_ids: Sequence[int] | None = None,
) -> list[tuple[int, int]]:
    """``n`` images (scene_id, im_id) spread evenly over the split (deterministic).

    Only images present on disk count; with ``results``, only images that have estimates.

    Raises:
        DatasetError: the split (or the chosen scenes) holds no image; ResultsFormatError: no estimate
        refers to an image present in the split.
    """
    if n < 1:
        raise ConfigError(f"number of images must be >= 1, got {n}")
    scenes = dataset.scene_ids() if scene_ids is None else [int(s) for s in scene_ids]
    for s in scenes:
        dataset.scene_path(s)  # a typed error for an unknown scene
    present = [(s, i) for s in scenes for i in _present_images(dataset, s)]
    if results is not None:
        wanted = {(e.scene_id, e.im_id) for e in results if scene_ids is None or e.scene_id in scenes}
        have = set(present)
        candidates = sorted(wanted & have)
        if not candidates:
            raise ResultsFormatError(
                f"none of the {len(wanted)} images the estimates refer to is in {dataset.split_path}"
                + (f" (scenes {scenes})" if scene_ids is not None else "")
                + f" with its image file ({len(present)} images present): is the CSV for another dataset or split?"
            )
    else:
        candidates = present
    if not candidates:
        raise DatasetError(
            f"{dataset.split_path}: no images found in scenes {scenes} (rgb/ or gray/ with scene_camera.json "
            "entries): is the split unpacked?"
        )
    if n >= len(candidates):
        return list(candidates)
    idx = np.unique(np.rint(np.linspace(0, len(candidates) - 1, n)).astype(int))
    return [candidates[k] for k in idx]


# ----------------------------------------------------------------------------------- rendering


def _scaled(image: np.ndarray, K: np.ndarray, width: int) -> tuple[np.ndarray, np.ndarray, float]:
    """The image shrunk to at most ``width`` pixels wide, and its intrinsics (pixel centres kept)."""
    import cv2

    h, w = image.shape[:2]
    if w <= width:
        return image, K, 1.0
    s = width / w
    size = (int(width), max(1, int(round(h * s))))
    image = cv2.resize(image, size, interpolation=cv2.INTER_AREA)
    S = np.diag([s, s, 1.0])
    Ks = S @ K
    Ks[0, 2] += 0.5 * (s - 1.0)
    Ks[1, 2] += 0.5 * (s - 1.0)
    return image, Ks, s


def _shrink_mask(mask: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    import cv2

    if mask.shape[::-1] == size:
        return mask
    return cv2.resize(mask.astype(np.float32), size, interpolation=cv2.INTER_AREA) >= 0.5


def _renderer(ds: BopDataset, width: int, height: int, obj_ids):
    from bopnp.render import get_renderer

    r = get_renderer(width, height)
    for o in sorted(set(obj_ids)):
        r.add_model(o, ds.mesh(o))
    return r


def _render_masks(
    ds: BopDataset, K: np.ndarray, size: tuple[int, int], poses: Sequence[Pose], together: bool
) -> list[np.ndarray]:
    """Masks of ``poses`` rendered at ``size`` (W, H): visible masks of the scene when ``together``,
    else each silhouette alone."""
    if not poses:
        return []
    r = _renderer(ds, size[0], size[1], [p.obj_id for p in poses])
    instances = [(p.obj_id, p.R_m2c, p.t_m2c) for p in poses]
    if together:
        return list(r.render(K, instances, full_masks=False).mask_visib)
    return list(r.render_depths(K, instances) > 0)


@dataclass
class _Notes:
    render_failed: str | None = None


def _image_tile(
    ds: BopDataset,
    scene_id: int,
    im_id: int,
    estimates: Sequence[Pose] | None,
    width: int,
    notes: _Notes,
    label_size: int,
    side_by_side: bool = False,
) -> list[tuple[np.ndarray, str]]:
    """The tile of one image with GT and estimates drawn over each other, or (``side_by_side``) a GT tile and an
    estimates tile."""
    image = as_rgb(ds.image(scene_id, im_id))
    H0, W0 = image.shape[:2]
    image, K, _ = _scaled(image, ds.K(scene_id, im_id), width)
    size = (image.shape[1], image.shape[0])
    infos = ds.models_info
    gt: list[Pose] = []
    gt_source = "no GT"
    if ds.has_gt(scene_id):
        gt = [Pose(g.obj_id, g.R_m2c, g.t_m2c) for g in ds.scene_gt(scene_id).get(im_id, [])]
    unknown = sorted({p.obj_id for p in gt} - set(infos))
    if unknown:
        raise DatasetError(
            f"{ds.scene_path(scene_id) / 'scene_gt.json'}: image {im_id} has objects {unknown} that "
            f"{ds.models_info_path} does not list"
        )
    gt_masks: list[np.ndarray | None] = [None] * len(gt)
    if gt:
        paths = [ds.mask_path(scene_id, im_id, k) for k in range(len(gt))]
        if all(p.is_file() for p in paths):
            gt_masks = [_shrink_mask(ds.mask(scene_id, im_id, k), size) for k in range(len(gt))]
            gt_source = "mask_visib"
        elif notes.render_failed is None:
            try:
                gt_masks = _render_masks(ds, K, size, gt, together=True)
                gt_source = "masks rendered"
            except RenderError as exc:
                notes.render_failed = str(exc)
                log.warning("cannot render masks (%s): drawing boxes only", exc)
    ests = list(estimates or [])
    dropped = 0
    if len(ests) > MAX_ESTIMATES_PER_IMAGE:
        ests = sorted(ests, key=lambda p: -float(p.score or 0.0))[:MAX_ESTIMATES_PER_IMAGE]
        dropped = len(estimates) - len(ests)
    est_masks: list[np.ndarray | None] = [None] * len(ests)
    if ests and notes.render_failed is None:
        try:
            est_masks = _render_masks(ds, K, size, ests, together=False)
        except RenderError as exc:
            notes.render_failed = str(exc)
            log.warning("cannot render silhouettes (%s): drawing boxes only", exc)
    caption = f"scene {scene_id}, image {im_id}: {len(gt)} GT" + (f" ({gt_source})" if gt else "")
    shrunk = f"  [{W0}x{H0} shown at {size[0]}x{size[1]}]" if size[0] != W0 else ""
    if side_by_side:
        gt_img = annotate_image(image, K, infos, gt, gt_masks, label_size=label_size)
        est_img = annotate_image(image, K, infos, estimates=ests, est_masks=est_masks, label_size=label_size)
        est_caption = f"estimates: {len(estimates or [])}" + (
            f" ({dropped} lowest scores not drawn)" if dropped else ""
        )
        return [(gt_img, caption + shrunk), (est_img, est_caption)]
    tile_img = annotate_image(
        image, K, infos, gt, gt_masks, ests, est_masks,
        gt_color=GT_COLOR if estimates is not None else None, label_size=label_size,
    )  # fmt: skip
    if estimates is not None:
        caption += f", {len(estimates)} estimate{'s' if len(estimates) != 1 else ''}"
        if dropped:
            caption += f" ({dropped} lowest scores not drawn)"
    return [(tile_img, caption + shrunk)]


def scene_overview(
    dataset: BopDataset,
    split: str | None = None,
    images: int | Sequence[tuple[int, int]] = 4,
    results: Sequence[ResultRow] | None = None,
    *,
    title: str | None = None,
    tile_width: int = 640,
    cols: int | None = None,
    label_size: int = 15,
    matches: Mapping[int, EstimateMatch] | None = None,
) -> np.ndarray:
    """A picture of some images of a split with their GT instances and, optionally, estimates.

    Args:
        dataset: the dataset (its split is used when ``split`` is None).
        split: split folder, e.g. ``"test"``.
        images: how many images to pick (:func:`pick_images`: spread over the split; with ``results``,
            among the images that have estimates), or a list of ``(scene_id, im_id)``.
        results: estimates (e.g. from :func:`bopnp.bop.io.load_results_csv`); those of each shown image
            are drawn. None: GT only.
        title: first line of the legend (default: ``NAME / SPLIT``).
        tile_width: images wider than this are shrunk to it (pixels).
        cols: tiles per row (default: about square, at most 4).
        label_size: font size of the labels, pixels.
        matches: how the evaluator matched the estimates, by their index in ``results``
            (:func:`bopnp.viz.matches.estimate_matches`): each image is then drawn twice, the GT and beside it the
            estimates coloured by :func:`bopnp.viz.matches.match_color`, labelled with their matched thresholds.
    Returns:
        (H, W, 3) uint8 RGB picture.
    Raises:
        DatasetError: missing split, scene, image or model; ResultsFormatError: estimates of objects the
        dataset does not have, or of no image of the split.
    """
    ds = dataset
    if split is not None and split != dataset.split:
        ds = BopDataset(dataset.root, split, models=dataset.models_dir)
    ds.split_path  # noqa: B018  (a typed error when no split is chosen)
    if results is not None:
        unknown = sorted({int(e.obj_id) for e in results} - set(ds.obj_ids))
        if unknown:
            raise ResultsFormatError(
                f"the estimates name objects {unknown} that {ds.models_info_path} does not list "
                f"(objects: {ds.obj_ids}): is the CSV for another dataset?"
            )
    chosen = (
        pick_images(ds, images, results)
        if isinstance(images, (int, np.integer))
        else [(int(s), int(i)) for s, i in images]
    )
    if not chosen:
        raise ConfigError("scene_overview: no images given")
    side_by_side = results is not None and matches is not None
    per_image: dict[tuple[int, int], list[Pose]] = defaultdict(list)
    for k, e in enumerate(results or ()):
        color, note = None, ""
        if side_by_side:
            from bopnp.viz.matches import match_color

            m = matches.get(k)
            color, note = match_color(m), (f" ({m.matched}/{m.conditions})" if m is not None else "")
        pose = Pose(int(e.obj_id), e.R_m2c, e.t_m2c, float(e.score), color, note)
        per_image[(int(e.scene_id), int(e.im_id))].append(pose)
    notes = _Notes()
    tiles, captions = [], []
    for scene_id, im_id in chosen:
        ests = per_image.get((scene_id, im_id), []) if results is not None else None
        for t, c in _image_tile(ds, scene_id, im_id, ests, tile_width, notes, label_size, side_by_side):
            tiles.append(t)
            captions.append(c)
    if side_by_side:
        cols = 2 * (cols or (2 if len(chosen) > 1 else 1))
    picture = tile(tiles, captions, cols=cols)
    lines = []
    if side_by_side:
        from bopnp.viz.matches import MATCH_LEGEND

        entries = list(MATCH_LEGEND)
        lines.append(
            "left: ground truth (fill + contour = visible mask, one colour per object); right: estimates (contour = "
            "silhouette of the model alone, lines = 3D bounding box), coloured by the BOP19 evaluator's matching; "
            "label: obj id: score (thresholds matched of the 10 MSSD + 10 MSPD)"
        )
    elif results is None:
        objs = sorted({p.obj_id for s, i in chosen if ds.has_gt(s) for p in ds.scene_gt(s).get(i, [])})
        entries = [(object_color(o), f"obj {o}") for o in objs]
        lines.append("ground truth: fill + contour = visible mask, lines = 3D bounding box (models_info.json)")
    else:
        entries = [(GT_COLOR, "ground truth"), (EST_COLOR, "estimate (label: obj id: score)")]
        lines.append(
            "ground truth: fill + contour = visible mask;  estimate: contour = silhouette of the model alone;  "
            "lines = 3D bounding box"
        )
    if notes.render_failed:
        lines.append(
            f"the renderer could not start ({notes.render_failed}): masks missing where the split has no mask_visib/"
        )
    return with_legend(picture, title or f"{ds.name} / {ds.split}", entries, lines)


__all__ = ["MAX_ESTIMATES_PER_IMAGE", "Pose", "annotate_image", "pick_images", "scene_overview"]

"""How good a set of detections is on a split with ground truth: COCO box and mask mAP and the recall of the visible
instances at IoU 0.5 (:func:`bopnp.metrics.detection.detection_scores`), whatever the detections' source."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence

import numpy as np

from bopnp.bop.dataset import BopDataset
from bopnp.bop.detections import Detection
from bopnp.bop.rle import Rle
from bopnp.data.detection_set import detection_records
from bopnp.infer.detect import ImageKey, detection_mask
from bopnp.metrics.detection import class_confusion, detection_scores


def score_detections(
    dataset: BopDataset,
    detections: Sequence[Detection],
    images: Sequence[ImageKey],
    obj_ids: Sequence[int],
    *,
    min_visib_fract: float = 0.1,
    min_score: float = 0.5,
) -> dict:
    """Scores of ``detections`` on ``images`` of ``dataset``'s split.

    Args:
        images: the images the detector looked at, ``(scene_id, im_id)``; an image without detections counts.
        obj_ids: the objects scored: ground-truth instances of these objects at least ``min_visib_fract`` visible
            (the rest are not targets), and detections of these objects.
        min_score: detections scoring below this do not count for the recall.
    Returns:
        see :func:`bopnp.metrics.detection.detection_scores`; and ``confusion``, the
        :func:`bopnp.metrics.detection.class_confusion` table of the objects in sorted order at IoU 0.5.
    Raises:
        DatasetError: the split has no ground truth or visibility records.
    """
    wanted = {int(o) for o in obj_ids}
    scenes = sorted({s for s, _ in images})
    records = {r.key: r for r in detection_records(dataset, sorted(wanted), min_visib_fract, scene_ids=scenes)}
    by_image: dict[ImageKey, list[Detection]] = defaultdict(list)
    for d in detections:
        if d.obj_id in wanted:
            by_image[(d.scene_id, d.im_id)].append(d)
    gts, dets = [], []
    for key in images:
        rec = records.get(tuple(key))
        if rec is None:
            gts.append({"boxes": np.zeros((0, 4)), "labels": np.zeros(0, int), "masks": []})
        else:
            masks = [Rle.encode(dataset.mask(rec.scene_id, rec.im_id, g)).to_json() for g in rec.gt_ids]
            gts.append({"boxes": rec.boxes_xyxy, "labels": np.asarray(rec.obj_ids), "masks": masks})
        found = by_image.get(tuple(key), [])
        boxes = np.array([d.bbox_xywh for d in found], np.float64).reshape(-1, 4)
        boxes[:, 2:] += boxes[:, :2]
        dets.append(
            {
                "boxes": boxes,
                "labels": np.array([d.obj_id for d in found], int),
                "scores": np.array([d.score for d in found], np.float64),
                "masks": [_mask_json(d, dataset) for d in found],
            }
        )
    scores = detection_scores(gts, dets, min_score=min_score)
    scores["confusion"] = class_confusion(gts, dets, sorted(wanted), iou=0.5, min_score=min_score)
    return scores


def _mask_json(det: Detection, dataset: BopDataset) -> dict:
    """The detection's RLE, or its box as a mask when it has none (as the pose stage uses it)."""
    if det.rle is not None and det.rle.area > 0:
        return det.rle.to_json()
    H, W = (det.rle.height, det.rle.width) if det.rle is not None else (dataset.camera.height, dataset.camera.width)
    return Rle.encode(detection_mask(det, (H, W))).to_json()


__all__ = ["score_detections"]

"""Detection scores: COCO's box and mask mAP (computed by ``pycocotools``' ``COCOeval``, not by hand) and the recall
of the annotated (visible) instances at IoU 0.5.

Images are given as records, one per image, with numpy arrays:

* ground truth: ``boxes`` (N, 4) x1y1x2y2 pixels, ``labels`` (N,) int, ``masks`` N COCO RLE dicts
  (``{"size": [H, W], "counts": ...}``);
* detections: the same plus ``scores`` (D,).

Example:
    >>> import numpy as np
    >>> gt = [{"boxes": np.array([[0.0, 0, 10, 10]]), "labels": np.array([1])}]
    >>> det = [{"boxes": np.array([[1.0, 0, 10, 10], [20, 20, 30, 30]]), "labels": np.array([1, 1]),
    ...         "scores": np.array([0.9, 0.8])}]
    >>> recall_at_iou(gt, det)
    1.0
"""

from __future__ import annotations

import contextlib
import io
from collections.abc import Sequence
from typing import Any

import numpy as np


def encode_masks(masks: np.ndarray) -> list[dict[str, Any]]:
    """COCO RLEs of binary masks (``pycocotools``' encoder).

    Args:
        masks: (N, H, W) bool or uint8.
    Returns:
        N dicts ``{"size": [H, W], "counts": str}``.
    """
    from pycocotools import mask as mask_utils

    masks = np.asarray(masks)
    if len(masks) == 0:
        return []
    rles = mask_utils.encode(np.asfortranarray(masks.transpose(1, 2, 0).astype(np.uint8)))
    return [{"size": [int(s) for s in r["size"]], "counts": r["counts"].decode("ascii")} for r in rles]


def box_iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """IoU of every pair of boxes.

    Args:
        a: (N, 4), b: (M, 4) x1y1x2y2.
    Returns:
        (N, M) float64.
    """
    a = np.asarray(a, np.float64).reshape(-1, 4)
    b = np.asarray(b, np.float64).reshape(-1, 4)
    lt = np.maximum(a[:, None, :2], b[None, :, :2])
    rb = np.minimum(a[:, None, 2:], b[None, :, 2:])
    inter = np.clip(rb - lt, 0, None).prod(-1)
    area_a = np.clip(a[:, 2:] - a[:, :2], 0, None).prod(-1)
    area_b = np.clip(b[:, 2:] - b[:, :2], 0, None).prod(-1)
    union = area_a[:, None] + area_b[None, :] - inter
    return np.where(union > 0, inter / np.maximum(union, 1e-12), 0.0)


def recall_at_iou(
    gts: Sequence[dict[str, Any]], dets: Sequence[dict[str, Any]], iou: float = 0.5, min_score: float = 0.5
) -> float:
    """Share of the ground-truth instances found: matched one to one, greedily by falling score, by a detection of
    their class scoring at least ``min_score`` whose box overlaps theirs by at least ``iou``. NaN without
    ground truth."""
    found = total = 0
    for gt, det in zip(gts, dets, strict=True):
        g_boxes, g_labels = np.asarray(gt["boxes"]).reshape(-1, 4), np.asarray(gt["labels"]).reshape(-1)
        total += len(g_labels)
        keep = np.asarray(det["scores"]).reshape(-1) >= min_score
        d_boxes, d_labels = np.asarray(det["boxes"]).reshape(-1, 4)[keep], np.asarray(det["labels"]).reshape(-1)[keep]
        order = np.argsort(-np.asarray(det["scores"]).reshape(-1)[keep], kind="stable")
        ious = box_iou(d_boxes, g_boxes)
        taken = np.zeros(len(g_labels), bool)
        for d in order:
            cand = np.flatnonzero((g_labels == d_labels[d]) & ~taken & (ious[d] >= iou))
            if len(cand):
                taken[cand[np.argmax(ious[d, cand])]] = True
        found += int(taken.sum())
    return found / total if total else float("nan")


def _xywh(boxes: np.ndarray) -> list[list[float]]:
    b = np.asarray(boxes, np.float64).reshape(-1, 4)
    return np.concatenate([b[:, :2], b[:, 2:] - b[:, :2]], axis=1).tolist()


def coco_map(gts: Sequence[dict[str, Any]], dets: Sequence[dict[str, Any]], iou_type: str = "bbox") -> dict[str, float]:
    """COCO's mean average precision with ``pycocotools``' ``COCOeval``.

    Args:
        gts, dets: per image, see the module docstring (``masks`` needed for ``iou_type="segm"``).
        iou_type: ``"bbox"`` or ``"segm"``.
    Returns:
        ``{"ap": AP@[.5:.95], "ap50": AP@.5}``; NaN without ground truth, 0 without detections.
    """
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    if iou_type not in ("bbox", "segm"):
        raise ValueError(f"iou_type must be bbox or segm, got {iou_type!r}")
    images, annotations, results, labels = [], [], [], set()
    for image_id, (gt, det) in enumerate(zip(gts, dets, strict=True), start=1):
        sizes = [m["size"] for m in [*gt.get("masks", []), *det.get("masks", [])]]
        H, W = sizes[0] if sizes else (1, 1)
        images.append({"id": image_id, "height": int(H), "width": int(W)})
        g_labels = np.asarray(gt["labels"]).reshape(-1)
        for k, (box, label) in enumerate(zip(_xywh(gt["boxes"]), g_labels.tolist())):
            ann = {"id": len(annotations) + 1, "image_id": image_id, "category_id": int(label), "iscrowd": 0}
            ann["bbox"] = box
            if iou_type == "segm":
                ann["segmentation"] = gt["masks"][k]
            ann["area"] = _area(gt, k, box, iou_type)
            annotations.append(ann)
            labels.add(int(label))
        d_labels = np.asarray(det["labels"]).reshape(-1)
        scores = np.asarray(det["scores"]).reshape(-1)
        for k, (box, label) in enumerate(zip(_xywh(det["boxes"]), d_labels.tolist())):
            res = {"image_id": image_id, "category_id": int(label), "score": float(scores[k])}
            if iou_type == "segm":
                res["segmentation"] = det["masks"][k]
            else:
                res["bbox"] = box
            results.append(res)
            labels.add(int(label))
    if not annotations:
        return {"ap": float("nan"), "ap50": float("nan")}
    if not results:
        return {"ap": 0.0, "ap50": 0.0}
    with contextlib.redirect_stdout(io.StringIO()):  # pycocotools prints its progress and tables
        coco_gt = COCO()
        coco_gt.dataset = {
            "images": images,
            "annotations": annotations,
            "categories": [{"id": c} for c in sorted(labels)],
        }
        coco_gt.createIndex()
        coco_dt = coco_gt.loadRes(results)
        ev = COCOeval(coco_gt, coco_dt, iou_type)
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
    # -1 marks "no ground truth in this area range"; the overall entries always have some here
    ap, ap50 = (max(float(ev.stats[i]), 0.0) for i in (0, 1))
    return {"ap": ap, "ap50": ap50}


def _area(gt: dict[str, Any], k: int, box_xywh: list[float], iou_type: str) -> float:
    if iou_type == "segm":
        from pycocotools import mask as mask_utils

        return float(mask_utils.area(gt["masks"][k]))
    return float(box_xywh[2] * box_xywh[3])


def detection_scores(
    gts: Sequence[dict[str, Any]], dets: Sequence[dict[str, Any]], *, min_score: float = 0.5
) -> dict[str, float]:
    """Box and mask mAP (COCO) and recall at IoU 0.5 of detections scoring at least ``min_score``.

    Returns:
        ``ap_bbox``, ``ap50_bbox``, ``ap_segm``, ``ap50_segm``, ``recall50``, ``instances`` (ground truth),
        ``detections`` (mean per image at or above ``min_score``).
    """
    box = coco_map(gts, dets, "bbox")
    with_masks = all("masks" in g for g in gts) and all("masks" in d for d in dets)
    segm = coco_map(gts, dets, "segm") if with_masks else {"ap": float("nan"), "ap50": float("nan")}
    n_det = sum(int((np.asarray(d["scores"]) >= min_score).sum()) for d in dets)
    return {
        "ap_bbox": box["ap"],
        "ap50_bbox": box["ap50"],
        "ap_segm": segm["ap"],
        "ap50_segm": segm["ap50"],
        "recall50": recall_at_iou(gts, dets, 0.5, min_score),
        "instances": float(sum(len(np.asarray(g["labels"]).reshape(-1)) for g in gts)),
        "detections": n_det / max(len(dets), 1),
    }


def class_confusion(
    gts: Sequence[dict[str, Any]],
    dets: Sequence[dict[str, Any]],
    classes: Sequence[int],
    *,
    iou: float = 0.5,
    min_score: float = 0.5,
) -> np.ndarray:
    """Which class the detections give the ground-truth instances, and what they find where there is none.

    Per image, the detections scoring at least ``min_score`` are taken by falling score; each claims the
    not yet claimed instance of *any* class whose box overlaps its own most, if by at least ``iou``.

    Args:
        gts, dets: per image, as :func:`detection_scores` (``boxes`` (N, 4) x1y1x2y2 px, ``labels``, ``scores``).
        classes: the C object ids, in the order of the rows and columns.
    Returns:
        (C + 1, C + 1) int64 counts: row = the instance's class (row C: no instance, a detection on background or a
        second detection of a claimed instance), column = the class detected (column C: the instance was
        missed). The diagonal holds the true positives; row C the false positives by class.
    """
    index = {int(c): k for k, c in enumerate(classes)}
    C = len(index)
    table = np.zeros((C + 1, C + 1), np.int64)
    for gt, det in zip(gts, dets, strict=True):
        g_boxes, g_labels = np.asarray(gt["boxes"]).reshape(-1, 4), np.asarray(gt["labels"]).reshape(-1)
        scores = np.asarray(det["scores"]).reshape(-1)
        keep = scores >= min_score
        d_boxes, d_labels = np.asarray(det["boxes"]).reshape(-1, 4)[keep], np.asarray(det["labels"]).reshape(-1)[keep]
        ious = box_iou(d_boxes, g_boxes)
        taken = np.zeros(len(g_labels), bool)
        for d in np.argsort(-scores[keep], kind="stable"):
            cand = np.flatnonzero(~taken & (ious[d] >= iou))
            col = index.get(int(d_labels[d]))
            if col is None:
                continue
            if len(cand):
                g = cand[np.argmax(ious[d, cand])]
                taken[g] = True
                row = index.get(int(g_labels[g]), C)
                table[row, col] += 1
            else:
                table[C, col] += 1
        for g in np.flatnonzero(~taken):
            if int(g_labels[g]) in index:
                table[index[int(g_labels[g])], C] += 1
    return table


def format_confusion(table: np.ndarray, classes: Sequence[int]) -> str:
    """The table of :func:`class_confusion` as text: rows GT object (``bg``: none), columns detected object
    (``miss``: not detected)."""
    names = [f"obj {int(c)}" for c in classes]
    rows, cols = [*names, "bg"], [*names, "miss"]
    width = max(6, *(len(n) for n in cols)) + 1
    lines = ["GT \\ detected".ljust(10) + "".join(c.rjust(width) for c in cols)]
    for name, counts in zip(rows, table):
        lines.append(name.ljust(10) + "".join(str(int(v)).rjust(width) for v in counts))
    return "\n".join(lines)


__all__ = [
    "box_iou",
    "class_confusion",
    "coco_map",
    "detection_scores",
    "encode_masks",
    "format_confusion",
    "recall_at_iou",
]

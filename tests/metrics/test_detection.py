"""Detection scores: COCO mAP through pycocotools on cases whose answer is known, and the recall at IoU 0.5."""

import math

import numpy as np
import pytest

from bopnp.bop.rle import Rle
from bopnp.metrics.detection import box_iou, coco_map, detection_scores, recall_at_iou


def _rle(box, H=40, W=60):
    m = np.zeros((H, W), bool)
    x1, y1, x2, y2 = (int(v) for v in box)
    m[y1:y2, x1:x2] = True
    return Rle.encode(m).to_json()


def _gt(boxes, labels):
    return {"boxes": np.array(boxes, float), "labels": np.array(labels), "masks": [_rle(b) for b in boxes]}


def _det(boxes, labels, scores):
    return {**_gt(boxes, labels), "scores": np.array(scores, float)}


def test_box_iou_of_known_boxes():
    iou = box_iou(np.array([[0, 0, 10, 10]]), np.array([[0, 0, 10, 10], [5, 0, 15, 10], [20, 20, 30, 30]]))
    np.testing.assert_allclose(iou, [[1.0, 50 / 150, 0.0]], rtol=0, atol=1e-12)


def test_perfect_detections_score_one_and_none_score_zero():
    gts = [_gt([[2, 3, 20, 30], [30, 5, 55, 25]], [1, 2]), _gt([[10, 10, 40, 35]], [1])]
    perfect = [_det(g["boxes"], g["labels"], [0.9] * len(g["labels"])) for g in gts]
    s = detection_scores(gts, perfect)
    for k in ("ap_bbox", "ap50_bbox", "ap_segm", "ap50_segm", "recall50"):
        assert s[k] == pytest.approx(1.0, abs=1e-9), k
    assert s["instances"] == 3 and s["detections"] == 1.5
    empty = [_det(np.zeros((0, 4)), [], []) for _ in gts]
    s0 = detection_scores(gts, empty)
    assert s0["ap_bbox"] == 0.0 and s0["ap_segm"] == 0.0 and s0["recall50"] == 0.0


def test_a_wrong_class_and_a_loose_box_cost_what_coco_says():
    gts = [_gt([[0, 0, 20, 20], [30, 0, 50, 20]], [1, 2])]
    # object 1 found exactly; object 2's box shifted by 6 px (IoU 14 * 20 / (26 * 20) = 0.54)
    dets = [_det([[0, 0, 20, 20], [36, 0, 56, 20]], [1, 2], [0.9, 0.8])]
    box = coco_map(gts, dets, "bbox")
    assert box["ap50"] == pytest.approx(1.0)
    # AP over IoU 0.5:0.95: class 1 is 1 at every threshold, class 2 only at 0.5 (1 of 10)
    assert box["ap"] == pytest.approx((1.0 + 0.1) / 2, abs=1e-6)
    wrong = [_det([[0, 0, 20, 20]], [2], [0.9])]  # right place, wrong object
    assert coco_map(gts, wrong, "bbox")["ap50"] == 0.0
    assert recall_at_iou(gts, wrong) == 0.0


def test_recall_counts_confident_one_to_one_matches():
    gts = [_gt([[0, 0, 20, 20], [22, 0, 42, 20]], [1, 1])]
    twice_the_same = [_det([[0, 0, 20, 20], [1, 0, 21, 20]], [1, 1], [0.9, 0.8])]
    assert recall_at_iou(gts, twice_the_same) == 0.5  # one detection matches one instance
    both = [_det([[0, 0, 20, 20], [22, 0, 42, 20]], [1, 1], [0.9, 0.3])]
    assert recall_at_iou(gts, both) == 0.5 and recall_at_iou(gts, both, min_score=0.2) == 1.0
    assert math.isnan(recall_at_iou([_gt(np.zeros((0, 4)), [])], [_det(np.zeros((0, 4)), [], [])]))


def test_encoded_masks_are_the_coco_rle_of_our_encoder():
    from bopnp.metrics.detection import encode_masks

    m = np.zeros((2, 40, 60), np.uint8)
    m[0, 3:17, 5:9] = 1
    m[1, 0:40, 50:60] = 1
    ours = [Rle.encode(x).to_json() for x in m]
    assert encode_masks(m) == ours and encode_masks(np.zeros((0, 40, 60))) == []


def test_confusion_counts_right_classes_confusions_misses_and_background():
    from bopnp.metrics.detection import class_confusion, format_confusion

    box = lambda x: [x, 0.0, x + 10.0, 10.0]  # noqa: E731
    gts = [
        {"boxes": np.array([box(0), box(20), box(40)]), "labels": np.array([1, 2, 3])},
        {"boxes": np.array([box(0)]), "labels": np.array([2])},
    ]
    dets = [
        {  # obj 1 found as 1; obj 2 taken for 3; a second detection of obj 1 and one on background; obj 3 missed
            "boxes": np.array([box(0), box(21), box(1), box(80), box(40)]),
            "labels": np.array([1, 3, 1, 2, 3]),
            "scores": np.array([0.9, 0.8, 0.7, 0.6, 0.1]),  # the last scores below min_score
        },
        {"boxes": np.array([box(0)]), "labels": np.array([2]), "scores": np.array([0.95])},
    ]
    table = class_confusion(gts, dets, [1, 2, 3], iou=0.5, min_score=0.5)
    expected = np.zeros((4, 4), int)
    expected[0, 0] = 1  # obj 1 -> 1
    expected[1, 2] = 1  # obj 2 -> 3
    expected[1, 1] = 1  # obj 2 -> 2 (second image)
    expected[2, 3] = 1  # obj 3 missed
    expected[3, 0] = 1  # duplicate of obj 1
    expected[3, 1] = 1  # background taken for obj 2
    np.testing.assert_array_equal(table, expected)
    assert table[:3].sum() == 4  # every instance counted once
    text = format_confusion(table, [1, 2, 3])
    assert text.splitlines()[0].split()[-1] == "miss" and text.splitlines()[-1].split() == ["bg", "1", "1", "0", "0"]

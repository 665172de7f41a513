"""The detection interface: the BOP default-detections reader, per-object selection, the box fallback for masks."""

from __future__ import annotations

import json

import numpy as np
import pytest

from bopnp.bop.detections import Detection, save_detections
from bopnp.bop.rle import Rle
from bopnp.errors import ResultsFormatError
from bopnp.infer.detect import FileDetections, ImageItem, detection_mask, select_detections

LMO_DETECTIONS = "detections/cosypose-maskrcnn-pbr_lmo-test.json"


def _det(obj_id, score, im_id=1, box=(1.0, 2.0, 3.0, 4.0), rle=None):
    return Detection(1, im_id, obj_id, score, np.array(box, dtype=np.float64), rle, 0.5)


def test_file_detections_serve_each_image_and_nothing_for_others(tmp_path):
    mask = np.zeros((6, 8), dtype=bool)
    mask[1:3, 2:5] = True
    dets = [_det(1, 0.9, 1, rle=Rle.encode(mask)), _det(2, 0.4, 1), _det(1, 0.7, 2)]
    path = tmp_path / "d.json"
    save_detections(path, dets)
    source = FileDetections(path)
    got = source([ImageItem(1, 1), ImageItem(1, 2), ImageItem(1, 3), ImageItem(7, 1)])
    assert [len(g) for g in got] == [2, 1, 0, 0]
    assert source.keys() == [(1, 1), (1, 2)]
    assert not source.needs_pixels
    first = got[0][0]
    assert (first.obj_id, first.score, first.time_s) == (1, 0.9, 0.5)
    np.testing.assert_array_equal(first.mask(), mask)


def test_file_detections_name_the_broken_file(tmp_path):
    with pytest.raises(ResultsFormatError, match="nope.json"):
        FileDetections(tmp_path / "nope.json")
    bad = tmp_path / "bad.json"
    bad.write_text(
        json.dumps([{"scene_id": 1, "image_id": 1, "category_id": 1, "score": "high", "bbox": [0, 0, 1, 1]}])
    )
    with pytest.raises(ResultsFormatError, match="bad.json"):
        FileDetections(bad)


def test_select_keeps_the_best_per_object_as_many_as_asked():
    dets = [_det(1, 0.2), _det(1, 0.9), _det(1, 0.5), _det(2, 0.8), _det(3, 0.99), _det(2, 0.05)]
    kept = select_detections(dets, {1: 2, 2: 1})
    assert [(d.obj_id, d.score) for d in kept] == [(1, 0.9), (1, 0.5), (2, 0.8)]
    kept = select_detections(dets, {1: 1, 2: 1}, extra=1, min_score=0.1)
    assert [(d.obj_id, d.score) for d in kept] == [(1, 0.9), (1, 0.5), (2, 0.8)]
    assert select_detections(dets, {}) == []


def test_mask_falls_back_to_the_box_when_empty_or_missing():
    empty = Rle.encode(np.zeros((10, 12), dtype=bool))
    for rle in (None, empty):
        m = detection_mask(_det(1, 0.5, box=(2.4, 3.0, 4.2, 2.0), rle=rle), (10, 12))
        ys, xs = np.nonzero(m)
        assert (xs.min(), xs.max(), ys.min(), ys.max()) == (2, 6, 3, 4)
    # a box reaching past the image is clipped
    m = detection_mask(_det(1, 0.5, box=(-5.0, 8.0, 30.0, 30.0)), (10, 12))
    assert m[8:, :].all() and not m[:8].any()
    full = np.zeros((10, 12), dtype=bool)
    full[4, 4] = True
    np.testing.assert_array_equal(detection_mask(_det(1, 0.5, rle=Rle.encode(full)), (10, 12)), full)


@pytest.mark.shared_data
def test_lmo_default_detections_of_image_3_are_the_file(lmo_dir):
    path = lmo_dir / LMO_DETECTIONS
    raw = [e for e in json.loads(path.read_text()) if (e["scene_id"], e["image_id"]) == (2, 3)]
    assert raw, "the LM-O default detections have entries for test image 3"
    got = FileDetections(path)([ImageItem(2, 3)])[0]
    assert len(got) == len(raw)
    for det, entry in zip(got, raw, strict=True):
        assert det.obj_id == entry["category_id"]
        assert det.score == pytest.approx(entry["score"], abs=0)
        np.testing.assert_allclose(det.bbox_xywh, entry["bbox"], rtol=0, atol=0)
        assert det.time_s == pytest.approx(entry["time"], abs=0)


@pytest.mark.shared_data
def test_lmo_empty_masks_fall_back_to_their_boxes(lmo_dir):
    source = FileDetections(lmo_dir / LMO_DETECTIONS)
    empty = [d for dets in source.by_image.values() for d in dets if d.rle is not None and not d.rle.decode().any()]
    assert len(empty) == 748
    for det in empty[:20]:
        mask = detection_mask(det, (480, 640))
        x, y, w, h = det.bbox_xywh
        assert mask.any() and mask.sum() <= (np.ceil(w) + 2) * (np.ceil(h) + 2)

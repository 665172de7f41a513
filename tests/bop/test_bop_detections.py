from __future__ import annotations

import json

import numpy as np
import pytest
from bop_helpers import same, snapshot

from bopnp.bop.io import Detection, Rle, load_detections, save_detections
from bopnp.errors import DatasetError, ResultsFormatError


def _dets():
    rng = np.random.default_rng(0)
    out = []
    for i in range(4):
        m = np.zeros((48, 64), bool)
        m[5 + i : 20 + i, 10 : 30 + i] = True
        out.append(
            Detection(
                scene_id=2,
                im_id=3,
                obj_id=1 + i,
                score=float(rng.random()),
                bbox_xywh=np.array([10.0, 5 + i, 20 + i, 15]),
                rle=Rle.encode(m),
                time_s=0.12,
            )
        )
    out.append(Detection(2, 4, 9, 0.5, np.array([1.5, 2.5, 3.0, 4.0])))  # box only
    return out


@pytest.mark.parametrize("compressed", [True, False])
@pytest.mark.parametrize("suffix", [".json", ".json.gz"])
def test_round_trip(tmp_path, compressed, suffix):
    dets = _dets()
    before = snapshot(dets)
    path = tmp_path / f"d{suffix}"
    save_detections(path, dets, compressed_rle=compressed)
    assert same(dets, before)
    back = load_detections(path)
    assert len(back) == len(dets)
    for a, b in zip(back, dets):
        assert (a.scene_id, a.im_id, a.obj_id, a.score, a.time_s) == (b.scene_id, b.im_id, b.obj_id, b.score, b.time_s)
        assert np.array_equal(a.bbox_xywh, b.bbox_xywh)
        assert (a.rle is None) == (b.rle is None)
        if a.rle is not None:
            assert np.array_equal(a.mask(), b.mask())
    with pytest.raises(DatasetError, match="no segmentation"):
        back[-1].mask()


def test_file_uses_bop_coco_keys(tmp_path):
    save_detections(tmp_path / "d.json", _dets()[:1])
    (entry,) = json.loads((tmp_path / "d.json").read_text())
    assert set(entry) == {"scene_id", "image_id", "category_id", "score", "bbox", "segmentation", "time"}
    assert set(entry["segmentation"]) == {"counts", "size"} and entry["segmentation"]["size"] == [48, 64]


def test_every_bad_entry_is_reported(tmp_path):
    good = {"scene_id": 1, "image_id": 1, "category_id": 1, "score": 0.5, "bbox": [0, 0, 1, 1], "time": 0.1}
    content = [
        good,
        {**good, "image_id": -1},
        {**good, "bbox": [0, 0, 1]},
        {**good, "segmentation": {"counts": [1, 2], "size": [2, 2]}},
        {k: v for k, v in good.items() if k != "score"},
        "not an object",
    ]
    (tmp_path / "d.json").write_text(json.dumps(content))
    with pytest.raises(ResultsFormatError) as info:
        load_detections(tmp_path / "d.json")
    p = info.value.problems
    assert len(p) == 5
    assert p[0].startswith("[1].image_id") and p[1].startswith("[2].bbox") and p[2].startswith("[3].segmentation")
    assert p[3].startswith("[4].score: missing") and p[4].startswith("[5]:")


@pytest.mark.shared_data
def test_lmo_default_detections(lmo_dir):
    dets = load_detections(lmo_dir / "detections" / "cosypose-maskrcnn-pbr_lmo-test.json")
    assert len(dets) == 4572
    assert {d.scene_id for d in dets} == {2} and len({d.im_id for d in dets}) == 200
    # loading checks that every run-length list adds up to height * width, i.e. that every mask decodes
    assert all((d.rle.height, d.rle.width) == (480, 640) for d in dets)
    empty = [d for d in dets if d.rle.area == 0]
    assert len(empty) == 748  # the file really holds empty masks: consumers must fall back to the box
    for d in dets[::10]:  # every 10th: decoding all 4572 adds time, not coverage
        m = d.mask()
        assert m.shape == (480, 640) and m.dtype == bool
        area = int(m.sum())
        assert area == d.rle.area
        if area == 0:
            continue
        x, y, w, h = d.bbox_xywh
        assert area <= (w + 2) * (h + 2)  # the mask lies in its box
        ys, xs = np.nonzero(m)
        assert xs.min() >= x - 2 and xs.max() <= x + w + 2 and ys.min() >= y - 2 and ys.max() <= y + h + 2
    areas = np.array([d.rle.area for d in dets if d.rle.area], float)
    boxes = np.array([d.bbox_xywh[2] * d.bbox_xywh[3] for d in dets if d.rle.area])
    fill = areas / boxes
    assert 0.3 < np.median(fill) < 0.95  # objects fill a good part of their boxes

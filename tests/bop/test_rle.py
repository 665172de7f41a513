from __future__ import annotations

import json

import numpy as np
import pytest
from bop_helpers import FIXTURES

from bopnp.bop.rle import Rle, RleError, decode_counts_string, encode_counts_string
from bopnp.errors import ShapeError

# masks and their encodings produced by pycocotools (see the file's "generator" field)
GOLDEN = json.loads((FIXTURES / "rle_pycocotools.json").read_text())


def _mask(case) -> np.ndarray:
    h, w = case["shape"]
    return np.array([[c == "1" for c in row] for row in case["mask_rows"]], bool).reshape(h, w)


@pytest.mark.parametrize("case", GOLDEN["masks"], ids=lambda c: f"{c['shape'][0]}x{c['shape'][1]}")
def test_matches_pycocotools(case):
    mask = _mask(case)
    rle = Rle.encode(mask)
    assert rle.to_string() == case["counts_str"]  # byte-identical compressed counts
    assert rle.area == case["area"] == int(mask.sum())
    np.testing.assert_array_equal(rle.bbox_xywh(), case["bbox"])
    decoded = Rle.from_json({"counts": case["counts_str"], "size": case["shape"]}).decode()
    assert decoded.dtype == bool and np.array_equal(decoded, mask)


def test_column_major_with_leading_zero_run():
    m = np.array([[1, 0, 1], [1, 1, 0]], bool)  # columns: (1,1), (0,1), (1,0)
    assert Rle.encode(m).counts.tolist() == [0, 2, 1, 2, 1]
    assert Rle.encode(np.zeros((2, 3), bool)).counts.tolist() == [6]
    assert Rle.encode(np.zeros((0, 4), bool)).decode().shape == (0, 4)


@pytest.mark.parametrize("compressed", [True, False])
def test_json_round_trip(compressed):
    rng = np.random.default_rng(3)
    for shape in [(1, 1), (13, 7), (48, 64)]:
        m = rng.random(shape) < 0.3
        obj = Rle.encode(m).to_json(compressed=compressed)
        assert isinstance(obj["counts"], str if compressed else list) and obj["size"] == list(shape)
        assert np.array_equal(Rle.from_json(json.loads(json.dumps(obj))).decode(), m)


def test_large_counts_and_deltas_survive_the_string_code():
    counts = np.array([0, 307200 - 5, 1, 3, 1], np.int64)  # big first run, then small ones (negative deltas)
    assert decode_counts_string(encode_counts_string(counts)).tolist() == counts.tolist()


@pytest.mark.parametrize(
    "obj, match",
    [
        ({"counts": [1, 2], "size": [2, 2]}, "add up to 3"),
        ({"counts": "0\x7f", "size": [1, 1]}, "invalid character"),
        ({"counts": [1, -1, 4], "size": [2, 2]}, "non-negative"),
        ({"counts": [4], "size": [2]}, r"size must be \[height, width\]"),
        ({"size": [2, 2]}, "'counts' and 'size'"),
        ({"counts": 4, "size": [2, 2]}, "string or a list"),
    ],
)
def test_malformed_rle(obj, match):
    with pytest.raises(RleError, match=match):
        Rle.from_json(obj)


def test_shape_checked():
    with pytest.raises(ShapeError):
        Rle.encode(np.zeros((2, 2, 2)))


@pytest.mark.shared_data
def test_lmo_detection_masks_match_pycocotools(lmo_dir):
    dets = json.loads((lmo_dir / "detections" / "cosypose-maskrcnn-pbr_lmo-test.json").read_text())
    for d, ref in zip(dets, GOLDEN["lmo_detections_first40"]):
        rle = Rle.from_json(d["segmentation"])  # uncompressed counts in the file
        assert rle.to_string() == ref["counts_str"] and rle.area == ref["area"]
        np.testing.assert_array_equal(rle.bbox_xywh(), ref["bbox"])

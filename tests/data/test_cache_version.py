"""Crop-cache version 3 (meta.json's ``centre_mm``): an older cache is refused with the rebuild command, and a
meta.json without the key is a DatasetError, never a KeyError or a silently wrong normalisation."""

import json

import numpy as np
import pytest

from bopnp.data.cache import CACHE_FORMAT, ShardArrays, pack_masks, write_cache_meta, write_object_meta, write_shard
from bopnp.data.crop_dataset import CropDataset
from bopnp.errors import DatasetError

S = 8


def _cache(tmp_path, normalisation: dict):
    write_cache_meta(tmp_path, {"crop_size": S, "enlarge": 1.5, "objects": [3], "split": "train_pbr"})
    write_object_meta(tmp_path, 3, {"xyz_normalisation": normalisation, "symmetry_pool": [np.eye(4).tolist()]})
    ones = np.ones((1, S, S), bool)
    record = {
        "scene_id": 0,
        "im_id": 0,
        "gt_id": 0,
        "obj_id": 3,
        "box_xyxy": [0, 0, S, S],
        "bbox_obj": [0, 0, S, S],
        "bbox_visib": [0, 0, S, S],
        "px_count_visib": S * S,
        "visib_fract": 1.0,
        "K": np.eye(3).tolist(),
        "R_m2c": np.eye(3).tolist(),
        "t_m2c": [0, 0, 500],
        "R_m2c_target": np.eye(3).tolist(),
        "t_m2c_target": [0, 0, 500],
    }
    arrays = ShardArrays(
        rgb=np.zeros((1, S, S, 3), np.uint8),
        xyz=np.zeros((1, S, S, 3), np.float16),
        mask=pack_masks(ones, ones, ones),
        records=[record],
    )
    write_shard(tmp_path / "obj_000003", 0, 3, arrays)
    return tmp_path


def test_current_cache_reads_centre_mm(tmp_path):
    ds = CropDataset(_cache(tmp_path, {"centre_mm": [1.0, 2.0, 3.0], "half_extent_mm": [4.0, 5.0, 6.0]}), 3)
    centre_mm, half_extent_mm = ds.xyz_normalisation
    np.testing.assert_array_equal(centre_mm, [1, 2, 3])
    np.testing.assert_array_equal(half_extent_mm, [4, 5, 6])


def test_a_version_2_cache_with_center_mm_is_refused_with_the_rebuild_command(tmp_path):
    """Version 2 wrote ``center_mm``; reading it as version 3 would fail later or mislead, so it is refused."""
    cache_dir = _cache(tmp_path, {"center_mm": [1.0, 2.0, 3.0], "half_extent_mm": [4.0, 5.0, 6.0]})
    for name in ("cache.json", "obj_000003/meta.json"):
        path = cache_dir / name
        meta = json.loads(path.read_text())
        assert meta["format"] == CACHE_FORMAT
        path.write_text(json.dumps({**meta, "version": 2}))
    with pytest.raises(DatasetError, match="version 2.*--overwrite"):
        CropDataset(cache_dir, 3)


def test_meta_without_centre_mm_is_a_dataset_error_with_the_fix(tmp_path):
    ds = CropDataset(_cache(tmp_path, {"center_mm": [1.0, 2.0, 3.0], "half_extent_mm": [4.0, 5.0, 6.0]}), 3)
    with pytest.raises(DatasetError, match=r"meta\.json.*centre_mm.*--overwrite"):
        _ = ds.xyz_normalisation

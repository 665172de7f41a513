"""The crop cache: write -> read round trip through the torch Dataset, atomic shards, version checks."""

import json

import numpy as np
import pytest
import torch

from bopnp.data.augment import BoxJitter
from bopnp.data.cache import (
    CACHE_VERSION,
    MASK_FULL,
    MASK_INSIDE,
    MASK_VISIB,
    ShardArrays,
    list_shards,
    pack_masks,
    read_cache_meta,
    remove_stale_temporaries,
    write_cache_meta,
    write_object_meta,
    write_shard,
)
from bopnp.data.crop_dataset import CropDataset, open_crop_datasets
from bopnp.errors import ConfigError, DatasetError

S = 16


def random_shard(rng, n, scene_id, obj_id=3):
    full = rng.random((n, S, S)) > 0.5
    visib = full & (rng.random((n, S, S)) > 0.3)
    inside = rng.random((n, S, S)) > 0.1
    records = []
    for i in range(n):
        R = np.linalg.qr(rng.normal(size=(3, 3)))[0]
        records.append(
            {
                "scene_id": scene_id,
                "im_id": 10 + i,
                "gt_id": i % 3,
                "obj_id": obj_id,
                "box_xyxy": rng.uniform(0, 600, 4).tolist(),
                "bbox_obj": [1, 2, 3, 4],
                "bbox_visib": [1, 2, 3, 4],
                "px_count_visib": int(visib[i].sum()),
                "visib_fract": float(i) / n,
                "K": rng.normal(size=(3, 3)).tolist(),
                "R_m2c": R.tolist(),
                "t_m2c": rng.normal(size=3).tolist(),
                "R_m2c_target": R.T.tolist(),
                "t_m2c_target": rng.normal(size=3).tolist(),
            }
        )
    return ShardArrays(
        rgb=rng.integers(0, 256, (n, S, S, 3), dtype=np.uint8),
        xyz=rng.uniform(-1, 1, (n, S, S, 3)).astype(np.float16),
        mask=pack_masks(full, visib, inside),
        records=records,
    ), (full, visib, inside)


@pytest.fixture
def cache(tmp_path):
    rng = np.random.default_rng(1)
    write_cache_meta(tmp_path, {"crop_size": S, "enlarge": 1.5, "objects": [3], "split": "train_pbr"})
    pool = np.stack([np.eye(4), np.diag([-1.0, -1.0, 1.0, 1.0])])
    write_object_meta(
        tmp_path,
        3,
        {
            "xyz_normalisation": {"centre_mm": [1.0, 2.0, 3.0], "half_extent_mm": [10.0, 20.0, 30.0]},
            "symmetry_pool": pool.tolist(),
        },
    )
    shards = {}
    for scene_id, n in ((0, 5), (2, 4)):
        arrays, masks = random_shard(rng, n, scene_id)
        write_shard(tmp_path / "obj_000003", scene_id, 3, arrays)
        shards[scene_id] = (arrays, masks)
    return tmp_path, shards


def test_round_trip_returns_identical_values(cache):
    cache_dir, shards = cache
    ds = CropDataset(cache_dir, 3)
    assert len(ds) == 9
    k = 0
    for scene_id in (0, 2):
        arrays, (full, visib, inside) = shards[scene_id]
        for i, rec in enumerate(arrays.records):
            item = ds[k]
            assert item["image"].shape == (3, S, S) and item["image"].dtype == torch.float32
            np.testing.assert_array_equal((item["image"] * 255).round().byte().permute(1, 2, 0).numpy(), arrays.rgb[i])
            assert item["xyz"].shape == (3, S, S) and item["xyz"].dtype == torch.float32
            np.testing.assert_array_equal(item["xyz"].permute(1, 2, 0).numpy(), arrays.xyz[i].astype(np.float32))
            np.testing.assert_array_equal(item["mask_full"].numpy(), full[i])
            np.testing.assert_array_equal(item["mask_visib"].numpy(), visib[i])
            np.testing.assert_array_equal(item["mask_inside"].numpy(), inside[i])
            for key in ("K", "R_m2c", "t_m2c", "R_m2c_target", "t_m2c_target", "box_xyxy"):
                np.testing.assert_allclose(item[key].numpy(), np.asarray(rec[key], np.float32), err_msg=key)
            assert (int(item["scene_id"]), int(item["im_id"]), int(item["gt_id"]), int(item["obj_id"])) == (
                scene_id,
                rec["im_id"],
                rec["gt_id"],
                3,
            )
            k += 1
    centre, half = ds.xyz_normalisation
    np.testing.assert_array_equal(centre, [1, 2, 3])
    np.testing.assert_array_equal(half, [10, 20, 30])
    assert ds.symmetry_pool.shape == (2, 4, 4)


def test_arrays_are_memory_mapped_and_the_dataset_pickles(cache):
    import pickle

    cache_dir, _ = cache
    ds = CropDataset(cache_dir, 3)
    ds[0]
    assert isinstance(ds.shards[0].array("rgb"), np.memmap)
    clone = pickle.loads(pickle.dumps(ds))  # DataLoader workers reopen the maps
    assert clone.shards[0]._arrays == {}
    torch.testing.assert_close(clone[3]["xyz"], ds[3]["xyz"])
    batch = next(iter(torch.utils.data.DataLoader(ds, batch_size=4)))
    assert batch["image"].shape == (4, 3, S, S) and batch["mask_full"].dtype == torch.bool


def test_filters_by_scene_and_visibility(cache):
    cache_dir, _ = cache
    assert len(CropDataset(cache_dir, 3, scene_ids=[2])) == 4
    ds = CropDataset(cache_dir, 3, min_visib_fract=0.5)
    assert all(ds.record(i)["visib_fract"] >= 0.5 for i in range(len(ds)))
    expected = sum(rec["visib_fract"] >= 0.5 for sid in (0, 2) for rec in cache[1][sid][0].records)
    assert len(ds) == expected == 4  # 0.6, 0.8 of scene 0; 0.5, 0.75 of scene 2
    with pytest.raises(ConfigError):
        CropDataset(cache_dir, 3, min_visib_fract=2.0)


def test_a_temporary_shard_is_invisible_and_cleaned(cache):
    cache_dir, _ = cache
    tmp = cache_dir / "obj_000003" / ".000005.abc.tmp"
    tmp.mkdir()
    (tmp / "rgb.npy").write_bytes(b"partial")
    assert [s.scene_id for s in list_shards(cache_dir, 3)] == [0, 2]
    assert remove_stale_temporaries(cache_dir) == 1
    assert not tmp.exists()


def test_a_shard_replaces_an_older_one(cache):
    cache_dir, _ = cache
    arrays, _ = random_shard(np.random.default_rng(5), 2, 0)
    write_shard(cache_dir / "obj_000003", 0, 3, arrays)
    assert len(CropDataset(cache_dir, 3)) == 2 + 4
    assert not list((cache_dir / "obj_000003").glob(".*"))


def test_a_failed_write_leaves_no_shard(tmp_path):
    arrays, _ = random_shard(np.random.default_rng(0), 2, 0)
    arrays.records[0]["bad"] = object()  # not JSON: the write fails half way
    with pytest.raises(TypeError):
        write_shard(tmp_path / "obj_000003", 0, 3, arrays)
    assert list((tmp_path / "obj_000003").iterdir()) == []


def test_shard_arrays_are_validated():
    arrays, _ = random_shard(np.random.default_rng(0), 2, 0)
    with pytest.raises(ValueError):
        ShardArrays(rgb=arrays.rgb, xyz=arrays.xyz.astype(np.float32), mask=arrays.mask, records=arrays.records)
    with pytest.raises(ValueError):
        ShardArrays(rgb=arrays.rgb, xyz=arrays.xyz, mask=arrays.mask, records=arrays.records[:1])


def test_other_versions_and_broken_shards_are_refused_with_the_fix(cache):
    cache_dir, _ = cache
    meta = json.loads((cache_dir / "cache.json").read_text())
    meta["version"] = CACHE_VERSION + 1
    (cache_dir / "cache.json").write_text(json.dumps(meta))
    with pytest.raises(DatasetError, match="--overwrite"):
        read_cache_meta(cache_dir)
    meta["version"] = CACHE_VERSION
    (cache_dir / "cache.json").write_text(json.dumps(meta))
    np.save(cache_dir / "obj_000003" / "000002" / "rgb.npy", np.zeros((1, S, S, 3), np.uint8))
    ds = CropDataset(cache_dir, 3)
    with pytest.raises(DatasetError, match="000002"):
        ds[len(ds) - 1]
    with pytest.raises(DatasetError, match="not found"):
        CropDataset(cache_dir / "nope", 3)
    with pytest.raises(DatasetError, match="--objects 7"):
        CropDataset(cache_dir, 7)
    with pytest.raises(DatasetError, match=r"\[7\]"):
        open_crop_datasets(cache_dir, [3, 7])
    assert set(open_crop_datasets(cache_dir)) == {3}


def test_pack_masks_bits():
    a, b, c = np.array([True, False]), np.array([True, True]), np.array([False, True])
    m = pack_masks(a, b, c)
    assert m.dtype == np.uint8
    np.testing.assert_array_equal(m, [MASK_FULL | MASK_VISIB, MASK_VISIB | MASK_INSIDE])


def test_image_transform_touches_only_the_image(cache):
    cache_dir, _ = cache
    plain = CropDataset(cache_dir, 3)[1]
    item = CropDataset(cache_dir, 3, image_transform=lambda im: 1.0 - im)[1]
    torch.testing.assert_close(item["image"], 1.0 - plain["image"])
    for key in ("xyz", "mask_full", "mask_visib", "K", "box_xyxy"):
        torch.testing.assert_close(item[key], plain[key])


def test_identity_box_jitter_changes_nothing(cache):
    cache_dir, _ = cache
    plain = CropDataset(cache_dir, 3)[2]
    item = CropDataset(cache_dir, 3, box_jitter=BoxJitter(max_shift=0.0, scale_range=(1.0, 1.0)))[2]
    for key in plain:
        torch.testing.assert_close(item[key], plain[key], msg=key)

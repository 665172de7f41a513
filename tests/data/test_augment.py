"""Augmentations: box jitter keeps coordinates, masks and K consistent; colour augmentation keeps shapes."""

import numpy as np
import pytest
import torch

from bopnp.data.augment import BoxJitter, color_augment
from bopnp.data.cache import ShardArrays, pack_masks, write_cache_meta, write_object_meta, write_shard
from bopnp.data.crop_dataset import CropDataset
from bopnp.data.crop_geometry import crop_K, inside_image_mask, square_box, warp_crop
from bopnp.errors import ConfigError
from bopnp.geometry import project_points, transform_points

K = np.array([[572.4, 0.0, 325.3], [0.0, 573.6, 242.0], [0.0, 0.0, 1.0]])
W, H, S = 640, 480, 64
HALF_MM = 100.0


@pytest.fixture
def plane_cache(tmp_path):
    """One crop of a fronto-parallel plane whose model coordinates are known at every pixel."""
    R, t, z = np.eye(3), np.array([10.0, -5.0, 600.0]), 600.0
    v, u = np.mgrid[0:H, 0:W].astype(np.float64)
    xyz_c = np.stack([(u - K[0, 2]) / K[0, 0] * z, (v - K[1, 2]) / K[1, 1] * z, np.full_like(u, z)], -1)
    xyz_m = (xyz_c - t) @ R
    bbox = np.array([300.0, 200.0, 50.0, 40.0])
    box = square_box(bbox, 1.5, S)
    crop_xyz = warp_crop((xyz_m / HALF_MM).astype(np.float32), box, S, nearest=True)
    inside = inside_image_mask((W, H), box, S)
    full = np.ones((S, S), bool)
    rec = {
        "scene_id": 0, "im_id": 0, "gt_id": 0, "obj_id": 1, "box_xyxy": box.tolist(),
        "bbox_obj": bbox.tolist(), "bbox_visib": bbox.tolist(), "px_count_visib": 1, "visib_fract": 1.0,
        "K": crop_K(K, box, S).tolist(), "R_m2c": R.tolist(), "t_m2c": t.tolist(),
        "R_m2c_target": R.tolist(), "t_m2c_target": t.tolist(),
    }  # fmt: skip
    arrays = ShardArrays(
        rgb=np.zeros((1, S, S, 3), np.uint8),
        xyz=crop_xyz[None].astype(np.float16),
        mask=pack_masks(full, full, inside)[None],
        records=[rec],
    )
    write_cache_meta(tmp_path, {"crop_size": S, "objects": [1]})
    write_object_meta(
        tmp_path,
        1,
        {
            "xyz_normalisation": {"centre_mm": [0, 0, 0], "half_extent_mm": [HALF_MM] * 3},
            "symmetry_pool": [np.eye(4).tolist()],
        },
    )
    write_shard(tmp_path / "obj_000001", 0, 1, arrays)
    return tmp_path


def test_jittered_crop_keeps_projection_consistent(plane_cache):
    torch.manual_seed(0)
    jitter = BoxJitter(max_shift=0.15, scale_range=(0.7, 1.3))
    ds = CropDataset(plane_cache, 1, box_jitter=jitter)
    for _ in range(10):
        item = ds[0]
        Kc, box = item["K"].double(), item["box_xyxy"].double()
        # K and box agree with each other as crop_intrinsics defines them
        np.testing.assert_allclose(crop_K(K, box.numpy(), S), Kc.numpy(), rtol=1e-5, atol=1e-4)
        on = item["mask_full"].numpy()
        pts = item["xyz"].permute(1, 2, 0).double().reshape(-1, 3)[on.reshape(-1)] * HALF_MM
        uv = project_points(transform_points(item["R_m2c"].double(), item["t_m2c"].double(), pts), Kc).numpy()
        jj, ii = np.meshgrid(np.arange(S), np.arange(S))
        px = np.stack([jj, ii], -1)[on]
        # two nearest resamplings: half a stored-crop pixel plus half an image pixel, in final crop pixels
        s_total = (S / (box[2] - box[0])).item()  # final crop pixels per image pixel
        s_stored = S / (ds.record(0)["box_xyxy"][2] - ds.record(0)["box_xyxy"][0])
        bound = 0.5 * (s_total / s_stored + s_total) + 0.05
        assert np.abs(uv - px).max() <= bound
        # zero padding where the jittered box leaves the stored crop
        assert (item["xyz"][:, ~item["mask_full"]] == 0).all()


def test_box_jitter_validates():
    with pytest.raises(ConfigError):
        BoxJitter(max_shift=0.6).validate()
    with pytest.raises(ConfigError):
        BoxJitter(scale_range=(1.2, 1.0)).validate()
    assert BoxJitter(0.0, (1.0, 1.0)).sample_box(32).tolist() == [0.0, 0.0, 32.0, 32.0]


def test_color_augment_keeps_shape_range_and_is_random():
    torch.manual_seed(0)
    aug = color_augment()
    image = torch.rand(3, S, S)
    outs = [aug(image) for _ in range(3)]
    for out in outs:
        assert out.shape == image.shape and out.dtype == torch.float32
        assert out.min() >= 0 and out.max() <= 1
    assert not torch.equal(outs[0], outs[1])

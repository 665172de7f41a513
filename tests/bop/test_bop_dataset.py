from __future__ import annotations

import numpy as np
import pytest

from bopnp.bop.dataset import BopDataset
from bopnp.errors import DatasetError


def test_layout(tiny_root, tiny):
    ds = BopDataset(tiny_root, "test")
    assert ds.name == "tiny" and ds.splits() == ["test", "train_pbr"] and ds.split_type is None
    assert ds.scene_ids() == [1] and ds.image_ids(1) == [0, 1] and ds.obj_ids == [1, 2]
    assert ds.modality(1) == "rgb"
    assert ds.image_path(1, 0) == tiny_root / "test" / "000001" / "rgb" / "000000.png"
    assert ds.mask_path(1, 0, 1) == tiny_root / "test" / "000001" / "mask_visib" / "000000_000001.png"
    assert ds.mask_path(1, 0, 1, visib=False).parent.name == "mask"
    assert ds.camera.width == tiny.W and np.array_equal(ds.K(1, 0), tiny.K)
    pbr = BopDataset(tiny_root, "train_pbr")
    assert pbr.split_type == "pbr" and pbr.image_path(0, 0).suffix == ".jpg"  # found on disk
    assert pbr.image(0, 0).shape == (tiny.H, tiny.W, 3)


def test_gray_tif_dataset(tiny_root, tiny):
    from bopnp.bop.io import save_image

    scene = tiny_root / "test" / "000001"
    for im_id in (0, 1):
        (scene / "rgb" / f"{im_id:06d}.png").unlink()
        save_image(scene / "gray" / f"{im_id:06d}.tif", np.full((tiny.H, tiny.W), 1000 + im_id, np.uint16))
    (scene / "rgb").rmdir()
    ds = BopDataset(tiny_root, "test")
    assert ds.modality(1) == "gray" and ds.image_path(1, 1).name == "000001.tif"
    img = ds.image(1, 1)
    assert img.shape == (tiny.H, tiny.W) and img.dtype == np.uint16 and img[0, 0] == 1001


def test_images_depth_masks(tiny_root, tiny):
    ds = BopDataset(tiny_root, "test")
    img = ds.image(1, 0)
    assert img.shape == (tiny.H, tiny.W, 3) and img.dtype == np.uint8
    depth = ds.depth(1, 0)
    assert (
        depth.dtype == np.float32 and 500 - 0.05 <= depth.min() and depth.max() <= 900 + 0.05
    )  # mm, via depth_scale 0.1
    m = ds.mask(1, 0, 0)
    assert m.dtype == bool and m.sum() == ds.scene_gt_info(1)[0][0].px_count_visib
    assert ds.mask(1, 0, 0, visib=False).sum() == ds.scene_gt_info(1)[0][0].px_count_all


def test_instances_and_targets(tiny_root):
    ds = BopDataset(tiny_root, "test")
    inst = list(ds.instances())
    assert [(i.scene_id, i.im_id, i.gt_id, i.obj_id) for i in inst] == [(1, 0, 0, 1), (1, 0, 1, 2), (1, 1, 0, 1)]
    assert inst[1].gt_info.px_count_all == 750 and inst[0].R_m2c.shape == (3, 3) and inst[0].t_m2c.shape == (3,)
    assert [(t.im_id, t.obj_id, t.inst_count) for t in ds.targets()] == [(0, 1, 1), (0, 2, 1), (1, 1, 1)]


def test_meshes_are_cached_per_instance_not_per_class(tiny_root):
    a, b = BopDataset(tiny_root, "test"), BopDataset(tiny_root, "test")
    assert a.mesh(1) is a.mesh(1)
    assert a.mesh(1) is not b.mesh(1)  # no class-level cache shared between datasets
    assert a.mesh(2, eval=True) is not a.mesh(2)
    assert len(a.mesh(1).vertices_mm) == 8
    assert not any(isinstance(v, dict) for k, v in vars(BopDataset).items() if not k.startswith("__"))


def test_models_only_view(tiny_root):
    ds = BopDataset(tiny_root)
    assert ds.obj_ids == [1, 2] and ds.mesh(2).faces.shape[1] == 3
    with pytest.raises(DatasetError, match="no split chosen; pass split= .* test, train_pbr"):
        ds.scene_ids()


def test_errors_name_the_path_and_the_fix(tmp_path, tiny_root):
    with pytest.raises(DatasetError, match=r"lmo not found: .*lmo_base.zip.*--bop-path"):
        BopDataset(tmp_path / "lmo")
    with pytest.raises(DatasetError, match=r"val not found \(splits present: test, train_pbr\): download tiny_val.zip"):
        BopDataset(tiny_root, "val")
    ds = BopDataset(tiny_root, "test")
    (tiny_root / "test_targets_bop19.json").unlink()
    with pytest.raises(
        DatasetError, match=r"test_targets_bop19.json not found: download tiny_base.zip .* or pass --targets"
    ):
        ds.targets()
    with pytest.raises(DatasetError, match="object 7 is not in"):
        ds.mesh(7)
    with pytest.raises(DatasetError, match="scene 5 is not in split 'test'"):
        ds.scene_gt(5)
    (tiny_root / "test" / "000001" / "scene_gt_info.json").unlink()
    with pytest.raises(
        DatasetError, match="scene_gt_info.json not found: compute it with `bopnp prepare tiny --split test`"
    ):
        ds.scene_gt_info(1)
    assert all(i.gt_info is None for i in ds.instances())
    assert ds.scene_gt(1) is ds.scene_gt(1)  # read once
    fresh = BopDataset(tiny_root, "test")
    for name in ("scene_gt.json", "scene_camera.json"):
        (tiny_root / "test" / "000001" / name).unlink()
    with pytest.raises(DatasetError, match="scene_gt.json not found: this split has no ground truth here"):
        fresh.scene_gt(1)
    with pytest.raises(
        DatasetError, match="scene_camera.json not found: the scene is incomplete; re-download the split archive"
    ):
        fresh.scene_camera(1)


@pytest.mark.shared_data
def test_lmo(lmo_dir):
    ds = BopDataset(lmo_dir, "test")
    assert ds.scene_ids() == [2] and len(ds.image_ids(2)) == 200
    assert sum(1 for _ in ds.instances()) == 1517 and len(ds.targets()) == 1445
    assert ds.image(2, 894).shape == (480, 640, 3)
    assert ds.depth(2, 3).dtype == np.float32
    assert len(ds.mesh(1).vertices_mm) == 5841 and len(ds.mesh(1, eval=True).vertices_mm) == 2825
    assert ds.models_info[11].is_symmetric


def test_depth_path_finds_tif_and_a_file_is_not_a_dataset(tiny_root):
    scene = tiny_root / "test" / "000001" / "depth"
    (scene / "000001.png").rename(scene / "000001.tif")
    ds = BopDataset(tiny_root, "test")
    assert ds.depth_path(1, 1) == scene / "000001.tif" and ds.depth_path(1, 0) == scene / "000000.png"
    assert ds.depth(1, 1).shape == ds.depth(1, 0).shape
    (tiny_root.parent / "afile").write_text("x")
    with pytest.raises(DatasetError, match="is a file, not a dataset folder"):
        BopDataset(tiny_root.parent / "afile")

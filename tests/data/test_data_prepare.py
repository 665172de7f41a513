"""``prepare``: scene_gt_info where missing, coordinate targets consistent with masks and projection,
resume, a corrupt image reported and skipped, continuous-symmetry canonicalisation, determinism."""

import json
import shutil
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from tiny_bop import H, K, W, make_meshes, model_info, rotation

from bopnp.bop import io
from bopnp.data.cache import list_shards
from bopnp.data.crop_dataset import CropDataset
from bopnp.data.prepare import PrepareConfig, marker_path, prepare, resolve_split
from bopnp.errors import ConfigError, DatasetError
from bopnp.geometry import project_points, transform_points


def run(bop_path, name, **kwargs):
    return prepare(PrepareConfig(bop_path=bop_path, name=name, **kwargs), progress=False)


def snapshot(cache_dir: Path) -> dict[str, bytes]:
    """Every file of a cache (markers and metadata included) -> its bytes."""
    return {str(p.relative_to(cache_dir)): p.read_bytes() for p in sorted(cache_dir.rglob("*")) if p.is_file()}


def _check_visible_against_image_mask(cache_dir: Path, rec: dict, full: np.ndarray, visib: np.ndarray) -> int:
    """An occluded crop's visible mask equals the image's mask_visib png resampled into the crop, except
    within one image pixel of an edge (where the crop's own full mask and the image's sampling differ).
    Returns 1 when checked, 0 when the split has no mask png for the instance."""
    from bopnp.data.crop_geometry import warp_crop

    split_dir = cache_dir.parent.parent / cache_dir.name
    png = split_dir / f"{rec['scene_id']:06d}" / "mask_visib" / f"{rec['im_id']:06d}_{rec['gt_id']:06d}.png"
    if not png.is_file():
        return 0
    S = visib.shape[0]
    ref = warp_crop(io.load_mask(png), np.asarray(rec["box_xyxy"]), S, nearest=True)
    r = int(np.ceil(S / (rec["box_xyxy"][2] - rec["box_xyxy"][0]))) + 1  # one image pixel, in crop pixels
    kernel = np.ones((2 * r + 1, 2 * r + 1), np.uint8)

    def near_edge(m):
        m8 = m.astype(np.uint8)
        return (cv2.dilate(m8, kernel) > 0) & ~(cv2.erode(m8, kernel) > 0)

    differ = visib != ref
    assert not (differ & ~near_edge(full) & ~near_edge(ref)).any(), rec
    assert differ.sum() <= 0.05 * max(int(full.sum()), 1), rec
    return 1


def check_crops_consistent(cache_dir: Path, obj_id: int, max_err_px: float = 0.75) -> tuple[int, int, int]:
    """Every crop's coordinate target agrees with its masks and, projected with the crop's K and the
    target pose, lands on its own pixel; the visible mask lies in the full mask, equals it where nothing
    occludes the object, and else equals the image's mask_visib resampled, away from edges. Returns
    (crops checked, unoccluded crops, occluded crops checked against a mask png)."""
    ds = CropDataset(cache_dir, obj_id)
    centre, half = (torch.as_tensor(a) for a in ds.xyz_normalisation)
    S = ds.crop_size
    jj, ii = torch.meshgrid(torch.arange(S), torch.arange(S), indexing="xy")
    pix = torch.stack([jj, ii], -1).double()
    unoccluded, occluded_checked = [], 0
    for i in range(len(ds)):
        item, rec = ds[i], ds.record(i)
        full, visib, inside = item["mask_full"], item["mask_visib"], item["mask_inside"]
        xyz = item["xyz"].permute(1, 2, 0).double()
        assert full.sum() > 0, rec
        assert not (xyz.abs().sum(-1) > 0)[~full].any(), "coordinates off the full mask"
        assert xyz.abs().max() <= 1.0
        assert not (full & ~inside).any() and not (visib & ~inside).any()
        assert not (visib & ~full).any(), "visible mask outside the full mask"
        if rec["visib_fract"] == 1.0:  # nothing occludes it: no rim where the two samplings disagree
            assert torch.equal(visib, full), rec
            unoccluded.append(i)
        else:
            occluded_checked += _check_visible_against_image_mask(cache_dir, rec, full.numpy(), visib.numpy())
        # projection of the target's model points with the crop's K and the target pose
        pts = centre + xyz[full] * half
        f64 = lambda key: torch.tensor(rec[key], dtype=torch.float64)  # noqa: E731, B023 (used in this iteration only)
        uv = project_points(transform_points(f64("R_m2c_target"), f64("t_m2c_target"), pts), f64("K"))
        err = (uv - pix[full]).norm(dim=-1)
        assert err.median() < 0.1 and err.max() < max_err_px, (
            rec["scene_id"],
            rec["im_id"],
            rec["gt_id"],
            float(err.max()),
        )
    return len(ds), len(unoccluded), occluded_checked


def expected_crops(dataset_dir: Path, min_visib_fract: float = 0.1) -> dict[int, int]:
    """Crops per object of train_pbr, counted independently from the split's gt files."""
    return expected_crops_of(dataset_dir, "train_pbr", min_visib_fract)


def test_prepare_writes_crops_consistent_with_masks_and_projection(tiny_bop):
    bop, name = tiny_bop
    summary = run(bop, name)
    assert summary.scenes_prepared == [0, 1] and not summary.scenes_failed and not summary.skipped
    assert summary.gt_info_written == []
    expected = expected_crops(bop / name)
    assert summary.crops == expected and expected[1] > 0 and expected[2] > 0
    for obj_id in (1, 2):
        assert check_crops_consistent(summary.cache_dir, obj_id)[0] == expected[obj_id]
    # scene 1 has no mask pngs: its visible masks come from a render and agree with scene 0's kind
    kept = {r["scene_id"] for sh in list_shards(summary.cache_dir, 2) for r in sh.records}
    assert kept == {0, 1}
    # the asymmetric object is rendered in its annotated pose, the cylinder in a canonical one
    box = CropDataset(summary.cache_dir, 1).record(0)
    assert box["R_m2c_target"] == box["R_m2c"]
    cyl = CropDataset(summary.cache_dir, 2).record(0)
    assert cyl["R_m2c_target"] != cyl["R_m2c"]
    meta = json.loads((summary.cache_dir / "obj_000002" / "meta.json").read_text())
    assert meta["target_pose"] == "canonical" and meta["symmetry_pool"] == [np.eye(4).tolist()]
    assert meta["xyz_normalisation"] == {"centre_mm": [0.0, 0.0, 0.0], "half_extent_mm": [25.0, 25.0, 25.0]}


def test_missing_scene_gt_info_is_computed(tiny_bop):
    bop, name = tiny_bop
    path = bop / name / "train_pbr" / "000001" / "scene_gt_info.json"
    reference = io.load_scene_gt_info(path)  # from the renderer's masks, by tiny_bop
    path.unlink()
    summary = run(bop, name)
    assert summary.gt_info_written == [path] and not summary.scenes_failed
    computed = io.load_scene_gt_info(path)
    gt = io.load_scene_gt(path.with_name("scene_gt.json"))
    assert sorted(computed) == sorted(gt) and all(len(computed[i]) == len(gt[i]) for i in gt)
    for im_id, entries in computed.items():
        for new, ref in zip(entries, reference[im_id]):
            assert 0 <= new.visib_fract <= 1 and new.px_count_visib <= new.px_count_all
            # BOP counts visibility with a 15 mm tolerance: never fewer visible pixels than the depth test
            assert new.px_count_visib >= ref.px_count_visib
            x, y, w, h = ref.bbox_obj
            if x > 0 and y > 0 and x + w < W - 1 and y + h < H - 1:  # inside the image: boxes and counts agree
                np.testing.assert_array_equal(new.bbox_obj, ref.bbox_obj)
                assert new.px_count_all == ref.px_count_all
    assert summary.crops == expected_crops(bop / name)
    for obj_id in (1, 2):
        check_crops_consistent(summary.cache_dir, obj_id)


def test_symmetric_views_share_one_target():
    from bopnp.data.crop_geometry import crop_K, square_box
    from bopnp.data.targets import render_crop_target, target_pose
    from bopnp.render import get_renderer

    mesh = make_meshes()[2]
    info = model_info(2, mesh)
    S = 96
    r = get_renderer(S, S)
    r.add_model(2, mesh)
    R = rotation([0.3, -1.0, 0.4], 0.9)
    t = np.array([20.0, -10.0, 450.0])
    Kc = crop_K(K, square_box(np.array([150.0, 90.0, 70.0, 70.0]), 1.5, S), S)
    spun = R @ rotation([0, 0, 1], 1.1)  # the same view of the cylinder, rotated about its axis
    raw_a, full_a = render_crop_target(r, 2, Kc, R, t)
    raw_b, full_b = render_crop_target(r, 2, Kc, spun, t)
    # the silhouette does not change (up to the facets of the 48-sided cylinder) ...
    assert (full_a != full_b).mean() < 0.005 and full_a.sum() > 500
    both = full_a & full_b
    assert np.abs(raw_a[both].astype(np.float32) - raw_b[both]).max() > 0.3  # ... but the raw coordinates do
    xyz_a, can_a = render_crop_target(r, 2, Kc, *target_pose(info, R, t))
    xyz_b, can_b = render_crop_target(r, 2, Kc, *target_pose(info, spun, t))
    assert (can_a != full_a).mean() < 0.005
    np.testing.assert_array_equal(can_a, can_b)
    assert np.abs(xyz_a.astype(np.float32) - xyz_b).max() < 2e-3
    # without a continuous symmetry the pose is kept
    box_info = model_info(1, make_meshes()[1])
    R_box, t_box = target_pose(box_info, R, t)
    np.testing.assert_array_equal(R_box, R)
    np.testing.assert_array_equal(t_box, t)


def test_rerun_skips_finished_scenes_and_redoes_a_killed_one(tiny_bop):
    bop, name = tiny_bop
    first = run(bop, name)
    before = snapshot(first.cache_dir)
    mtimes = {p: p.stat().st_mtime_ns for p in first.cache_dir.rglob("*.npy")}
    again = run(bop, name)
    assert again.scenes_prepared == [] and again.scenes_resumed == [0, 1]
    assert again.crops == first.crops
    assert {p: p.stat().st_mtime_ns for p in first.cache_dir.rglob("*.npy")} == mtimes
    # a run killed in scene 1: no marker, a half-written temporary shard, a damaged shard
    marker_path(first.cache_dir, 1).unlink()
    stale = first.cache_dir / "obj_000002" / ".000001.x1y2.tmp"
    stale.mkdir()
    (stale / "rgb.npy").write_bytes(b"partial")
    damaged = first.cache_dir / "obj_000002" / "000001" / "xyz.npy"
    damaged.write_bytes(damaged.read_bytes()[:100])
    third = run(bop, name)
    assert third.scenes_prepared == [1] and third.scenes_resumed == [0]
    assert not stale.exists()
    assert snapshot(first.cache_dir) == before


def test_a_corrupt_image_is_reported_and_skipped_and_the_rest_kept(tiny_bop, capsys):
    bop, name = tiny_bop
    sdir = bop / name / "train_pbr" / "000000"
    png = sdir / "rgb" / "000001.png"
    png.write_bytes(png.read_bytes()[:500])  # truncated
    mask = sdir / "mask_visib" / "000002_000002.png"  # an occluded instance's (an unoccluded one's are not read)
    mask.write_bytes(b"not a png")
    summary = run(bop, name)
    assert not summary.scenes_failed and summary.scenes_prepared == [0, 1]
    assert [(s["scene_id"], s["im_id"], s["file"]) for s in summary.skipped] == [(0, 1, str(png)), (0, 2, str(mask))]
    assert all(w in s["reason"] for s, w in zip(summary.skipped, ("truncated", "decode")))
    text = summary.format()
    assert str(png) in text and str(mask) in text and "skipped 2 image(s)" in text
    # image 0 of scene 0 and all of scene 1 are kept
    kept = {(r["scene_id"], r["im_id"]) for o in (1, 2) for sh in list_shards(summary.cache_dir, o) for r in sh.records}
    assert (0, 0) in kept and (0, 1) not in kept and (0, 2) not in kept
    assert {im for s, im in kept if s == 1} == {0, 1, 2}
    marker = json.loads(marker_path(summary.cache_dir, 0).read_text())
    assert [s["im_id"] for s in marker["skipped"]] == [1, 2]
    for obj_id in (1, 2):
        check_crops_consistent(summary.cache_dir, obj_id)


def test_output_does_not_depend_on_the_worker_count(tiny_bop, tmp_path):
    bop, name = tiny_bop
    info = Path(name) / "train_pbr" / "000001" / "scene_gt_info.json"
    (bop / info).unlink()  # the workers compute it too
    other = tmp_path / "other"
    shutil.copytree(bop, other)
    one = run(bop, name, workers=1)
    two = run(other, name, workers=2)
    assert one.crops == two.crops and len(one.gt_info_written) == len(two.gt_info_written) == 1
    assert snapshot(one.cache_dir) == snapshot(two.cache_dir)
    assert (bop / info).read_bytes() == (other / info).read_bytes()


def test_objects_settings_and_overwrite(tiny_bop):
    bop, name = tiny_bop
    summary = run(bop, name, objects=(2,), crop_size=64, enlarge=1.2, box_source="bbox_visib", min_visib_fract=0.0)
    assert set(summary.crops) == {2} and not (summary.cache_dir / "obj_000001").exists()
    ds = CropDataset(summary.cache_dir, 2)
    assert ds[0]["image"].shape == (3, 64, 64)
    rec = ds.record(0)
    x, y, w, h = rec["bbox_visib"]
    assert rec["box_xyxy"][2] - rec["box_xyxy"][0] == pytest.approx(max(w, h) * 1.2)
    check_crops_consistent(summary.cache_dir, 2)
    with pytest.raises(ConfigError, match="crop_size: 64 there, 128 now.*--overwrite"):
        run(bop, name, objects=(2,))
    with pytest.raises(ConfigError, match="objects"):
        run(bop, name, objects=(1, 2), crop_size=64, enlarge=1.2, box_source="bbox_visib", min_visib_fract=0.0)
    rebuilt = run(bop, name, overwrite=True)
    assert set(rebuilt.crops) == {1, 2} and rebuilt.scenes_prepared == [0, 1]
    with pytest.raises(ConfigError, match=r"\[7\]"):
        run(bop, name, objects=(7,))


@pytest.mark.parametrize(
    "field, value, match",
    [
        ("crop_size", 4, "crop-size"),
        ("enlarge", 0.5, "enlarge"),
        ("min_visib_fract", 1.5, "min-visib-fract"),
        ("workers", 0, "workers"),
        ("objects", (), "objects"),
        ("name", "a/b", "name"),
    ],
)
def test_config_validation_says_how_to_fix(field, value, match):
    kwargs = {"bop_path": Path("x"), "name": "demo", field: value}
    with pytest.raises(ConfigError, match=match):
        PrepareConfig(**kwargs).validate()


def test_split_resolution(tmp_path):
    (tmp_path / "ds" / "test").mkdir(parents=True)
    with pytest.raises(DatasetError, match="--split"):
        resolve_split(tmp_path / "ds", None)
    (tmp_path / "ds" / "train_real").mkdir()
    assert resolve_split(tmp_path / "ds", None) == "train_real"
    (tmp_path / "ds" / "train_pbr").mkdir()
    assert resolve_split(tmp_path / "ds", None) == "train_pbr"
    assert resolve_split(tmp_path / "ds", "test") == "test"
    with pytest.raises(DatasetError, match="train_pbr"):
        resolve_split(tmp_path / "ds", "val")


def test_missing_dataset_names_the_fix(tmp_path):
    with pytest.raises(DatasetError, match="bopnp synth nope"):
        run(tmp_path, "nope")


def test_prepared_synth_dataset_has_targets_consistent_with_masks(synth_dataset, tmp_path):
    bop, name = synth_dataset
    shutil.copytree(bop / name, tmp_path / name)  # the shared dataset stays untouched
    summary = run(tmp_path, name)  # the default split of a synthesised dataset is found without options
    assert summary.split == "train_pbr" and not summary.skipped and not summary.scenes_failed
    assert summary.gt_info_written == []  # synth writes scene_gt_info.json
    expected = expected_crops(tmp_path / name)
    assert summary.crops == expected and sum(expected.values()) > 0
    n_unoccluded = n_occluded = 0
    for obj_id, n in expected.items():
        if n:
            checked, unoccluded, occluded = check_crops_consistent(summary.cache_dir, obj_id)
            assert checked == n
            n_unoccluded += unoccluded
            n_occluded += occluded
    assert n_unoccluded >= 3 and n_occluded >= 3  # both checks of the visible mask ran


@pytest.mark.shared_data
def test_real_lmo_images_get_gt_info_and_crops(lmo_dir, tmp_path):
    """The two real LM-O test images: gt_info computed with the real depth (image 3) or the rendered one
    (image 894, no depth), crops of the real photos with consistent targets, discrete symmetry pools."""
    ds = tmp_path / "lmo"
    shutil.copytree(lmo_dir / "models", ds / "models")
    shutil.copy(lmo_dir / "camera.json", ds / "camera.json")
    src, dst = lmo_dir / "test" / "000002", ds / "test" / "000002"
    images = sorted(int(p.stem) for p in (src / "rgb").glob("*.png"))
    assert images == [3, 894]
    gt, cams = io.load_scene_gt(src / "scene_gt.json"), io.load_scene_camera(src / "scene_camera.json")
    io.save_scene_gt(dst / "scene_gt.json", {i: gt[i] for i in images})
    io.save_scene_camera(dst / "scene_camera.json", {i: cams[i] for i in images})
    shutil.copytree(src / "rgb", dst / "rgb")
    shutil.copytree(src / "depth", dst / "depth")
    summary = run(tmp_path, "lmo", split="test")
    assert summary.gt_info_written == [dst / "scene_gt_info.json"] and not summary.skipped
    assert summary.crops == expected_crops_of(ds, "test") and sum(summary.crops.values()) >= 8
    infos = io.load_models_info(ds / "models" / "models_info.json")
    for obj_id, n in summary.crops.items():
        meta = json.loads((summary.cache_dir / f"obj_{obj_id:06d}" / "meta.json").read_text())
        assert len(meta["symmetry_pool"]) == 1 + len(infos[obj_id].symmetries_discrete)
        if n:
            check_crops_consistent(summary.cache_dir, obj_id)


def expected_crops_of(dataset_dir: Path, split: str, min_visib_fract: float = 0.1) -> dict[int, int]:
    from bopnp.bop.dataset import BopDataset

    ds = BopDataset(dataset_dir, split)
    counts = {o: 0 for o in ds.obj_ids}
    for inst in ds.instances():
        counts[inst.obj_id] += inst.gt_info.visib_fract >= min_visib_fract and inst.gt_info.px_count_visib > 0
    return counts


def test_a_broken_scene_fails_alone_and_is_redone_once_fixed(tiny_bop):
    bop, name = tiny_bop
    gt = bop / name / "train_pbr" / "000001" / "scene_gt.json"
    good = gt.read_bytes()
    gt.write_text("{ not json")
    summary = run(bop, name)
    assert summary.scenes_prepared == [0] and [f["scene_id"] for f in summary.scenes_failed] == [1]
    assert str(gt) in summary.scenes_failed[0]["reason"] and "run the same command again" in summary.format()
    assert not marker_path(summary.cache_dir, 1).exists()
    gt.write_bytes(good)
    fixed = run(bop, name)
    assert fixed.scenes_prepared == [1] and fixed.scenes_resumed == [0] and not fixed.scenes_failed
    assert fixed.crops == expected_crops(bop / name)


def test_visible_crop_mask_is_the_full_crop_minus_the_occlusion():
    from bopnp.data.crop_geometry import warp_crop
    from bopnp.data.prepare import visible_in_crop

    # a disc of radius 21.3 px in a 120x100 image; an occluder in front of its left part (u < 52)
    H_im, W_im, cx, cy, R, edge_u = 100, 120, 60.4, 47.7, 21.3, 52
    v, u = np.mgrid[0:H_im, 0:W_im]
    full_image = (u - cx) ** 2 + (v - cy) ** 2 <= R**2
    visib_image = full_image & (u >= edge_u)
    box, S = np.array([30.2, 17.9, 91.1, 78.8]), 128  # upsampled 2.1x, as small objects are
    # the full mask rendered at the crop's own pixel centres
    b, a = np.mgrid[0:S, 0:S]
    x, y = box[0] + a * (box[2] - box[0]) / S, box[1] + b * (box[3] - box[1]) / S
    full_crop = (x - cx) ** 2 + (y - cy) ** 2 <= R**2

    visib = visible_in_crop(full_crop, visib_image, full_image, box, S)
    assert not (visib & ~full_crop).any()
    clear, hidden = x >= edge_u + 0.5, x < edge_u - 0.5  # one image pixel away from the occluder's edge
    assert np.array_equal(visib[clear], full_crop[clear])  # no rim where nothing occludes
    assert not visib[hidden].any()
    # resampling the visible mask itself leaves a rim along the whole unoccluded silhouette
    naive = full_crop & warp_crop(visib_image, box, S, nearest=True)
    assert (naive[clear] != full_crop[clear]).sum() > 20
    # without the image's full mask: the resampled visible mask
    assert np.array_equal(visible_in_crop(full_crop, visib_image, None, box, S), naive)


def test_instances_with_impossible_boxes_or_an_empty_visible_mask_get_no_crop_and_are_counted(tiny_bop):
    bop, name = tiny_bop
    sdir = bop / name / "train_pbr" / "000000"
    info = json.loads((sdir / "scene_gt_info.json").read_text())
    occluded = next(
        (int(im), gt_id)
        for im, lst in info.items()
        for gt_id, e in enumerate(lst)
        if 0.1 <= e["visib_fract"] < 1.0 and int(im) != 0
    )
    info["0"][0]["bbox_obj"] = [-50 * W, 10, 40, 40]  # far outside the 3x canvas around the image
    info["0"][1]["bbox_visib"] = [10, 10, -30, 20]  # negative width
    (sdir / "scene_gt_info.json").write_text(json.dumps(info))
    io.save_mask(sdir / "mask_visib" / f"{occluded[0]:06d}_{occluded[1]:06d}.png", np.zeros((H, W), bool))
    summary = run(bop, name)
    assert not summary.scenes_failed and not summary.skipped
    dropped = {(s["scene_id"], s["im_id"], s["gt_id"]): s["reason"] for s in summary.instances_skipped}
    assert dropped.keys() == {(0, 0, 0), (0, 0, 1), (0, *occluded)}, dropped
    assert "bbox_obj" in dropped[(0, 0, 0)] and "does not fit the 3x canvas" in dropped[(0, 0, 0)]
    assert "bbox_visib" in dropped[(0, 0, 1)] and "negative width" in dropped[(0, 0, 1)]
    assert dropped[(0, *occluded)] == "the visible mask is empty in the crop"
    kept = {
        (r["scene_id"], r["im_id"], r["gt_id"])
        for o in (1, 2)
        for s in list_shards(summary.cache_dir, o)
        for r in s.records
    }
    assert not kept & dropped.keys()
    assert (0, 0, 2) in kept  # the image's other instance keeps its crop
    assert "skipped 3 instance(s) without a usable crop" in summary.format()
    again = run(bop, name)  # resumed: the count comes from the markers
    assert len(again.instances_skipped) == 3 and not again.scenes_prepared

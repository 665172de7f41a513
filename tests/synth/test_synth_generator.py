"""Synthetic datasets: every written file loads back and agrees with the others; determinism; resume."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import cv2
import numpy as np
import pytest

from bopnp.bop.io import (
    load_camera,
    load_depth,
    load_image,
    load_mask,
    load_models_info,
    load_ply,
    load_scene_camera,
    load_scene_gt,
    load_scene_gt_info,
    load_targets,
    mask_bbox_xywh,
    save_models_info,
    save_ply,
)
from bopnp.errors import ConfigError
from bopnp.synth.generator import CONFIG_FILE, ImageMaker, SynthConfig, split_layout, synthesize
from bopnp.synth.procedural import dataset_objects


@pytest.fixture(scope="module")
def tiny_opts(synth_dataset) -> dict:
    """The options the shared tiny dataset was made with (train_images, test_images, images_per_scene, seed)."""
    bop_path, name = synth_dataset
    made = json.loads((bop_path / name / CONFIG_FILE).read_text())
    return {k: made[k] for k in ("train_images", "test_images", "images_per_scene", "seed")}


#: the options the shared tiny dataset leaves at their defaults (image size, intrinsics, depth scale, ...)
DEFAULT = SynthConfig()
W, H = DEFAULT.width, DEFAULT.height


def tree_digest(root: Path) -> dict[str, str]:
    """relative path -> sha1 of every file under root."""
    return {
        str(p.relative_to(root)): hashlib.sha1(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


def tiny(tmp_path: Path, name: str = "t", **kw) -> SynthConfig:
    opts = dict(
        name=name, bop_path=tmp_path, train_images=3, test_images=2, images_per_scene=2, workers=1, progress=False
    )
    opts.update(kw)
    return SynthConfig(**opts)


def scenes(root: Path, split: str) -> list[Path]:
    return sorted(p for p in (root / split).iterdir() if p.is_dir()) if (root / split).is_dir() else []


# ------------------------------------------------------------------------------------ the written files
def test_layout_and_counts(synth_dataset, tiny_opts):
    bop_path, name = synth_dataset
    root = bop_path / name
    for f in (
        "camera.json",
        "models/models_info.json",
        "models_eval/models_info.json",
        "test_targets_bop19.json",
        CONFIG_FILE,
    ):
        assert (root / f).is_file(), f
    layout = {
        "train_pbr": split_layout(tiny_opts["train_images"], tiny_opts["images_per_scene"]),
        "test": split_layout(tiny_opts["test_images"], tiny_opts["images_per_scene"]),
    }
    assert len(layout["train_pbr"]) >= 2  # the fixture exercises several scenes
    assert split_layout(5, 2) == {0: [0, 1], 1: [0, 1], 2: [0]}
    for split, expected in layout.items():
        assert [int(s.name) for s in scenes(root, split)] == sorted(expected)
        for scene_dir in scenes(root, split):
            ids = expected[int(scene_dir.name)]
            for f in ("scene_gt.json", "scene_gt_info.json", "scene_camera.json"):
                assert sorted(int(k) for k in json.loads((scene_dir / f).read_text())) == ids
            ext = "jpg" if split == "train_pbr" else "png"
            assert sorted(p.name for p in (scene_dir / "rgb").iterdir()) == [f"{i:06d}.{ext}" for i in ids]
            assert not (scene_dir / ".partial").exists()


def test_models_load_back_with_their_symmetries(synth_dataset):
    bop_path, name = synth_dataset
    root = bop_path / name
    infos = load_models_info(root / "models" / "models_info.json")
    objs = dataset_objects()
    assert sorted(infos) == list(range(1, len(objs) + 1))
    for obj_id, obj in enumerate(objs, start=1):
        for sub in ("models", "models_eval"):
            mesh = load_ply(root / sub / f"obj_{obj_id:06d}.ply")
            np.testing.assert_array_equal(mesh.vertices_mm, obj.mesh.vertices_mm)
            np.testing.assert_array_equal(mesh.faces, obj.mesh.faces)
            np.testing.assert_array_equal(mesh.colors, obj.mesh.colors)
            np.testing.assert_allclose(mesh.normals, obj.mesh.normals, atol=1e-6)
        info = infos[obj_id]
        v = obj.mesh.vertices_mm.astype(np.float64)
        np.testing.assert_allclose(info.min_mm, v.min(0), atol=1e-4)
        np.testing.assert_allclose(info.size_mm, np.ptp(v, 0), atol=1e-4)
        assert len(info.symmetries_discrete) == len(obj.symmetries_discrete)
        for got, want in zip(info.symmetries_discrete, obj.symmetries_discrete):
            np.testing.assert_allclose(got, want, atol=1e-12)
        assert len(info.symmetries_continuous) == len(obj.symmetries_continuous)
    kinds = [(len(i.symmetries_discrete) > 0, len(i.symmetries_continuous) > 0) for i in infos.values()]
    assert (False, False) in kinds and (True, False) in kinds and (False, True) in kinds


def test_camera_and_scene_cameras(synth_dataset):
    bop_path, name = synth_dataset
    root = bop_path / name
    cam = load_camera(root / "camera.json")
    assert (cam.width, cam.height) == (W, H)
    np.testing.assert_allclose(cam.K, DEFAULT.K)
    for split in ("train_pbr", "test"):
        for scene_dir in scenes(root, split):
            for im_id, c in load_scene_camera(scene_dir / "scene_camera.json").items():
                np.testing.assert_allclose(c.K, cam.K)
                assert c.depth_scale == cam.depth_scale == DEFAULT.depth_scale
                assert load_image(next((scene_dir / "rgb").glob(f"{im_id:06d}.*"))).shape == (H, W, 3)


def _each_instance(root: Path):
    """(split, scene_dir, im_id, gt_id, GtPose, GtInfo, ImageCamera) of every annotated instance."""
    for split in ("train_pbr", "test"):
        for scene_dir in scenes(root, split):
            gt = load_scene_gt(scene_dir / "scene_gt.json")
            info = load_scene_gt_info(scene_dir / "scene_gt_info.json")
            cams = load_scene_camera(scene_dir / "scene_camera.json")
            for im_id in gt:
                assert len(gt[im_id]) == len(info[im_id]) >= 1
                for gt_id, (pose, vis) in enumerate(zip(gt[im_id], info[im_id])):
                    yield split, scene_dir, im_id, gt_id, pose, vis, cams[im_id]


def test_masks_agree_with_scene_gt_info(synth_dataset, tiny_opts):
    bop_path, name = synth_dataset
    n = 0
    for _, scene_dir, im_id, gt_id, _, vis, _ in _each_instance(bop_path / name):
        visib = load_mask(scene_dir / "mask_visib" / f"{im_id:06d}_{gt_id:06d}.png")
        full = load_mask(scene_dir / "mask" / f"{im_id:06d}_{gt_id:06d}.png")
        assert visib.shape == full.shape == (H, W)
        assert not (visib & ~full).any()  # visible part of the silhouette
        assert vis.px_count_visib == visib.sum()
        np.testing.assert_array_equal(vis.bbox_visib, mask_bbox_xywh(visib))
        assert vis.px_count_all >= full.sum()  # the silhouette may run outside the image
        if vis.px_count_visib > 0:
            x, y, w, h = vis.bbox_obj
            inside = x >= 0 and y >= 0 and x + w < W and y + h < H
            if inside:
                assert vis.px_count_all == full.sum()
                np.testing.assert_array_equal(vis.bbox_obj, mask_bbox_xywh(full))
        assert vis.visib_fract == pytest.approx(vis.px_count_visib / max(vis.px_count_all, 1))
        assert vis.px_count_valid == full.sum()  # synthetic depth is valid on every object pixel
        n += 1
    assert n >= tiny_opts["train_images"] + tiny_opts["test_images"]


def test_poses_project_onto_the_masks(synth_dataset):
    """Independent of the renderer: the model vertices projected with scene_gt and K fall on the full mask."""
    bop_path, name = synth_dataset
    root = bop_path / name
    meshes = {
        i: load_ply(root / "models" / f"obj_{i:06d}.ply")
        for i in load_models_info(root / "models" / "models_info.json")
    }
    for _, scene_dir, im_id, gt_id, pose, _, cam in _each_instance(root):
        x_c = meshes[pose.obj_id].vertices_mm.astype(np.float64) @ pose.R_m2c.T + pose.t_m2c
        assert (x_c[:, 2] > 0).all()
        uv = x_c @ cam.K.T
        uv = np.round(uv[:, :2] / uv[:, 2:]).astype(int)
        inside = (uv[:, 0] >= 0) & (uv[:, 0] < W) & (uv[:, 1] >= 0) & (uv[:, 1] < H)
        full = load_mask(scene_dir / "mask" / f"{im_id:06d}_{gt_id:06d}.png")
        grown = cv2.dilate(full.astype(np.uint8), np.ones((3, 3), np.uint8)) > 0
        hit = grown[uv[inside, 1], uv[inside, 0]]
        assert hit.mean() > 0.99, f"{scene_dir} im {im_id} gt {gt_id}: {hit.mean():.3f} of the vertices off the mask"
        # and the silhouette does not extend far beyond the projected vertices
        ys, xs = np.nonzero(full)
        if len(xs):
            assert xs.min() >= uv[inside, 0].min() - 2 and xs.max() <= uv[inside, 0].max() + 2


def test_depth_matches_a_fresh_render_of_the_annotated_poses(synth_dataset):
    from bopnp.render import get_renderer

    bop_path, name = synth_dataset
    root = bop_path / name
    renderer = get_renderer(W, H)
    for i in load_models_info(root / "models" / "models_info.json"):
        renderer.add_model(i, load_ply(root / "models" / f"obj_{i:06d}.ply"))
    checked = 0
    for _, scene_dir, im_id, gt_id, pose, vis, cam in _each_instance(root):
        if vis.px_count_visib < 50:
            continue
        depth = load_depth(scene_dir / "depth" / f"{im_id:06d}.png", cam.depth_scale)
        alone = renderer.render_depths(cam.K, [(pose.obj_id, pose.R_m2c, pose.t_m2c)])[0]
        visib = load_mask(scene_dir / "mask_visib" / f"{im_id:06d}_{gt_id:06d}.png")
        diff = np.abs(depth[visib] - alone[visib])
        assert np.median(diff) < cam.depth_scale  # quantisation only
        assert np.quantile(diff, 0.95) < 1.0
        checked += 1
    assert checked >= 5


def test_rgb_shows_objects_over_a_background(synth_dataset):
    bop_path, name = synth_dataset
    scene_dir = bop_path / name / "test" / "000000"
    rgb = load_image(scene_dir / "rgb" / "000000.png")
    depth = load_depth(scene_dir / "depth" / "000000.png", DEFAULT.depth_scale)
    bg = depth == 0
    assert bg.mean() > 0.3 and rgb[bg].std() > 5  # a background, not flat black
    assert rgb.reshape(-1, 3).std(0).mean() > 20


def test_targets_name_exactly_the_visible_instances(synth_dataset, tiny_opts):
    bop_path, name = synth_dataset
    root = bop_path / name
    targets = load_targets(root / "test_targets_bop19.json")
    expected: dict[tuple[int, int, int], int] = {}
    for split, scene_dir, im_id, gt_id, pose, vis, _ in _each_instance(root):
        if split == "test" and vis.visib_fract >= DEFAULT.min_visib_fract:
            key = (int(scene_dir.name), im_id, pose.obj_id)
            expected[key] = expected.get(key, 0) + 1
            assert load_mask(scene_dir / "mask_visib" / f"{im_id:06d}_{gt_id:06d}.png").sum() > 0
    assert {(t.scene_id, t.im_id, t.obj_id): t.inst_count for t in targets} == expected
    assert len(targets) == len(expected) > 0
    assert {t.im_id for t in targets} == set(range(tiny_opts["test_images"]))  # every test image has a target


# ------------------------------------------------------------------------------------------- determinism
def test_same_seed_same_bytes_and_other_seed_other_images(tmp_path, synth_dataset, tiny_opts):
    bop_path, name = synth_dataset
    cfg = SynthConfig(name="again", bop_path=tmp_path, workers=1, progress=False, **tiny_opts)
    synthesize(cfg)
    assert tree_digest(tmp_path / "again") == tree_digest(bop_path / name)
    synthesize(
        SynthConfig(
            name="other", bop_path=tmp_path, workers=1, progress=False, **{**tiny_opts, "seed": tiny_opts["seed"] + 1}
        )
    )
    a = load_image(tmp_path / "again" / "test" / "000000" / "rgb" / "000000.png")
    b = load_image(tmp_path / "other" / "test" / "000000" / "rgb" / "000000.png")
    assert np.abs(a.astype(int) - b).mean() > 10


@pytest.mark.slow
def test_workers_do_not_change_the_output(tmp_path):
    synthesize(tiny(tmp_path, "w1", workers=1, train_images=4, test_images=2))
    synthesize(tiny(tmp_path, "w2", workers=2, train_images=4, test_images=2))
    assert tree_digest(tmp_path / "w1") == tree_digest(tmp_path / "w2")


def test_images_do_not_depend_on_the_scene_size_of_other_images(tmp_path):
    """An image is a function of (seed, split, scene, im_id): adding images leaves the first ones unchanged."""
    synthesize(tiny(tmp_path, "small", train_images=2, test_images=1))
    synthesize(tiny(tmp_path, "large", train_images=3, test_images=2))
    small, large = tree_digest(tmp_path / "small"), tree_digest(tmp_path / "large")
    for path in small:
        if "/rgb/" in path or "/depth/" in path or "/mask" in path:
            assert small[path] == large[path], path


# ---------------------------------------------------------------------------------- overwrite and resume
def test_existing_dataset_is_never_overwritten_without_a_flag(tmp_path):
    cfg = tiny(tmp_path, train_images=1, test_images=0)
    synthesize(cfg)
    before = tree_digest(tmp_path / "t")
    with pytest.raises(ConfigError, match="--resume.*--overwrite"):
        synthesize(cfg)
    assert tree_digest(tmp_path / "t") == before


def test_overwrite_replaces_and_refuses_foreign_folders(tmp_path):
    synthesize(tiny(tmp_path, train_images=1, test_images=0))
    stray = tmp_path / "t" / "train_pbr" / "000000" / "rgb" / "999999.jpg"
    stray.write_bytes(b"old")
    synthesize(tiny(tmp_path, train_images=1, test_images=0, mode="overwrite"))
    assert not stray.exists()
    foreign = tmp_path / "real"
    (foreign / "models").mkdir(parents=True)
    (foreign / "models" / "models_info.json").write_text("{}")
    with pytest.raises(ConfigError, match="not made by `bopnp synth`"):
        synthesize(tiny(tmp_path, "real", mode="overwrite"))
    assert (foreign / "models" / "models_info.json").read_text() == "{}"


@pytest.mark.slow
def test_resume_finishes_an_interrupted_run_with_identical_files(tmp_path, monkeypatch):
    reference = tiny(tmp_path, "ref", train_images=5, test_images=3)
    synthesize(reference)

    calls = {"n": 0}
    real_make = ImageMaker.make

    def make_then_stop(self, *args):
        calls["n"] += 1
        if calls["n"] == 4:
            raise KeyboardInterrupt
        return real_make(self, *args)

    monkeypatch.setattr(ImageMaker, "make", make_then_stop)
    cfg = tiny(tmp_path, "cut", train_images=5, test_images=3)
    with pytest.raises(KeyboardInterrupt):
        synthesize(cfg)
    monkeypatch.setattr(ImageMaker, "make", real_make)
    # scene 0 (2 images) finished, image 2 of scene 1 recorded in .partial, nothing else
    assert (tmp_path / "cut" / "train_pbr" / "000000" / "scene_gt.json").is_file()
    assert (tmp_path / "cut" / "train_pbr" / "000001" / ".partial" / "000000.json").is_file()

    # what a kill between writing and renaming a file leaves (write_bytes_atomic's temporary names)
    strays = [
        tmp_path / "cut" / "train_pbr" / "000001" / "mask" / ".000000_000001.png.k3x9q2.tmp",
        tmp_path / "cut" / "train_pbr" / "000000" / "mask_visib" / ".000001_000000.png.a8b7c6.tmp",
    ]
    for stray in strays:
        stray.write_bytes(b"\x89PNG half")

    summary = synthesize(tiny(tmp_path, "cut", train_images=5, test_images=3, mode="resume"))
    assert not any(p.exists() for p in strays)
    assert summary.images_skipped == {"train_pbr": 3, "test": 0}
    assert summary.images_rendered == {"train_pbr": 2, "test": 3}
    assert tree_digest(tmp_path / "cut") == tree_digest(tmp_path / "ref")

    again = synthesize(tiny(tmp_path, "cut", train_images=5, test_images=3, mode="resume"))
    assert sum(again.images_rendered.values()) == 0 and sum(again.images_skipped.values()) == 8


def test_resume_rerenders_an_image_whose_record_is_corrupt(tmp_path, monkeypatch, caplog):
    cfg = tiny(tmp_path, train_images=2, test_images=0)
    calls = {"n": 0}
    real_make = ImageMaker.make

    def make_then_stop(self, *args):
        calls["n"] += 1
        if calls["n"] == 2:
            raise KeyboardInterrupt
        return real_make(self, *args)

    monkeypatch.setattr(ImageMaker, "make", make_then_stop)
    with pytest.raises(KeyboardInterrupt):
        synthesize(cfg)
    monkeypatch.setattr(ImageMaker, "make", real_make)
    record = tmp_path / "t" / "train_pbr" / "000000" / ".partial" / "000000.json"
    record.write_text("{not json")
    summary = synthesize(tiny(tmp_path, train_images=2, test_images=0, mode="resume"))
    assert summary.images_rendered["train_pbr"] == 2
    assert "unreadable record" in caplog.text and "000000.json" in caplog.text
    assert sorted(load_scene_gt(tmp_path / "t" / "train_pbr" / "000000" / "scene_gt.json")) == [0, 1]


def test_resume_with_other_options_names_them(tmp_path):
    synthesize(tiny(tmp_path, train_images=1, test_images=0))
    with pytest.raises(ConfigError, match=r"seed: 0 before, 5 now"):
        synthesize(tiny(tmp_path, train_images=1, test_images=0, seed=5, mode="resume"))


def test_resume_of_a_missing_dataset_starts_it(tmp_path):
    summary = synthesize(tiny(tmp_path, train_images=1, test_images=0, mode="resume"))
    assert summary.images_rendered["train_pbr"] == 1


# ------------------------------------------------------------------------------------------- bad options
@pytest.mark.parametrize(
    "kw, words",
    [
        ({"train_images": -1}, "train_images"),
        ({"train_images": 0, "test_images": 0}, "both 0"),
        ({"images_per_scene": 1001}, "1 to 1000"),
        ({"workers": -2}, "workers"),
        ({"seed": -1}, "seed"),
        ({"name": "a/b"}, "plain folder name"),
        ({"depth_range_mm": (800.0, 500.0)}, "near <= far"),
        ({"depth_scale": 0.01}, "depth_scale >= "),
        ({"objects_per_image": (0, 3)}, "objects_per_image"),
        ({"min_visib_fract": 1.5}, "min_visib_fract"),
        ({"poses": "upside-down"}, "use .tabletop. or .uniform."),
        ({"intrinsics": (-1.0, 500.0, 320.0, 240.0)}, "fx and fy must be positive"),
    ],
)
def test_bad_options_say_how_to_fix_them(tmp_path, kw, words):
    with pytest.raises(ConfigError, match=words):
        tiny(tmp_path, **kw).validate()


def test_all_bad_options_are_reported_at_once(tmp_path):
    with pytest.raises(ConfigError) as err:
        tiny(tmp_path, train_images=-1, images_per_scene=0, workers=-1).validate()
    assert str(err.value).count("\n  - ") == 3


def test_models_dir_must_hold_models_info_and_not_be_the_output(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(ConfigError, match="no models_info.json"):
        tiny(tmp_path, models_dir=tmp_path / "empty").validate()
    inside = tmp_path / "t" / "models"
    inside.mkdir(parents=True)
    (inside / "models_info.json").write_text("{}")
    with pytest.raises(ConfigError, match="inside the output"):
        tiny(tmp_path, models_dir=inside).validate()


# ------------------------------------------------------------------------------------------ given models
def _write_models_dir(folder: Path) -> dict[int, object]:
    """Two procedural objects saved as a BOP models folder with ids 7 and 12 (ascii ply)."""
    from bopnp.synth.procedural import model_info

    objs = {7: dataset_objects()[2], 12: dataset_objects()[0]}
    for obj_id, obj in objs.items():
        save_ply(folder / f"obj_{obj_id:06d}.ply", obj.mesh)
    infos = {obj_id: model_info(obj_id, obj.mesh, obj.symmetries_discrete) for obj_id, obj in objs.items()}
    save_models_info(folder / "models_info.json", infos)
    return objs


def test_given_models_are_copied_and_rendered(tmp_path):
    src = tmp_path / "src" / "models"
    objs = _write_models_dir(src)
    synthesize(tiny(tmp_path, "given", models_dir=src, train_images=2, test_images=1, distractors_per_image=(0, 0)))
    root = tmp_path / "given"
    for f in src.iterdir():
        assert (root / "models" / f.name).read_bytes() == f.read_bytes()
        assert (root / "models_eval" / f.name).read_bytes() == f.read_bytes()  # no models_eval beside: same files
    seen = set()
    for _, scene_dir, im_id, gt_id, pose, vis, _ in _each_instance(root):
        seen.add(pose.obj_id)
        assert load_mask(scene_dir / "mask_visib" / f"{im_id:06d}_{gt_id:06d}.png").sum() == vis.px_count_visib
    assert seen == set(objs)


@pytest.mark.shared_data
def test_real_lmo_models_render(tmp_path, lmo_dir):
    synthesize(tiny(tmp_path, "lmo_synth", models_dir=lmo_dir / "models", train_images=2, test_images=0))
    root = tmp_path / "lmo_synth"
    assert (root / "models_eval" / "obj_000001.ply").read_bytes() == (
        lmo_dir / "models_eval" / "obj_000001.ply"
    ).read_bytes()
    infos = load_models_info(root / "models" / "models_info.json")
    assert len(infos[10].symmetries_discrete) == 1  # eggbox keeps its symmetry
    ids = set()
    for _, _scene_dir, _im_id, _gt_id, pose, vis, _ in _each_instance(root):
        ids.add(pose.obj_id)
        assert pose.obj_id in infos
        assert vis.px_count_all > 100  # LM-O-sized objects at 0.45 to 1.3 m: tens of pixels across at least
    assert len(ids) >= 3


@pytest.mark.slow
def test_a_script_without_main_guard_fails_fast_instead_of_hanging(tmp_path):
    """Spawned workers re-run an unguarded script: the child must refuse (touching nothing) and the parent
    must report the dead worker, not block on the pipe to it."""
    import subprocess
    import sys

    script = tmp_path / "unguarded.py"
    script.write_text(
        "from pathlib import Path\n"
        "from bopnp.synth.generator import SynthConfig, synthesize\n"
        f"synthesize(SynthConfig(name='ug', bop_path=Path({str(tmp_path)!r}), "
        "train_images=3, test_images=0, workers=2, progress=False))\n"
    )
    proc = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=120)
    assert proc.returncode != 0
    assert "if __name__ == '__main__':" in proc.stderr
    assert "a worker process died" in proc.stderr

"""Corrupt datasets end to end: for each kind of bad input, ``bopnp check`` reports it, and ``eval``,
``prepare`` and ``viz`` either stop with a message naming the file (exit non-zero, no traceback) or give
the correct result; never a different score with exit 0.

Every test corrupts a fresh copy of the session's tiny synthetic dataset (``synth_dataset``: models/,
models_eval/, test/000000 with png images and 16-bit depth, train_pbr/ with jpg images)."""

from __future__ import annotations

import json
import math
import shutil
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from bopnp.cli.main import cli

TEST_SCENE = "test/000000"
PBR_SCENE = "train_pbr/000000"


class Copy:
    """A writable copy of the tiny dataset and a results CSV holding its GT poses (scores 1.0)."""

    def __init__(self, template: tuple[Path, str], tmp_path: Path):
        src_bop, name = template
        self.bop = tmp_path / "bop"
        shutil.copytree(src_bop / name, self.bop / name, ignore=shutil.ignore_patterns("crops"))
        self.name = name
        self.root = self.bop / name
        self.csv = tmp_path / f"gt_{name}-test.csv"
        self.tmp = tmp_path
        self._write_gt_csv()

    def _write_gt_csv(self) -> None:
        from bopnp.bop import io
        from bopnp.bop.records import ResultRow
        from bopnp.bop.results import format_results_csv

        ests = []
        for t in io.load_targets(self.root / "test_targets_bop19.json"):
            for g in io.load_scene_gt(self.root / "test" / f"{t.scene_id:06d}" / "scene_gt.json")[t.im_id]:
                if g.obj_id == t.obj_id:
                    ests.append(ResultRow(t.scene_id, t.im_id, g.obj_id, 1.0, g.R_m2c, g.t_m2c, 0.5))
        self.csv.write_text(format_results_csv(ests))

    def json(self, rel: str):
        return json.loads((self.root / rel).read_text())

    def put_json(self, rel: str, content) -> None:
        (self.root / rel).write_text(json.dumps(content))

    def invoke(self, *args: str):
        return CliRunner().invoke(cli, [*args], catch_exceptions=False)

    def check(self, *args: str):
        return self.invoke("check", self.name, "--bop-path", str(self.bop), "--no-progress", *args)

    def eval(self):
        out = self.tmp / "eval_out"
        result = self.invoke(
            "eval", str(self.csv), "--bop-path", str(self.bop), "--out", str(out), "--device", "cpu", "-q"
        )
        scores = json.loads((out / "scores_bop19.json").read_text()) if result.exit_code == 0 else None
        return result, scores

    def prepare(self, *args: str):
        return self.invoke("prepare", self.name, "--bop-path", str(self.bop), "--workers", "1", "--no-progress", *args)

    @property
    def cache(self) -> Path:
        return self.root / "crops" / "train_pbr"


@pytest.fixture
def ds(synth_dataset, tmp_path) -> Copy:
    return Copy(synth_dataset, tmp_path)


def problems(result) -> list[str]:
    return [ln for ln in result.output.splitlines() if ln.startswith("problem: ")]


def assert_reported(result, *needles: str) -> None:
    """``check`` found a problem line holding every needle, and exited 2."""
    assert result.exit_code == 2, result.output
    lines = problems(result)
    assert any(all(n in ln for n in needles) for ln in lines), (needles, result.output)


def assert_refused(result, *needles: str) -> None:
    """The command stopped with a typed error: exit non-zero, the message holds every needle, no traceback."""
    assert result.exit_code not in (0, None), result.output
    assert "Traceback" not in result.output
    assert "error: " in result.output, result.output
    for n in needles:
        assert n in result.output, (n, result.output)


def assert_scene_failed(ds: Copy, result, scene_id: int, *needles: str) -> None:
    """``prepare`` reported the scene as failed (exit 2, the reason holds every needle, no traceback) and
    wrote no marker for it: it is redone once fixed; the other scenes were prepared."""
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output
    start = result.output.find(f"scene {scene_id} failed: ")
    assert start >= 0, result.output
    reason = result.output[start:].split("\nscene ")[0]  # the reason and its problem lines
    assert all(n in reason for n in needles), (needles, result.output)
    assert not (ds.cache / "scenes" / f"{scene_id:06d}.json").exists()
    assert (ds.cache / "scenes" / f"{1 - scene_id:06d}.json").is_file()


def assert_eval_correct_or_refused(result, scores, *needles: str) -> None:
    if result.exit_code == 0:
        assert scores["bop19_average_recall"] == pytest.approx(1.0, abs=0.01), result.output
    else:
        assert_refused(result, *needles)


# ----------------------------------------------------------------------------- 1. models_info.json

MODELS_INFO_DEFECTS = {
    "truncated": lambda text, info: text[: len(text) // 2],
    "garbage": lambda text, info: "\x00\x07 not json at all",
    "object missing": lambda text, info: json.dumps({k: v for k, v in info.items() if k != "1"}),
    "diameter missing": lambda text, info: json.dumps(
        {**info, "1": {k: v for k, v in info["1"].items() if k != "diameter"}}
    ),
    "negative diameter": lambda text, info: json.dumps({**info, "1": {**info["1"], "diameter": -5.0}}),
    "NaN diameter": lambda text, info: json.dumps({**info, "1": {**info["1"], "diameter": math.nan}}),
    "1 mm diameter": lambda text, info: json.dumps({**info, "1": {**info["1"], "diameter": 1.0}}),
}


@pytest.mark.parametrize("defect", sorted(MODELS_INFO_DEFECTS))
def test_models_eval_info_defects_are_checked_and_stop_eval(ds, defect):
    rel = "models_eval/models_info.json"
    text = (ds.root / rel).read_text()
    (ds.root / rel).write_text(MODELS_INFO_DEFECTS[defect](text, json.loads(text)))
    assert_reported(ds.check("--models-only"), rel)
    result, _ = ds.eval()
    assert_refused(result, rel)


def test_models_eval_info_missing_is_checked_and_eval_says_what_it_used(ds):
    (ds.root / "models_eval" / "models_info.json").unlink()
    assert_reported(ds.check("--models-only"), "models_eval/models_info.json", "missing")
    result, scores = ds.eval()  # falls back to models/, the same meshes here, and says so
    assert_eval_correct_or_refused(result, scores, "models_info.json")
    if result.exit_code == 0:
        assert "errors use the meshes of" in result.output


def test_tiny_diameter_in_models_info_stops_prepare_before_writing(ds):
    info = ds.json("models/models_info.json")
    info["2"]["diameter"] = 1.0
    ds.put_json("models/models_info.json", info)
    assert_reported(ds.check("--models-only"), "models/models_info.json", "['2'].diameter", "below the longest side")
    assert_refused(ds.prepare(), "models/models_info.json", "['2'].diameter")
    assert not ds.cache.exists()


# ----------------------------------------------------------------------------- 2. mesh content


def _nan_vertex(path: Path, row: int = 5) -> None:
    from bopnp.bop.ply import load_ply, save_ply

    mesh = load_ply(path)
    mesh.vertices_mm[row, 1] = np.nan
    save_ply(path, mesh, binary=True)


def test_nan_vertex_in_eval_model_is_checked_and_stops_eval(ds):
    _nan_vertex(ds.root / "models_eval" / "obj_000001.ply")
    assert_reported(ds.check("--models-only"), "models_eval/obj_000001.ply", "element 'vertex' row 5", "'y'")
    result, _ = ds.eval()
    assert_refused(result, "obj_000001.ply", "row 5")


def test_nan_vertex_in_model_stops_prepare_before_writing(ds):
    _nan_vertex(ds.root / "models" / "obj_000003.ply", row=0)
    assert_reported(ds.check("--models-only"), "models/obj_000003.ply", "row 0")
    assert_refused(ds.prepare(), "obj_000003.ply", "row 0")
    assert not ds.cache.exists()  # not even cache.json


def test_non_numeric_token_in_ascii_ply_is_checked(ds):
    from bopnp.bop.ply import load_ply, save_ply

    path = ds.root / "models" / "obj_000002.ply"
    save_ply(path, load_ply(path), binary=False)
    lines = path.read_text().splitlines()
    first = lines.index("end_header") + 1
    lines[first + 3] = lines[first + 3].replace(" ", " abc ", 1)
    lines[first + 3] = " ".join(lines[first + 3].split()[:-1])  # keep the row's length
    path.write_text("\n".join(lines) + "\n")
    assert_reported(ds.check("--models-only"), "models/obj_000002.ply", "row 3", "'abc', not a number")
    assert_refused(ds.prepare(), "obj_000002.ply", "row 3")


def test_eval_model_without_vertices_is_checked_and_stops_eval(ds):
    from bopnp.bop.mesh import Mesh
    from bopnp.bop.ply import save_ply

    save_ply(ds.root / "models_eval" / "obj_000001.ply", Mesh(np.zeros((0, 3), np.float32), np.zeros((0, 3), np.int64)))
    assert_reported(ds.check("--models-only"), "models_eval/obj_000001.ply", "no vertices")
    result, _ = ds.eval()
    assert_refused(result, "models_eval/obj_000001.ply", "no vertices")


# ----------------------------------------------------------------------------- 3. images decoded


def _truncate(path: Path, keep: float = 0.6) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * keep)])


def test_truncated_png_is_checked_by_default_and_fast_says_it_reads_headers(ds):
    _truncate(ds.root / TEST_SCENE / "rgb" / "000001.png")
    assert_reported(ds.check("--split", "test"), f"{TEST_SCENE}/rgb/000001.png", "truncated")
    fast = ds.check("--split", "test", "--fast")
    assert fast.exit_code == 0 and "headers only" in fast.output, fast.output


def test_truncated_jpeg_is_checked_and_prepare_skips_it_with_a_line(ds):
    image = ds.root / PBR_SCENE / "rgb" / "000002.jpg"
    _truncate(image)
    assert_reported(ds.check("--split", "train_pbr"), f"{PBR_SCENE}/rgb/000002.jpg", "end-of-image")
    result = ds.prepare()
    assert "Traceback" not in result.output
    assert f"skipped {image}: the JPEG has no end-of-image marker" in result.output, result.output
    crops = [json.loads(p.read_text()) for p in (ds.cache / "scenes").glob("*.json")]
    skipped = [(s["scene_id"], s["im_id"]) for c in crops for s in c["skipped"]]
    assert (0, 2) in skipped


def test_truncated_mask_is_checked(ds):
    mask = next((ds.root / TEST_SCENE / "mask_visib").glob("*.png"))
    _truncate(mask, 0.5)
    assert_reported(ds.check("--split", "test"), f"{TEST_SCENE}/mask_visib/{mask.name}", "truncated")


@pytest.mark.parametrize("kind", ["8-bit", "3-channel"])
def test_depth_that_is_not_16_bit_single_channel_is_checked_and_never_scored(ds, kind):
    import cv2

    path = ds.root / TEST_SCENE / "depth" / "000000.png"
    depth = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    bad = (depth // 256).astype(np.uint8) if kind == "8-bit" else np.repeat(depth[:, :, None], 3, axis=2)
    cv2.imwrite(str(path), bad)
    why = "uint16" if kind == "8-bit" else "one channel"
    assert_reported(ds.check("--split", "test"), f"{TEST_SCENE}/depth/000000.png", why)
    result, scores = ds.eval()
    if result.exit_code == 0:  # VSD of that image is unavailable and the BOP19 AR is not given: never a lower number
        assert scores["bop19_average_recall_vsd"] is None and scores["bop19_average_recall"] is None
        assert "unreadable depth image" in result.output
    else:
        assert_refused(result, "depth/000000.png")


@pytest.mark.parametrize("folder", ["rgb", "depth", "mask_visib"])
@pytest.mark.parametrize("command", ["check", "eval", "viz", "prepare"])
def test_empty_image_file_is_named_never_a_traceback(ds, command, folder):
    scene = PBR_SCENE if command == "prepare" else TEST_SCENE
    path = min((ds.root / scene / folder).iterdir())
    path.write_bytes(b"")
    rel = f"{scene}/{folder}/{path.name}"
    if command == "check":
        assert_reported(ds.check(), rel, "the file is empty (0 bytes)")
        return
    if command == "eval":
        result, scores = ds.eval()
        if folder != "depth":  # eval reads no rgb or mask
            assert_eval_correct_or_refused(result, scores, rel, "empty")
        elif result.exit_code == 0:  # an unreadable depth image: VSD of that image is unavailable, never lower
            assert scores["bop19_average_recall"] is None and "unreadable depth image" in result.output
        else:
            assert_refused(result, rel, "empty")
        return
    if command == "viz":
        result = ds.invoke("viz", ds.name, "--bop-path", str(ds.bop), "--out", str(ds.tmp / "viz.png"))
        if folder == "depth":  # viz draws no depth
            assert result.exit_code == 0 and "Traceback" not in result.output, result.output
        else:
            assert_refused(result, rel, "empty")
        return
    result = ds.prepare()
    assert "Traceback" not in result.output
    if folder == "depth":  # scene_gt_info is there: prepare reads no depth
        assert result.exit_code == 0, result.output
    else:
        assert f"skipped {path}: the file is empty (0 bytes)" in result.output, result.output


# ----------------------------------------------------------------------------- 4. poses and object ids


@pytest.mark.parametrize("t_mm", [[10.0, -5.0, -400.0], [0.0, 0.0, 0.0]], ids=["behind", "zero"])
def test_pose_at_or_behind_the_camera_is_checked_and_fails_its_scene_in_prepare(ds, t_mm):
    gt = ds.json(f"{PBR_SCENE}/scene_gt.json")
    gt["1"][0]["cam_t_m2c"] = t_mm
    ds.put_json(f"{PBR_SCENE}/scene_gt.json", gt)
    assert_reported(
        ds.check("--split", "train_pbr", "--images", "none"),
        f"{PBR_SCENE}/scene_gt.json",
        "['1'][0].cam_t_m2c",
        "behind the camera",
    )
    assert_scene_failed(ds, ds.prepare(), 0, "scene_gt.json", "['1'][0].cam_t_m2c")


def test_pose_behind_the_camera_stops_eval(ds):
    gt = ds.json(f"{TEST_SCENE}/scene_gt.json")
    gt["0"][0]["cam_t_m2c"][2] = -300.0
    ds.put_json(f"{TEST_SCENE}/scene_gt.json", gt)
    result, _ = ds.eval()
    assert_refused(result, "scene_gt.json", "['0'][0].cam_t_m2c")


def test_unknown_object_is_checked_and_fails_its_scene_in_prepare(ds):
    gt = ds.json(f"{PBR_SCENE}/scene_gt.json")
    gt["2"][1]["obj_id"] = 42
    ds.put_json(f"{PBR_SCENE}/scene_gt.json", gt)
    assert_reported(ds.check("--split", "train_pbr", "--images", "none"), "['2'][1].obj_id", "unknown object 42")
    assert_scene_failed(ds, ds.prepare(), 0, "scene_gt.json: ['2'][1].obj_id: object 42")


def test_eval_notes_and_counts_gt_instances_of_unknown_objects(ds):
    gt = ds.json(f"{TEST_SCENE}/scene_gt.json")
    gt["1"][0]["obj_id"] = 42
    ds.put_json(f"{TEST_SCENE}/scene_gt.json", gt)
    assert_reported(ds.check("--split", "test", "--images", "none"), "['1'][0].obj_id", "unknown object 42")
    result, scores = ds.eval()
    assert result.exit_code == 0 and "Traceback" not in result.output, result.output
    assert "1 GT instance(s) of the target images are of objects not in" in result.output
    assert "(ids [42])" in result.output and "scene 0 image 1 instance 0 (object 42)" in result.output


# ----------------------------------------------------------------------------- 5. deeply nested json


@pytest.mark.parametrize("command", ["check", "eval", "viz", "prepare"])
def test_deeply_nested_json_is_a_typed_error(ds, command):
    scene = PBR_SCENE if command == "prepare" else TEST_SCENE
    (ds.root / scene / "scene_gt.json").write_text("[" * 100_000 + "]" * 100_000)
    needles = (f"{scene}/scene_gt.json", "nested too deeply")
    if command == "check":
        assert_reported(ds.check("--images", "none"), *needles)
    elif command == "eval":
        assert_refused(ds.eval()[0], *needles)
    elif command == "viz":
        assert_refused(ds.invoke("viz", ds.name, "--bop-path", str(ds.bop), "--out", str(ds.tmp / "viz.png")), *needles)
    else:
        assert_scene_failed(ds, ds.prepare(), 0, *needles)


# ----------------------------------------------------------------------------- 6. messages that lead to the fix


def test_interrupted_synth_is_called_incomplete_with_the_resume_command(ds):
    scene = ds.root / "train_pbr" / "000001"
    for name in ("scene_gt.json", "scene_gt_info.json", "scene_camera.json"):
        (scene / name).unlink()
    (scene / ".partial").mkdir()
    check = ds.check()
    assert_reported(check, "synth_config.json", f"bopnp synth {ds.name} --resume", "train_pbr/000001")
    assert "private" not in check.output
    result = ds.prepare()
    assert_refused(result, f"bopnp synth {ds.name} --resume")
    assert "use a split with annotations" not in result.output
    assert not ds.cache.exists()


def test_missing_masks_hint_names_what_makes_them(ds):
    for sub in ("mask", "mask_visib"):
        shutil.rmtree(ds.root / TEST_SCENE / sub)
    result = ds.check("--split", "test")
    note = next(ln for ln in result.output.splitlines() if "no mask/ or mask_visib/" in ln)
    assert "`bopnp prepare`" not in note.split(";")[0] and "no bopnp command writes mask folders" in note
    assert "calc_gt_masks" in note


def test_empty_name_and_file_are_not_datasets(ds):
    empty = ds.invoke("check", "", "--bop-path", str(ds.bop))
    assert empty.exit_code == 2 and "empty" in empty.output and "Traceback" not in empty.output
    assert "problem" not in empty.output  # the BOP path itself was not checked
    (ds.bop / "afile").write_text("x")
    result = ds.invoke("check", "afile", "--bop-path", str(ds.bop))
    assert_refused(result, "is a file, not a dataset folder")


def test_huge_values_are_shortened_in_messages(ds):
    gt = ds.json(f"{TEST_SCENE}/scene_gt.json")
    gt["0"][0]["obj_id"] = 10**300
    gt["9" * 300] = []
    ds.put_json(f"{TEST_SCENE}/scene_gt.json", gt)
    result = ds.check("--split", "test", "--images", "none")
    assert_reported(result, "['0'][0].obj_id", "(301 characters)")
    assert_reported(result, "more than 9 digits")
    assert "9" * 100 not in result.output and "0" * 100 not in result.output

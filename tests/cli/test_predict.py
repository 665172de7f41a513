"""bopnp predict: a BOP19 CSV that bopnp eval accepts, BOP's method-name rule, resume after an interruption, a
missing image reported and skipped, a finished run not redone, and the real LM-O files."""

from __future__ import annotations

import importlib.util
import json
import shutil
import sys
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from bopnp.bop.dataset import BopDataset
from bopnp.bop.results import load_results_csv
from bopnp.cli.main import cli
from bopnp.cli.predict import evaluate_predictions
from bopnp.errors import ConfigError
from bopnp.infer import predict as predict_mod
from bopnp.infer.predict import PredictConfig, predict

#: LM-O's objects (the shared files' models)
LMO_OBJECTS = [1, 5, 6, 8, 9, 10, 11, 12]


def _helpers():
    module = sys.modules.get("infer_pose_helpers")
    if module is None:
        path = Path(__file__).resolve().parents[1] / "infer" / "pose_helpers.py"
        spec = importlib.util.spec_from_file_location("infer_pose_helpers", path)
        module = importlib.util.module_from_spec(spec)
        sys.modules["infer_pose_helpers"] = module
        spec.loader.exec_module(module)
    return module


def save_untrained_checkpoint(path: Path, obj_ids, **kw) -> Path:
    return _helpers().save_untrained_checkpoint(path, obj_ids, **kw)


@pytest.fixture
def test_split(synth_dataset, tmp_path) -> tuple[Path, str]:
    """A writable copy of the tiny synthetic dataset without its training split."""
    bop_path, name = synth_dataset
    dst = tmp_path / "bop"
    shutil.copytree(bop_path / name, dst / name, ignore=shutil.ignore_patterns("train_pbr", "crops"))
    return dst, name


@pytest.fixture
def ckpt(test_split, tmp_path) -> Path:
    from bopnp.bop.dataset import BopDataset

    bop, name = test_split
    return save_untrained_checkpoint(tmp_path / "run" / "best.pt", BopDataset.from_bop_path(bop, name).obj_ids)


def _use_oracle(monkeypatch, bop, name) -> list:
    """Predict with the oracle network (true coordinates) instead of the checkpoint's untrained one, which finds
    no pose; the checkpoint is still loaded (its objects, thresholds and digest are used)."""
    from bopnp.bop.dataset import BopDataset

    ds = BopDataset.from_bop_path(bop, name, "test")
    made = []

    def from_network(network, meshes, config=None, **kw):
        est, net = _helpers().oracle_estimator(ds, config=config)
        made.append(net)
        return est

    monkeypatch.setattr(predict_mod.PoseEstimator, "from_network", staticmethod(from_network))
    return made


@pytest.fixture
def oracle(test_split, monkeypatch):
    return _use_oracle(monkeypatch, *test_split)


def _config(bop, name, ckpt, out, **kw) -> PredictConfig:
    return PredictConfig(bop_path=bop, name=name, pose=ckpt, detections="gt", out=out, progress=False, **kw)


def test_help():
    result = CliRunner().invoke(cli, ["predict", "--help"])
    assert result.exit_code == 0 and "--detections" in result.output and "bopnp predict demo" in result.output


def test_predict_writes_a_csv_that_eval_scores(test_split, ckpt, oracle, tmp_path):
    bop, name = test_split
    out = tmp_path / "results"
    args = ["predict", name, "--bop-path", str(bop), "--detections", "gt", "--pose", str(ckpt.parent)]
    result = CliRunner().invoke(cli, [*args, "--out", str(out), "--method", "tiny-net", "--eval", "-q"])
    assert result.exit_code == 0, result.output
    csv = out / f"tiny-net_{name}-test.csv"
    assert csv.is_file() and "BOP19 evaluation" in result.output and "AR (BOP19)" in result.output
    rows = load_results_csv(csv)
    assert len(oracle) == 1 and rows
    by_image = {}
    for r in rows:
        by_image.setdefault((r.scene_id, r.im_id), set()).add(r.time_s)
        assert 0 <= r.score <= 1
    assert all(len(t) == 1 and next(iter(t)) > 0 for t in by_image.values())  # one time per image
    scores = json.loads((out / "eval" / csv.stem / "scores_bop19.json").read_text())
    assert scores["estimates"] == len(rows)
    # GT boxes and true coordinates: every visible target found, to the evaluator's strictest thresholds
    assert scores["bop19_average_recall_mssd"] >= 0.95 and scores["bop19_average_recall_mspd"] >= 0.95
    assert not (out / f"{csv.stem}.work").exists()  # removed once complete
    # a rerun finds it complete and does nothing
    again = CliRunner().invoke(cli, [*args, "--out", str(out), "--method", "tiny-net", "-q"])
    assert again.exit_code == 0 and "already complete" in again.output


def test_method_with_underscore_is_refused(test_split, ckpt, tmp_path):
    bop, name = test_split
    result = CliRunner().invoke(
        cli,
        ["predict", name, "--bop-path", str(bop), "--detections", "gt", "--pose", str(ckpt), "--method", "my_net"],
    )
    assert result.exit_code == 2 and "'my-net'" in result.output and "Traceback" not in result.output
    with pytest.raises(ConfigError, match="use '-' instead"):
        _config(bop, name, ckpt, tmp_path, method="a_b").validate()
    with pytest.raises(ConfigError, match="--threads"):
        _config(bop, name, ckpt, tmp_path, threads=0).validate()
    with pytest.raises(ConfigError, match="exactly one"):
        PredictConfig(bop_path=bop, name=name, pose=ckpt).validate()


def test_a_pose_checkpoint_given_as_detector_is_refused_plainly(test_split, ckpt, tmp_path):
    bop, name = test_split
    result = CliRunner().invoke(
        cli, ["predict", name, "--bop-path", str(bop), "--detector", str(ckpt), "--pose", str(ckpt), "-q"]
    )
    assert result.exit_code == 2 and "not a detector checkpoint" in result.output
    assert "--stage detector" in result.output and "Traceback" not in result.output
    missing = CliRunner().invoke(
        cli, ["predict", name, "--bop-path", str(bop), "--detector", str(tmp_path), "--pose", str(ckpt), "-q"]
    )
    assert missing.exit_code == 2 and "best.pt or last.pt" in missing.output and "--stage detector" in missing.output


def test_interrupted_run_resumes_without_redoing_images(test_split, ckpt, oracle, tmp_path, monkeypatch):
    bop, name = test_split
    out = tmp_path / "results"
    cfg = _config(bop, name, ckpt, out, batch_size=1)
    real = predict_mod._run_batch
    seen: list = []

    def interrupted(dataset, batch, *args):
        if len(seen) == 2:
            raise KeyboardInterrupt
        seen.extend(batch)
        return real(dataset, batch, *args)

    monkeypatch.setattr(predict_mod, "_run_batch", interrupted)
    with pytest.raises(KeyboardInterrupt):
        predict(cfg)
    assert not cfg.csv_path.exists()
    lines = (cfg.work_dir / "images.jsonl").read_text().splitlines()
    assert len(lines) == 2
    with open(cfg.work_dir / "images.jsonl", "a") as f:
        f.write('{"scene_id": 0, "im_')  # a line torn by the kill

    redone: list = []

    def counting(dataset, batch, *args):
        redone.extend(batch)
        return real(dataset, batch, *args)

    monkeypatch.setattr(predict_mod, "_run_batch", counting)
    summary = predict(cfg)
    assert summary.resumed == 2 and summary.done_now == summary.images - 2
    assert not set(redone) & set(seen)
    assert cfg.csv_path.is_file() and not cfg.work_dir.exists()
    # the same as a run without interruption
    fresh = predict(_config(bop, name, ckpt, tmp_path / "fresh", batch_size=1))
    a, b = load_results_csv(cfg.csv_path), load_results_csv(fresh.csv)
    assert a and [(e.im_id, e.obj_id) for e in a] == [(e.im_id, e.obj_id) for e in b]
    for ea, eb in zip(a, b):
        np.testing.assert_allclose(ea.R_m2c, eb.R_m2c, atol=1e-9)
        np.testing.assert_allclose(ea.t_m2c, eb.t_m2c, atol=1e-6)


def test_resume_refuses_other_settings(test_split, ckpt, tmp_path, monkeypatch):
    bop, name = test_split
    out = tmp_path / "results"
    predict(_config(bop, name, ckpt, out))
    other = save_untrained_checkpoint(tmp_path / "other.pt", [1, 2, 3, 4, 5, 6], seed=1)
    with pytest.raises(ConfigError, match="pose_sha256"):
        predict(_config(bop, name, other, out))
    summary = predict(_config(bop, name, other, out, overwrite=True))
    assert summary.done_now == summary.images and not summary.already_complete
    with pytest.raises(ConfigError, match="extra_candidates"):  # it changes which detections get a pose
        predict(_config(bop, name, other, out, extra_candidates=0))


def test_missing_image_is_reported_skipped_and_retried(test_split, ckpt, tmp_path):
    bop, name = test_split
    rgb = sorted((bop / name / "test" / "000000" / "rgb").iterdir())
    moved = tmp_path / rgb[1].name
    shutil.move(rgb[1], moved)
    cfg = _config(bop, name, ckpt, tmp_path / "results")
    summary = predict(cfg)
    assert [(s["scene_id"], s["im_id"]) for s in summary.skipped] == [(0, int(rgb[1].stem))]
    assert "not found" in summary.skipped[0]["reason"] and "1 file missing" in summary.format()
    assert summary.done_now == summary.images - 1
    assert {e.im_id for e in load_results_csv(cfg.csv_path)} <= {int(p.stem) for p in rgb} - {int(rgb[1].stem)}
    assert (cfg.work_dir / "skipped.txt").is_file()  # the work is kept: a rerun retries the skipped image
    _, note = evaluate_predictions(cfg, summary, eval_device="cpu")
    assert "1 target image" in note
    shutil.move(moved, rgb[1])
    again = predict(cfg)
    assert again.done_now == 1 and again.resumed == again.images - 1 and not again.skipped
    assert not cfg.work_dir.exists()


def test_corrupt_image_is_skipped(test_split, ckpt, tmp_path):
    bop, name = test_split
    rgb = sorted((bop / name / "test" / "000000" / "rgb").iterdir())
    rgb[0].write_bytes(rgb[0].read_bytes()[:200])
    summary = predict(_config(bop, name, ckpt, tmp_path / "results"))
    assert len(summary.skipped) == 1 and "truncated" in summary.skipped[0]["reason"]


@pytest.mark.shared_data
def test_lmo_default_detections_on_the_photos_present(lmo_dir, tmp_path, monkeypatch):
    """The real files through the whole command: BOP's default detections (their time added), the two photos,
    the 198 target images without a photo skipped, the evaluation of the two; with true coordinates (the oracle)
    the default detections' boxes give poses the evaluator matches."""
    ckpt = save_untrained_checkpoint(tmp_path / "lmo.pt", LMO_OBJECTS)
    oracle = _use_oracle(monkeypatch, lmo_dir.parent, "lmo")
    dets = lmo_dir / "detections" / "cosypose-maskrcnn-pbr_lmo-test.json"
    # the file's own detection time is added to bopnp's: a copy whose times are far above any run's wall time tells
    # the two apart on any machine, fast or loaded (row time = file time + bopnp's measured time, in [file, file+wall])
    raw = json.loads(dets.read_text())
    file_s = {3: 1000.0, 894: 2000.0}
    for d in raw:
        if d["scene_id"] == 2 and d["image_id"] in file_s:
            d["time"] = file_s[d["image_id"]]
    slow_dets = tmp_path / "slow_dets.json"
    slow_dets.write_text(json.dumps(raw))
    out = tmp_path / "results"
    args = ["predict", "lmo", "--bop-path", str(lmo_dir.parent), "--detections", str(slow_dets), "--pose", str(ckpt)]
    t0 = time.perf_counter()
    result = CliRunner().invoke(cli, [*args, "--out", str(out), "--scene", "2", "--im", "3", "--im", "894", "-q"])
    wall_s = time.perf_counter() - t0
    assert result.exit_code == 0, result.output
    rows = load_results_csv(out / "bopnp_lmo-test.csv")
    assert oracle and {r.im_id for r in rows} == {3, 894}
    for r in rows:
        assert 0 < r.time_s - file_s[r.im_id] <= wall_s, (r.im_id, r.time_s, wall_s)
    # all 200 target images: the 198 without a photo are reported and skipped
    cfg = PredictConfig(
        bop_path=lmo_dir.parent, name="lmo", pose=ckpt, detections=str(dets), out=tmp_path / "all", progress=False
    )
    summary = predict(cfg)
    assert summary.images == 200 and len(summary.skipped) == 198 and summary.done_now == 2
    result, note = evaluate_predictions(cfg, summary, eval_device="cpu")
    assert result.scores["images"] == 2 and "198 target image" in note
    assert result.scores["bop19_average_recall_mspd"] > 0.5


@pytest.mark.slow
def test_two_processes_under_torchrun_write_the_same_csv(test_split, ckpt, tmp_path):
    import os
    import subprocess
    import textwrap

    bop, name = test_split
    repo = Path(__file__).resolve().parents[2]
    script = tmp_path / "shard_run.py"
    script.write_text(
        textwrap.dedent(f"""
        import importlib.util, os, sys
        from pathlib import Path
        spec = importlib.util.spec_from_file_location("h", {str(repo / "tests/infer/pose_helpers.py")!r})
        h = importlib.util.module_from_spec(spec); spec.loader.exec_module(h)
        from bopnp.bop.dataset import BopDataset
        from bopnp.infer import predict as pm
        ds = BopDataset.from_bop_path({str(bop)!r}, {name!r}, "test")
        oracle = lambda n, m, config=None, **k: h.oracle_estimator(ds, config=config)[0]
        pm.PoseEstimator.from_network = staticmethod(oracle)
        cfg = pm.PredictConfig(bop_path=Path({str(bop)!r}), name={name!r}, pose=Path({str(ckpt)!r}), detections="gt",
                               out=Path(sys.argv[1]), batch_size=1, progress=False)
        s = pm.predict(cfg)
        rank = os.environ.get("RANK", "single")
        Path(sys.argv[1], f"rank-{{rank}}.txt").write_text(f"{{s.done_now}} {{s.images}}")
    """)
    )
    env = {
        **os.environ,
        "PYTHONPATH": str(repo) + os.pathsep + os.environ.get("PYTHONPATH", ""),
        "OMP_NUM_THREADS": "1",
    }
    run = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node=2", str(script)]
    proc = subprocess.run([*run, str(tmp_path / "two")], env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    one = subprocess.run([sys.executable, str(script), str(tmp_path / "one")], env=env, capture_output=True, text=True)
    assert one.returncode == 0, one.stderr[-3000:]
    a = load_results_csv(tmp_path / "two" / f"bopnp_{name}-test.csv")
    b = load_results_csv(tmp_path / "one" / f"bopnp_{name}-test.csv")
    assert a and [(e.im_id, e.obj_id) for e in a] == [(e.im_id, e.obj_id) for e in b]
    for ea, eb in zip(a, b):
        np.testing.assert_allclose(ea.t_m2c, eb.t_m2c, atol=1e-6)
    # the main process counts every process's images
    assert (tmp_path / "two" / "rank-0.txt").read_text() == "3 3"
    assert not (tmp_path / "two" / f"bopnp_{name}-test.work").exists()


def test_targets_all_predicts_every_image_and_scores_every_gt_instance(test_split, ckpt, oracle, tmp_path):
    bop, name = test_split
    (bop / name / "test_targets_bop19.json").unlink()  # not needed: every image of the split, the GT's instances
    cfg = _config(bop, name, ckpt, tmp_path / "results", targets="all")
    summary = predict(cfg)
    ds = BopDataset.from_bop_path(bop, name, "test")
    assert summary.images == sum(len(ds.image_ids(s)) for s in ds.scene_ids())
    result, note = evaluate_predictions(cfg, summary, eval_device="cpu")
    assert "every GT instance" in note
    n_gt = sum(len(g) for s in ds.scene_ids() for g in ds.scene_gt(s).values())
    assert result.scores["targets"] <= n_gt and result.scores["bop19_average_recall_mspd"] >= 0.9


# ----------------------------------------------------------------------------- detections files and image sizes


def _gt_detections_file(bop, name, path: Path, edit=None) -> Path:
    """The GT's visible boxes and masks of the target images as a detections file; ``edit(list)`` changes it."""
    from bopnp.bop.detections import save_detections
    from bopnp.infer.detect import GtDetections, ImageItem

    ds = BopDataset.from_bop_path(bop, name, "test")
    keys = sorted({(t.scene_id, t.im_id) for t in ds.targets()})
    dets = [d for per in GtDetections(ds)([ImageItem(*k) for k in keys]) for d in per]
    if edit is not None:
        edit(dets)
    save_detections(path, dets)
    return path


@pytest.mark.parametrize("hw", [(240, 320), (960, 1280)])
def test_detection_masks_of_another_size_are_refused_naming_the_entry(test_split, ckpt, tmp_path, hw):
    from bopnp.bop.rle import Rle

    bop, name = test_split

    def edit(dets):
        dets[2] = replace(dets[2], rle=Rle.encode(np.ones(hw, bool)))

    dets_path = _gt_detections_file(bop, name, tmp_path / "dets.json", edit)
    args = ["predict", name, "--bop-path", str(bop), "--detections", str(dets_path), "--pose", str(ckpt)]
    result = CliRunner().invoke(cli, [*args, "--out", str(tmp_path / "results"), "-q"])
    assert result.exit_code == 2 and "Traceback" not in result.output, result.output
    assert "1 detection mask(s) are not of the images' size" in result.output
    assert "[2] (scene 0 image " in result.output and f"segmentation size [{hw[0]}, {hw[1]}]" in result.output
    assert not list((tmp_path / "results").glob("*.csv"))


def test_dropped_and_ignored_detections_are_counted_and_reported(test_split, ckpt, oracle, tmp_path):
    from bopnp.bop.rle import Rle

    bop, name = test_split
    ds = BopDataset.from_bop_path(bop, name, "test")
    H, W = ds.camera.height, ds.camera.width
    first = {}

    def edit(dets):
        first["zero"] = dets[0]
        d0 = dets[0]
        # a better-scoring copy with a zero-size box: it must not take the target's place
        dets.insert(0, replace(d0, score=2.0, bbox_xywh=np.array([10.0, 10.0, 0.0, 5.0])))
        dets.append(replace(d0, obj_id=42))
        dets.append(replace(d0, scene_id=7))
        dets.append(replace(d0, im_id=999))
        dets.append(replace(dets[3], score=0.5, rle=Rle.encode(np.zeros((H, W), bool))))

    dets_path = _gt_detections_file(bop, name, tmp_path / "dets.json", edit)
    cfg = PredictConfig(
        bop_path=bop, name=name, pose=ckpt, detections=str(dets_path), out=tmp_path / "r", progress=False
    )
    summary = predict(cfg)
    text = summary.format()
    assert "dets.json: 2 detection(s) of images that the split does not have: ignored (first: [" in text
    assert "dets.json: 1 detection(s) of objects not in" in text and "models_info.json: ignored (first: [" in text
    assert (
        "dets.json: 1 detection(s) with a zero- or negative-size box: dropped, no pose can come from them (first: [0]"
        in text
    )
    assert "dets.json: 1 detection(s) with an empty mask: their box stands in for the mask" in text
    # the zero-size box took no target's place: its image's object still has its GT pose
    d0 = first["zero"]
    rows = [r for r in load_results_csv(cfg.csv_path) if (r.scene_id, r.im_id, r.obj_id) == (0, d0.im_id, d0.obj_id)]
    assert rows
    # a clean file gives no note
    clean = _gt_detections_file(bop, name, tmp_path / "clean.json")
    assert not predict(replace(cfg, detections=str(clean), out=tmp_path / "c")).notes


@pytest.mark.parametrize("detections", ["gt", "file"])
def test_an_image_of_another_size_than_camera_json_is_refused(test_split, ckpt, tmp_path, detections):
    import cv2

    bop, name = test_split
    src = "gt" if detections == "gt" else str(_gt_detections_file(bop, name, tmp_path / "dets.json"))
    path = BopDataset.from_bop_path(bop, name, "test").image_path(0, 1)
    img = cv2.imread(str(path))
    h, w = img.shape[:2]
    cv2.imwrite(str(path), cv2.resize(img, (w // 2, h // 2)))
    args = ["predict", name, "--bop-path", str(bop), "--detections", src, "--pose", str(ckpt)]
    result = CliRunner().invoke(cli, [*args, "--out", str(tmp_path / "results"), "-q"])
    assert result.exit_code == 2 and "Traceback" not in result.output, result.output
    assert f"{path}: the image is {w // 2}x{h // 2} pixels but" in result.output and f"says {w}x{h}" in result.output
    assert not list((tmp_path / "results").glob("*.csv"))


def test_resumed_summary_counts_the_earlier_runs_failed_poses_too(test_split, ckpt, tmp_path, monkeypatch):
    bop, name = test_split  # the untrained network finds no pose: every selected detection gives none
    fresh = predict(_config(bop, name, ckpt, tmp_path / "fresh", batch_size=1))
    assert fresh.invalid > 0
    cfg = _config(bop, name, ckpt, tmp_path / "results", batch_size=1)
    real = predict_mod._run_batch
    calls: list = []

    def interrupted(dataset, batch, *args):
        if len(calls) == 1:
            raise KeyboardInterrupt
        calls.append(batch)
        return real(dataset, batch, *args)

    monkeypatch.setattr(predict_mod, "_run_batch", interrupted)
    with pytest.raises(KeyboardInterrupt):
        predict(cfg)
    monkeypatch.setattr(predict_mod, "_run_batch", real)
    resumed = predict(cfg)
    assert resumed.resumed == 1 and resumed.invalid == fresh.invalid
    assert f"{fresh.invalid} detections gave no pose" in resumed.format()
    again = predict(cfg)  # complete: the summary file's count
    assert again.already_complete and again.invalid == fresh.invalid

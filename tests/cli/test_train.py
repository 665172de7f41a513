"""bopnp train: runs, refuses to overwrite a run, resumes, and prints errors without a traceback."""

import os

from click.testing import CliRunner

from bopnp.cli.main import cli
from bopnp.train.checkpoint import load_checkpoint


def _args(bop, name, out, *more):
    return [
        "train",
        name,
        "--bop-path",
        str(bop),
        "--stage",
        "pose",
        "--batch-size",
        "4",
        "--width",
        "4",
        "--workers",
        "0",
        "--val-every",
        "0",
        "--out",
        str(out),
        "--no-progress",
        *more,
    ]


def test_train_runs_refuses_a_second_run_and_resumes(tiny_train_dataset, tmp_path):
    bop, name = tiny_train_dataset
    out = tmp_path / "run"
    runner = CliRunner()
    first = runner.invoke(cli, _args(bop, name, out, "--steps", "2"))
    assert first.exit_code == 0, first.output
    assert "best:" in first.output and str(out) in first.output
    again = runner.invoke(cli, _args(bop, name, out, "--steps", "2"))
    assert again.exit_code == 2 and "--resume" in again.output and "Traceback" not in again.output
    more = runner.invoke(cli, _args(bop, name, out, "--steps", "3", "--resume"))
    assert more.exit_code == 0, more.output
    assert "resumed at step 2" in more.output
    assert load_checkpoint(out / "last.pt")["state"]["step"] == 3


def test_augment_choice_reaches_the_saved_config(tiny_train_dataset, tmp_path):
    import json

    from bopnp.data.training_set import AugmentConfig

    bop, name = tiny_train_dataset
    out = tmp_path / "run"
    res = CliRunner().invoke(cli, _args(bop, name, out, "--steps", "1", "--augment", "light"))
    assert res.exit_code == 0, res.output
    saved = json.loads((out / "config.json").read_text())["augment"]
    light = AugmentConfig.preset("light")
    assert saved["background_p"] == light.background_p and saved["occluder_p"] == light.occluder_p
    bad = CliRunner().invoke(cli, _args(bop, name, tmp_path / "other", "--augment", "heavy"))
    assert bad.exit_code == 2 and "heavy" in bad.output


def test_missing_crop_cache_says_to_prepare(tmp_path):
    (tmp_path / "ds").mkdir()
    result = CliRunner().invoke(cli, _args(tmp_path, "ds", tmp_path / "run", "--steps", "1"))
    assert result.exit_code == 2 and "bopnp prepare ds" in result.output and "Traceback" not in result.output


def _detector_args(bop, name, out, *more):
    return [
        "train",
        name,
        "--bop-path",
        str(bop),
        "--stage",
        "detector",
        "--split",
        "test",
        "--preset",
        "cpu",
        "--min-size",
        "48",
        "--max-size",
        "64",
        "--workers",
        "0",
        "--val-every",
        "0",
        "--out",
        str(out),
        "--no-progress",
        *more,
    ]


def test_detector_stage_trains_and_resumes(tiny, tmp_path):
    tiny.make_dataset(tmp_path / "bop" / "drawn", scenes=2)
    out = tmp_path / "det"
    runner = CliRunner()
    first = runner.invoke(cli, _detector_args(tmp_path / "bop", "drawn", out, "--steps", "1"))
    assert first.exit_code == 0, first.output
    assert "box mAP" in first.output and "best:" in first.output
    ckpt = load_checkpoint(out / "last.pt")
    assert ckpt["detector"]["backbone"] == "resnet18_fpn" and ckpt["detector"]["min_size"] == 48
    assert ckpt["config"]["batch_size"] == 2 and ckpt["config"]["optimizer"] == "adamw"  # the cpu preset's defaults
    assert tuple(ckpt["config"]["augment"]["scale_range"]) == (1.0, 1.0) and ckpt["config"]["augment"]["color"]
    more = runner.invoke(cli, _detector_args(tmp_path / "bop", "drawn", out, "--steps", "2", "--resume"))
    assert more.exit_code == 0, more.output
    assert "resumed at step 1" in more.output and load_checkpoint(out / "last.pt")["state"]["step"] == 2


def test_detector_stage_errors_are_short(tiny, tmp_path):
    runner = CliRunner()
    e2e = runner.invoke(cli, _detector_args(tmp_path, "drawn", tmp_path / "o", "--e2e"))
    assert e2e.exit_code == 2 and "--stage pose" in e2e.output
    (tmp_path / "bop").mkdir()
    tiny.make_dataset(tmp_path / "bop" / "drawn")
    no_split = runner.invoke(cli, [*_detector_args(tmp_path / "bop", "drawn", tmp_path / "o"), "--split", "train"])
    assert no_split.exit_code == 2 and "train not found" in no_split.output and "Traceback" not in no_split.output


def test_cli_lists_the_libraries_backbones_and_presets():
    from bopnp.cli.train import BACKBONES, DETECTOR_AUGMENTS, POSE_AUGMENTS, PRESETS
    from bopnp.data.training_set import AUGMENT_PRESETS
    from bopnp.models.detector import BACKBONES as LIB_BACKBONES
    from bopnp.train.detector_config import AUGMENTS as LIB_AUGMENTS
    from bopnp.train.detector_config import PRESET_AUGMENTS, PRESET_OPTIMIZERS
    from bopnp.train.detector_config import PRESETS as LIB_PRESETS

    assert BACKBONES == LIB_BACKBONES and set(PRESETS) == {"auto", *LIB_PRESETS} == {"auto", *PRESET_OPTIMIZERS}
    assert set(DETECTOR_AUGMENTS) == set(LIB_AUGMENTS) and set(PRESET_AUGMENTS.values()) <= set(DETECTOR_AUGMENTS)
    assert POSE_AUGMENTS == AUGMENT_PRESETS


def test_resuming_a_finished_run_redoes_nothing(tiny_train_dataset, tmp_path):
    bop, name = tiny_train_dataset
    out = tmp_path / "run"
    runner = CliRunner()
    assert runner.invoke(cli, _args(bop, name, out, "--steps", "2")).exit_code == 0
    log_before = (out / "log.jsonl").read_text()
    stamp = (out / "last.pt").stat().st_mtime_ns
    again = runner.invoke(cli, _args(bop, name, out, "--steps", "2", "--resume"))
    assert again.exit_code == 0, again.output
    assert (out / "log.jsonl").read_text() == log_before  # no second validation
    assert (out / "last.pt").stat().st_mtime_ns == stamp


def test_augment_names_belong_to_their_stage(tiny_train_dataset, tmp_path):
    bop, name = tiny_train_dataset
    res = CliRunner().invoke(cli, _args(bop, name, tmp_path / "o", "--augment", "color"))
    assert res.exit_code == 2 and "not a pose augmentation" in res.output and "pix2pose" in res.output


def test_cli_lists_the_libraries_archs_and_norms():
    from bopnp.cli.train import POSE_ARCHS, POSE_NORMS
    from bopnp.models import ARCHS
    from bopnp.models.blocks import NORMS

    assert POSE_ARCHS == ARCHS and POSE_NORMS == NORMS
    res = CliRunner().invoke(cli, ["train", "--help"])
    assert res.exit_code == 0 and "--arch" in res.output and "resnet18" in res.output and "--norm" in res.output


def test_arch_and_norm_reach_the_run_and_its_checkpoint_loads_for_prediction(tiny_train_dataset, tmp_path):
    import json

    from bopnp.infer.network import load_pose_network
    from bopnp.models.plain_unet import PlainUNet

    bop, name = tiny_train_dataset
    out = tmp_path / "run"
    res = CliRunner().invoke(cli, _args(bop, name, out, "--steps", "1", "--arch", "unet", "--norm", "group"))
    assert res.exit_code == 0, res.output
    saved = json.loads((out / "config.json").read_text())
    assert saved["arch"] == "unet" and saved["norm"] == "group"
    loaded = load_pose_network(out)
    assert isinstance(loaded.net, PlainUNet) and loaded.net.config.norm == "group"


def test_pose_backbone_weights_need_a_resnet_and_a_state_dict(tiny_train_dataset, tmp_path):
    bop, name = tiny_train_dataset
    junk = tmp_path / "w.pth"
    junk.write_text("not weights")
    res = CliRunner().invoke(cli, _args(bop, name, tmp_path / "a", "--arch", "unet", "--backbone-weights", str(junk)))
    assert res.exit_code == 2 and "resnet18" in res.output and "Traceback" not in res.output
    res = CliRunner().invoke(
        cli, _args(bop, name, tmp_path / "b", "--arch", "resnet18", "--backbone-weights", str(junk), "--steps", "1")
    )
    assert res.exit_code != 0 and "w.pth" in res.output and "Traceback" not in res.output
    res = CliRunner().invoke(cli, _args(bop, name, tmp_path / "c", "--stage", "detector", "--arch", "unet"))
    assert res.exit_code == 2 and "--stage pose" in res.output


def test_a_cache_truncated_under_a_loader_worker_gives_the_same_short_error(tiny_train_dataset, tmp_path):
    """A resumed run writes no preview, so its first crops are read by the loader: in a worker (--workers 1) or in
    this process (--workers 0), the CLI prints the same one line naming the file and the fix."""
    bop, name = tiny_train_dataset
    out = tmp_path / "run"
    runner = CliRunner()
    assert runner.invoke(cli, _args(bop, name, out, "--steps", "1")).exit_code == 0
    path = bop / name / "crops" / "train_pbr" / "obj_000002" / "000000" / "xyz.npy"
    os.truncate(path, path.stat().st_size // 2)
    outputs = {}
    for workers in ("0", "1"):
        res = runner.invoke(cli, [*_args(bop, name, out, "--steps", "3", "--resume"), "--workers", workers])
        assert res.exit_code == 2, res.output
        outputs[workers] = res.output
    line = outputs["0"].strip()
    assert line.startswith(f"error: {path} is truncated: ") and "bopnp prepare" in line and "\n" not in line
    assert outputs["1"] == outputs["0"]

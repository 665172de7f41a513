"""bopnp train: runs, refuses to overwrite a run, resumes, and prints errors without a traceback."""

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


def test_missing_crop_cache_says_to_prepare(tmp_path):
    (tmp_path / "ds").mkdir()
    result = CliRunner().invoke(cli, _args(tmp_path, "ds", tmp_path / "run", "--steps", "1"))
    assert result.exit_code == 2 and "bopnp prepare ds" in result.output and "Traceback" not in result.output


def test_detector_stage_is_not_there_yet(tmp_path):
    result = CliRunner().invoke(cli, _args(tmp_path, "ds", tmp_path / "run", "--stage", "detector"))
    assert result.exit_code == 2 and "--stage detector" in result.output

"""``bopnp synth``: options reach the library, errors are clean, --help has an example."""

from __future__ import annotations

import subprocess
import sys

from click.testing import CliRunner

from bopnp.cli.main import cli

TINY = ["--train-images", "2", "--test-images", "1", "--images-per-scene", "2", "--workers", "1", "--no-progress"]


def run(*args, env=None):
    return CliRunner().invoke(cli, list(args), env=env)


def test_help_has_an_example():
    result = run("synth", "--help")
    assert result.exit_code == 0
    assert "bopnp synth demo" in result.output and "--overwrite" in result.output and "--resume" in result.output


def test_cli_defaults_match_the_library():
    from bopnp.cli import synth as cli_synth
    from bopnp.synth import generator as lib

    assert (cli_synth._DEMO_TRAIN, cli_synth._DEMO_TEST) == (lib.DEMO_TRAIN_IMAGES, lib.DEMO_TEST_IMAGES)


def test_writes_a_dataset_then_refuses_to_overwrite_it(tmp_path):
    result = run("synth", "small", "--bop-path", str(tmp_path), *TINY)
    assert result.exit_code == 0, result.output
    assert "3 images rendered" in result.output
    assert (tmp_path / "small" / "test_targets_bop19.json").is_file()

    again = run("synth", "small", "--bop-path", str(tmp_path), *TINY)
    assert again.exit_code == 2
    assert "already exists" in again.output and "--resume" in again.output and "Traceback" not in again.output

    resumed = run("synth", "small", "--bop-path", str(tmp_path), *TINY, "--resume")
    assert resumed.exit_code == 0 and "0 images rendered, 3 already there" in resumed.output

    changed = run("synth", "small", "--bop-path", str(tmp_path), *TINY, "--seed", "3", "--resume")
    assert changed.exit_code == 2 and "seed: 0 before, 3 now" in changed.output


def test_bop_path_from_the_environment(tmp_path):
    result = run("synth", "envds", *TINY, env={"BOP_PATH": str(tmp_path)})
    assert result.exit_code == 0, result.output
    assert (tmp_path / "envds" / "camera.json").is_file()


def test_bad_options_are_usage_errors(tmp_path):
    both = run("synth", "x", "--bop-path", str(tmp_path), "--overwrite", "--resume")
    assert both.exit_code == 2 and "not both" in both.output
    missing = run("synth", "x", "--bop-path", str(tmp_path), "--models", str(tmp_path / "nope"))
    assert missing.exit_code == 2 and "does not exist" in missing.output
    negative = run("synth", "x", "--bop-path", str(tmp_path), "--train-images", "-3")
    assert negative.exit_code == 2
    none = run("synth", "x", "--bop-path", str(tmp_path), "--train-images", "0", "--test-images", "0")
    assert none.exit_code == 2 and "both 0" in none.output
    (tmp_path / "nomodels").mkdir()
    bad_models = run("synth", "x", "--bop-path", str(tmp_path), "--models", str(tmp_path / "nomodels"))
    assert bad_models.exit_code == 2 and "no models_info.json" in bad_models.output
    assert not (tmp_path / "x").exists()


def test_error_exit_without_traceback_in_a_real_process(tmp_path):
    (tmp_path / "taken").mkdir()
    (tmp_path / "taken" / "file.txt").write_text("keep me")
    proc = subprocess.run(
        [sys.executable, "-m", "bopnp.cli.main", "synth", "taken", "--bop-path", str(tmp_path), "--overwrite"],
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 2
    assert "not made by `bopnp synth`" in proc.stderr and "Traceback" not in proc.stderr
    assert (tmp_path / "taken" / "file.txt").read_text() == "keep me"


def test_synthetic_dataset_passes_bopnp_check(synth_dataset):
    bop_path, name = synth_dataset
    result = run("check", name, "--bop-path", str(bop_path))
    assert result.exit_code == 0, result.output
    assert "no problems" in result.output

"""``bopnp prepare``: help with an example, a run, typed errors without a traceback."""

import os
import subprocess
import sys

from click.testing import CliRunner

from bopnp.cli.main import cli


def test_help_has_an_example():
    result = CliRunner().invoke(cli, ["prepare", "--help"])
    assert result.exit_code == 0
    assert "bopnp prepare demo" in result.output
    for option in ("--bop-path", "--split", "--crop-size", "--enlarge", "--workers", "--overwrite", "--objects"):
        assert option in result.output


def test_prepare_runs_and_resumes(tiny_bop):
    bop, name = tiny_bop
    runner = CliRunner()
    result = runner.invoke(cli, ["prepare", name, "--bop-path", str(bop), "--workers", "1", "--no-progress"])
    assert result.exit_code == 0, result.output
    assert "crops per object: 1:" in result.output and "2 prepared now" in result.output
    assert (bop / name / "crops" / "train_pbr" / "cache.json").is_file()
    again = runner.invoke(cli, ["prepare", name, "--bop-path", str(bop), "--no-progress"])
    assert again.exit_code == 0 and "2 already done" in again.output
    other = runner.invoke(cli, ["prepare", name, "--bop-path", str(bop), "--crop-size", "64", "--no-progress"])
    assert other.exit_code == 2 and "--overwrite" in other.output and "Traceback" not in other.output
    rebuilt = runner.invoke(
        cli,
        [
            "prepare",
            name,
            "--bop-path",
            str(bop),
            "--crop-size",
            "64",
            "--overwrite",
            "--objects",
            "2",
            "--workers",
            "1",
            "--no-progress",
        ],
    )
    assert rebuilt.exit_code == 0 and "crops per object: 2:" in rebuilt.output


def test_bop_path_from_the_environment(tiny_bop):
    bop, name = tiny_bop
    result = CliRunner().invoke(
        cli, ["prepare", name, "--objects", "1", "--workers", "1", "--no-progress"], env={"BOP_PATH": str(bop)}
    )
    assert result.exit_code == 0, result.output


def test_bad_input_exits_2_without_traceback(tmp_path):
    runner = CliRunner()
    missing = runner.invoke(cli, ["prepare", "nope", "--bop-path", str(tmp_path)])
    assert missing.exit_code == 2 and "bopnp synth nope" in missing.output
    assert "Traceback" not in missing.output
    bad_objects = runner.invoke(cli, ["prepare", "nope", "--bop-path", str(tmp_path), "--objects", "1,x"])
    assert bad_objects.exit_code == 2 and "object ids" in bad_objects.output
    bad_size = runner.invoke(cli, ["prepare", "nope", "--bop-path", str(tmp_path), "--crop-size", "2"])
    assert bad_size.exit_code == 2 and "--crop-size" in bad_size.output


def test_a_real_process_reports_errors_without_traceback(tmp_path):
    exe = os.path.join(os.path.dirname(sys.executable), "bopnp")
    cmd = [exe] if os.path.exists(exe) else [sys.executable, "-m", "bopnp.cli.main"]
    proc = subprocess.run([*cmd, "prepare", "nope", "--bop-path", str(tmp_path)], capture_output=True, text=True)
    assert proc.returncode == 2
    assert "not found" in proc.stderr and "Traceback" not in proc.stderr

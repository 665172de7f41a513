from __future__ import annotations

import os
import subprocess
import sys

import pytest
from click.testing import CliRunner

from bopnp.cli.main import cli


def _run(args):
    return CliRunner().invoke(cli, ["check", *args])


def test_help_has_an_example():
    result = _run(["--help"])
    assert result.exit_code == 0
    assert "bopnp check lmo --split test" in result.output and "--images [all|present|none]" in result.output


def test_clean_dataset_exits_0(tmp_path, tiny):
    tiny.make_dataset(tmp_path / "tiny")
    result = _run(["tiny", "--bop-path", str(tmp_path), "--split", "test"])
    assert result.exit_code == 0, result.output
    assert "tiny: no problems" in result.output and "problem:" not in result.output


def test_broken_dataset_lists_every_problem_and_exits_2(tmp_path, tiny):
    root = tiny.make_dataset(tmp_path / "broken", scenes=2)
    expected = tiny.break_dataset(root)
    result = _run(["broken", "--bop-path", str(tmp_path), "--split", "test"])
    assert result.exit_code == 2
    assert isinstance(result.exception, SystemExit)  # no other exception escaped
    lines = [ln[len("problem: ") :] for ln in result.output.splitlines() if ln.startswith("problem: ")]
    for want in expected:
        assert sum(ln.startswith(want) for ln in lines) == 1, (want, result.output)
    assert len(lines) == len(expected)
    assert f"broken: {len(expected)} problem(s)" in result.output


def test_broken_dataset_in_a_subprocess_has_no_traceback(tmp_path, tiny):
    root = tiny.make_dataset(tmp_path / "broken", scenes=2)
    expected = tiny.break_dataset(root)
    env = {**os.environ, "BOP_PATH": str(tmp_path)}
    proc = subprocess.run(
        [sys.executable, "-m", "bopnp.cli.main", "check", "broken", "--images", "all"],
        capture_output=True,
        text=True,
        env=env,
    )
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr + proc.stdout
    assert sum(ln.startswith("problem: ") for ln in proc.stdout.splitlines()) == len(expected)


def test_missing_dataset_is_an_error_without_traceback(tmp_path):
    proc = subprocess.run(
        [sys.executable, "-m", "bopnp.cli.main", "check", "nope", "--bop-path", str(tmp_path)],
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert "nope not found" in proc.stderr and "--bop-path" in proc.stderr


def test_name_can_be_a_path(tmp_path, tiny):
    root = tiny.make_dataset(tmp_path / "some" / "where")
    result = _run([str(root), "--bop-path", str(tmp_path / "empty"), "--models-only"])
    assert result.exit_code == 0, result.output


@pytest.mark.shared_data
def test_lmo(lmo_dir):
    bop_path = str(lmo_dir.parent)
    present = _run([lmo_dir.name, "--bop-path", bop_path, "--split", "test", "--images", "present"])
    assert present.exit_code == 0, present.output
    assert "198 of 200 rgb" in present.output
    assert _run([lmo_dir.name, "--bop-path", bop_path, "--models-only"]).exit_code == 0
    full = _run([lmo_dir.name, "--bop-path", bop_path, "--split", "test"])
    assert full.exit_code == 2 and full.output.count("problem: test/000002/rgb/") == 198

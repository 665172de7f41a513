"""The official scorer in its own interpreter. A fake bop_toolkit (a clone with its package and an
eval_bop19_pose.py that records what it was given) behind a fake interpreter tests the plumbing: which interpreter
runs, with which arguments and environment, and that both tables are printed side by side with their differences.
The real bop_toolkit runs when BOPNP_TOOLKIT_PYTHON names an environment that has it (`make bop-toolkit-env`),
else that test is skipped."""

from __future__ import annotations

import json
import math
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from click.testing import CliRunner

from bopnp.cli.main import cli
from bopnp.errors import BopnpError, ConfigError
from bopnp.eval import toolkit as tk

FIXTURE = Path(__file__).resolve().parents[1] / "fixtures" / "eval"
CSV = FIXTURE / "results" / "fixture-a_tudl-test.csv"

FAKE_EVAL = textwrap.dedent(
    """
    import argparse, json, os, shutil, sys
    from pathlib import Path
    p = argparse.ArgumentParser()
    for a in ("--renderer_type", "--results_path", "--eval_path", "--result_filenames", "--num_workers",
              "--targets_filename"):
        p.add_argument(a)
    args = p.parse_args()
    if os.environ.get("FAKE_TOOLKIT_FAIL"):
        print("fake failure"); sys.exit(3)
    name = args.result_filenames.split(".")[0]
    rows = Path(args.results_path, args.result_filenames).read_text().strip().splitlines()[1:]
    out = Path(args.eval_path, name)
    out.mkdir(parents=True)
    # scores that depend on the input: the share of rows with score > 0.5, and so on
    hi = sum(float(r.split(",")[3]) > 0.5 for r in rows) / len(rows)
    scores = {"bop19_average_recall": hi, "bop19_average_recall_vsd": hi / 2, "bop19_average_recall_mssd": hi / 3,
              "bop19_average_recall_mspd": hi / 4, "bop19_average_time_per_image": 0.5}
    (out / "scores_bop19.json").write_text(json.dumps(scores))
    seen = {"argv": sys.argv[1:], "cwd": os.getcwd(), "bop_path": os.environ.get("BOP_PATH"),
            "interpreter": os.environ.get("FAKE_TOOLKIT_INTERPRETER"), "python_on_path": shutil.which("python"),
            "egl": os.environ.get("EGL_PLATFORM")}
    (out / "seen.json").write_text(json.dumps(seen))
    """
)


def make_fake_toolkit(root: Path, *, package: bool = True, scripts: bool = True) -> Path:
    """A bop_toolkit clone at root/bop_toolkit and an interpreter root/env/bin/python that has it on its path."""
    clone = root / "bop_toolkit"
    if package:
        (clone / "bop_toolkit_lib").mkdir(parents=True)
        (clone / "bop_toolkit_lib" / "__init__.py").write_text("")
    if scripts:
        (clone / "scripts").mkdir(parents=True)
        (clone / "scripts" / "eval_bop19_pose.py").write_text(FAKE_EVAL)
    python = root / "env" / "bin" / "python"
    python.parent.mkdir(parents=True)
    python.write_text(
        f'#!/bin/sh\nexport FAKE_TOOLKIT_INTERPRETER="$0"\nexport PYTHONPATH="{clone}"\nexec "{sys.executable}" "$@"\n'
    )
    python.chmod(0o755)
    return python


@pytest.fixture
def no_toolkit_env(monkeypatch):
    for name in (tk.TOOLKIT_PYTHON_ENV, tk.LEGACY_TOOLKIT_PYTHON_ENV, "FAKE_TOOLKIT_FAIL"):
        monkeypatch.delenv(name, raising=False)


def test_the_interpreter_option_then_the_environment(tmp_path, monkeypatch, no_toolkit_env):
    assert tk.toolkit_python() == sys.executable
    monkeypatch.setenv(tk.LEGACY_TOOLKIT_PYTHON_ENV, "/old/python")
    assert tk.toolkit_python() == "/old/python"
    monkeypatch.setenv(tk.TOOLKIT_PYTHON_ENV, "/new/python")
    assert tk.toolkit_python() == "/new/python"
    assert tk.toolkit_python(tmp_path / "given") == str(tmp_path / "given")


def test_a_missing_or_incomplete_toolkit_says_how_to_make_one(tmp_path, no_toolkit_env):
    with pytest.raises(ConfigError, match="cannot be run.*make bop-toolkit-env TOOLKIT="):
        tk.find_toolkit(tmp_path / "no" / "python")
    with pytest.raises(ConfigError, match="bop_toolkit_lib is not importable.*--toolkit-python"):
        tk.find_toolkit(make_fake_toolkit(tmp_path / "a", package=False))
    with pytest.raises(ConfigError, match="eval_bop19_pose.py is missing"):
        tk.find_toolkit(make_fake_toolkit(tmp_path / "b", scripts=False))
    python = make_fake_toolkit(tmp_path / "c")
    assert tk.find_toolkit(python) == tmp_path / "c" / "bop_toolkit" / "scripts"


def test_cli_runs_both_and_prints_them_side_by_side(tmp_path, no_toolkit_env):
    python = make_fake_toolkit(tmp_path / "fake")
    out = tmp_path / "out"
    args = ["eval", str(CSV), "--bop-path", str(FIXTURE / "bop"), "--out", str(out), "--no-plots", "-q"]
    result = CliRunner().invoke(cli, [*args, "--backend", "bop_toolkit", "--toolkit-python", str(python)])
    assert result.exit_code == 0, result.output
    ours = json.loads((out / "scores_bop19.json").read_text())
    theirs_dir = out / "bop_toolkit" / CSV.stem
    theirs = json.loads((theirs_dir / "scores_bop19.json").read_text())
    seen = json.loads((theirs_dir / "seen.json").read_text())
    # the plumbing: that interpreter, on the same files, with BOP_PATH, python on PATH and EGL set
    assert seen["interpreter"] == str(python)
    assert Path(seen["python_on_path"]).parent == python.parent
    assert seen["bop_path"] == str((FIXTURE / "bop").resolve()) and seen["egl"]
    argv = seen["argv"]
    opt = {argv[i]: argv[i + 1] for i in range(0, len(argv), 2)}
    assert opt["--results_path"] == str(CSV.parent.resolve()) and opt["--result_filenames"] == CSV.name
    assert opt["--targets_filename"] == "test_targets_bop19.json" and opt["--renderer_type"] == "vispy"
    assert Path(seen["cwd"]) == tmp_path / "fake" / "bop_toolkit"
    # both tables, side by side, with the differences
    table = (out / "bop_toolkit" / "comparison.txt").read_text()
    assert table in result.output + "\n"
    lines = {line.split("  ")[0].strip(): line.split() for line in table.splitlines()[1:-1]}
    for key, label in tk.COMPARED_SCORES:
        row = lines[label]
        a, b, d = (float(v) for v in row[-3:])
        assert a == pytest.approx(ours[key], abs=1e-6) and b == pytest.approx(theirs[key], abs=1e-6)
        assert d == pytest.approx(ours[key] - theirs[key], rel=1e-2, abs=1e-8)
    worst = max(abs(ours[k] - theirs[k]) for k, label in tk.COMPARED_SCORES if label.startswith("AR"))
    assert f"largest |difference| of the recalls: {worst:.2e}" in result.output


def test_environment_variable_names_the_interpreter_and_a_failure_names_the_log(tmp_path, monkeypatch, no_toolkit_env):
    python = make_fake_toolkit(tmp_path / "fake")
    monkeypatch.setenv(tk.TOOLKIT_PYTHON_ENV, str(python))
    monkeypatch.setenv("FAKE_TOOLKIT_FAIL", "1")
    with pytest.raises(BopnpError, match=r"failed \(exit 3\); see .*fixture-a_tudl-test.log"):
        tk.run_bop_toolkit(CSV, FIXTURE / "bop", out_dir=tmp_path / "tk")
    assert "fake failure" in (tmp_path / "tk" / "fixture-a_tudl-test.log").read_text()
    monkeypatch.delenv("FAKE_TOOLKIT_FAIL")
    scores = tk.run_bop_toolkit(CSV, FIXTURE / "bop", out_dir=tmp_path / "tk")
    assert scores["python"] == str(python) and scores["dataset"] == "tudl"


def test_cli_refuses_a_targets_path_and_a_missing_toolkit_before_evaluating(tmp_path, no_toolkit_env):
    base = ["eval", str(CSV), "--bop-path", str(FIXTURE / "bop"), "--out", str(tmp_path / "o"), "--backend"]
    result = CliRunner().invoke(cli, [*base, "bop_toolkit", "--toolkit-python", str(tmp_path / "none")])
    assert result.exit_code == 2 and "cannot be run" in result.output and "Traceback" not in result.output
    assert not (tmp_path / "o").exists()
    python = make_fake_toolkit(tmp_path / "fake")
    targets = str(FIXTURE / "bop" / "tudl" / "test_targets_bop19.json")
    result = CliRunner().invoke(cli, [*base, "bop_toolkit", "--toolkit-python", str(python), "--targets", targets])
    assert result.exit_code == 2 and "pass a file name there" in result.output


def test_comparison_of_missing_scores():
    ours = {"bop19_average_recall": None, "bop19_average_recall_mssd": 0.5, "bop19_average_recall_vsd": math.nan}
    theirs = {"bop19_average_recall": 0.25, "bop19_average_recall_mssd": 0.25}
    rows = dict((label, (a, b)) for label, a, b in tk.score_differences(ours, theirs))
    assert rows["AR (BOP19)"] == (None, 0.25) and rows["AR_VSD"] == (None, None) and rows["AR_MSSD"] == (0.5, 0.25)
    text = tk.format_comparison(ours, theirs)
    assert "n/a" in text and "+2.50e-01" in text and text.endswith("largest |difference| of the recalls: 2.50e-01")


def _real_toolkit() -> str | None:
    python = os.environ.get(tk.TOOLKIT_PYTHON_ENV) or os.environ.get(tk.LEGACY_TOOLKIT_PYTHON_ENV)
    if not python:
        return None
    try:
        tk.find_toolkit(python)
    except ConfigError:
        return None
    return python


@pytest.mark.slow
def test_the_real_toolkit_gives_bopnps_scores(tmp_path):
    python = _real_toolkit()
    if python is None:
        pytest.skip("no bop_toolkit: set BOPNP_TOOLKIT_PYTHON to an environment made by `make bop-toolkit-env`")
    out = tmp_path / "out"
    args = ["eval", str(CSV), "--bop-path", str(FIXTURE / "bop"), "--out", str(out), "--no-plots", "-q"]
    result = CliRunner().invoke(cli, [*args, "--backend", "bop_toolkit", "--toolkit-python", python])
    assert result.exit_code == 0, result.output
    ours = json.loads((out / "scores_bop19.json").read_text())
    theirs = json.loads((out / "bop_toolkit" / CSV.stem / "scores_bop19.json").read_text())
    for key, _ in tk.COMPARED_SCORES[:4]:
        assert ours[key] == pytest.approx(theirs[key], abs=1e-9), key


@pytest.mark.skipif(shutil.which("make") is None, reason="make is not installed")
def test_make_bop_toolkit_env_needs_a_clone_and_installs_what_bop_toolkit_needs(tmp_path):
    repo = Path(__file__).resolve().parents[2]
    make = ["make", "-s", "--no-print-directory", "-C", str(repo), "bop-toolkit-env"]
    missing = subprocess.run([*make, f"TOOLKIT={tmp_path / 'none'}"], capture_output=True, text=True)
    assert missing.returncode != 0 and "a clone of https://github.com/thodan/bop_toolkit" in missing.stdout
    clone = make_fake_toolkit(tmp_path / "f").parents[2] / "bop_toolkit"
    dry = subprocess.run(
        [*make, "-n", f"TOOLKIT={clone}", f"TOOLKIT_VENV={tmp_path / 'venv'}"], capture_output=True, text=True
    )
    assert dry.returncode == 0, dry.stderr
    for need in ('"numpy<2"', "pypng", "vispy", "scipy", f"--no-deps -e {clone}", "BOPNP_TOOLKIT_PYTHON="):
        assert need in dry.stdout, need
    assert not (tmp_path / "venv").exists()  # a dry run

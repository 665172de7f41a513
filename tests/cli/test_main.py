import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from bopnp.cli.main import COMMANDS, cli


def test_group_help_lists_every_command():
    result = CliRunner().invoke(cli, ["--help"])
    assert result.exit_code == 0
    for name in COMMANDS:
        assert name in result.output


def test_group_help_imports_neither_torch_nor_pyrender():
    code = (
        "import sys\n"
        "from bopnp.cli.main import cli\n"
        "try:\n    cli(['--help'])\nexcept SystemExit:\n    pass\n"
        "heavy = [m for m in ('torch', 'pyrender', 'cv2') if m in sys.modules]\n"
        "print('HEAVY', heavy)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert "HEAVY []" in out


def test_unknown_command_is_a_usage_error():
    result = CliRunner().invoke(cli, ["no-such-command"])
    assert result.exit_code == 2


@pytest.mark.parametrize("name", sorted(COMMANDS))
def test_every_command_has_help_with_an_example(name):
    result = CliRunner().invoke(cli, [name, "--help"])
    assert result.exit_code == 0, result.output
    examples = [
        line for line in result.output.splitlines() if f"bopnp {name} " in line and not line.startswith("Usage:")
    ]
    assert examples, f"'bopnp {name} --help' shows no example"


@pytest.mark.parametrize("name", sorted(COMMANDS))
def test_command_help_imports_no_heavy_module(name):
    code = (
        "import sys\n"
        "from bopnp.cli.main import cli\n"
        f"try:\n    cli([{name!r}, '--help'])\nexcept SystemExit:\n    pass\n"
        "print('HEAVY', [m for m in ('torch', 'pyrender', 'OpenGL', 'cv2') if m in sys.modules])\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert "HEAVY []" in out


def test_python_dash_m_bopnp_runs_the_cli_from_a_checkout(tmp_path):
    import os
    from pathlib import Path

    repo = Path(__file__).resolve().parents[2]
    env = {**os.environ, "PYTHONPATH": str(repo)}
    out = subprocess.run(
        [sys.executable, "-m", "bopnp", "check", "--help"],
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
        check=True,
    ).stdout
    assert out.startswith("Usage: bopnp check")


def _group_with(monkeypatch, fn):
    """``cli`` with one more command, ``boom``, that runs ``fn(tmp)`` (tmp: its --out folder or None)."""
    import types

    import click

    from bopnp.cli import main

    @click.command("boom")
    @click.option("--out", default=None)
    def boom(out):
        if out is not None:
            main.set_report_dir(out)
        fn()

    module = types.ModuleType("bopnp_test_boom")
    module.boom = boom
    monkeypatch.setitem(sys.modules, "bopnp_test_boom", module)
    monkeypatch.setitem(main.COMMANDS, "boom", ("bopnp_test_boom:boom", "test command"))
    return main.cli


@pytest.mark.parametrize(
    "code, hint",
    [
        ("ENOSPC", "disk is full"),
        ("EROFS", "read-only"),
        ("EACCES", "permission"),
        ("EDQUOT", "quota"),
        ("EIO", "input/output"),
    ],
)
def test_os_errors_of_any_command_name_the_path_and_the_fix(monkeypatch, tmp_path, code, hint):
    import errno
    import os

    path = tmp_path / "out" / "file.bin"

    def fail():
        raise OSError(getattr(errno, code), os.strerror(getattr(errno, code)), str(path))

    result = CliRunner().invoke(_group_with(monkeypatch, fail), ["boom"])
    assert result.exit_code != 0
    assert isinstance(result.exception, SystemExit)  # handled: no OSError traceback
    line = result.output.strip()
    assert line.startswith("error: ") and str(path) in line and code in line and hint in line, line
    assert len(line.splitlines()) == 1


def test_os_error_without_a_path_says_so(monkeypatch):
    import errno

    def fail():
        raise OSError(errno.ENOSPC, "No space left on device")

    result = CliRunner().invoke(_group_with(monkeypatch, fail), ["boom"])
    assert result.exit_code != 0 and isinstance(result.exception, SystemExit)
    assert "did not say which file" in result.output and "disk is full" in result.output


def _many_problems(n):
    from bopnp.errors import ResultsFormatError

    def fail():
        raise ResultsFormatError(
            "r.csv: problems in the BOP19 results CSV; fix every listed line",
            [f"line {i + 2}: score: bad" for i in range(n)],
        )

    return fail


@pytest.mark.parametrize("with_out", [True, False])
def test_a_long_problem_list_shows_the_first_ones_and_writes_all_to_a_file(monkeypatch, tmp_path, with_out):
    from bopnp.cli.main import PROBLEMS_FILE, SHOWN_PROBLEMS

    n = 100_001
    args = ["boom", "--out", str(tmp_path / "out")] if with_out else ["boom"]
    result = CliRunner().invoke(_group_with(monkeypatch, _many_problems(n)), args)
    assert result.exit_code == 2
    shown = [line for line in result.output.splitlines() if line.startswith("  - line ")]
    assert len(shown) == SHOWN_PROBLEMS
    assert f"{n - SHOWN_PROBLEMS} more ({n} in all)" in result.output
    last = result.output.strip().splitlines()[-1]
    path = Path(last.split("the full list is in ")[1].split(" (")[0])
    try:
        if with_out:
            assert path == tmp_path / "out" / PROBLEMS_FILE and "in the output folder" in last
        else:
            assert "temporary file" in last
        lines = path.read_text().splitlines()
        assert lines[0].startswith("r.csv: problems") and len(lines) == n + 1
        assert lines[1] == "line 2: score: bad" and lines[-1] == f"line {n + 1}: score: bad"
    finally:
        if not with_out:
            path.unlink()


def test_a_short_problem_list_is_printed_whole(monkeypatch, tmp_path):
    from bopnp.cli.main import SHOWN_PROBLEMS

    result = CliRunner().invoke(
        _group_with(monkeypatch, _many_problems(SHOWN_PROBLEMS)), ["boom", "--out", str(tmp_path)]
    )
    assert result.exit_code == 2
    assert len([line for line in result.output.splitlines() if line.startswith("  - line ")]) == SHOWN_PROBLEMS
    assert "full list" not in result.output and not any(tmp_path.iterdir())

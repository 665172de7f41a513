import subprocess
import sys

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
    examples = [line for line in result.output.splitlines() if f"bopnp {name} " in line and not line.startswith("Usage:")]
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
    out = subprocess.run([sys.executable, "-m", "bopnp", "check", "--help"], capture_output=True, text=True,
                         env=env, cwd=tmp_path, check=True).stdout
    assert out.startswith("Usage: bopnp check")

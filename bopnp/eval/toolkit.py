"""The official scorer in its own interpreter: ``bopnp eval --backend bop_toolkit`` runs bop_toolkit's
``scripts/eval_bop19_pose.py`` on the same files as bopnp's evaluation and puts both tables side by side.

bop_toolkit is not on the package registry and needs numpy < 2 (bopnp runs on numpy 2), pypng and vispy, so it
runs in an interpreter of its own: ``make bop-toolkit-env TOOLKIT=path/to/bop_toolkit`` builds one from a clone
(``git clone https://github.com/thodan/bop_toolkit``). The interpreter is, in this order: the ``python``
argument (``--toolkit-python``), ``$BOPNP_TOOLKIT_PYTHON``, ``$BOP_TOOLKIT_PYTHON`` (an older name), else the one
running bopnp. Headless rendering uses EGL (``EGL_PLATFORM=surfaceless`` is set unless you set it).

Example:
    >>> theirs = run_bop_toolkit("results/m_lmo-test.csv", "datasets", python="ENV/bin/python")  # doctest: +SKIP
    >>> print(format_comparison(ours, theirs))                                              # doctest: +SKIP
"""

from __future__ import annotations

import json
import math
import os
import shutil
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from bopnp.errors import BopnpError, ConfigError, DatasetError

#: the environment variable naming bop_toolkit's interpreter (and the older name, still read)
TOOLKIT_PYTHON_ENV = "BOPNP_TOOLKIT_PYTHON"
LEGACY_TOOLKIT_PYTHON_ENV = "BOP_TOOLKIT_PYTHON"
INSTALL_HINT = (
    "make an environment for it from a clone: `git clone https://github.com/thodan/bop_toolkit && "
    'make bop-toolkit-env TOOLKIT=bop_toolkit` (in a bopnp checkout; by hand: a venv with "numpy<2" pypng vispy '
    "and bop_toolkit's other requirements, then `pip install --no-deps -e bop_toolkit`), then pass its python with "
    "--toolkit-python PATH or BOPNP_TOOLKIT_PYTHON=PATH"
)
#: the scores both tools write (``scores_bop19.json``), as the comparison lists them
COMPARED_SCORES = (
    ("bop19_average_recall", "AR (BOP19)"),
    ("bop19_average_recall_vsd", "AR_VSD"),
    ("bop19_average_recall_mssd", "AR_MSSD"),
    ("bop19_average_recall_mspd", "AR_MSPD"),
    ("bop19_average_time_per_image", "time per image (s)"),
)


def toolkit_python(python: str | os.PathLike | None = None) -> str:
    """The interpreter that runs bop_toolkit: ``python``, else $BOPNP_TOOLKIT_PYTHON, else $BOP_TOOLKIT_PYTHON, else
    this one."""
    if python:
        return str(python)
    return os.environ.get(TOOLKIT_PYTHON_ENV) or os.environ.get(LEGACY_TOOLKIT_PYTHON_ENV) or sys.executable


def find_toolkit(python: str | os.PathLike | None = None) -> Path:
    """The ``scripts/`` folder of the bop_toolkit clone importable by ``python`` (see :func:`toolkit_python`).

    Raises:
        ConfigError: no such interpreter, bop_toolkit_lib not importable there, or its scripts missing; the
            message says how to make an environment for it.
    """
    python = toolkit_python(python)
    code = "import os, bop_toolkit_lib; print(os.path.dirname(os.path.abspath(bop_toolkit_lib.__file__)))"
    try:
        proc = subprocess.run([python, "-c", code], capture_output=True, text=True, timeout=120)
    except (FileNotFoundError, PermissionError, OSError) as exc:
        raise ConfigError(
            f"bop_toolkit's interpreter {python} cannot be run ({type(exc).__name__}); give the python of the "
            f"environment with bop_toolkit: {INSTALL_HINT}"
        ) from None
    if proc.returncode != 0:
        last = (proc.stderr.strip().splitlines() or [""])[-1][:200]
        raise ConfigError(f"bop_toolkit_lib is not importable by {python} ({last}); {INSTALL_HINT}")
    scripts = Path(proc.stdout.strip().splitlines()[-1]).parent / "scripts"
    if not (scripts / "eval_bop19_pose.py").is_file():
        raise ConfigError(
            f"bop_toolkit_lib is installed but {scripts / 'eval_bop19_pose.py'} is missing (not installed from a "
            f"clone); {INSTALL_HINT}"
        )
    return scripts


def score_differences(
    ours: Mapping[str, Any], theirs: Mapping[str, Any]
) -> list[tuple[str, float | None, float | None]]:
    """(label, bopnp's value, bop_toolkit's value) of every score of :data:`COMPARED_SCORES`; None where a tool
    gives none (bopnp's VSD and AR without depth images)."""

    def value(d: Mapping[str, Any], k: str) -> float | None:
        v = d.get(k)
        return None if v is None or (isinstance(v, float) and math.isnan(v)) else float(v)

    return [(label, value(ours, key), value(theirs, key)) for key, label in COMPARED_SCORES]


def format_comparison(ours: Mapping[str, Any], theirs: Mapping[str, Any]) -> str:
    """bopnp's and bop_toolkit's scores side by side, with their differences (bopnp - bop_toolkit) and the
    largest one among the recalls."""
    rows = score_differences(ours, theirs)
    width = max(len(label) for label, _, _ in rows)
    lines = [f"{'score':<{width}}  {'bopnp':>12}  {'bop_toolkit':>12}  {'difference':>12}"]
    worst = 0.0
    for label, a, b in rows:
        fmt = lambda v: f"{v:>12.6f}" if v is not None else f"{'n/a':>12}"  # noqa: E731
        diff = f"{a - b:>+12.2e}" if a is not None and b is not None else f"{'-':>12}"
        if a is not None and b is not None and label.startswith("AR"):
            worst = max(worst, abs(a - b))
        lines.append(f"{label:<{width}}  {fmt(a)}  {fmt(b)}  {diff}")
    lines.append(f"largest |difference| of the recalls: {worst:.2e}")
    return "\n".join(lines)


def run_bop_toolkit(
    results_csv: Path,
    bop_path: Path,
    targets: str = "test_targets_bop19.json",
    out_dir: Path | None = None,
    num_workers: int = 1,
    renderer: str = "vispy",
    python: str | os.PathLike | None = None,
) -> dict:
    """Evaluate ``results_csv`` with bop_toolkit's ``eval_bop19_pose.py``.

    Args:
        results_csv: ``METHOD_DATASET-SPLIT[...].csv``.
        bop_path: the folder holding the dataset (bop_toolkit's BOP_PATH).
        targets: targets file name inside the dataset folder (bop_toolkit takes no other path).
        out_dir: bop_toolkit's eval folder; default ``results/eval/<csv stem>/bop_toolkit``.
        num_workers: bop_toolkit's worker processes.
        renderer: bop_toolkit's renderer type ('vispy', 'cpp' or 'python').
        python: bop_toolkit's interpreter (see :func:`toolkit_python`).
    Returns:
        bop_toolkit's scores_bop19.json content, plus method / dataset / split.
    Raises:
        ConfigError: bop_toolkit missing; DatasetError: the dataset lacks a file bop_toolkit needs;
        BopnpError: bop_toolkit failed (its log is named).
    """
    from bopnp.bop.results import parse_result_filename, split_folder
    from bopnp.eval.inputs import DATASET_FOLDER

    python = toolkit_python(python)
    scripts = find_toolkit(python)
    results_csv = Path(results_csv).resolve()
    name = parse_result_filename(results_csv)
    dataset_dir = Path(bop_path).resolve() / DATASET_FOLDER.get(name.dataset, name.dataset)
    if Path(targets).name != str(targets):
        raise ConfigError(
            f"bop_toolkit reads the targets from the dataset folder: pass a file name in {dataset_dir}, not the path "
            f"{targets}"
        )
    split_dir = dataset_dir / split_folder(name)
    missing_info = sorted(
        str(p.parent.name) for p in split_dir.glob("*/scene_gt.json") if not (p.parent / "scene_gt_info.json").is_file()
    )
    if missing_info:
        raise DatasetError(
            f"bop_toolkit needs scene_gt_info.json in every scene of {split_dir} (missing in "
            f"{', '.join(missing_info[:5])}); "
            "compute it with `bopnp prepare` or evaluate with the default backend"
        )
    out = Path(out_dir) if out_dir is not None else Path("results") / "eval" / results_csv.stem / "bop_toolkit"
    out = out.resolve()
    out.mkdir(parents=True, exist_ok=True)
    result_name = results_csv.name.split(".")[0]
    stale = out / result_name
    if stale.exists():
        shutil.rmtree(stale)
    env = dict(os.environ)
    env["BOP_PATH"] = str(Path(bop_path).resolve())
    env.setdefault("EGL_PLATFORM", "surfaceless")
    env.setdefault("PYOPENGL_PLATFORM", "egl")
    # eval_bop19_pose.py starts its helper scripts with the `python` found on PATH
    env["PATH"] = str(Path(python).parent) + os.pathsep + env.get("PATH", "")
    cmd = [
        python,
        str(scripts / "eval_bop19_pose.py"),
        "--renderer_type",
        renderer,
        "--results_path",
        str(results_csv.parent),
        "--eval_path",
        str(out),
        "--result_filenames",
        results_csv.name,
        "--num_workers",
        str(num_workers),
        "--targets_filename",
        str(targets),
    ]
    log_path = out / f"{result_name}.log"
    with open(log_path, "w") as log:
        code = subprocess.run(cmd, cwd=scripts.parent, env=env, stdout=log, stderr=subprocess.STDOUT).returncode
    scores_path = out / result_name / "scores_bop19.json"
    if code != 0 or not scores_path.is_file():
        raise BopnpError(f"bop_toolkit's eval_bop19_pose.py failed (exit {code}); see {log_path}")
    scores = json.loads(scores_path.read_text())
    scores.update(
        {
            "method": name.method,
            "dataset": name.dataset,
            "split": name.split,
            "split_type": name.split_type,
            "backend": "bop_toolkit",
            "python": python,
            "eval_dir": str(out / result_name),
        }
    )
    return scores


__all__ = [
    "COMPARED_SCORES",
    "INSTALL_HINT",
    "TOOLKIT_PYTHON_ENV",
    "find_toolkit",
    "format_comparison",
    "run_bop_toolkit",
    "score_differences",
    "toolkit_python",
]

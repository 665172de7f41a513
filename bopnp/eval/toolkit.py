"""``bopnp eval --backend bop_toolkit``: run the official ``scripts/eval_bop19_pose.py`` of bop_toolkit
on the same files, for users who want to double-check bopnp's numbers.

bop_toolkit is not on the package registry: install it from a clone (its scripts must stay next to
the library), in an environment with its own requirements (it needs numpy < 2)::

    git clone https://github.com/thodan/bop_toolkit && pip install -e bop_toolkit

Set ``BOP_TOOLKIT_PYTHON`` to that environment's python when it is not the one running bopnp. Headless
rendering uses EGL (``EGL_PLATFORM=surfaceless`` is set unless you set it).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

from bopnp.errors import BopnpError, ConfigError, DatasetError

INSTALL_HINT = (
    "install it from a clone, in a Python environment with numpy < 2: "
    "`git clone https://github.com/thodan/bop_toolkit && pip install -e bop_toolkit`; "
    "then set BOP_TOOLKIT_PYTHON=/path/to/that/env/bin/python if it is not the Python running bopnp"
)


def toolkit_python() -> str:
    """The interpreter that runs bop_toolkit: $BOP_TOOLKIT_PYTHON, else this one."""
    return os.environ.get("BOP_TOOLKIT_PYTHON", sys.executable)


def find_toolkit(python: str | None = None) -> Path:
    """The ``scripts/`` folder of the bop_toolkit clone importable by ``python``.

    Raises:
        ConfigError: bop_toolkit_lib is not importable, or its scripts are missing; the message says
            how to install it.
    """
    python = python or toolkit_python()
    code = "import os, bop_toolkit_lib; print(os.path.dirname(os.path.abspath(bop_toolkit_lib.__file__)))"
    try:
        proc = subprocess.run([python, "-c", code], capture_output=True, text=True, timeout=120)
    except FileNotFoundError:
        raise ConfigError(
            f"BOP_TOOLKIT_PYTHON={python} does not exist; point it to the python of the environment with bop_toolkit"
        ) from None
    if proc.returncode != 0:
        raise ConfigError(f"bop_toolkit_lib is not importable by {python}; {INSTALL_HINT}")
    scripts = Path(proc.stdout.strip()).parent / "scripts"
    if not (scripts / "eval_bop19_pose.py").is_file():
        raise ConfigError(
            f"bop_toolkit_lib is installed but {scripts / 'eval_bop19_pose.py'} is missing (not installed from a "
            f"clone); {INSTALL_HINT}"
        )
    return scripts


def run_bop_toolkit(
    results_csv: Path,
    bop_path: Path,
    targets: str = "test_targets_bop19.json",
    out_dir: Path | None = None,
    num_workers: int = 1,
    renderer: str = "vispy",
) -> dict:
    """Evaluate ``results_csv`` with bop_toolkit's ``eval_bop19_pose.py``.

    Args:
        results_csv: ``METHOD_DATASET-SPLIT[...].csv``.
        bop_path: the folder holding the dataset (bop_toolkit's BOP_PATH).
        targets: targets file name inside the dataset folder (bop_toolkit takes no other path).
        out_dir: bop_toolkit's eval folder; default ``results/eval/<csv stem>/bop_toolkit``.
        num_workers: bop_toolkit's worker processes.
        renderer: bop_toolkit's renderer type ('vispy', 'cpp' or 'python').
    Returns:
        bop_toolkit's scores_bop19.json content, plus method / dataset / split.
    Raises:
        ConfigError: bop_toolkit missing; DatasetError: the dataset lacks a file bop_toolkit needs;
        BopnpError: bop_toolkit failed (its log is named).
    """
    from bopnp.bop.results import parse_result_filename, split_folder
    from bopnp.eval.inputs import DATASET_FOLDER

    python = toolkit_python()
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
            "eval_dir": str(out / result_name),
        }
    )
    return scores


__all__ = ["run_bop_toolkit", "find_toolkit", "toolkit_python", "INSTALL_HINT"]

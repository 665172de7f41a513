"""Training checkpoints: written atomically, holding everything an exact resume needs.

A checkpoint is one ``torch.save`` file with plain containers and tensors only, so it loads with
``weights_only=True`` (no code runs on load): model, optimiser, scheduler and AMP scaler state dicts, the step, the
RNG states of Python, numpy and torch (CPU and CUDA), the run's config as a dict and the code revision.
"""

from __future__ import annotations

import io
import os
import random
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import torch

from bopnp.bop.atomic import write_bytes_atomic
from bopnp.errors import CheckpointError


def rng_state() -> dict[str, Any]:
    """The states of every random generator training draws from (Python, numpy, torch CPU and CUDA)."""
    kind, keys, pos, has_gauss, gauss = np.random.get_state()
    state = {
        "python": random.getstate(),
        "numpy": {
            "kind": kind,
            "keys": torch.from_numpy(keys.astype(np.int64)),
            "pos": int(pos),
            "has_gauss": int(has_gauss),
            "gauss": float(gauss),
        },
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    """Restore what :func:`rng_state` returned."""
    py = state["python"]
    random.setstate((py[0], tuple(py[1]), py[2]))
    n = state["numpy"]
    np.random.set_state((n["kind"], n["keys"].numpy().astype(np.uint32), n["pos"], n["has_gauss"], n["gauss"]))
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


@contextmanager
def preserved_rng() -> Iterator[None]:
    """Run a block without moving any random generator of training (Python, numpy, torch CPU and CUDA): what it
    draws is given back on exit. Validation, previews and throughput measurements run inside one, so that where
    they happen (a resumed run validates where an uninterrupted one does not) cannot change the training."""
    state = rng_state()
    try:
        yield
    finally:
        set_rng_state(state)


def nonfinite_weights(weights: dict[str, Any], limit: int = 3) -> list[str]:
    """Names of the first ``limit`` floating-point tensors of a state dict that hold a NaN or an infinity."""
    bad = []
    for name, value in weights.items():
        if isinstance(value, torch.Tensor) and value.is_floating_point() and not bool(torch.isfinite(value).all()):
            bad.append(name)
            if len(bad) >= limit:
                break
    return bad


def code_revision(start: str | os.PathLike | None = None) -> str:
    """The git commit of the checkout bopnp runs from (with ``+dirty`` when it has changes), else the version."""
    from bopnp import __version__

    here = Path(start) if start is not None else Path(__file__).resolve().parent
    try:
        rev = subprocess.run(["git", "rev-parse", "HEAD"], cwd=here, capture_output=True, text=True, timeout=10)
        if rev.returncode != 0:
            return __version__
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=here,
            capture_output=True,
            text=True,
            timeout=10,
        ).stdout.strip()
        return rev.stdout.strip() + ("+dirty" if dirty else "")
    except (OSError, subprocess.SubprocessError):
        return __version__


def save_checkpoint(path: str | os.PathLike, state: dict[str, Any]) -> None:
    """Write ``state`` to ``path`` atomically (a reader sees the old file or the new one, never half of one)."""
    buf = io.BytesIO()
    torch.save(state, buf)
    write_bytes_atomic(path, buf.getvalue())


def load_checkpoint(
    path: str | os.PathLike, map_location: str | torch.device = "cpu", *, check_finite: bool = True
) -> dict[str, Any]:
    """Read a checkpoint written by :func:`save_checkpoint`.

    Args:
        check_finite: refuse weights that hold NaN or infinite values (a diverged run), which would otherwise give
            empty predictions or fail a resumed run later without naming the file.
    Raises:
        CheckpointError: the file is missing, not a readable checkpoint, or (``check_finite``) holds non-finite
            weights, naming the file.
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: no checkpoint there; pass the path of a .pt file written by `bopnp train`")
    try:
        state = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as exc:  # torch raises many kinds for a truncated or foreign file
        raise CheckpointError(
            f"{path}: not a readable checkpoint ({type(exc).__name__}: {str(exc)[:200]}); "
            "it may be truncated: use another checkpoint of the run or retrain"
        ) from None
    if not isinstance(state, dict) or "model" not in state:
        raise CheckpointError(f"{path}: not a bopnp training checkpoint (no model state in it)")
    if check_finite and isinstance(state["model"], dict):
        bad = nonfinite_weights(state["model"])
        if bad:
            raise CheckpointError(
                f"{path}: its weights hold NaN or infinite values ({', '.join(bad)}): the run diverged before it "
                "was saved; use an earlier checkpoint of the run (best.pt) or retrain with a lower --lr"
            )
    return state


__all__ = [
    "code_revision",
    "load_checkpoint",
    "nonfinite_weights",
    "preserved_rng",
    "rng_state",
    "save_checkpoint",
    "set_rng_state",
]

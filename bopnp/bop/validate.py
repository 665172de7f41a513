"""Small checks shared by the loaders and ``bopnp check``: each appends a problem line
``"<file>: <field>: <what is wrong>"`` instead of raising, so that a file reports all its problems at once."""

from __future__ import annotations

import math
from typing import Any

import numpy as np

#: tolerance on |R^T R - I| (max abs entry) and |det R - 1| for an estimated rotation (results CSV)
ROT_TOL = 1e-3
#: the same tolerance for annotated rotations in dataset files: some official BOP annotations are less
#: exact (LM-O ``scene_gt.json`` deviates by up to ~0.01 in |R^T R - I|), so 1e-3 would reject real data
GT_ROT_TOL = 0.05


def problem(source: str, field: str, message: str) -> str:
    """One problem line: ``"<source>: <field>: <message>"`` (no field part when ``field`` is empty)."""
    return f"{source}: {field}: {message}" if field else f"{source}: {message}"


def is_int(v: Any) -> bool:
    """True for an int (also a float with an integral value, as some writers emit), never for a bool."""
    if isinstance(v, bool):
        return False
    if isinstance(v, (int, np.integer)):
        return True
    return isinstance(v, float) and math.isfinite(v) and v.is_integer()


def is_number(v: Any) -> bool:
    """True for a finite int or float, never for a bool."""
    if isinstance(v, bool):
        return False
    return isinstance(v, (int, float, np.integer, np.floating)) and math.isfinite(float(v))


def numbers(v: Any, n: int, source: str, field: str, problems: list[str]) -> np.ndarray | None:
    """``v`` as an (n,) float64 array of finite numbers, or None after appending a problem."""
    if not isinstance(v, (list, tuple)) or len(v) != n:
        got = f"{len(v)} values" if isinstance(v, (list, tuple)) else type(v).__name__
        problems.append(problem(source, field, f"expected a list of {n} numbers, got {got}"))
        return None
    bad = [i for i, x in enumerate(v) if not is_number(x)]
    if bad:
        problems.append(problem(source, field, f"entries {bad} are not finite numbers"))
        return None
    return np.asarray(v, np.float64)


def rotation_errors(Rs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(max |R^T R - I|, |det R - 1|) of each matrix of an (N, 3, 3) stack (or of one (3, 3) matrix: 0-d arrays)."""
    Rs = np.asarray(Rs, np.float64)
    ortho = np.abs(np.swapaxes(Rs, -1, -2) @ Rs - np.eye(3)).max(axis=(-2, -1))
    return ortho, np.abs(np.linalg.det(Rs) - 1.0)


def not_rotation(ortho: float, det: float, tol: float) -> str:
    """The message for a matrix whose errors (from :func:`rotation_errors`) reach ``tol``."""
    return f"not a rotation: |R^T R - I| = {ortho:.2g}, |det R - 1| = {det:.2g} (both must be < {tol:g})"


def check_rotation(R: np.ndarray, source: str, field: str, problems: list[str], tol: float = ROT_TOL) -> bool:
    """Append a problem unless R is orthonormal with det +1 within ``tol``; return whether it is."""
    ortho, det = rotation_errors(R)
    if ortho < tol and det < tol:
        return True
    problems.append(problem(source, field, f"{not_rotation(ortho, det, tol)}; store an orthonormal matrix, row-major"))
    return False

"""Helpers shared by the BOP data-layer tests (a uniquely named module, importable because pytest
puts this folder on sys.path)."""

from __future__ import annotations

import copy
from pathlib import Path

import numpy as np

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "bop"


def snapshot(obj):
    """A deep copy used to prove that a function left its argument unchanged."""
    return copy.deepcopy(obj)


def same(a, b) -> bool:
    """Deep equality that understands numpy arrays and dataclasses (dtype included)."""
    if isinstance(a, np.ndarray) or isinstance(b, np.ndarray):
        return isinstance(a, np.ndarray) and isinstance(b, np.ndarray) and a.dtype == b.dtype and np.array_equal(a, b)
    if hasattr(a, "__dataclass_fields__"):
        return type(a) is type(b) and all(same(getattr(a, f), getattr(b, f)) for f in a.__dataclass_fields__)
    if isinstance(a, dict):
        return isinstance(b, dict) and a.keys() == b.keys() and all(same(a[k], b[k]) for k in a)
    if isinstance(a, (list, tuple)):
        return type(a) is type(b) and len(a) == len(b) and all(same(x, y) for x, y in zip(a, b))
    return a == b

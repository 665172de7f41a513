"""Fixtures of the BOP data-layer tests: a tiny consistent dataset built in a temporary folder (with
the session fixture ``tiny`` of tests/conftest.py)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

# the test modules import bop_helpers from this folder; make that hold under any pytest import mode
if str(Path(__file__).parent) not in sys.path:
    sys.path.insert(0, str(Path(__file__).parent))


@pytest.fixture
def tiny_root(tmp_path, tiny) -> Path:
    """A clean tiny dataset: objects 1 (box) and 2 (cylinder), split test with scene 1, plus train_pbr."""
    return tiny.make_dataset(tmp_path / "tiny", scenes=1, with_pbr=True)

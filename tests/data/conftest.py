"""Fixtures of the data tests: ``tiny_bop``, a small BOP dataset built by :mod:`tiny_bop` (independent of
``bopnp synth``), copied fresh for each test because ``prepare`` writes into the dataset."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from tiny_bop import build


@pytest.fixture(scope="session")
def tiny_bop_template(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("tiny_bop")
    build(root)
    return root


@pytest.fixture
def tiny_bop(tiny_bop_template, tmp_path) -> tuple[Path, str]:
    """(bop_path, name) of a fresh copy of the tiny dataset."""
    shutil.copytree(tiny_bop_template, tmp_path / "bop")
    return tmp_path / "bop", "tiny"

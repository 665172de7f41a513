"""Shared fixtures and markers.

Markers: ``gpu`` (skipped without CUDA), ``slow``, ``shared_data`` (needs the real LM-O files that sit
beside a development checkout in ``../shared/data/lmo``, or in ``$BOPNP_LMO_DIR``; skipped when absent).
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]


def _shared_lmo_dir() -> Path:
    return Path(os.environ.get("BOPNP_LMO_DIR", REPO_ROOT.parent / "shared" / "data" / "lmo"))


def pytest_collection_modifyitems(config, items):
    import torch

    has_cuda = torch.cuda.is_available()
    has_lmo = (_shared_lmo_dir() / "models" / "models_info.json").is_file()
    for item in items:
        if "gpu" in item.keywords and not has_cuda:
            item.add_marker(pytest.mark.skip(reason="needs a CUDA device"))
        if "shared_data" in item.keywords and not has_lmo:
            item.add_marker(pytest.mark.skip(reason=f"real LM-O files not found at {_shared_lmo_dir()}"))


@pytest.fixture(scope="session")
def lmo_dir() -> Path:
    """Folder of the real (partial) LM-O dataset in BOP layout; tests using it carry the shared_data marker."""
    path = _shared_lmo_dir()
    if not (path / "models" / "models_info.json").is_file():
        pytest.skip(f"real LM-O files not found at {path}")
    return path


def _devices() -> list[str]:
    import torch

    return ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])


@pytest.fixture(params=_devices())
def device(request) -> str:
    """Every available device: cpu, and cuda when present."""
    return request.param

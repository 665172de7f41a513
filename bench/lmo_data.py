"""Where the benchmarks find LM-O: ``$BOPNP_LMO_DIR``, else the development copy beside the checkout
(``../shared/data/lmo``), else the user's download in ``$BOP_PATH/lmo`` (default ``datasets/lmo``)."""

from __future__ import annotations

import os
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def default_lmo_dir() -> Path:
    if "BOPNP_LMO_DIR" in os.environ:
        return Path(os.environ["BOPNP_LMO_DIR"])
    beside = REPO.parent / "shared" / "data" / "lmo"
    if (beside / "models").is_dir():
        return beside
    return Path(os.environ.get("BOP_PATH", REPO / "datasets")) / "lmo"

"""Which torch device a ``--device`` choice means: the one place that turns ``auto``, ``cpu`` or ``cuda`` into a
``torch.device`` (so no ``'cuda'`` literal is needed elsewhere)."""

from __future__ import annotations

import os
import warnings
from collections.abc import Callable
from typing import Any

from bopnp.errors import ConfigError


def cuda_possible() -> bool:
    """False when this machine certainly has no CUDA device (no NVIDIA driver), without importing torch."""
    return os.path.exists("/dev/nvidiactl") or not os.path.isdir("/dev")


def resolve_device(choice: str):
    """``auto``: CUDA when present, else CPU; ``cpu``; ``cuda`` (a ConfigError without a GPU).

    Returns:
        a ``torch.device``.
    """
    import torch

    if choice not in ("auto", "cpu", "cuda"):
        raise ConfigError(f"device must be auto, cpu or cuda, got {choice!r}")
    if choice == "cuda" and not torch.cuda.is_available():
        raise ConfigError("--device cuda: no CUDA device is available here; use --device cpu")
    if choice == "auto":
        return torch.device("cuda" if cuda_possible() and torch.cuda.is_available() else "cpu")
    return torch.device(choice)


def count_cuda_syncs(fn: Callable[[], Any]) -> tuple[int, Any]:
    """Host-device synchronisations during one call of ``fn`` on the current CUDA device, counted by CUDA's sync
    debug mode: explicit reads (``.item()``, ``bool(tensor)``, ``.nonzero()``), blocking copies between host and
    device, and the status checks of linear-algebra calls alike. Work queued before the call is waited for first, so
    it does not count.

    Returns:
        (the number of synchronisations, what ``fn`` returned).
    Raises:
        ConfigError: no CUDA device here.
    """
    import torch

    if not torch.cuda.is_available():
        raise ConfigError("counting CUDA synchronisations needs a CUDA device; none is available here")
    torch.cuda.synchronize()
    previous = torch.cuda.get_sync_debug_mode()
    torch.cuda.set_sync_debug_mode("warn")
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            out = fn()
    finally:
        torch.cuda.set_sync_debug_mode(previous)
    return sum("synchroniz" in str(w.message) for w in caught), out


__all__ = ["count_cuda_syncs", "cuda_possible", "resolve_device"]

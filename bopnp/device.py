"""Which torch device a ``--device`` choice means: the one place that turns ``auto``, ``cpu`` or ``cuda`` into a
``torch.device`` (so no ``'cuda'`` literal is needed elsewhere)."""

from __future__ import annotations

import os

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


__all__ = ["cuda_possible", "resolve_device"]

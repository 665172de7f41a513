"""Batched finiteness tests in a few kernels (the solver runs them every iteration, on every device).

>>> import torch
>>> all_finite(torch.tensor([1.0, 2.0]), torch.tensor([[0.0, 1.0], [float("nan"), 0.0]])).tolist()
[True, False]
"""

from __future__ import annotations

from torch import Tensor


def all_finite(*tensors: Tensor) -> Tensor:
    """(B,) bool: whether every entry of every tensor is finite, per item of the leading batch dimension.

    A sum is finite exactly when its terms are (the solver's magnitudes are far from overflow), and
    ``s - s`` is 0 for a finite ``s`` and NaN for an infinite or NaN one: 2 + len(tensors) kernels where
    ``isfinite(...).all()`` per tensor costs about 5 each.

    Args:
        tensors: each (B, ...), same B.
    """
    s = None
    for t in tensors:
        term = t.flatten(1).sum(-1) if t.dim() > 1 else t  # flatten: reshape(0, -1) fails for B = 0
        s = term if s is None else s + term
    return (s - s) == 0


__all__ = ["all_finite"]

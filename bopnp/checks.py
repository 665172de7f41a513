"""One helper to validate the shapes of public tensor inputs.

>>> import torch
>>> check_shape(torch.zeros(2, 5, 3), "B N 3", "x3d")
{'B': 2, 'N': 5}
"""

from __future__ import annotations

from typing import Any

from bopnp.errors import ShapeError


def check_shape(x: Any, spec: str, name: str = "input", dims: dict[str, int] | None = None) -> dict[str, int]:
    """Check that ``x.shape`` matches ``spec`` and return the sizes bound to its letters.

    Args:
        x: a tensor or array (anything with ``.shape``).
        spec: space-separated dimensions: integers must match exactly, names bind a size that must be
            the same everywhere it appears (also across calls when ``dims`` is passed in), ``*`` matches
            any size.
        name: the argument's name, used in the message.
        dims: sizes already bound by earlier checks; updated in place and returned.
    Raises:
        ShapeError: naming the argument, the expected and the actual shape.
    """
    dims = {} if dims is None else dims
    want = spec.split()
    shape = tuple(getattr(x, "shape", ()))
    if not hasattr(x, "shape"):
        raise ShapeError(f"{name}: expected an array or tensor of shape ({spec}), got {type(x).__name__}")
    if len(shape) != len(want):
        raise ShapeError(f"{name}: expected shape ({spec}), got {tuple(shape)}")
    for size, token in zip(shape, want):
        if token == "*":
            continue
        if token.isdigit():
            if size != int(token):
                raise ShapeError(f"{name}: expected shape ({spec}), got {tuple(shape)}")
            continue
        bound = dims.setdefault(token, int(size))
        if bound != size:
            raise ShapeError(
                f"{name}: dimension {token} is {size} here but {bound} elsewhere (expected ({spec}), got "
                f"{tuple(shape)})"
            )
    return dims

"""Pieces every coordinate network shares: normalisation layers, the input check and the class-aware head."""

from __future__ import annotations

import math
from typing import Literal

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from bopnp.checks import check_shape
from bopnp.errors import ConfigError, ShapeError

NormKind = Literal["batch", "group"]
#: the normalisation layers a coordinate network can use
NORMS = ("batch", "group")
#: fixed input normalisation (ImageNet statistics), so callers pass plain [0, 1] images
MEAN = (0.485, 0.456, 0.406)
STD = (0.229, 0.224, 0.225)


def check_norm(norm: str) -> None:
    if norm not in NORMS:
        raise ConfigError(f"norm must be one of {', '.join(NORMS)}, got {norm!r}")


def make_norm(norm: str, channels: int) -> nn.Module:
    """Batch norm, or group norm with 8 groups (fewer where ``channels`` has no such divisor): group norm does
    not depend on the batch, so it suits small batches and fine-tuning with frozen statistics."""
    check_norm(norm)
    if norm == "batch":
        return nn.BatchNorm2d(channels)
    return nn.GroupNorm(math.gcd(8, channels), channels)


def check_input(image: Tensor, obj_index: Tensor, num_objects: int) -> int:
    """Check a coordinate network's inputs; return the crop side S.

    Args:
        image: (B, 3, S, S) float RGB in [0, 1].
        obj_index: (B,) int64 or int32 in [0, num_objects).
    Raises:
        ShapeError: naming the input and what it should be.
    """
    dims = check_shape(image, "B 3 S S", "image")
    check_shape(obj_index, "B", "obj_index", dims)
    if obj_index.dtype not in (torch.int64, torch.int32) or (
        obj_index.numel() and (int(obj_index.min()) < 0 or int(obj_index.max()) >= num_objects)
    ):
        raise ShapeError(f"obj_index: expected integers in [0, {num_objects}), got {obj_index.tolist()}")
    return dims["S"]


def normalise_image(image: Tensor, mean: Tensor, std: Tensor) -> Tensor:
    """(B, 3, S, S) [0, 1] RGB -> ImageNet-normalised, in the image's dtype."""
    return (image - mean.to(image.dtype)) / std.to(image.dtype)


def class_aware_head(head: nn.Conv2d, x: Tensor, obj_index: Tensor, num_objects: int) -> Tensor:
    """The four output channels of each item's own object, (B, 4, S, S).

    Args:
        head: convolution with ``4 * num_objects`` output channels (group k serves object index k).
        x: (B, C, S, S) decoder features. obj_index: (B,) int64 in [0, num_objects).

    With autograd (training) every group is computed by one convolution and each item keeps its own (a static
    graph); without (inference) only the groups of the objects in the batch are computed, one convolution per
    object, which saves most of the head's cost when the network serves many objects."""
    n = num_objects
    B, S = x.shape[0], x.shape[-1]
    if torch.is_grad_enabled() or n == 1 or B == 0:
        out = head(x).view(B, n, 4, S, S)
        return out[torch.arange(B, device=out.device), obj_index]
    weight = head.weight.view(n, 4, *head.weight.shape[1:])
    bias = head.bias.view(n, 4)
    out = None
    for o in torch.unique(obj_index).tolist():
        sel = obj_index == o
        part = F.conv2d(x[sel], weight[o], bias[o], padding=head.padding)
        if out is None:
            out = part.new_empty(B, 4, S, S)
        out[sel] = part
    return out


def coords_and_error(out: Tensor) -> tuple[Tensor, Tensor]:
    """(B, 4, S, S) head output -> xyz (B, 3, S, S) in [-1, 1] (tanh) and err (B, 1, S, S) in [0, 1] (sigmoid)."""
    return torch.tanh(out[:, :3]), torch.sigmoid(out[:, 3:])


__all__ = [
    "MEAN",
    "NORMS",
    "STD",
    "NormKind",
    "check_input",
    "check_norm",
    "class_aware_head",
    "coords_and_error",
    "make_norm",
    "normalise_image",
]

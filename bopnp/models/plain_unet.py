"""A plain U-Net coordinate network: two 3x3 convolutions per level, max pooling down, bilinear upsampling and
concatenated skips up (Ronneberger et al.), with the class-aware head of :mod:`bopnp.models.unet`.

Against the Pix2Pose network it has one path per level instead of two parallel strided 5x5 convolutions, 3x3
kernels, no fully connected bottleneck (any multiple of 16 works) and no transposed convolutions.

Example:
    >>> import torch
    >>> net = PlainUNet(PlainUNetConfig(num_objects=2, width=4)).eval()
    >>> xyz, err = net(torch.rand(2, 3, 32, 32), torch.tensor([0, 1]))
    >>> tuple(xyz.shape), tuple(err.shape)
    ((2, 3, 32, 32), (2, 1, 32, 32))
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from bopnp.errors import ConfigError, ShapeError
from bopnp.models.blocks import (
    MEAN,
    STD,
    check_input,
    check_norm,
    class_aware_head,
    coords_and_error,
    make_norm,
    normalise_image,
)

#: per-level channel multipliers (the deepest level, at 1/16 of the input, repeats the last)
LEVEL_MULTIPLIERS = (1, 2, 4, 8, 8)
#: crop sides must be multiples of this
DOWNSAMPLING = 2 ** (len(LEVEL_MULTIPLIERS) - 1)


@dataclass(frozen=True)
class PlainUNetConfig:
    """Shape of the plain U-Net.

    Attributes:
        num_objects: objects the class-aware head serves. width: channels of the first level (levels have
        ``width * (1, 2, 4, 8, 8)``). norm: ``batch`` or ``group``.
    """

    num_objects: int = 1
    width: int = 32
    norm: str = "batch"

    def validate(self) -> None:
        if self.num_objects < 1:
            raise ConfigError(f"num_objects must be at least 1, got {self.num_objects}")
        if self.width < 1:
            raise ConfigError(f"width must be a positive number of channels, got {self.width}")
        check_norm(self.norm)


def double_conv(c_in: int, c_out: int, norm: str) -> nn.Sequential:
    """(3x3 convolution, normalisation, ReLU) twice at the same resolution."""
    return nn.Sequential(
        nn.Conv2d(c_in, c_out, 3, padding=1, bias=False),
        make_norm(norm, c_out),
        nn.ReLU(inplace=True),
        nn.Conv2d(c_out, c_out, 3, padding=1, bias=False),
        make_norm(norm, c_out),
        nn.ReLU(inplace=True),
    )


class PlainUNet(nn.Module):
    """Plain U-Net with a class-aware head; the contract of :class:`bopnp.models.CoordUNet` (crop sides: any
    multiple of 16)."""

    def __init__(self, config: PlainUNetConfig):
        super().__init__()
        config.validate()
        self.config = config
        chans = [config.width * m for m in LEVEL_MULTIPLIERS]
        self.register_buffer("mean", torch.tensor(MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(STD).view(1, 3, 1, 1), persistent=False)
        self.down = nn.ModuleList([double_conv(3, chans[0], config.norm)])
        for c_in, c_out in zip(chans[:-1], chans[1:]):
            self.down.append(double_conv(c_in, c_out, config.norm))
        # decoder, deepest first: upsample, concatenate the skip of that resolution, two convolutions
        self.up = nn.ModuleList()
        c_dec = chans[-1]
        for level in reversed(range(len(chans) - 1)):
            self.up.append(double_conv(c_dec + chans[level], chans[level], config.norm))
            c_dec = chans[level]
        self.head = nn.Conv2d(c_dec, 4 * config.num_objects, 1)

    def forward(self, image: Tensor, obj_index: Tensor) -> tuple[Tensor, Tensor]:
        S = check_input(image, obj_index, self.config.num_objects)
        if S % DOWNSAMPLING:
            raise ShapeError(f"image: crops of {S} px, but this network takes a multiple of {DOWNSAMPLING} px")
        x = normalise_image(image, self.mean, self.std)
        skips = []
        for k, level in enumerate(self.down):
            x = level(x if k == 0 else F.max_pool2d(x, 2))
            skips.append(x)
        for up, skip in zip(self.up, reversed(skips[:-1])):
            x = F.interpolate(x, size=skip.shape[-2:], mode="bilinear", align_corners=False)
            x = up(torch.cat([x, skip], dim=1))
        return coords_and_error(class_aware_head(self.head, x, obj_index.long(), self.config.num_objects))


__all__ = ["DOWNSAMPLING", "PlainUNet", "PlainUNetConfig", "double_conv"]

"""The Pix2Pose-style coordinate network: an encoder-decoder with skip connections that maps an RGB crop to
normalised object coordinates and a per-pixel error estimate.

One network serves every object of a dataset: the encoder and decoder are shared and the last convolution has
four output channels per object (three coordinates and one error), of which each item keeps those of its own
object (a class-aware head, as GDRNPP uses). One training run then covers all objects, the shared encoder sees
every object's images (the objects of a BOP dataset share backgrounds, lighting and occluders), and inference runs
one batch over all detections of an image whatever their objects; a per-object network is the special case
``num_objects=1``.

Example:
    >>> import torch
    >>> net = build_coord_unet(num_objects=3, width=8, crop_size=64).eval()
    >>> xyz, err = net(torch.rand(2, 3, 64, 64), torch.tensor([0, 2]))
    >>> tuple(xyz.shape), tuple(err.shape)
    ((2, 3, 64, 64), (2, 1, 64, 64))
    >>> bool(xyz.abs().max() <= 1) and bool(((err >= 0) & (err <= 1)).all())
    True
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor, nn

from bopnp.errors import ConfigError, ShapeError
from bopnp.models.blocks import MEAN, STD, check_input, check_norm, class_aware_head, make_norm, normalise_image

#: per-level channel multipliers of the encoder (Pix2Pose: 64, 128, 128, 256 for width 64)
LEVEL_MULTIPLIERS = (1, 2, 2, 4)
#: the input is downsampled by this factor at the bottleneck, so crop sizes must be multiples of it
DOWNSAMPLING = 2 ** len(LEVEL_MULTIPLIERS)


@dataclass(frozen=True)
class UNetConfig:
    """Shape of the coordinate network.

    Attributes:
        num_objects: objects the class-aware head serves (one output group of 4 channels each).
        width: channels of the first encoder level; the levels have ``width * (1, 2, 2, 4)``.
        crop_size: side of the square input crop, pixels; a multiple of 16.
        bottleneck: features of the fully connected bottleneck that gives every output pixel the context of the
            whole crop (as Pix2Pose); 0 replaces it with a 5x5 convolution (any input size then works).
        norm: ``batch`` (Pix2Pose's) or ``group`` normalisation.
    """

    num_objects: int = 1
    width: int = 32
    crop_size: int = 128
    bottleneck: int = 256
    norm: str = "batch"

    def validate(self) -> None:
        if self.num_objects < 1:
            raise ConfigError(f"num_objects must be at least 1, got {self.num_objects}")
        if self.width < 1:
            raise ConfigError(f"width must be a positive number of channels, got {self.width} (the default is 32)")
        if self.crop_size < DOWNSAMPLING or self.crop_size % DOWNSAMPLING:
            raise ConfigError(
                f"crop_size must be a positive multiple of {DOWNSAMPLING}, got {self.crop_size} (e.g. 64 or 128)"
            )
        if self.bottleneck < 0:
            raise ConfigError(f"bottleneck must be >= 0 features (0: convolutional), got {self.bottleneck}")
        check_norm(self.norm)


def _down(c_in: int, c_out: int, norm: str) -> nn.Sequential:
    """5x5 convolution with stride 2, normalisation, leaky ReLU: halves the resolution."""
    return nn.Sequential(
        nn.Conv2d(c_in, c_out, 5, stride=2, padding=2, bias=False), make_norm(norm, c_out), nn.LeakyReLU(0.2)
    )


def _same(c_in: int, c_out: int, norm: str) -> nn.Sequential:
    """5x5 convolution, normalisation, leaky ReLU at the same resolution."""
    return nn.Sequential(nn.Conv2d(c_in, c_out, 5, padding=2, bias=False), make_norm(norm, c_out), nn.LeakyReLU(0.2))


def _up(c_in: int, c_out: int, norm: str) -> nn.Sequential:
    """5x5 transposed convolution with stride 2, normalisation, leaky ReLU: doubles the resolution."""
    return nn.Sequential(
        nn.ConvTranspose2d(c_in, c_out, 5, stride=2, padding=2, output_padding=1, bias=False),
        make_norm(norm, c_out),
        nn.LeakyReLU(0.2),
    )


class _EncoderLevel(nn.Module):
    """Two parallel strided convolutions: their concatenation goes down, the second is the level's skip."""

    def __init__(self, c_in: int, c: int, norm: str):
        super().__init__()
        self.main = _down(c_in, c, norm)
        self.skip = _down(c_in, c, norm)

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        skip = self.skip(x)
        return torch.cat([self.main(x), skip], dim=1), skip


class CoordUNet(nn.Module):
    """Pix2Pose-style coordinate network with a class-aware head.

    Contract:
        ``forward(image, obj_index)``:
        image: (B, 3, S, S) float RGB in [0, 1], S = ``config.crop_size`` (any multiple of 16 when
        ``config.bottleneck == 0``).
        obj_index: (B,) int64 in [0, num_objects): which output group each item uses (the position of its
        object in the list the network was built for, not the BOP obj_id).
        Returns ``xyz`` (B, 3, S, S) in [-1, 1] (tanh; the crop cache's normalised coordinates) and ``err``
        (B, 1, S, S) in [0, 1] (sigmoid; the predicted per-pixel L1 coordinate error).
    """

    #: fixed input normalisation (ImageNet statistics), so callers pass plain [0, 1] images
    MEAN = MEAN
    STD = STD

    def __init__(self, config: UNetConfig):
        super().__init__()
        config.validate()
        self.config = config
        w = config.width
        chans = [w * m for m in LEVEL_MULTIPLIERS]
        self.register_buffer("mean", torch.tensor(self.MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(self.STD).view(1, 3, 1, 1), persistent=False)
        self.encoder = nn.ModuleList()
        c_in = 3
        for c in chans:
            self.encoder.append(_EncoderLevel(c_in, c, config.norm))
            c_in = 2 * c
        deep = chans[-1]
        side = config.crop_size // DOWNSAMPLING
        if config.bottleneck:
            self.bottleneck = nn.Sequential(
                nn.Flatten(),
                nn.Linear(c_in * side * side, config.bottleneck),
                nn.LeakyReLU(0.2),
                nn.Linear(config.bottleneck, deep * side * side),
                nn.LeakyReLU(0.2),
                nn.Unflatten(1, (deep, side, side)),
            )
        else:
            self.bottleneck = _same(c_in, deep, config.norm)
        # decoder, deepest first: fuse with the skip of the same resolution, then go up one level
        self.fuse = nn.ModuleList()
        self.up = nn.ModuleList()
        c_dec = deep
        for level in reversed(range(len(chans))):
            c_out = chans[level - 1] if level > 0 else w
            self.fuse.append(_same(c_dec + chans[level], chans[level], config.norm))
            self.up.append(_up(chans[level], c_out, config.norm))
            c_dec = c_out
        self.head = nn.Conv2d(c_dec, 4 * config.num_objects, 5, padding=2)

    def forward(self, image: Tensor, obj_index: Tensor) -> tuple[Tensor, Tensor]:
        cfg = self.config
        S = check_input(image, obj_index, cfg.num_objects)
        if (cfg.bottleneck and S != cfg.crop_size) or S % DOWNSAMPLING:
            want = f"{cfg.crop_size}" if cfg.bottleneck else f"a multiple of {DOWNSAMPLING}"
            raise ShapeError(f"image: crops of {S} px, but this network takes {want} px")
        x = normalise_image(image, self.mean, self.std)
        skips = []
        for level in self.encoder:
            x, skip = level(x)
            skips.append(skip)
        x = self.bottleneck(x)
        for fuse, up, skip in zip(self.fuse, self.up, reversed(skips)):
            x = up(fuse(torch.cat([x, skip], dim=1)))
        out = class_aware_head(self.head, x, obj_index.long(), cfg.num_objects)  # (B, 4, S, S)
        return torch.tanh(out[:, :3]), torch.sigmoid(out[:, 3:])


def build_coord_unet(
    *, num_objects: int = 1, width: int = 32, crop_size: int = 128, bottleneck: int = 256, norm: str = "batch"
) -> CoordUNet:
    """The Pix2Pose coordinate network (see :class:`CoordUNet` for the input/output contract)."""
    return CoordUNet(
        UNetConfig(num_objects=num_objects, width=width, crop_size=crop_size, bottleneck=bottleneck, norm=norm)
    )


__all__ = ["CoordUNet", "UNetConfig", "build_coord_unet", "DOWNSAMPLING"]

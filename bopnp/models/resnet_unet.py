"""A ResNet-18/34 encoder (torchvision's, random init or a weights file) with a light upsampling decoder, as
GDR-Net and later Pix2Pose versions use, and the class-aware head of :mod:`bopnp.models.unet`.

The decoder climbs from the encoder's last stage (1/32 of the crop) back to the full crop, one bilinear x2 and one
3x3 convolution per step, concatenating the encoder's features of the same resolution (stem at 1/2, stages at
1/4 ... 1/16); its channels are ``width * (8, 4, 2, 1, 1)``.

Example:
    >>> import torch
    >>> net = ResNetUNet(ResNetUNetConfig(depth=18, num_objects=2, width=4)).eval()
    >>> xyz, err = net(torch.rand(2, 3, 64, 64), torch.tensor([1, 0]))
    >>> tuple(xyz.shape), tuple(err.shape)
    ((2, 3, 64, 64), (2, 1, 64, 64))
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial
from pathlib import Path

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
from bopnp.models.weights import load_weights

#: the torchvision ResNets this network can use as encoder
DEPTHS = (18, 34)
#: crop sides must be multiples of this (the encoder's last stage is at 1/32)
DOWNSAMPLING = 32
#: decoder channels per step, times ``width``: at 1/16, 1/8, 1/4, 1/2, 1 of the crop
DECODER_MULTIPLIERS = (8, 4, 2, 1, 1)
#: encoder feature channels of ResNet-18/34 at 1/2 (stem), 1/4, 1/8, 1/16, 1/32
ENCODER_CHANNELS = (64, 64, 128, 256, 512)


@dataclass(frozen=True)
class ResNetUNetConfig:
    """Shape of the ResNet-encoder network.

    Attributes:
        depth: 18 or 34 (torchvision ``resnet18`` / ``resnet34``).
        num_objects: objects the class-aware head serves. width: decoder channels (``width * (8, 4, 2, 1, 1)``).
        norm: ``batch`` or ``group`` (in the encoder and the decoder).
        backbone_weights: ``imagenet`` (torchvision's weights, through torch's hub cache) or a torchvision state
            dict file of that ResNet (e.g. ``resnet18-f37072fd.pth``; its ``fc`` entries are ignored) to start the
            encoder from; None: random init. Needs ``norm="batch"``.
    """

    depth: int = 18
    num_objects: int = 1
    width: int = 32
    norm: str = "batch"
    backbone_weights: str | None = None

    def validate(self) -> None:
        if self.depth not in DEPTHS:
            raise ConfigError(f"depth must be one of {DEPTHS}, got {self.depth}")
        if self.num_objects < 1:
            raise ConfigError(f"num_objects must be at least 1, got {self.num_objects}")
        if self.width < 1:
            raise ConfigError(f"width must be a positive number of channels, got {self.width}")
        check_norm(self.norm)
        if self.backbone_weights is not None and self.norm != "batch":
            raise ConfigError(
                f"backbone_weights {self.backbone_weights}: torchvision's ResNet weights come with batch norm; "
                "use norm 'batch' with them"
            )


def load_backbone_weights(encoder: nn.Module, spec: str | Path, arch: str) -> None:
    """Load torchvision ResNet weights into ``encoder`` (their ``fc.*`` entries skipped).

    Args:
        spec: ``imagenet`` (torchvision's, through torch's hub cache: :func:`bopnp.models.weights.load_weights`) or
            the path of a state dict file. arch: ``resnet18`` or ``resnet34``.
    Raises:
        ConfigError: a missing or unreadable file, weights not in the cache offline, or tensors that do not fit
        (naming the file and the fix).
    """
    state = load_weights(spec, arch)
    if isinstance(state.get("state_dict"), dict):
        state = state["state_dict"]
    state = {k: v for k, v in state.items() if not k.startswith("fc.")}
    try:
        encoder.load_state_dict(state)
    except RuntimeError as exc:
        why = " ".join(str(exc).split())[:300]
        raise ConfigError(
            f"backbone weights {spec}: they do not fit this ResNet ({why}); pass the torchvision weights of the "
            "same depth (resnet18 or resnet34)"
        ) from None


def _conv_norm_relu(c_in: int, c_out: int, norm: str) -> nn.Sequential:
    conv = nn.Conv2d(c_in, c_out, 3, padding=1, bias=False)
    return nn.Sequential(conv, make_norm(norm, c_out), nn.ReLU(inplace=True))


class ResNetUNet(nn.Module):
    """ResNet-18/34 encoder + light decoder with a class-aware head; the contract of
    :class:`bopnp.models.CoordUNet` (crop sides: any multiple of 32)."""

    def __init__(self, config: ResNetUNetConfig):
        super().__init__()
        config.validate()
        self.config = config
        from torchvision.models import resnet18, resnet34

        norm_layer = nn.BatchNorm2d if config.norm == "batch" else partial(make_norm, "group")
        self.encoder = (resnet18 if config.depth == 18 else resnet34)(weights=None, norm_layer=norm_layer)
        self.encoder.fc = nn.Identity()  # unused: the features are taken before pooling
        if config.backbone_weights is not None:
            load_backbone_weights(self.encoder, config.backbone_weights, f"resnet{config.depth}")
        self.register_buffer("mean", torch.tensor(MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(STD).view(1, 3, 1, 1), persistent=False)
        dec = [config.width * m for m in DECODER_MULTIPLIERS]
        skips = list(reversed(ENCODER_CHANNELS[:-1])) + [0]  # at 1/16, 1/8, 1/4, 1/2; none at full size
        self.decoder = nn.ModuleList()
        c = ENCODER_CHANNELS[-1]
        for c_out, c_skip in zip(dec, skips):
            self.decoder.append(_conv_norm_relu(c + c_skip, c_out, config.norm))
            c = c_out
        self.head = nn.Conv2d(c, 4 * config.num_objects, 1)

    def forward(self, image: Tensor, obj_index: Tensor) -> tuple[Tensor, Tensor]:
        S = check_input(image, obj_index, self.config.num_objects)
        if S % DOWNSAMPLING:
            raise ShapeError(f"image: crops of {S} px, but this network takes a multiple of {DOWNSAMPLING} px")
        e = self.encoder
        x = normalise_image(image, self.mean, self.std)
        stem = e.relu(e.bn1(e.conv1(x)))  # 1/2
        f4 = e.layer1(e.maxpool(stem))  # 1/4
        f8 = e.layer2(f4)
        f16 = e.layer3(f8)
        x = e.layer4(f16)  # 1/32
        for block, skip in zip(self.decoder, (f16, f8, f4, stem, None)):
            x = F.interpolate(x, scale_factor=2.0, mode="bilinear", align_corners=False)
            x = block(x if skip is None else torch.cat([x, skip], dim=1))
        return coords_and_error(class_aware_head(self.head, x, obj_index.long(), self.config.num_objects))


__all__ = ["DEPTHS", "DOWNSAMPLING", "ResNetUNet", "ResNetUNetConfig", "load_backbone_weights"]

"""One builder for every coordinate network, chosen by name (``arch``), and the network of a saved training
config.

- ``pix2pose``: the Pix2Pose U-Net (:class:`bopnp.models.CoordUNet`);
- ``unet``: a plain U-Net (:class:`bopnp.models.plain_unet.PlainUNet`);
- ``resnet18``, ``resnet34``: a torchvision ResNet encoder with a light decoder
  (:class:`bopnp.models.resnet_unet.ResNetUNet`).

All take (B, 3, S, S) [0, 1] crops and (B,) object indices and return xyz (B, 3, S, S) in [-1, 1] and err
(B, 1, S, S) in [0, 1].
"""

from __future__ import annotations

from typing import Any

from torch import nn

from bopnp.errors import ConfigError
from bopnp.models.plain_unet import PlainUNet, PlainUNetConfig
from bopnp.models.resnet_unet import ResNetUNet, ResNetUNetConfig
from bopnp.models.unet import build_coord_unet

#: the coordinate networks by name
ARCHS = ("pix2pose", "unet", "resnet18", "resnet34")
#: crop sides each network takes must be multiples of this
ARCH_DOWNSAMPLING = {"pix2pose": 16, "unet": 16, "resnet18": 32, "resnet34": 32}


def check_arch(arch: str, crop_size: int | None = None) -> None:
    """Raise a ConfigError for an unknown ``arch`` or a crop side it cannot take."""
    if arch not in ARCHS:
        raise ConfigError(f"arch must be one of {', '.join(ARCHS)}, got {arch!r}")
    step = ARCH_DOWNSAMPLING[arch]
    if crop_size is not None and (crop_size < step or crop_size % step):
        raise ConfigError(f"arch {arch} takes crops whose side is a multiple of {step} px, got {crop_size}")


def build_coord_net(
    *,
    arch: str = "pix2pose",
    num_objects: int = 1,
    width: int = 32,
    crop_size: int = 128,
    bottleneck: int = 256,
    norm: str = "batch",
    backbone_weights: str | None = None,
) -> nn.Module:
    """The coordinate network ``arch`` (``bottleneck`` serves only pix2pose, ``backbone_weights`` only the
    ResNets: a torchvision state dict file).

    Raises:
        ConfigError: an unknown arch, a crop size it cannot take, weights for a network without a backbone, or
        weights that do not fit.
    """
    check_arch(arch, crop_size)
    if backbone_weights is not None and not arch.startswith("resnet"):
        raise ConfigError(f"backbone_weights serve the resnet18/resnet34 networks, not arch {arch}")
    if arch == "pix2pose":
        return build_coord_unet(
            num_objects=num_objects, width=width, crop_size=crop_size, bottleneck=bottleneck, norm=norm
        )
    if arch == "unet":
        return PlainUNet(PlainUNetConfig(num_objects=num_objects, width=width, norm=norm))
    return ResNetUNet(
        ResNetUNetConfig(
            depth=int(arch[len("resnet") :]),
            num_objects=num_objects,
            width=width,
            norm=norm,
            backbone_weights=backbone_weights,
        )
    )


def coord_net_from_config(config: dict[str, Any], *, num_objects: int, crop_size: int) -> nn.Module:
    """The (untrained) network a saved training config (``PoseTrainConfig.to_dict()``) describes, to load a
    checkpoint's weights into; configs saved before ``arch`` existed describe the Pix2Pose network. The backbone
    weights file is not read: the checkpoint holds the trained weights."""
    return build_coord_net(
        arch=str(config.get("arch", "pix2pose")),
        num_objects=num_objects,
        width=int(config.get("width", 32)),
        crop_size=crop_size,
        bottleneck=int(config.get("bottleneck", 256)),
        norm=str(config.get("norm", "batch")),
    )


__all__ = ["ARCHS", "ARCH_DOWNSAMPLING", "build_coord_net", "check_arch", "coord_net_from_config"]

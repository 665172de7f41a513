"""Learned models: the coordinate networks (Pix2Pose U-Net, plain U-Net, ResNet encoder) and their losses."""

from bopnp.models.coordnet import ARCHS, build_coord_net, coord_net_from_config
from bopnp.models.correspondences import crop_correspondences, crop_pixel_centres
from bopnp.models.losses import (
    CoordLossConfig,
    coord_error_per_pixel,
    error_map_loss,
    symmetric_coord_loss,
    transformer_loss,
)
from bopnp.models.unet import CoordUNet, UNetConfig, build_coord_unet

__all__ = [
    "ARCHS",
    "CoordLossConfig",
    "CoordUNet",
    "UNetConfig",
    "build_coord_net",
    "build_coord_unet",
    "coord_net_from_config",
    "coord_error_per_pixel",
    "crop_correspondences",
    "crop_pixel_centres",
    "error_map_loss",
    "symmetric_coord_loss",
    "transformer_loss",
]

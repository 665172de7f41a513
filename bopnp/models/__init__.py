"""Learned models: the Pix2Pose coordinate U-Net and its losses."""

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
    "CoordLossConfig",
    "CoordUNet",
    "UNetConfig",
    "build_coord_unet",
    "coord_error_per_pixel",
    "crop_correspondences",
    "crop_pixel_centres",
    "error_map_loss",
    "symmetric_coord_loss",
    "transformer_loss",
]

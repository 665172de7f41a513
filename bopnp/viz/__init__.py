"""Pictures: coordinate and error maps, mask and pose overlays, overviews of a split with its GT and
estimates, and previews of the training crops. Pure functions on numpy arrays (uint8 RGB images, bool
masks, ``K`` in pixels, poses ``R_m2c`` / ``t_m2c`` in mm); every drawing function returns a new image.

>>> from bopnp.viz import scene_overview, save_png                     # doctest: +SKIP
>>> ds = BopDataset.from_bop_path("datasets", "lmo", "test")           # doctest: +SKIP
>>> save_png("results/viz/lmo.png", scene_overview(ds, images=4))      # doctest: +SKIP
"""

from bopnp.bop.images import as_rgb
from bopnp.viz.colors import (
    COLORMAPS,
    EST_COLOR,
    GT_COLOR,
    PALETTE,
    colorbar,
    colormap_lut,
    error_to_rgb,
    object_color,
    xyz_to_rgb,
)
from bopnp.viz.crops import crop_panels, crops_preview
from bopnp.viz.draw import (
    BOX_EDGES,
    box3d_corners,
    draw_pose,
    draw_segments_3d,
    mask_boundary,
    overlay_mask,
    project,
    project_box,
    projected_extent,
)
from bopnp.viz.grid import legend_band, resize_to_width, save_png, stack, tile, with_colorbar, with_legend
from bopnp.viz.scene import Pose, annotate_image, pick_images, scene_overview
from bopnp.viz.text import draw_text, text_size

__all__ = [
    "BOX_EDGES",
    "COLORMAPS",
    "EST_COLOR",
    "GT_COLOR",
    "PALETTE",
    "Pose",
    "annotate_image",
    "as_rgb",
    "box3d_corners",
    "colorbar",
    "colormap_lut",
    "crop_panels",
    "crops_preview",
    "draw_pose",
    "draw_segments_3d",
    "draw_text",
    "error_to_rgb",
    "legend_band",
    "mask_boundary",
    "object_color",
    "overlay_mask",
    "pick_images",
    "project",
    "project_box",
    "projected_extent",
    "resize_to_width",
    "save_png",
    "scene_overview",
    "stack",
    "text_size",
    "tile",
    "with_colorbar",
    "with_legend",
    "xyz_to_rgb",
]

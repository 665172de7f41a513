"""Pix2Pose coordinate targets: the pose a target is rendered in, and the target itself rendered at crop
resolution with the crop's intrinsics (exact per pixel: no resampling of coordinates)."""

from __future__ import annotations

import numpy as np

from bopnp.bop.records import ModelInfo
from bopnp.bop.symmetry import canonicalize_pose


def target_pose(info: ModelInfo, R_m2c: np.ndarray, t_m2c: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The pose the coordinate target is rendered in.

    For an object with a continuous symmetry, the canonical pose of
    :func:`bopnp.bop.symmetry.canonicalize_pose` (the rotation about the axis is fixed, so all views that
    look the same share one target); else the annotated pose. Discrete symmetries are left to the
    training loss (the object's symmetry pool).

    Args:
        info: the object's ``models_info.json`` entry.
        R_m2c: (3, 3) or (B, 3, 3) annotated rotation.
        t_m2c: (3,) or (B, 3) annotated translation, mm.
    Returns:
        (R, t) float64 with the input shapes (new arrays).
    """
    return canonicalize_pose(R_m2c, t_m2c, info)


def render_crop_target(
    renderer, obj_id: int, K_crop: np.ndarray, R_m2c: np.ndarray, t_m2c: np.ndarray, inside: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Render one instance alone into a crop: its normalised coordinates and its full mask.

    Args:
        renderer: a :class:`bopnp.render.Renderer` of size ``S x S`` with ``obj_id`` added.
        obj_id: the object.
        K_crop: (3, 3) intrinsics of the crop.
        R_m2c: (3, 3) rotation; t_m2c: (3,) translation, mm (the target pose).
        inside: (S, S) bool, crop pixels inside the original image; the target is zero elsewhere.
    Returns:
        xyz: (S, S, 3) float16 model coordinates normalised to [-1, 1] per axis by the renderer
        (``Renderer.xyz_normalisation``), 0 off the object.
        full: (S, S) bool, the unoccluded silhouette.
    """
    out = renderer.render(K_crop, [(int(obj_id), R_m2c, t_m2c)], full_masks=False)
    full = out.instance_map == 0
    if inside is not None:
        full &= inside
    xyz = np.where(full[..., None], out.xyz_norm, 0).astype(np.float16)
    return xyz, full


__all__ = ["render_crop_target", "target_pose"]

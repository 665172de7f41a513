"""Typed records of the BOP files. Rotations are (3, 3) float64 arrays, translations (3,) float64 in mm,
intrinsics ``K`` (3, 3) float64 in pixels; boxes are ``(x, y, width, height)`` in pixels."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


@dataclass(frozen=True, eq=False)
class ContinuousSymmetry:
    """A continuous rotational symmetry: rotating by any angle about ``axis`` through ``offset_mm``
    leaves the model unchanged (``models_info.json``: ``{"axis": [...], "offset": [...]}``).

    Attributes:
        axis: (3,) float64 axis direction in the model frame (as stored; not necessarily unit length).
        offset_mm: (3,) float64 a point of the axis, model frame, mm.
    """

    axis: np.ndarray
    offset_mm: np.ndarray


@dataclass(frozen=True, eq=False)
class ModelInfo:
    """One object of ``models_info.json``.

    Attributes:
        obj_id: object id (the key in the file).
        diameter_mm: largest distance between two model vertices, mm.
        min_mm: (3,) float64 corner of the 3D bounding box (``min_x, min_y, min_z``), mm.
        size_mm: (3,) float64 size of the 3D bounding box (``size_x, size_y, size_z``), mm.
        symmetries_discrete: (K, 4, 4) float64 model-to-model transforms (translation in mm), K >= 0;
            the identity is not listed.
        symmetries_continuous: the continuous symmetries (usually zero or one).
        extra: other keys of the entry, kept so that a save reproduces them.
    """

    obj_id: int
    diameter_mm: float
    min_mm: np.ndarray
    size_mm: np.ndarray
    symmetries_discrete: np.ndarray = field(default_factory=lambda: np.zeros((0, 4, 4)))
    symmetries_continuous: tuple[ContinuousSymmetry, ...] = ()
    extra: dict = field(default_factory=dict)

    @property
    def is_symmetric(self) -> bool:
        """True when the object has any discrete or continuous symmetry."""
        return len(self.symmetries_discrete) > 0 or len(self.symmetries_continuous) > 0


@dataclass(frozen=True, eq=False)
class Camera:
    """The dataset camera (``camera.json``), meant for simulating the sensor; per-image intrinsics are in
    ``scene_camera.json`` (:class:`ImageCamera`).

    Attributes:
        K: (3, 3) float64 intrinsics, pixels.
        width: image width, pixels.
        height: image height, pixels.
        depth_scale: multiply a depth image by it to get mm, or None when the file has none.
        extra: other keys of the file, kept so that a save reproduces them.
    """

    K: np.ndarray
    width: int
    height: int
    depth_scale: float | None = None
    extra: dict = field(default_factory=dict)


@dataclass(frozen=True, eq=False)
class ImageCamera:
    """The camera of one image (an entry of ``scene_camera.json``).

    Attributes:
        K: (3, 3) float64 intrinsics, pixels.
        depth_scale: multiply the depth image by it to get mm, or None.
        R_w2c: (3, 3) float64 world-to-camera rotation, or None.
        t_w2c: (3,) float64 world-to-camera translation, mm, or None.
        extra: other keys (e.g. ``view_level``), kept so that a save reproduces them.
    """

    K: np.ndarray
    depth_scale: float | None = None
    R_w2c: np.ndarray | None = None
    t_w2c: np.ndarray | None = None
    extra: dict = field(default_factory=dict)


@dataclass(frozen=True, eq=False)
class GtPose:
    """One annotated object instance (an entry of ``scene_gt.json``); its index in the image's list is
    the ``gt_id`` that names its masks.

    Attributes:
        obj_id: object id.
        R_m2c: (3, 3) float64 model-to-camera rotation.
        t_m2c: (3,) float64 model-to-camera translation, mm.
    """

    obj_id: int
    R_m2c: np.ndarray
    t_m2c: np.ndarray


@dataclass(frozen=True, eq=False)
class GtInfo:
    """Visibility of one instance (an entry of ``scene_gt_info.json``), in the order of ``scene_gt.json``.

    Boxes follow bop_toolkit: ``(x_min, y_min, x_max - x_min, y_max - y_min)`` of the mask pixels, and
    ``(-1, -1, -1, -1)`` when nothing is visible; ``bbox_obj`` is not clipped to the image.

    Attributes:
        bbox_obj: (4,) int64 box of the whole silhouette, pixels.
        bbox_visib: (4,) int64 box of the visible part, pixels.
        px_count_all: pixels of the whole silhouette (also outside the image).
        px_count_valid: silhouette pixels with a valid depth measurement.
        px_count_visib: visible pixels.
        visib_fract: px_count_visib / px_count_all (0 when px_count_all is 0).
    """

    bbox_obj: np.ndarray
    bbox_visib: np.ndarray
    px_count_all: int
    px_count_valid: int
    px_count_visib: int
    visib_fract: float


@dataclass(frozen=True)
class Target:
    """A BOP19 test target (``test_targets_bop19.json``): estimate ``inst_count`` instances of ``obj_id``
    in image ``im_id`` of scene ``scene_id``."""

    scene_id: int
    im_id: int
    obj_id: int
    inst_count: int


@dataclass(frozen=True, eq=False)
class ResultRow:
    """One row of a BOP19 results CSV.

    Attributes:
        scene_id, im_id, obj_id: the image and object.
        score: confidence (higher is better).
        R_m2c: (3, 3) float64 model-to-camera rotation.
        t_m2c: (3,) float64 model-to-camera translation, mm.
        time_s: wall time to process the whole image, seconds; -1 when unknown.
    """

    scene_id: int
    im_id: int
    obj_id: int
    score: float
    R_m2c: np.ndarray
    t_m2c: np.ndarray
    time_s: float = -1.0

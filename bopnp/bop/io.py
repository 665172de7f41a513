"""Read and write every file of the BOP format; one import for all of them.

=========================  ===========================================  ===========================
file                       read                                         write
=========================  ===========================================  ===========================
models/*.ply               :func:`load_ply` -> Mesh (mm)                :func:`save_ply`
models_info.json           :func:`load_models_info` -> {obj: ModelInfo} :func:`save_models_info`
camera.json                :func:`load_camera` -> Camera                :func:`save_camera`
scene_camera.json          :func:`load_scene_camera` -> {im: ImageCamera} :func:`save_scene_camera`
scene_gt.json              :func:`load_scene_gt` -> {im: [GtPose]}      :func:`save_scene_gt`
scene_gt_info.json         :func:`load_scene_gt_info` -> {im: [GtInfo]} :func:`save_scene_gt_info`
test_targets_bop19.json    :func:`load_targets` -> [Target]             :func:`save_targets`
rgb/, gray/                :func:`load_image`                           :func:`save_image`
depth/                     :func:`load_depth` (mm, float32)             :func:`save_depth`
mask/, mask_visib/         :func:`load_mask` (bool)                     :func:`save_mask`
results CSV (BOP19)        :func:`load_results_csv` -> [ResultRow]      :func:`save_results_csv`
detections json (COCO)     :func:`load_detections` -> [Detection]       :func:`save_detections`
=========================  ===========================================  ===========================

Readers raise :class:`~bopnp.errors.DatasetError` (``ResultsFormatError`` for results and detections)
listing every problem with its file and field; writers are atomic and never modify their inputs.
"""

from __future__ import annotations

from bopnp.bop.annotations import (
    load_camera,
    load_models_info,
    load_scene_camera,
    load_scene_gt,
    load_scene_gt_info,
    load_targets,
    read_json,
    save_camera,
    save_models_info,
    save_scene_camera,
    save_scene_gt,
    save_scene_gt_info,
    save_targets,
    write_json,
)
from bopnp.bop.atomic import write_bytes_atomic, write_text_atomic
from bopnp.bop.detections import Detection, load_detections, save_detections
from bopnp.bop.images import (
    image_size,
    load_depth,
    load_image,
    load_mask,
    mask_bbox_xywh,
    save_depth,
    save_image,
    save_mask,
)
from bopnp.bop.mesh import Mesh
from bopnp.bop.ply import load_ply, save_ply
from bopnp.bop.records import (
    Camera,
    ContinuousSymmetry,
    GtInfo,
    GtPose,
    ImageCamera,
    ModelInfo,
    ResultRow,
    Target,
)
from bopnp.bop.results import ResultFileName, load_results_csv, parse_result_filename, save_results_csv
from bopnp.bop.rle import Rle

__all__ = [
    "Camera",
    "ContinuousSymmetry",
    "Detection",
    "GtInfo",
    "GtPose",
    "ImageCamera",
    "Mesh",
    "ModelInfo",
    "ResultFileName",
    "ResultRow",
    "Rle",
    "Target",
    "image_size",
    "load_camera",
    "load_depth",
    "load_detections",
    "load_image",
    "load_mask",
    "load_models_info",
    "load_ply",
    "load_results_csv",
    "load_scene_camera",
    "load_scene_gt",
    "load_scene_gt_info",
    "load_targets",
    "mask_bbox_xywh",
    "parse_result_filename",
    "read_json",
    "save_camera",
    "save_depth",
    "save_detections",
    "save_image",
    "save_mask",
    "save_models_info",
    "save_ply",
    "save_results_csv",
    "save_scene_camera",
    "save_scene_gt",
    "save_scene_gt_info",
    "save_targets",
    "write_bytes_atomic",
    "write_json",
    "write_text_atomic",
]

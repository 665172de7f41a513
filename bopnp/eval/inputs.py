"""Everything one evaluation reads: the results CSV, and from the dataset the targets, GT poses,
visibility, cameras, object models and depth images (BOP layout, as bop_toolkit reads it).

Missing optional files do not stop an evaluation; they are recorded in :attr:`EvalInputs.notes` and
reported: no ``scene_gt_info.json`` (visibility is then only needed to pick the valid GT instances
when an image holds more instances of a target object than ``inst_count``), no depth images (VSD is
unavailable for those images), no ``models_eval/`` (the ``models/`` meshes are used).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from bopnp.bop import io
from bopnp.bop.records import GtInfo, GtPose, ImageCamera, ModelInfo, PoseEstimate, Target
from bopnp.bop.results import DEFAULT_SPLIT_TYPE, ResultFileName, split_folder
from bopnp.bop.validate import GT_ROT_TOL
from bopnp.bop.visibility import DEFAULT_DELTA_MM
from bopnp.errors import DatasetError

log = logging.getLogger(__name__)

#: VSD visibility tolerance per dataset, mm (bop_toolkit's eval_bop19_pose.py); others use
#: :data:`bopnp.bop.visibility.DEFAULT_DELTA_MM`
VSD_DELTA_MM = {"itodd": 5.0}


@dataclass
class SceneData:
    """Annotations of one scene of the evaluated split.

    Attributes:
        gt: im_id -> GT instances in gt_id order.
        gt_info: im_id -> visibility of each instance, or None when ``scene_gt_info.json`` is missing.
        camera: im_id -> camera of the image.
        folder: the scene folder.
    """

    gt: dict[int, list[GtPose]]
    gt_info: dict[int, list[GtInfo]] | None
    camera: dict[int, ImageCamera]
    folder: Path


@dataclass
class EvalInputs:
    """The loaded inputs of one evaluation.

    Attributes:
        name: method, dataset, split, split type from the CSV file name.
        estimates: every row of the CSV, in file order.
        targets: the BOP19 targets, in file order.
        models_info: obj_id -> ModelInfo (diameters, symmetries) of the evaluation models.
        scenes: scene_id -> SceneData for every scene with targets.
        dataset_dir: the dataset folder.
        models_dir: the folder of the meshes used for the errors and the VSD renders.
        image_size: (width, height) of the test images, pixels.
        depth_ext: file extension of the depth images.
        notes: what was missing or replaced, one line each (shown in the report).
    """

    name: ResultFileName
    estimates: list[PoseEstimate]
    targets: list[Target]
    models_info: dict[int, ModelInfo]
    scenes: dict[int, SceneData]
    dataset_dir: Path
    models_dir: Path
    image_size: tuple[int, int]
    depth_ext: str = ".png"
    notes: list[str] = field(default_factory=list)
    _meshes: dict = field(default_factory=dict, repr=False)

    @property
    def vsd_delta_mm(self) -> float:
        return VSD_DELTA_MM.get(self.name.dataset, DEFAULT_DELTA_MM)

    def depth_path(self, scene_id: int, im_id: int) -> Path:
        return self.scenes[scene_id].folder / "depth" / f"{im_id:06d}{self.depth_ext}"

    def load_depth(self, scene_id: int, im_id: int) -> np.ndarray:
        """(H, W) float32 test depth, mm (raw values x depth_scale in float32, as bop_toolkit).

        Raises:
            DatasetError: missing or unreadable file.
        """
        cam = self.scenes[scene_id].camera[im_id]
        scale = 1.0 if cam.depth_scale is None else cam.depth_scale
        return io.load_depth(self.depth_path(scene_id, im_id), scale)

    def mesh(self, obj_id: int) -> io.Mesh:
        """The evaluation mesh of an object (loaded once)."""
        if obj_id not in self._meshes:
            path = self.models_dir / f"obj_{obj_id:06d}.ply"
            self._meshes[obj_id] = io.load_ply(path, load_texture=False)
        return self._meshes[obj_id]


#: datasets stored in another dataset's folder
DATASET_FOLDER = {"hbs": "hb"}


def _split_dir(dataset_dir: Path, name: ResultFileName) -> Path:
    folder = split_folder(name)
    path = dataset_dir / folder
    if not path.is_dir():
        raise DatasetError(
            f"{path} not found: the results file names dataset '{name.dataset}' and split '{folder}'; "
            f"download that split into {dataset_dir} or pass the right --bop-path"
        )
    return path


def _models_dir(dataset_dir: Path, notes: list[str]) -> Path:
    eval_dir = dataset_dir / "models_eval"
    if (eval_dir / "models_info.json").is_file():
        return eval_dir
    plain = dataset_dir / "models"
    if (plain / "models_info.json").is_file():
        notes.append(f"{eval_dir} not found: errors use the meshes of {plain} (BOP scores use models_eval)")
        return plain
    raise DatasetError(f"{eval_dir}/models_info.json not found: download the dataset's models archive into {dataset_dir}")


def _image_size(dataset_dir: Path, name: ResultFileName, split_dir: Path, scenes: dict[int, SceneData]) -> tuple[int, int]:
    """Width and height from the dataset camera file, else from a depth or rgb image of the split."""
    candidates = [dataset_dir / "camera.json"]
    split_type = name.split_type or DEFAULT_SPLIT_TYPE.get(name.dataset)
    if split_type:
        candidates.insert(0, dataset_dir / f"camera_{split_type}.json")
    candidates += sorted(dataset_dir.glob("camera*.json"))
    for path in candidates:
        if path.is_file():
            cam = io.load_camera(path)
            return cam.width, cam.height
    for scene in scenes.values():
        for sub in ("depth", "rgb", "gray"):
            for path in sorted((scene.folder / sub).glob("*"))[:1]:
                return io.image_size(path)
    raise DatasetError(f"cannot tell the image size of {split_dir}: {dataset_dir}/camera.json is missing and there are no images")


def resolve_targets_path(dataset_dir: Path, targets: str | Path) -> Path:
    """``targets`` as given when it is an existing file, else relative to the dataset folder."""
    p = Path(targets)
    return p if p.is_file() else dataset_dir / p


#: tolerance on |R^T R - I| and |det R - 1| of the estimated rotations: BOP's own GT rotations (e.g.
#: LM-O) deviate by up to ~0.014, and a CSV of GT poses must be accepted (bop_toolkit checks nothing)
RESULTS_ROT_TOL = GT_ROT_TOL


def load_inputs(
    results_csv: Path, bop_path: Path, targets: str | Path = "test_targets_bop19.json", rot_tol: float = RESULTS_ROT_TOL
) -> EvalInputs:
    """Read the CSV and the dataset files it needs.

    Args:
        results_csv: ``METHOD_DATASET-SPLIT[...].csv``.
        bop_path: folder holding the dataset folder.
        targets: targets file name in the dataset folder, or a path to one.
        rot_tol: tolerance of the orthonormality check of the CSV's rotations.
    Raises:
        ResultsFormatError: bad file name or content (every problem listed).
        DatasetError: missing dataset, split, targets, models, or GT of a target image.
    """
    name = io.parse_result_filename(results_csv)
    estimates = io.load_results_csv(results_csv, rot_tol=rot_tol)
    dataset_dir = Path(bop_path) / DATASET_FOLDER.get(name.dataset, name.dataset)
    if not dataset_dir.is_dir():
        raise DatasetError(
            f"{dataset_dir} not found: the results file names dataset '{name.dataset}'; "
            f"download it into {Path(bop_path)} (or pass --bop-path / set BOP_PATH to the folder that holds it)"
        )
    split_dir = _split_dir(dataset_dir, name)
    targets_path = resolve_targets_path(dataset_dir, targets)
    if not targets_path.is_file():
        raise DatasetError(f"{targets_path} not found: download the dataset's BOP19 test targets into {dataset_dir} or pass --targets FILE")
    target_list = io.load_targets(targets_path)
    notes: list[str] = []
    models_dir = _models_dir(dataset_dir, notes)
    models_info = io.load_models_info(models_dir / "models_info.json")

    scenes: dict[int, SceneData] = {}
    missing_gt_info = []
    for scene_id in sorted({t.scene_id for t in target_list}):
        folder = split_dir / f"{scene_id:06d}"
        gt = io.load_scene_gt(folder / "scene_gt.json")
        camera = io.load_scene_camera(folder / "scene_camera.json")
        info_path = folder / "scene_gt_info.json"
        gt_info = io.load_scene_gt_info(info_path) if info_path.is_file() else None
        if gt_info is None:
            missing_gt_info.append(scene_id)
        scenes[scene_id] = SceneData(gt=gt, gt_info=gt_info, camera=camera, folder=folder)
    if missing_gt_info:
        notes.append(f"scene_gt_info.json missing in scene(s) {_ids(missing_gt_info)}")

    problems = []
    for t in target_list:
        scene = scenes[t.scene_id]
        if t.im_id not in scene.gt:
            problems.append(f"target scene {t.scene_id} image {t.im_id}: no entry in {scene.folder / 'scene_gt.json'}")
        elif t.im_id not in scene.camera:
            problems.append(f"target scene {t.scene_id} image {t.im_id}: no entry in {scene.folder / 'scene_camera.json'}")
        if t.obj_id not in models_info:
            problems.append(f"target scene {t.scene_id} image {t.im_id}: object {t.obj_id} not in {models_dir / 'models_info.json'}")
    if problems:
        raise DatasetError(f"{targets_path} does not fit the dataset's annotations", problems[:50] + ([f"... {len(problems) - 50} more"] if len(problems) > 50 else []))

    image_size = _image_size(dataset_dir, name, split_dir, scenes)
    depth_ext = ".tif" if name.dataset == "itodd" else ".png"
    return EvalInputs(
        name=name,
        estimates=estimates,
        targets=target_list,
        models_info=models_info,
        scenes=scenes,
        dataset_dir=dataset_dir,
        models_dir=models_dir,
        image_size=image_size,
        depth_ext=depth_ext,
        notes=notes,
    )


def _ids(ids) -> str:
    ids = sorted(ids)
    return ", ".join(map(str, ids[:10])) + (f" ... ({len(ids)} in all)" if len(ids) > 10 else "")


__all__ = ["RESULTS_ROT_TOL", "EvalInputs", "SceneData", "load_inputs", "resolve_targets_path", "VSD_DELTA_MM"]

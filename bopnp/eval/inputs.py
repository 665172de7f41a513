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
from bopnp.bop.dataset import BopDataset
from bopnp.bop.records import GtInfo, GtPose, ImageCamera, ModelInfo, ResultRow, Target
from bopnp.bop.results import SHOWN_ROWS, ResultFileName, results_remarks, split_folder
from bopnp.bop.validate import GT_ROT_TOL
from bopnp.bop.visibility import DEFAULT_DELTA_MM
from bopnp.errors import DatasetError

log = logging.getLogger(__name__)

#: VSD visibility tolerance per dataset, mm (bop_toolkit's eval_bop19_pose.py); others use
#: :data:`bopnp.bop.visibility.DEFAULT_DELTA_MM`
VSD_DELTA_MM = {"itodd": 5.0}


@dataclass
class SceneData:
    """Annotations of one scene of the evaluated split (read through :class:`BopDataset`).

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
        dataset: the dataset and split, opened with the evaluation models folder (``models_eval``, else
            ``models``): every path (depth images, meshes) comes from it.
        image_size: (width, height) of the test images, pixels.
        notes: what was missing or replaced, one line each (shown in the report).
    """

    name: ResultFileName
    estimates: list[ResultRow]
    targets: list[Target]
    models_info: dict[int, ModelInfo]
    scenes: dict[int, SceneData]
    dataset: BopDataset
    image_size: tuple[int, int]
    notes: list[str] = field(default_factory=list)
    _meshes: dict = field(default_factory=dict, repr=False)

    @property
    def dataset_dir(self) -> Path:
        return self.dataset.root

    @property
    def models_dir(self) -> Path:
        """The folder of the meshes used for the errors and the VSD renders."""
        return self.dataset.models_info_path.parent

    @property
    def vsd_delta_mm(self) -> float:
        return VSD_DELTA_MM.get(self.name.dataset, DEFAULT_DELTA_MM)

    def depth_path(self, scene_id: int, im_id: int) -> Path:
        """The depth image of a test image, with the suffix found on disk (``.png``, ``.tif``)."""
        return self.dataset.depth_path(scene_id, im_id)

    def load_depth(self, scene_id: int, im_id: int) -> np.ndarray:
        """(H, W) float32 test depth, mm (raw values x depth_scale in float32, as bop_toolkit).

        Raises:
            DatasetError: missing or unreadable file.
        """
        return self.dataset.depth(scene_id, im_id)

    def mesh(self, obj_id: int) -> io.Mesh:
        """The evaluation mesh of an object (loaded once, without its texture).

        Raises:
            DatasetError: missing or malformed PLY, or one without vertices or faces (no pose error, no
            VSD render can come from it).
        """
        if obj_id not in self._meshes:
            path = self.dataset.model_path(obj_id)
            mesh = io.load_ply(path, load_texture=False)
            for what, n in (("vertices", len(mesh.vertices_mm)), ("faces", len(mesh.faces))):
                if n == 0:
                    raise DatasetError(
                        f"{path}: the mesh of object {obj_id} has no {what}; the pose errors and VSD need its "
                        "surface: re-download the models archive (models_eval/ holds the resampled meshes)"
                    )
            self._meshes[obj_id] = mesh
        return self._meshes[obj_id]


#: datasets stored in another dataset's folder
DATASET_FOLDER = {"hbs": "hb"}


def open_dataset(bop_path: Path, name: ResultFileName, notes: list[str]) -> BopDataset:
    """The dataset and split a results file names, with ``models_eval/`` as its models folder (else
    ``models/``, with a note).

    Raises:
        DatasetError: missing dataset, split or models; the message names the results file's dataset.
    """
    folder = DATASET_FOLDER.get(name.dataset, name.dataset)
    split = split_folder(name)
    try:
        ds = BopDataset.from_bop_path(bop_path, folder, split, models="models_eval")
    except DatasetError as exc:
        raise DatasetError(f"the results file names dataset '{name.dataset}' and split '{split}': {exc}") from None
    if not ds.models_info_path.is_file():
        plain = BopDataset.from_bop_path(bop_path, folder, split, models="models")
        if not plain.models_info_path.is_file():
            raise DatasetError(f"{ds.models_info_path} not found: download the dataset's models archive into {ds.root}")
        notes.append(
            f"{ds.models_info_path.parent} not found: errors use the meshes of "
            f"{plain.models_info_path.parent} (BOP scores use models_eval)"
        )
        ds = plain
    return ds


def _image_size(ds: BopDataset, targets: list[Target]) -> tuple[int, int]:
    """Width and height from the dataset camera file, else from a target's depth or rgb image."""
    if ds.camera_path.is_file():
        cam = ds.camera
        return cam.width, cam.height
    for t in targets:
        path = ds.depth_path(t.scene_id, t.im_id)
        if not path.is_file():
            try:
                path = ds.image_path(t.scene_id, t.im_id)
            except DatasetError:
                continue
        if path.is_file():
            return io.image_size(path)
    raise DatasetError(
        f"cannot tell the image size of {ds.split_path}: {ds.camera_path} is missing and the target "
        "images have no depth or rgb file; download the dataset's base archive (it holds camera.json)"
    )


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
    """Read the CSV and, through :class:`BopDataset`, the dataset files it needs.

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
    notes: list[str] = []
    ds = open_dataset(Path(bop_path), name, notes)
    targets_path = resolve_targets_path(ds.root, targets)
    target_list = ds.targets(targets_path)
    models_info = ds.models_info

    scenes: dict[int, SceneData] = {}
    missing_gt_info = []
    for scene_id in sorted({t.scene_id for t in target_list}):
        gt_info = ds.scene_gt_info(scene_id) if ds.has_gt_info(scene_id) else None
        if gt_info is None:
            missing_gt_info.append(scene_id)
        scenes[scene_id] = SceneData(
            gt=ds.scene_gt(scene_id), gt_info=gt_info, camera=ds.scene_camera(scene_id), folder=ds.scene_path(scene_id)
        )
    if missing_gt_info:
        notes.append(f"scene_gt_info.json missing in scene(s) {_ids(missing_gt_info)}")

    problems = []
    for t in target_list:
        scene = scenes[t.scene_id]
        if t.im_id not in scene.gt:
            problems.append(f"target scene {t.scene_id} image {t.im_id}: no entry in {scene.folder / 'scene_gt.json'}")
        elif t.im_id not in scene.camera:
            problems.append(
                f"target scene {t.scene_id} image {t.im_id}: no entry in {scene.folder / 'scene_camera.json'}"
            )
        if t.obj_id not in models_info:
            problems.append(
                f"target scene {t.scene_id} image {t.im_id}: object {t.obj_id} not in {ds.models_info_path}"
            )
    unknown = [
        (t_scene, im_id, gt_id, g.obj_id)
        for t_scene, im_id in sorted({(t.scene_id, t.im_id) for t in target_list})
        for gt_id, g in enumerate(scenes[t_scene].gt.get(im_id, []))
        if g.obj_id not in models_info
    ]
    if unknown:
        first = "; ".join(f"scene {s} image {i} instance {g} (object {o})" for s, i, g, o in unknown[:3])
        notes.append(
            f"{len(unknown)} GT instance(s) of the target images are of objects not in {ds.models_info_path} "
            f"(ids {sorted({u[3] for u in unknown})}): they are left out of the scores (first: {first}); fix the "
            "obj_id in scene_gt.json, or add the models"
        )

    notes += unknown_scene_notes(estimates, ds) + results_remarks(estimates)

    if problems:
        raise DatasetError(
            f"{targets_path} does not fit the dataset's annotations; fix the targets file or pass the "
            "targets of this dataset with --targets",
            problems,
        )

    return EvalInputs(
        name=name,
        estimates=estimates,
        targets=target_list,
        models_info=models_info,
        scenes=scenes,
        dataset=ds,
        image_size=_image_size(ds, target_list),
        notes=notes,
    )


def unknown_scene_notes(estimates: list[ResultRow], ds: BopDataset) -> list[str]:
    """A line when rows of the CSV name scenes that the split does not have (they score nothing): how
    many, which scenes, the first lines (row k = line k + 2); empty when every row's scene exists."""
    scenes = set(ds.scene_ids())
    bad = [(k + 2, e.scene_id) for k, e in enumerate(estimates) if e.scene_id not in scenes]
    if not bad:
        return []
    lines = ", ".join(str(ln) for ln, _ in bad[:SHOWN_ROWS]) + (" ..." if len(bad) > SHOWN_ROWS else "")
    which = f"scene(s) {_ids({s for _, s in bad})} not in {ds.split_path} (its scenes: {_ids(scenes) or 'none'})"
    if len(bad) == len(estimates):
        return [
            f"WARNING: none of the {len(bad)} rows is of a scene of this split: they name {which}; every target "
            "is missed: is the CSV for another dataset or split (its file name says which)?"
        ]
    return [f"{len(bad)} row(s) name {which} and score nothing (lines {lines})"]


def _ids(ids) -> str:
    ids = sorted(ids)
    return ", ".join(map(str, ids[:10])) + (f" ... ({len(ids)} in all)" if len(ids) > 10 else "")


__all__ = [
    "RESULTS_ROT_TOL",
    "EvalInputs",
    "SceneData",
    "load_inputs",
    "open_dataset",
    "resolve_targets_path",
    "VSD_DELTA_MM",
]

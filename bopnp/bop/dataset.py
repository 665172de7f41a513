"""A BOP dataset on disk: its layout (models, splits, scenes, images) and lazy, typed access to its files.

Layout (bop_toolkit's "scenewise" format)::

    ROOT/                                  e.g. datasets/lmo
      camera.json                          (or camera_TYPE.json)
      test_targets_bop19.json
      models/models_info.json, models/obj_{obj_id:06d}.ply
      models_eval/...                      resampled models for the pose errors
      SPLIT[_TYPE]/{scene_id:06d}/         e.g. test/000002, train_pbr/000000
        scene_camera.json, scene_gt.json, scene_gt_info.json
        rgb|gray/{im_id:06d}.png|.jpg|.tif
        depth/{im_id:06d}.png|.tif
        mask/, mask_visib/{im_id:06d}_{gt_id:06d}.png

No rendering here, and no class-level caches: each :class:`BopDataset` caches what it has read.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

import numpy as np

from bopnp.bop.annotations import (
    load_camera,
    load_models_info,
    load_scene_camera,
    load_scene_gt,
    load_scene_gt_info,
    load_targets,
)
from bopnp.bop.images import load_depth, load_image, load_mask
from bopnp.bop.mesh import Mesh
from bopnp.bop.ply import load_ply
from bopnp.bop.records import Camera, GtInfo, GtPose, ImageCamera, ModelInfo, Target
from bopnp.errors import DatasetError

#: path templates, relative to the dataset root
MODEL_TPATH = "{models}/obj_{obj_id:06d}.ply"
SCENE_TPATH = "{split}/{scene_id:06d}"
IMAGE_TPATH = "{split}/{scene_id:06d}/{modality}/{im_id:06d}{ext}"
DEPTH_TPATH = "{split}/{scene_id:06d}/depth/{im_id:06d}{ext}"
MASK_TPATH = "{split}/{scene_id:06d}/{mask_dir}/{im_id:06d}_{gt_id:06d}.png"
TARGETS_BOP19 = "test_targets_bop19.json"
#: the file ``bopnp synth`` writes first into a dataset it makes (its options): marks a synthetic dataset
SYNTH_MARKER = "synth_config.json"
#: what ``bopnp synth`` writes into each scene when it is finished (before that, ``.partial/`` records)
SYNTH_SCENE_FILES = ("scene_camera.json", "scene_gt.json", "scene_gt_info.json")

IMAGE_EXTS = (".png", ".jpg", ".jpeg", ".tif", ".tiff")
MODALITIES = ("rgb", "gray")
_SPLIT_RE = re.compile(r"^(train|val|test)(_[A-Za-z0-9]+)*$")
_SCENE_RE = re.compile(r"^\d{6}$")
T = TypeVar("T")


@dataclass(frozen=True, eq=False)
class Instance:
    """One annotated object instance of an image.

    Attributes:
        scene_id, im_id, gt_id: where it is (gt_id: its index in the image's scene_gt list).
        obj_id: object id.
        R_m2c: (3, 3) float64 model-to-camera rotation.
        t_m2c: (3,) float64 model-to-camera translation, mm.
        K: (3, 3) float64 intrinsics of the image, pixels.
        gt_info: its visibility record, or None when the scene has no scene_gt_info.json.
    """

    scene_id: int
    im_id: int
    gt_id: int
    obj_id: int
    R_m2c: np.ndarray
    t_m2c: np.ndarray
    K: np.ndarray
    gt_info: GtInfo | None = None


def _download_hint(name: str, what: str) -> str:
    return (
        f"download {name}_{what}.zip from the BOP website (bop.felk.cvut.cz/datasets) "
        "and unzip it into the dataset folder"
    )


class BopDataset:
    """Lazy, typed access to one BOP dataset folder.

    Args:
        root: the dataset folder, e.g. ``datasets/lmo``.
        split: a split folder name such as ``"test"``, ``"train_pbr"`` or ``"val"``; None for a
            models-only view (scene access then raises a :class:`DatasetError` listing the splits).
        models: the models folder used by :meth:`mesh` (``"models"``; ``models_eval`` is reached with
            ``eval=True``; e.g. ``"models_cad"`` for T-LESS).
    Raises:
        DatasetError: missing dataset folder or split folder; the message says what to download.

    >>> ds = BopDataset("datasets/lmo", "test")          # doctest: +SKIP
    >>> ds.scene_ids(), len(ds.targets())                # doctest: +SKIP
    ([2], 1445)
    """

    def __init__(self, root: str | os.PathLike, split: str | None = None, *, models: str = "models"):
        self.root = Path(root)
        self.name = self.root.name
        if self.root.exists() and not self.root.is_dir():
            raise DatasetError(
                f"{self.root} is a file, not a dataset folder: give the name of a folder under "
                "--bop-path (or a folder's path) that holds camera.json, models/ and the splits"
            )
        if not self.root.is_dir():
            raise DatasetError(
                f"{self.root} not found: put the BOP dataset '{self.name}' there "
                f"({_download_hint(self.name, 'base')}, plus {self.name}_models.zip and the split archives), "
                "or point --bop-path / $BOP_PATH at the folder that holds it"
            )
        if split is not None and not (self.root / split).is_dir():
            present = ", ".join(self.splits()) or "none"
            raise DatasetError(
                f"{self.root / split} not found (splits present: {present}): "
                f"{_download_hint(self.name, split if split != 'test' else 'test_bop19')}, or choose another --split"
            )
        self.split = split
        self.models_dir = models
        self._models_info: dict[int, ModelInfo] | None = None
        self._camera: Camera | None = None
        self._meshes: dict[tuple[int, bool], Mesh] = {}
        self._scene_camera: dict[int, dict[int, ImageCamera]] = {}
        self._scene_gt: dict[int, dict[int, list[GtPose]]] = {}
        self._scene_gt_info: dict[int, dict[int, list[GtInfo]]] = {}
        self._files: dict[tuple[int, str], tuple[dict[str, str], dict[str, list[str]]]] = {}

    def __repr__(self) -> str:
        return f"BopDataset({str(self.root)!r}, split={self.split!r})"

    @classmethod
    def from_bop_path(cls, bop_path: str | os.PathLike, name: str, split: str | None = None, **kwargs) -> BopDataset:
        """The dataset ``name`` under the datasets folder ``bop_path`` (``--bop-path`` / ``$BOP_PATH``)."""
        return cls(Path(bop_path) / name, split, **kwargs)

    # ------------------------------------------------------------------ layout

    def splits(self) -> list[str]:
        """Split folders present (``train*``, ``val*``, ``test*`` folders), sorted."""
        return sorted(p.name for p in self.root.iterdir() if p.is_dir() and _SPLIT_RE.match(p.name))

    @property
    def split_type(self) -> str | None:
        """The part of the split name after the first ``_`` (``"pbr"`` for ``train_pbr``), or None."""
        if self.split is None or "_" not in self.split:
            return None
        return self.split.split("_", 1)[1]

    @property
    def split_path(self) -> Path:
        """The split folder. Raises DatasetError when no split was chosen."""
        if self.split is None:
            raise DatasetError(
                f"{self.root}: no split chosen; pass split= (or --split) one of: "
                f"{', '.join(self.splits()) or 'none present'}"
            )
        return self.root / self.split

    def scene_ids(self) -> list[int]:
        """Scene ids of the split (its six-digit folders), sorted."""
        return sorted(int(p.name) for p in self.split_path.iterdir() if p.is_dir() and _SCENE_RE.match(p.name))

    def scene_path(self, scene_id: int) -> Path:
        """The scene folder; DatasetError when it does not exist."""
        path = self.split_path / f"{scene_id:06d}"
        if not path.is_dir():
            raise DatasetError(
                f"{path} not found: scene {scene_id} is not in split '{self.split}' (scenes: {self.scene_ids()})"
            )
        return path

    @property
    def made_by_synth(self) -> bool:
        """Whether ``bopnp synth`` made this dataset (it holds ``synth_config.json``)."""
        return (self.root / SYNTH_MARKER).is_file()

    def synth_unfinished(self) -> list[str]:
        """For a dataset made by ``bopnp synth``: what an interrupted run left unfinished, one line per
        scene (``split/scene: why``), plus a missing ``test_targets_bop19.json``; empty when complete or
        not a synthetic dataset."""
        if not self.made_by_synth:
            return []
        out = []
        for split in self.splits():
            for scene in sorted(p for p in (self.root / split).iterdir() if p.is_dir() and _SCENE_RE.match(p.name)):
                absent = [f for f in SYNTH_SCENE_FILES if not (scene / f).is_file()]
                if (scene / ".partial").is_dir() or absent:
                    why = f"no {', '.join(absent)}" if absent else "unfinished images (.partial/)"
                    out.append(f"{split}/{scene.name}: {why}")
        if (self.root / "test").is_dir() and not self.targets_path.is_file():
            out.append(f"{TARGETS_BOP19} not written yet")
        return out

    def synth_resume_hint(self) -> str:
        """What to run to finish an interrupted ``bopnp synth`` of this dataset."""
        return (
            f"the dataset was made by `bopnp synth` and is incomplete (the run was interrupted): finish it with "
            f"`bopnp synth {self.name} --resume` and the options of the first run (see {SYNTH_MARKER})"
        )

    # ------------------------------------------------------------------ models

    @property
    def models_info_path(self) -> Path:
        return self.root / self.models_dir / "models_info.json"

    @property
    def models_info(self) -> dict[int, ModelInfo]:
        """{obj_id: ModelInfo} from ``models/models_info.json`` (read once per instance)."""
        if self._models_info is None:
            if not self.models_info_path.is_file():
                raise DatasetError(f"{self.models_info_path} not found: {_download_hint(self.name, 'models')}")
            self._models_info = load_models_info(self.models_info_path)
        return self._models_info

    @property
    def obj_ids(self) -> list[int]:
        """Object ids listed in models_info.json, sorted."""
        return sorted(self.models_info)

    def model_path(self, obj_id: int, eval: bool = False) -> Path:
        """Path of an object's PLY in the models folder, or in ``<models>_eval`` with ``eval=True``."""
        folder = f"{self.models_dir}_eval" if eval else self.models_dir
        return self.root / MODEL_TPATH.format(models=folder, obj_id=obj_id)

    def mesh(self, obj_id: int, eval: bool = False) -> Mesh:
        """An object's mesh (mm), read once per instance; ``eval=True`` for the resampled eval model.

        Raises:
            DatasetError: unknown object id, missing or malformed PLY.
        """
        key = (int(obj_id), bool(eval))
        if key not in self._meshes:
            if obj_id not in self.models_info:
                raise DatasetError(f"object {obj_id} is not in {self.models_info_path} (objects: {self.obj_ids})")
            path = self.model_path(obj_id, eval)
            if not path.is_file():
                raise DatasetError(f"{path} not found: {_download_hint(self.name, 'models')}")
            self._meshes[key] = load_ply(path)
        return self._meshes[key]

    @property
    def camera_path(self) -> Path:
        """``camera.json``, or the only ``camera_TYPE.json`` (the one matching the split type if several)."""
        plain = self.root / "camera.json"
        if plain.is_file():
            return plain
        typed = sorted(self.root.glob("camera_*.json"))
        if self.split_type is not None and (self.root / f"camera_{self.split_type}.json").is_file():
            return self.root / f"camera_{self.split_type}.json"
        if len(typed) == 1:
            return typed[0]
        return plain

    @property
    def camera(self) -> Camera:
        """The dataset camera (``camera.json``), read once per instance."""
        if self._camera is None:
            path = self.camera_path
            if not path.is_file():
                raise DatasetError(f"{path} not found: {_download_hint(self.name, 'base')}")
            self._camera = load_camera(path)
        return self._camera

    # ------------------------------------------------------------------ per-scene annotations

    def _scene_file(self, cache: dict[int, T], scene_id: int, name: str, load: Callable[[Path], T], missing: str) -> T:
        """A scene's json file ``name`` read with ``load`` once per instance (kept in ``cache``).

        Raises:
            DatasetError: the file is missing (``missing`` says what to do) or malformed.
        """
        if scene_id not in cache:
            path = self.scene_path(scene_id) / name
            if not path.is_file():
                raise DatasetError(f"{path} not found: {self.synth_resume_hint() if self.made_by_synth else missing}")
            cache[scene_id] = load(path)
        return cache[scene_id]

    def scene_camera(self, scene_id: int) -> dict[int, ImageCamera]:
        """{im_id: ImageCamera} of a scene (read once per instance)."""
        return self._scene_file(
            self._scene_camera,
            scene_id,
            "scene_camera.json",
            load_scene_camera,
            "the scene is incomplete; re-download the split archive",
        )

    def has_gt(self, scene_id: int) -> bool:
        """Whether the scene has ``scene_gt.json``."""
        return (self.scene_path(scene_id) / "scene_gt.json").is_file()

    def scene_gt(self, scene_id: int) -> dict[int, list[GtPose]]:
        """{im_id: [GtPose per gt_id]} of a scene (read once per instance)."""
        return self._scene_file(
            self._scene_gt,
            scene_id,
            "scene_gt.json",
            load_scene_gt,
            "this split has no ground truth here (BOP keeps some test annotations private); use a split with "
            "annotations",
        )

    def has_gt_info(self, scene_id: int) -> bool:
        """Whether the scene has ``scene_gt_info.json``."""
        return (self.scene_path(scene_id) / "scene_gt_info.json").is_file()

    def scene_gt_info(self, scene_id: int) -> dict[int, list[GtInfo]]:
        """{im_id: [GtInfo per gt_id]} of a scene (read once per instance)."""
        return self._scene_file(
            self._scene_gt_info,
            scene_id,
            "scene_gt_info.json",
            load_scene_gt_info,
            f"compute it with `bopnp prepare {self.name} --split {self.split}`",
        )

    def image_ids(self, scene_id: int) -> list[int]:
        """Image ids of a scene (the keys of its scene_camera.json), sorted."""
        return sorted(self.scene_camera(scene_id))

    def K(self, scene_id: int, im_id: int) -> np.ndarray:
        """(3, 3) intrinsics of one image, pixels."""
        cams = self.scene_camera(scene_id)
        if im_id not in cams:
            raise DatasetError(f"{self.scene_path(scene_id) / 'scene_camera.json'}: no entry for image {im_id}")
        return cams[im_id].K

    # ------------------------------------------------------------------ image files

    def scene_files(self, scene_id: int, folder: str) -> dict[str, str]:
        """{file stem: suffix} of a scene subfolder, listed once. Where one stem has several image files
        (``000001.png`` and ``000001.jpg``), the suffix read is the first in :data:`IMAGE_EXTS` order
        (``.png`` first), whatever the folder's listing order; :meth:`duplicate_files` lists them."""
        return self._listing(scene_id, folder)[0]

    def duplicate_files(self, scene_id: int, folder: str) -> dict[str, list[str]]:
        """{file stem: every suffix present, the one read first} for the stems of a scene subfolder that
        have more than one image file; empty when none has."""
        return self._listing(scene_id, folder)[1]

    def _listing(self, scene_id: int, folder: str) -> tuple[dict[str, str], dict[str, list[str]]]:
        key = (scene_id, folder)
        if key not in self._files:
            path = self.scene_path(scene_id) / folder
            found: dict[str, list[str]] = {}
            if path.is_dir():
                with os.scandir(path) as it:
                    for e in it:
                        stem, ext = os.path.splitext(e.name)
                        if ext.lower() in IMAGE_EXTS:
                            found.setdefault(stem, []).append(ext)
            rank = {ext: i for i, ext in enumerate(IMAGE_EXTS)}
            for exts in found.values():
                exts.sort(key=lambda e: (rank[e.lower()], e))
            self._files[key] = (
                {stem: exts[0] for stem, exts in found.items()},
                {stem: exts for stem, exts in found.items() if len(exts) > 1},
            )
        return self._files[key]

    def modality(self, scene_id: int) -> str:
        """``"rgb"`` or ``"gray"``: the image folder the scene has (rgb preferred)."""
        for m in MODALITIES:
            if (self.scene_path(scene_id) / m).is_dir():
                return m
        raise DatasetError(
            f"{self.scene_path(scene_id)}: no rgb/ or gray/ folder; {_download_hint(self.name, self.split or 'test')}"
        )

    def image_path(self, scene_id: int, im_id: int) -> Path:
        """Path of an image (the suffix found on disk; ``.png`` when the file is missing)."""
        modality = self.modality(scene_id)
        ext = self.scene_files(scene_id, modality).get(f"{im_id:06d}", ".png")
        return self.root / IMAGE_TPATH.format(
            split=self.split, scene_id=scene_id, modality=modality, im_id=im_id, ext=ext
        )

    def depth_path(self, scene_id: int, im_id: int) -> Path:
        """Path of a depth image: the suffix found on disk (``.png``, or ``.tif`` as ITODD's), ``.png`` when
        there is none. Use this instead of a fixed suffix; :meth:`depth` reads it."""
        ext = self.scene_files(scene_id, "depth").get(f"{im_id:06d}", ".png")
        return self.root / DEPTH_TPATH.format(split=self.split, scene_id=scene_id, im_id=im_id, ext=ext)

    def mask_path(self, scene_id: int, im_id: int, gt_id: int, visib: bool = True) -> Path:
        """Path of an instance mask: ``mask_visib/`` (visible part) or ``mask/`` (whole silhouette)."""
        return self.root / MASK_TPATH.format(
            split=self.split, scene_id=scene_id, mask_dir="mask_visib" if visib else "mask", im_id=im_id, gt_id=gt_id
        )

    def image(self, scene_id: int, im_id: int) -> np.ndarray:
        """(H, W, 3) uint8 RGB, or (H, W) for gray datasets; see :func:`bopnp.bop.images.load_image`."""
        return load_image(self.image_path(scene_id, im_id))

    def depth_scale(self, scene_id: int, im_id: int) -> float:
        """mm per depth unit of an image: scene_camera.json, else camera.json, else 1."""
        cam = self.scene_camera(scene_id).get(im_id)
        if cam is not None and cam.depth_scale is not None:
            return cam.depth_scale
        if self.camera_path.is_file() and self.camera.depth_scale is not None:
            return self.camera.depth_scale
        return 1.0

    def depth(self, scene_id: int, im_id: int) -> np.ndarray:
        """(H, W) float32 depth in mm (0 = no measurement)."""
        return load_depth(self.depth_path(scene_id, im_id), self.depth_scale(scene_id, im_id))

    def mask(self, scene_id: int, im_id: int, gt_id: int, visib: bool = True) -> np.ndarray:
        """(H, W) bool instance mask (visible part by default)."""
        return load_mask(self.mask_path(scene_id, im_id, gt_id, visib))

    # ------------------------------------------------------------------ instances and targets

    def instances(self, scene_ids: list[int] | None = None) -> Iterator[Instance]:
        """Every annotated instance of the split (or of ``scene_ids``), in scene, image, gt_id order."""
        for scene_id in self.scene_ids() if scene_ids is None else scene_ids:
            cams = self.scene_camera(scene_id)
            gts = self.scene_gt(scene_id)
            infos = self.scene_gt_info(scene_id) if self.has_gt_info(scene_id) else {}
            for im_id in sorted(gts):
                if im_id not in cams:
                    raise DatasetError(
                        f"{self.scene_path(scene_id)}: scene_gt.json has image {im_id} but scene_camera.json does not"
                    )
                im_info = infos.get(im_id)
                for gt_id, g in enumerate(gts[im_id]):
                    yield Instance(
                        scene_id,
                        im_id,
                        gt_id,
                        g.obj_id,
                        g.R_m2c,
                        g.t_m2c,
                        cams[im_id].K,
                        None if im_info is None or gt_id >= len(im_info) else im_info[gt_id],
                    )

    @property
    def targets_path(self) -> Path:
        return self.root / TARGETS_BOP19

    def targets(self, path: str | os.PathLike | None = None) -> list[Target]:
        """The BOP19 test targets (``test_targets_bop19.json``, or ``path``).

        Raises:
            DatasetError: the file is missing (the message says which archive holds it) or malformed.
        """
        path = Path(path) if path is not None else self.targets_path
        if not path.is_file():
            raise DatasetError(
                f"{path} not found: {_download_hint(self.name, 'base')} (it holds {TARGETS_BOP19}), or pass --targets"
            )
        return load_targets(path)

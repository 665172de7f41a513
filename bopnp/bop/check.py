"""Find every problem of a BOP dataset folder: missing or malformed files, unknown object ids,
non-orthonormal rotations, inconsistent image sizes, and masks that disagree with scene_gt_info.

Problems are lines ``"<file relative to the dataset>: <field>: <what is wrong>"``, the same lines the
loaders raise. Notes are things worth knowing that are not errors (no masks yet, private test GT,
images skipped on request).
"""

from __future__ import annotations

import os
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np

from bopnp.bop import annotations as ann
from bopnp.bop.dataset import MODALITIES, SYNTH_MARKER, TARGETS_BOP19, BopDataset
from bopnp.bop.images import image_size, load_depth, load_image, load_mask, mask_bbox_xywh
from bopnp.bop.ply import load_ply
from bopnp.bop.records import Camera, GtInfo, GtPose, ImageCamera, ModelInfo
from bopnp.bop.symmetry import symmetry_transforms
from bopnp.bop.validate import (
    DIAMETER_TOL,
    GT_ROT_TOL,
    check_diameter,
    gt_box_problems,
    intrinsics_problems,
    problem,
    rotation_errors,
)
from bopnp.errors import ConfigError, DatasetError
from bopnp.progress import progress_bar

ImagesMode = Literal["all", "present", "none"]
#: where masks come from: no bopnp command writes mask folders
MASKS_HINT = (
    "they come with BOP's split archives (re-download the split), or bop_toolkit's "
    "scripts/calc_gt_masks.py makes them; no bopnp command writes mask folders (`bopnp prepare` "
    "renders the masks it needs, `bopnp synth` writes them for its own datasets)"
)


@dataclass(frozen=True)
class CheckOptions:
    """What :func:`check_dataset` looks at.

    Attributes:
        models_only: check camera.json and the models only (no split).
        images: ``"all"`` (every image of scene_camera.json must exist), ``"present"`` (check the image,
            depth and mask files that exist, note the missing ones), ``"none"`` (annotations only).
        rot_tol: tolerance on |R^T R - I| and |det R - 1| of annotated rotations.
        extent_tol: allowed |mesh box - models_info box| as a fraction of the diameter (models/).
        eval_extent_tol: the same for the resampled models_eval/.
        sym_tol: a symmetry must map the eval model onto itself with a mean nearest-vertex distance
            below this fraction of the diameter plus the model's mean vertex spacing.
        mask_count_tol: allowed |mask pixels - px_count| as a fraction of px_count (at least 2 px).
        mask_bbox_tol_px: allowed difference between a mask's box and the recorded box, pixels.
        progress: show a progress bar over images (None: only on a terminal).
        fast: read only the headers of rgb/gray and depth images (size) instead of decoding them whole;
            truncated files and depth that is not single-channel 16-bit then go unnoticed (masks are
            always decoded: their pixels are compared with scene_gt_info).
    """

    models_only: bool = False
    images: ImagesMode = "all"
    rot_tol: float = GT_ROT_TOL
    extent_tol: float = 1e-3
    eval_extent_tol: float = 0.02
    sym_tol: float = 0.01
    mask_count_tol: float = 0.01
    mask_bbox_tol_px: int = 2
    progress: bool | None = None
    fast: bool = False

    def validate(self) -> None:
        if self.images not in ("all", "present", "none"):
            raise ConfigError(f"images must be 'all', 'present' or 'none', got {self.images!r}")


@dataclass
class CheckReport:
    """The outcome of :func:`check_dataset`.

    Attributes:
        root: the dataset folder.
        problems: one line per problem (file, field, what).
        notes: remarks that are not errors.
        counts: what was checked (``models``, ``scenes``, ``images``, ``instances``, ``image files``, ...).
    """

    root: Path
    problems: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    counts: Counter = field(default_factory=Counter)

    @property
    def ok(self) -> bool:
        """True when no problem was found."""
        return not self.problems

    def files_with_problems(self) -> list[str]:
        """The files that have problems, in order of first appearance."""
        return list(dict.fromkeys(p.split(": ", 1)[0] for p in self.problems))

    def summary(self) -> str:
        """One line: verdict, problem count, files, and what was checked."""
        checked = ", ".join(f"{n} {k}" for k, n in self.counts.items())
        if self.ok:
            return f"{self.root.name}: no problems (checked {checked or 'nothing'})"
        files = self.files_with_problems()
        return f"{self.root.name}: {len(self.problems)} problem(s) in {len(files)} file(s) (checked {checked})"


class _Checker:
    def __init__(self, root: Path, opts: CheckOptions):
        self.root = root
        self.opts = opts
        self.report = CheckReport(root)
        self.camera: Camera | None = None
        self.models_info: dict[int, ModelInfo] | None = None
        self.models_info_src = "models/models_info.json"
        # (split, scene_id) -> (cameras or None when unreadable, ground truth or None, ids of malformed entries)
        self.parsed: dict[tuple[str, int], tuple[dict | None, dict | None, set[int]]] = {}
        # set for a dataset that an interrupted `bopnp synth` left incomplete: what to run
        self.synth_hint: str | None = None

    # helpers ---------------------------------------------------------------
    def rel(self, path: Path) -> str:
        try:
            return path.relative_to(self.root).as_posix()
        except ValueError:
            return str(path)

    def add(self, path: Path | str, fld: str, msg: str) -> None:
        self.report.problems.append(problem(self.rel(path) if isinstance(path, Path) else path, fld, msg))

    def add_error(self, path: Path, exc: DatasetError) -> None:
        """A loader's error as a problem of ``path``: its message without the leading path."""
        msg = str(exc)
        self.add(path, "", msg.split(": ", 1)[1] if msg.startswith(f"{path}: ") else msg)

    def note(self, msg: str) -> None:
        self.report.notes.append(msg)

    def json(self, path: Path, what: str) -> Any | None:
        """Decoded json, or None after recording a problem."""
        if not path.is_file():
            self.add(path, "", f"missing ({what})" + (f"; {self.synth_hint}" if self.synth_hint else ""))
            return None
        try:
            return ann.read_json(path)
        except DatasetError as exc:
            self.add_error(path, exc)
            return None

    # camera and models -------------------------------------------------------
    def check_camera(self, ds: BopDataset) -> None:
        path = ds.camera_path
        content = self.json(path, "the dataset camera; it is in the base archive")
        if content is not None:
            self.camera = ann.parse_camera(content, self.rel(path), self.report.problems)
        if self.camera is not None:
            for fld, msg in intrinsics_problems(self.camera.K, self.camera.width, self.camera.height):
                self.add(path, fld, msg)

    def check_models(self, ds: BopDataset) -> None:
        path = ds.models_info_path
        content = self.json(path, "diameters, boxes and symmetries of the models; it is in the models archive")
        if content is None:
            return
        self.models_info_src = self.rel(path)
        self.models_info = ann.parse_models_info(content, self.models_info_src, self.report.problems, self.opts.rot_tol)
        for sub, tol in ((ds.models_dir, self.opts.extent_tol), (f"{ds.models_dir}_eval", self.opts.eval_extent_tol)):
            folder = self.root / sub
            eval_model = sub.endswith("_eval")
            if not folder.is_dir():
                what = "resampled models for the pose errors" if eval_model else "object models"
                self.add(folder, "", f"missing folder ({what}); download the models archive")
                continue
            infos, info_path = self.models_info, path
            if eval_model:  # `bopnp eval` takes the diameters and symmetries from this folder's own file
                info_path = folder / "models_info.json"
                infos = self.eval_models_info(info_path)
                if infos is None:
                    continue
            listed = {int(p.stem[4:]) for p in folder.glob("obj_*.ply") if p.stem[4:].isdigit()}
            for extra in sorted(listed - set(infos)):
                self.add(
                    folder / f"obj_{extra:06d}.ply",
                    "",
                    f"object {extra} has a model but no entry in {self.rel(info_path)}",
                )
            for obj_id, info in infos.items():
                self.check_model(
                    folder / f"obj_{obj_id:06d}.ply", info, tol, eval_model=eval_model, info_src=self.rel(info_path)
                )

    def eval_models_info(self, path: Path) -> dict[int, ModelInfo] | None:
        """``models_eval/models_info.json`` parsed and compared with ``models/models_info.json`` (same
        objects, same diameters within ``DIAMETER_TOL``); None when missing or unreadable (reported)."""
        content = self.json(path, "diameters and symmetries used by `bopnp eval`; it is in the models archive")
        if content is None:
            return None
        src = self.rel(path)
        infos = ann.parse_models_info(content, src, self.report.problems, self.opts.rot_tol)
        if not isinstance(content, dict) or self.models_info is None:
            return infos
        for obj_id in sorted(set(self.models_info) - set(infos)):
            if str(obj_id) not in content:  # present but malformed: already reported
                self.add(
                    src,
                    f"['{obj_id}']",
                    f"missing: object {obj_id} is in {self.models_info_src}; copy its "
                    "entry, or re-download the models archive",
                )
        for obj_id in sorted(set(infos) - set(self.models_info)):
            self.add(src, f"['{obj_id}']", f"object {obj_id} is not in {self.models_info_src}")
        for obj_id in sorted(set(infos) & set(self.models_info)):
            d_eval, d = infos[obj_id].diameter_mm, self.models_info[obj_id].diameter_mm
            if abs(d_eval - d) > DIAMETER_TOL * d + 0.01:
                self.add(
                    src,
                    f"['{obj_id}'].diameter",
                    f"{d_eval:.6g} mm but {self.models_info_src} says {d:.6g} mm "
                    "(the eval models are the same objects); `bopnp eval` uses this one: fix it",
                )
        return infos

    def check_model(self, path: Path, info: ModelInfo, tol: float, eval_model: bool, info_src: str = "") -> None:
        if not path.is_file():
            self.add(path, "", f"missing (model of object {info.obj_id} listed in {info_src or 'models_info.json'})")
            return
        try:
            mesh = load_ply(path, load_texture=True)
        except DatasetError as exc:
            self.add_error(path, exc)
            return
        self.report.counts["models" if not eval_model else "eval models"] += 1
        if len(mesh.faces) == 0:
            self.add(path, "face", "the mesh has no faces")
        v = mesh.vertices_mm.astype(np.float64)
        if len(v) == 0:
            self.add(path, "vertex", "the mesh has no vertices")
            return
        lo, hi = v.min(0), v.max(0)
        check_diameter(
            info.diameter_mm,
            hi - lo,
            info_src or self.models_info_src,
            f"['{info.obj_id}'].diameter",
            self.report.problems,
            what=f"vertices of {self.rel(path)}",
            tol=max(DIAMETER_TOL, tol),
        )
        allowed = max(0.01, tol * info.diameter_mm)
        bad_min = np.abs(lo - info.min_mm).max()
        bad_size = np.abs((hi - lo) - info.size_mm).max()
        if max(bad_min, bad_size) > allowed:
            self.add(
                path,
                "vertex",
                f"bounding box min {np.round(lo, 3).tolist()} size {np.round(hi - lo, 3).tolist()} mm disagrees with "
                f"models_info.json min {info.min_mm.tolist()} size {info.size_mm.tolist()} "
                f"(tolerance {allowed:.3g} mm); is the model in mm and the entry for this object?",
            )
        if info.is_symmetric:  # both folders: prepare uses models/, eval models_eval/
            from scipy.spatial import cKDTree

            tree = cKDTree(v)
            spacing = float(tree.query(v, k=2)[0][:, 1].mean()) if len(v) > 1 else 0.0
            transforms = symmetry_transforms(info, max_sym_disc_step=0.1)
            step = max(1, len(transforms) // 8)
            worst = 0.0
            for T in transforms[1::step]:
                d, _ = tree.query(v @ T[:3, :3].T + T[:3, 3])
                worst = max(worst, float(d.mean()))
            limit = self.opts.sym_tol * info.diameter_mm + spacing
            if worst > limit:
                self.add(
                    info_src or self.models_info_src,
                    f"['{info.obj_id}'].symmetries",
                    f"a declared symmetry does not map {self.rel(path)} onto itself: mean nearest-vertex distance "
                    f"{worst:.2f} mm (limit {limit:.2f} mm = {self.opts.sym_tol:.0%} of the diameter + the mean "
                    f"vertex spacing {spacing:.2f} mm)",
                )

    # splits --------------------------------------------------------------------
    def check_split(self, ds: BopDataset) -> None:
        scene_ids = ds.scene_ids()
        if not scene_ids:
            self.add(ds.split_path, "", "no scene folders (six-digit names) in this split")
            return
        for scene_id in scene_ids:
            self.check_scene(ds, scene_id)
        if ds.split and ds.split.startswith("test"):
            self.check_targets(ds)

    def check_scene(self, ds: BopDataset, scene_id: int) -> None:
        self.report.counts["scenes"] += 1
        sdir = ds.split_path / f"{scene_id:06d}"
        problems = self.report.problems
        tol = self.opts.rot_tol
        # ids of entries that are present but malformed: already reported, so not cross-checked again
        bad: set[int] = set()

        content = self.json(sdir / "scene_camera.json", "per-image intrinsics")
        cams_ok = content is not None
        cams: dict[int, ImageCamera] = (
            {}
            if content is None
            else ann.parse_scene_camera(content, self.rel(sdir / "scene_camera.json"), problems, tol, bad)
        )
        gts: dict[int, list[GtPose]] | None = None
        infos: dict[int, list[GtInfo]] | None = None
        if (sdir / "scene_gt.json").is_file():
            content = self.json(sdir / "scene_gt.json", "ground-truth poses")
            gts = (
                None
                if content is None
                else ann.parse_scene_gt(content, self.rel(sdir / "scene_gt.json"), problems, tol, bad)
            )
        elif self.synth_hint:
            self.add(sdir / "scene_gt.json", "", f"missing; {self.synth_hint}")
        else:
            self.note(f"{self.rel(sdir)}: no scene_gt.json (test ground truth is private for some BOP datasets)")
        if (sdir / "scene_gt_info.json").is_file():
            content = self.json(sdir / "scene_gt_info.json", "visibility of the instances")
            infos = (
                None
                if content is None
                else ann.parse_scene_gt_info(content, self.rel(sdir / "scene_gt_info.json"), problems, bad)
            )
        elif gts:
            self.note(f"{self.rel(sdir)}: no scene_gt_info.json (compute it with `bopnp prepare`)")
        self.report.counts["images"] += len(cams)
        if self.camera is not None:  # intrinsics that cannot be this camera's: renders would not line up
            size = (self.camera.width, self.camera.height)
            for im_id, cam in sorted(cams.items()):
                for fld, msg in intrinsics_problems(cam.K, *size):
                    self.add(
                        sdir / "scene_camera.json",
                        f"['{im_id}'].cam_K",
                        f"{fld}: {msg} (camera.json: {size[0]}x{size[1]} images)",
                    )
        self.parsed[(ds.split, scene_id)] = (cams if cams_ok else None, gts, bad)

        if gts is not None:
            gt_src = self.rel(sdir / "scene_gt.json")
            self.report.counts["instances"] += sum(len(v) for v in gts.values())
            if cams_ok:
                for im_id in sorted(set(gts) - set(cams) - bad):
                    self.add(gt_src, f"['{im_id}']", "image has ground truth but no entry in scene_camera.json")
                for im_id in sorted(set(cams) - set(gts) - bad):
                    self.add(
                        gt_src,
                        f"['{im_id}']",
                        "missing: the image is in scene_camera.json but has no ground-truth list (use [] for an "
                        "image without objects)",
                    )
            if self.models_info is not None:
                for im_id, lst in gts.items():
                    for gt_id, g in enumerate(lst):
                        if g.obj_id not in self.models_info:
                            self.add(
                                gt_src,
                                f"['{im_id}'][{gt_id}].obj_id",
                                f"unknown object {g.obj_id} (models_info.json lists {sorted(self.models_info)})",
                            )
            Rs = [g.R_m2c for lst in gts.values() for g in lst]
            worst = float(rotation_errors(np.stack(Rs))[0].max()) if Rs else 0.0
            if worst > 1e-3:
                self.note(
                    f"{gt_src}: annotated rotations deviate from orthonormal by up to {worst:.2g} (accepted below "
                    f"{tol:g})"
                )
        if gts is not None and infos is not None:
            self.check_gt_info(gts, infos, self.rel(sdir / "scene_gt_info.json"), bad)
        if self.opts.images != "none":
            self.check_files(ds, scene_id, sdir, cams, gts or {}, infos or {})

    def check_gt_info(
        self, gts: dict[int, list[GtPose]], infos: dict[int, list[GtInfo]], src: str, bad: set[int]
    ) -> None:
        for im_id in sorted((set(gts) | set(infos)) - bad):
            if im_id not in infos:
                self.add(src, f"['{im_id}']", "missing: the image has ground truth but no visibility list")
                continue
            if im_id not in gts:
                self.add(src, f"['{im_id}']", "image is not in scene_gt.json")
                continue
            if len(infos[im_id]) != len(gts[im_id]):
                self.add(
                    src,
                    f"['{im_id}']",
                    f"{len(infos[im_id])} entries but scene_gt.json has {len(gts[im_id])} instances; they must match "
                    "one to one",
                )
            for gt_id, g in enumerate(infos[im_id]):
                f = f"['{im_id}'][{gt_id}]"
                if g.px_count_visib > g.px_count_all:
                    self.add(
                        src,
                        f + ".px_count_visib",
                        f"{g.px_count_visib} visible pixels exceed px_count_all {g.px_count_all}",
                    )
                if self.camera is not None:
                    size = (self.camera.width, self.camera.height)
                    for key, msg in gt_box_problems(g.bbox_obj, g.bbox_visib, g.px_count_visib, *size):
                        self.add(src, f"{f}.{key}", msg)
                if g.px_count_valid > g.px_count_all:
                    self.add(src, f + ".px_count_valid", f"{g.px_count_valid} exceeds px_count_all {g.px_count_all}")
                expect = g.px_count_visib / g.px_count_all if g.px_count_all > 0 else 0.0
                if abs(g.visib_fract - expect) > 1e-3:
                    self.add(
                        src, f + ".visib_fract", f"{g.visib_fract:.4f} but px_count_visib / px_count_all = {expect:.4f}"
                    )

    def check_files(
        self,
        ds: BopDataset,
        scene_id: int,
        sdir: Path,
        cams: dict[int, ImageCamera],
        gts: dict[int, list[GtPose]],
        infos: dict[int, list[GtInfo]],
    ) -> None:
        present_mode = self.opts.images == "present"
        modality = next((m for m in MODALITIES if (sdir / m).is_dir()), None)
        if modality is None:
            if present_mode:
                self.note(f"{self.rel(sdir)}: no rgb/ or gray/ folder (skipped: --images present)")
            else:
                self.add(sdir, "", "no rgb/ or gray/ folder: the images are missing; download the split archive")
            return
        files = {m: ds.scene_files(scene_id, m) for m in (modality, "depth")}
        for folder in (modality, "depth", "mask", "mask_visib"):
            for stem, exts in sorted(ds.duplicate_files(scene_id, folder).items()):
                self.add(
                    sdir / folder / f"{stem}{exts[0]}",
                    "",
                    f"{' and '.join(stem + e for e in exts)} both exist: bopnp reads {stem}{exts[0]}; remove the "
                    "other file(s)",
                )
        has_depth = (sdir / "depth").is_dir()
        mask_dirs = [d for d in ("mask_visib", "mask") if (sdir / d).is_dir()]
        if gts and not mask_dirs:
            self.note(f"{self.rel(sdir)}: no mask/ or mask_visib/: {MASKS_HINT}")
        expected = (self.camera.width, self.camera.height) if self.camera is not None else None
        size_src = "camera.json"
        missing: Counter = Counter()
        iterator = sorted(cams)
        # progress None: only on a terminal
        for im_id in progress_bar(iterator, desc=self.rel(sdir), unit="img", enabled=self.opts.progress, leave=False):
            stem = f"{im_id:06d}"
            ext = files[modality].get(stem)
            img_path = sdir / modality / f"{stem}{ext or '.png'}"
            size = None
            if ext is None:
                missing[modality] += 1
                if not present_mode:
                    self.add(img_path, "", f"missing image (scene_camera.json lists image {im_id})")
            else:
                try:
                    if self.opts.fast:
                        size = image_size(img_path)
                    else:
                        img = load_image(img_path)
                        size = (img.shape[1], img.shape[0])
                    self.report.counts["image files"] += 1
                except DatasetError as exc:
                    self.add_error(img_path, exc)
                if size is not None:
                    if expected is None:
                        expected, size_src = size, self.rel(img_path)
                    elif size != expected:
                        self.add(
                            img_path,
                            "size",
                            f"{size[0]}x{size[1]} but {size_src} says {expected[0]}x{expected[1]} (width x height)",
                        )
            if has_depth:
                dext = files["depth"].get(stem)
                dpath = sdir / "depth" / f"{stem}{dext or '.png'}"
                if dext is None:
                    missing["depth"] += 1
                    if not present_mode:
                        self.add(dpath, "", f"missing depth image (scene_camera.json lists image {im_id})")
                else:
                    try:
                        if self.opts.fast:
                            dsize = image_size(dpath)
                        else:
                            depth = load_depth(dpath)
                            dsize = (depth.shape[1], depth.shape[0])
                        ref = expected or size
                        if ref is not None and dsize != ref:
                            self.add(dpath, "size", f"{dsize[0]}x{dsize[1]} but the image is {ref[0]}x{ref[1]}")
                    except DatasetError as exc:
                        self.add_error(dpath, exc)
            for mask_dir in mask_dirs:
                im_infos = infos.get(im_id, [])
                for gt_id in range(len(gts.get(im_id, []))):
                    info = im_infos[gt_id] if gt_id < len(im_infos) else None
                    self.check_mask(
                        sdir / mask_dir / f"{stem}_{gt_id:06d}.png",
                        mask_dir,
                        im_id,
                        gt_id,
                        info,
                        expected or size,
                        missing,
                    )
        if present_mode and missing:
            self.note(
                f"{self.rel(sdir)}: skipped missing files (--images present): "
                + ", ".join(f"{n} of {len(cams)} {k}" for k, n in missing.items())
            )

    def check_mask(
        self,
        path: Path,
        mask_dir: str,
        im_id: int,
        gt_id: int,
        info: GtInfo | None,
        size: tuple[int, int] | None,
        missing: Counter,
    ) -> None:
        if not path.is_file():
            missing[mask_dir] += 1
            if self.opts.images != "present":
                self.add(path, "", f"missing mask of image {im_id} instance {gt_id}")
            return
        try:
            mask = load_mask(path)
        except DatasetError as exc:
            self.add_error(path, exc)
            return
        self.report.counts["masks"] += 1
        if size is not None and (mask.shape[1], mask.shape[0]) != size:
            self.add(path, "size", f"{mask.shape[1]}x{mask.shape[0]} but the image is {size[0]}x{size[1]}")
            return
        if info is None:
            return
        visib = mask_dir == "mask_visib"
        count = int(mask.sum())
        box = mask_bbox_xywh(mask)
        gi = f"scene_gt_info.json['{im_id}'][{gt_id}]"
        want_count = info.px_count_visib if visib else info.px_count_all
        want_box = info.bbox_visib if visib else info.bbox_obj
        h, w = mask.shape
        inside = (
            want_box[0] >= 0 and want_box[1] >= 0 and want_box[0] + want_box[2] < w and want_box[1] + want_box[3] < h
        )
        if visib or inside:  # the whole silhouette may extend beyond the image: compare only when it does not
            allowed = max(2, self.opts.mask_count_tol * want_count)
            if abs(count - want_count) > allowed:
                self.add(
                    path,
                    "pixels",
                    f"{count} mask pixels but {gi}.{'px_count_visib' if visib else 'px_count_all'} = {want_count}",
                )
            if np.abs(box - want_box).max() > self.opts.mask_bbox_tol_px:
                self.add(
                    path,
                    "bbox",
                    f"mask box {box.tolist()} but {gi}.{'bbox_visib' if visib else 'bbox_obj'} = {want_box.tolist()} "
                    "(x, y, w, h)",
                )
        elif count > info.px_count_all:
            self.add(path, "pixels", f"{count} mask pixels exceed {gi}.px_count_all = {info.px_count_all}")

    def check_targets(self, ds: BopDataset) -> None:
        path = self.root / TARGETS_BOP19
        if not path.is_file():
            self.note(
                f"{TARGETS_BOP19}: not present (it is in the base archive; needed by `bopnp predict` and `bopnp eval`)"
            )
            return
        content = self.json(path, "BOP19 test targets")
        if content is None:
            return
        indices: list[int] = []  # index in the file of each parsed target (malformed entries are left out)
        targets = ann.parse_targets(content, TARGETS_BOP19, self.report.problems, indices)
        self.report.counts["targets"] += len(targets)
        scenes = set(ds.scene_ids())
        for i, t in zip(indices, targets):
            f = f"[{i}]"
            if self.models_info is not None and t.obj_id not in self.models_info:
                self.add(TARGETS_BOP19, f + ".obj_id", f"unknown object {t.obj_id}")
            if t.scene_id not in scenes:
                self.add(TARGETS_BOP19, f + ".scene_id", f"scene {t.scene_id} is not in split '{ds.split}'")
                continue
            cams, gts, bad = self.parsed.get((ds.split, t.scene_id), (None, None, set()))
            if t.im_id in bad:
                continue
            if cams is not None and t.im_id not in cams:
                self.add(
                    TARGETS_BOP19, f + ".im_id", f"image {t.im_id} is not in scene {t.scene_id}'s scene_camera.json"
                )
            elif gts is not None and t.im_id in gts:
                have = sum(g.obj_id == t.obj_id for g in gts[t.im_id])
                if t.inst_count > have:
                    self.add(
                        TARGETS_BOP19,
                        f + ".inst_count",
                        f"{t.inst_count} instances of object {t.obj_id} in scene {t.scene_id} image {t.im_id}, but "
                        f"scene_gt.json has {have}",
                    )


def check_dataset(
    root: str | os.PathLike, split: str | None = None, options: CheckOptions | None = None
) -> CheckReport:
    """Check a BOP dataset folder and report every problem found.

    Args:
        root: the dataset folder (e.g. ``datasets/lmo``).
        split: one split folder (e.g. ``"test"``); None checks every split present.
        options: what to check; see :class:`CheckOptions`.
    Returns:
        A :class:`CheckReport`; ``report.ok`` is True when no problem was found.
    Raises:
        DatasetError: the dataset folder or the requested split does not exist.
    """
    opts = options or CheckOptions()
    opts.validate()
    ds = BopDataset(root, split)
    checker = _Checker(ds.root, opts)
    unfinished = ds.synth_unfinished()
    if unfinished:
        checker.synth_hint = ds.synth_resume_hint()
        shown = unfinished[:5] + ([f"... {len(unfinished) - 5} more"] if len(unfinished) > 5 else [])
        checker.add(SYNTH_MARKER, "", f"{checker.synth_hint}; unfinished: {'; '.join(shown)}")
    if opts.fast and opts.images != "none":
        checker.note(
            "--fast: rgb/gray and depth images were checked by their headers only, not decoded "
            "(truncated files and depth that is not single-channel 16-bit go unnoticed)"
        )
    checker.check_camera(ds)
    checker.check_models(ds)
    if not opts.models_only:
        splits = [split] if split is not None else ds.splits()
        if not splits:
            checker.note("no split folders (train*/val*/test*) found: only camera and models were checked")
        for s in splits:
            checker.check_split(BopDataset(ds.root, s))
    return checker.report

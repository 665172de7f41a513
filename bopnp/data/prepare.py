"""Prepare a BOP split for Pix2Pose training (``bopnp prepare NAME``).

For every scene of the split (``train_pbr`` by default):

1. ``scene_gt_info.json`` is computed where it is missing (the whole file, or images absent from it) with
   bop_toolkit's definitions (:func:`bopnp.render.gt_info.compute_gt_info`; the split's depth images
   serve as the sensor depth where present, else the rendered scene depth) and written atomically.
2. every annotated instance of the chosen objects that is visible enough (``min_visib_fract``) becomes a
   training crop (geometry in :mod:`bopnp.data.crop_geometry`): a square box centred on the instance's
   ``bbox_obj`` (the whole silhouette, as Pix2Pose; ``box_source="bbox_visib"`` for the visible part),
   ``enlarge`` times its longer side, resampled to ``crop_size`` pixels. The image is resampled
   bilinearly. The visible mask is the crop's full mask minus the instance's occlusion in the image
   (``mask`` and not ``mask_visib``: the split's pngs, else computed from renders as bop_toolkit's
   ``calc_gt_masks`` does, against the split's depth image where present), resampled by the nearest
   neighbour (:func:`visible_in_crop`); an unoccluded instance's visible mask is its full mask. The
   coordinate target and the full mask are rendered directly at crop resolution with the crop's ``K``
   (so they are exact, never interpolated) for the instance alone, in its annotated pose or, for an
   object with a continuous symmetry, in the canonical pose of
   :func:`bopnp.bop.symmetry.canonicalize_pose`, so that symmetric views share one target. Target and full
   mask are zeroed outside the image, as the image is.
3. the crops of each object are written as one shard per scene into the cache
   ``BOP_PATH/NAME/crops/SPLIT/`` (format: :mod:`bopnp.data.cache`), then the scene's marker.

Scenes with a marker are skipped (resume); ``overwrite=True`` deletes the cache first (never the split's
files). Scenes run in parallel worker processes (``workers``), each with its own renderer; the output does
not depend on the number of workers. A corrupt or missing image (or mask) is reported with its file and
reason and skipped, the rest of its scene is still written, and the summary lists what was skipped.
"""

from __future__ import annotations

import logging
import os
import shutil
import time
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import numpy as np

from bopnp.bop.annotations import read_json
from bopnp.bop.validate import gt_box_problems
from bopnp.data.cache import (
    REBUILD_HINT,
    ShardArrays,
    cache_dir_for,
    obj_dir_name,
    pack_masks,
    remove_stale_temporaries,
    scene_dir_name,
    write_cache_meta,
    write_json_atomic,
    write_object_meta,
    write_shard,
)
from bopnp.data.crop_geometry import crop_K, inside_image_mask, square_box, warp_crop
from bopnp.data.targets import render_crop_target, target_pose
from bopnp.errors import BopnpError, ConfigError, DatasetError
from bopnp.parallel import RENDER_WORKER_MB, bounded_workers, run_jobs
from bopnp.progress import progress_bar

log = logging.getLogger(__name__)

#: skipped instances listed one by one in the summary; the rest are counted
SHOWN_INSTANCES = 10
#: split folders tried, in order, when no split is given
DEFAULT_SPLITS = ("train_pbr", "train", "train_synt", "train_primesense")
BoxSource = Literal["bbox_obj", "bbox_visib"]


@dataclass(frozen=True)
class PrepareConfig:
    """What ``bopnp prepare`` does.

    Attributes:
        bop_path: folder holding BOP datasets.
        name: dataset name (subfolder of ``bop_path``).
        split: split folder, e.g. ``train_pbr``; None picks the first of ``DEFAULT_SPLITS`` present.
        crop_size: side of the crops, pixels.
        enlarge: crop side relative to the longer side of the instance box (Pix2Pose: 1.5).
        box_source: the instance box the crop is centred on (``bbox_obj``: whole silhouette).
        min_visib_fract: instances less visible than this (BOP ``visib_fract``) get no crop.
        objects: object ids to prepare; None: every object of ``models_info.json``.
        workers: worker processes (1: run in this process; None: one per core, at most 8); capped by the scenes,
            cores and memory.
        overwrite: delete an existing cache of this split first (needed to change any crop setting).
    """

    bop_path: Path
    name: str
    split: str | None = None
    crop_size: int = 128
    enlarge: float = 1.5
    box_source: BoxSource = "bbox_obj"
    min_visib_fract: float = 0.1
    objects: tuple[int, ...] | None = None
    workers: int | None = 1
    overwrite: bool = False

    @property
    def dataset_dir(self) -> Path:
        return Path(self.bop_path) / self.name

    def validate(self) -> PrepareConfig:
        """Raise :class:`ConfigError` saying how to fix the first bad value; returns self."""
        if not self.name or "/" in self.name or self.name in (".", ".."):
            raise ConfigError(f"dataset name {self.name!r} must be a plain folder name under --bop-path, e.g. 'demo'")
        if not 8 <= int(self.crop_size) <= 1024:
            raise ConfigError(f"--crop-size must be in [8, 1024] pixels, got {self.crop_size} (Pix2Pose uses 128)")
        if not 1.0 <= float(self.enlarge) <= 4.0:
            raise ConfigError(f"--enlarge must be in [1, 4], got {self.enlarge} (Pix2Pose uses 1.5)")
        if self.box_source not in ("bbox_obj", "bbox_visib"):
            raise ConfigError(f"box_source must be 'bbox_obj' or 'bbox_visib', got {self.box_source!r}")
        if not 0.0 <= float(self.min_visib_fract) <= 1.0:
            raise ConfigError(f"--min-visib-fract must be in [0, 1], got {self.min_visib_fract}")
        if self.workers is not None and int(self.workers) < 1:
            raise ConfigError(f"--workers must be >= 1, got {self.workers}")
        if self.objects is not None:
            if not self.objects:
                raise ConfigError("--objects is empty: give object ids like 1,5,8, or leave it out for all objects")
            if any(int(o) < 1 for o in self.objects):
                raise ConfigError(f"--objects must be positive ids, got {list(self.objects)}")
        return self

    def cache_settings(self, split: str, objects: list[int]) -> dict:
        """The settings a cache is built with; a rerun must match them to resume."""
        return {
            "dataset": self.name,
            "split": split,
            "crop_size": int(self.crop_size),
            "enlarge": float(self.enlarge),
            "box_source": self.box_source,
            "min_visib_fract": float(self.min_visib_fract),
            "objects": [int(o) for o in objects],
        }


@dataclass
class PrepareSummary:
    """What a run did.

    Attributes:
        cache_dir: the crop cache.
        split: the split prepared.
        scenes_total: scenes in the split.
        scenes_prepared: scenes prepared by this run.
        scenes_resumed: scenes already complete, skipped.
        scenes_failed: ``{"scene_id", "reason"}`` of scenes that could not be prepared (no marker written).
        crops: crops per object in the complete scenes.
        skipped: ``{"scene_id", "im_id", "file", "reason"}`` of images skipped in the complete scenes.
        instances_skipped: ``{"scene_id", "im_id", "gt_id", "obj_id", "reason"}`` of instances that got no
            crop in the complete scenes although visible enough: a ``scene_gt_info.json`` box that cannot be
            the image's, or an empty visible mask in the crop.
        gt_info_written: ``scene_gt_info.json`` files written by this run.
        seconds: wall time.
    """

    cache_dir: Path
    split: str
    scenes_total: int = 0
    scenes_prepared: list[int] = field(default_factory=list)
    scenes_resumed: list[int] = field(default_factory=list)
    scenes_failed: list[dict] = field(default_factory=list)
    crops: dict[int, int] = field(default_factory=dict)
    skipped: list[dict] = field(default_factory=list)
    instances_skipped: list[dict] = field(default_factory=list)
    gt_info_written: list[Path] = field(default_factory=list)
    seconds: float = 0.0

    def format(self) -> str:
        """A human-readable report."""
        lines = [
            f"crops in {self.cache_dir}",
            f"scenes: {self.scenes_total} in {self.split}, {len(self.scenes_prepared)} prepared now, "
            f"{len(self.scenes_resumed)} already done (skipped), {len(self.scenes_failed)} failed",
            "crops per object: " + (", ".join(f"{o}: {n}" for o, n in sorted(self.crops.items())) or "none"),
        ]
        if self.gt_info_written:
            lines.append(f"scene_gt_info.json computed for {len(self.gt_info_written)} scene(s)")
        if self.skipped:
            lines.append(f"skipped {len(self.skipped)} image(s):")
            lines += [f"  - {s['file']}: {s['reason']}" for s in self.skipped]
        if self.instances_skipped:
            n, shown = len(self.instances_skipped), self.instances_skipped[:SHOWN_INSTANCES]
            lines.append(f"skipped {n} instance(s) without a usable crop:")
            lines += [
                f"  - scene {s['scene_id']} image {s['im_id']} instance {s['gt_id']} (object {s['obj_id']}): "
                f"{s['reason']}"
                for s in shown
            ]
            if n > len(shown):
                lines.append(f"  ... {n - len(shown)} more (listed in the scene markers, {self.cache_dir}/scenes/)")
        for f in self.scenes_failed:
            lines.append(f"scene {f['scene_id']} failed: {f['reason']}")
        if self.scenes_failed:
            lines.append("fix the problems above and run the same command again: finished scenes are kept")
        lines.append(f"time: {self.seconds:.1f} s")
        return "\n".join(lines)


def resolve_split(dataset_dir: Path, split: str | None) -> str:
    """The split to prepare: ``split`` if given (it must exist), else the first of ``DEFAULT_SPLITS``
    present, else the only ``train*`` folder."""
    dataset_dir = Path(dataset_dir)
    present = sorted(p.name for p in dataset_dir.iterdir() if p.is_dir()) if dataset_dir.is_dir() else []
    if split is not None:
        if not (dataset_dir / split).is_dir():
            raise DatasetError(
                f"{dataset_dir / split} not found: the dataset has the folders {present}; pass one of them with --split"
            )
        return split
    for candidate in DEFAULT_SPLITS:
        if (dataset_dir / candidate).is_dir():
            return candidate
    trains = [p for p in present if p.startswith("train")]
    if len(trains) == 1:
        return trains[0]
    raise DatasetError(
        f"{dataset_dir} has no training split ({', '.join(DEFAULT_SPLITS)}); its folders are {present}: pass --split"
    )


def marker_path(cache_dir: Path, scene_id: int) -> Path:
    return Path(cache_dir) / "scenes" / f"{scene_dir_name(scene_id)}.json"


# ----------------------------------------------------------------------------------- the run


def prepare(config: PrepareConfig, progress: bool = True) -> PrepareSummary:
    """Run the preparation (see the module docstring); resumable.

    Args:
        config: what to do.
        progress: show a tqdm progress bar (images) on stderr.
    Returns:
        the summary of this run and of the scenes finished earlier.
    Raises:
        DatasetError: missing dataset, split, models or models_info, a bad mesh or an interrupted synth
        (:func:`validate_inputs`; nothing is written then); ConfigError: bad settings, or a cache built with
        other settings (pass ``overwrite``).
    """
    from bopnp.bop.dataset import BopDataset

    t0 = time.perf_counter()
    config.validate()
    ds_dir = config.dataset_dir
    if not ds_dir.is_dir():
        raise DatasetError(
            f"{ds_dir} not found: create it with `bopnp synth {config.name}`, or put a BOP dataset there (see "
            "datasets/README.md), or pass --bop-path"
        )
    split = resolve_split(ds_dir, config.split)
    dataset = BopDataset(ds_dir, split)
    split_dir = dataset.split_path
    scene_ids = dataset.scene_ids()
    if not scene_ids:
        raise DatasetError(f"{split_dir} holds no scene folders (000000, 000001, ...): is the split unpacked?")
    infos = dataset.models_info
    objects = sorted(int(o) for o in (config.objects or infos))
    unknown = [o for o in objects if o not in infos]
    if unknown:
        raise ConfigError(f"--objects {unknown} not in {dataset.models_info_path} (objects: {sorted(infos)})")

    cache_dir = cache_dir_for(config.bop_path, config.name, split)
    # everything the scenes to run need is read and checked before the cache is touched
    will_run = scene_ids if config.overwrite else [s for s in scene_ids if not marker_path(cache_dir, s).is_file()]
    bad_scenes = validate_inputs(dataset, will_run, objects)
    settings = config.cache_settings(split, objects)
    _open_cache(cache_dir, settings, config.overwrite)
    _write_object_metas(cache_dir, dataset, objects, config.crop_size)

    summary = PrepareSummary(cache_dir=cache_dir, split=split, scenes_total=len(scene_ids))
    summary.scenes_resumed = [s for s in scene_ids if marker_path(cache_dir, s).is_file()]
    todo = [s for s in scene_ids if s not in set(summary.scenes_resumed) and s not in bad_scenes]
    summary.scenes_failed += [{"scene_id": s, "reason": why} for s, why in bad_scenes.items()]
    if summary.scenes_resumed:
        log.info("resuming: %d of %d scenes already prepared", len(summary.scenes_resumed), len(scene_ids))

    task = _TaskConfig(
        dataset_dir=str(ds_dir), split=split, cache_dir=str(cache_dir), objects=tuple(objects),
        crop_size=int(config.crop_size), enlarge=float(config.enlarge), box_source=config.box_source,
        min_visib_fract=float(config.min_visib_fract),
    )  # fmt: skip
    n_images = sum(_count_images(split_dir / scene_dir_name(s)) for s in todo)
    with progress_bar(total=n_images, unit="img", desc=f"prepare {config.name}/{split}", enabled=progress) as bar:
        for result in _run_scenes(task, todo, config.workers, bar.update):
            if result.get("failed"):
                summary.scenes_failed.append({"scene_id": result["scene_id"], "reason": result["failed"]})
                bar.write(f"scene {result['scene_id']} failed: {result['failed']}")
                continue
            summary.scenes_prepared.append(result["scene_id"])
            if result["gt_info_written"]:
                summary.gt_info_written.append(Path(result["gt_info_written"]))
            for s in result["skipped"]:
                bar.write(f"skipped {s['file']}: {s['reason']}")

    for s in scene_ids:  # totals over every complete scene, this run's and earlier ones
        path = marker_path(cache_dir, s)
        if path.is_file():
            marker = read_json(path, "scene marker", fix=REBUILD_HINT)
            for o, n in marker["crops"].items():
                summary.crops[int(o)] = summary.crops.get(int(o), 0) + int(n)
            summary.skipped += marker["skipped"]
            summary.instances_skipped += marker.get("instances_skipped", [])
    for o in objects:
        summary.crops.setdefault(o, 0)
    summary.scenes_prepared.sort()
    summary.scenes_failed.sort(key=lambda f: f["scene_id"])
    summary.seconds = time.perf_counter() - t0
    return summary


def validate_inputs(dataset, scene_ids: list[int], objects: list[int]) -> dict[int, str]:
    """Read and check what preparing ``scene_ids`` needs before anything is written: the meshes of
    ``objects`` (finite vertices) and, per scene, ``scene_camera.json`` and ``scene_gt.json`` (poses in
    front of the camera: the loaders check that), whose instances must all be of objects that
    ``models_info.json`` lists.

    Returns:
        {scene_id: why} of the scenes that cannot be prepared: they fail alone, as a scene whose files
        break during the run does (reported, no marker, redone once fixed).
    Raises:
        DatasetError: a mesh is bad, or the dataset is an interrupted ``bopnp synth`` (resume it).
    """
    unfinished = [u for u in dataset.synth_unfinished() if u.startswith(f"{dataset.split}/")]
    if unfinished:
        raise DatasetError(f"{dataset.root}: {dataset.synth_resume_hint()}", unfinished[:10])
    for obj_id in objects:
        dataset.mesh(obj_id)
    bad: dict[int, str] = {}
    for scene_id in scene_ids:
        try:
            dataset.scene_camera(scene_id)
            gts = dataset.scene_gt(scene_id)
        except DatasetError as exc:
            bad[scene_id] = str(exc)
            continue
        path = dataset.scene_path(scene_id) / "scene_gt.json"
        unknown = [
            f"['{im_id}'][{gt_id}].obj_id: object {g.obj_id}"
            for im_id, lst in gts.items()
            for gt_id, g in enumerate(lst)
            if g.obj_id not in dataset.models_info
        ]
        if unknown:
            more = f" ... ({len(unknown)} in all)" if len(unknown) > 5 else ""
            bad[scene_id] = (
                f"{path}: {'; '.join(unknown[:5])}{more}: not in {dataset.models_info_path} "
                f"(objects: {dataset.obj_ids}); add the models and entries, or fix the obj_id"
            )
    return bad


def _open_cache(cache_dir: Path, settings: dict, overwrite: bool) -> None:
    """Create the cache folder, or check that an existing one was built with the same settings."""
    from bopnp.data.cache import CACHE_FORMAT, CACHE_VERSION

    meta_path = cache_dir / "cache.json"
    if overwrite and cache_dir.exists():
        shutil.rmtree(cache_dir)
    if meta_path.is_file():
        old = read_json(meta_path, "crop cache settings", fix="pass --overwrite to rebuild the cache")
        diffs = [f"{k}: {old.get(k)!r} there, {v!r} now" for k, v in settings.items() if old.get(k) != v]
        if (old.get("format"), old.get("version")) != (CACHE_FORMAT, CACHE_VERSION):
            diffs.insert(
                0,
                f"format {old.get('format')!r} version {old.get('version')!r}, this bopnp writes version "
                f"{CACHE_VERSION}",
            )
        if diffs:
            raise ConfigError(
                f"{cache_dir} was prepared with other settings ({'; '.join(diffs)}): pass --overwrite to rebuild it"
            )
        removed = remove_stale_temporaries(cache_dir)
        if removed:
            log.info("removed %d unfinished shard(s) of an interrupted run", removed)
        return
    if cache_dir.exists() and any(cache_dir.iterdir()):
        raise ConfigError(f"{cache_dir} exists but holds no cache.json: remove it or pass --overwrite")
    cache_dir.mkdir(parents=True, exist_ok=True)
    write_cache_meta(cache_dir, settings)


def _write_object_metas(cache_dir: Path, dataset, objects: list[int], crop_size: int) -> None:
    """``meta.json`` of each object: xyz normalisation (as the renderer applies it) and symmetries."""
    from bopnp.bop.symmetry import discrete_symmetry_pool
    from bopnp.render import get_renderer

    for obj_id in objects:
        meta_path = cache_dir / obj_dir_name(obj_id) / "meta.json"
        if meta_path.is_file():
            continue
        info = dataset.models_info[obj_id]
        renderer = get_renderer(crop_size, crop_size)
        renderer.add_model(obj_id, dataset.mesh(obj_id))
        centre_mm, half_extent_mm = renderer.xyz_normalisation(obj_id)
        write_object_meta(
            cache_dir,
            obj_id,
            {
                "xyz_normalisation": {
                    "centre_mm": np.asarray(centre_mm).tolist(),
                    "half_extent_mm": np.asarray(half_extent_mm).tolist(),
                },
                "symmetry_pool": discrete_symmetry_pool(info).tolist(),
                "continuous_symmetries": [
                    {"axis": np.asarray(s.axis).tolist(), "offset": np.asarray(s.offset_mm).tolist()}
                    for s in info.symmetries_continuous
                ],
                "target_pose": "canonical" if info.symmetries_continuous else "annotated",
                "diameter_mm": float(info.diameter_mm),
                "min_mm": np.asarray(info.min_mm).tolist(),
                "size_mm": np.asarray(info.size_mm).tolist(),
            },
        )


def _count_images(scene_dir: Path) -> int:
    for sub in ("rgb", "gray"):
        if (scene_dir / sub).is_dir():
            return sum(1 for _ in os.scandir(scene_dir / sub))
    return 0


# -------------------------------------------------------------------------- scene workers


@dataclass(frozen=True)
class _TaskConfig:
    dataset_dir: str
    split: str
    cache_dir: str
    objects: tuple[int, ...]
    crop_size: int
    enlarge: float
    box_source: str
    min_visib_fract: float


def _run_scenes(task: _TaskConfig, scene_ids: list[int], workers: int | None, tick: Callable[[int], object]):
    """Yield one result dict per scene, in this process (one worker) or in a pool of spawned processes."""
    if not scene_ids:
        return
    workers = bounded_workers(workers, len(scene_ids), worker_mb=RENDER_WORKER_MB)
    if workers == 1:
        state = _WorkerState(task, tick)
        for s in scene_ids:
            yield state.run_scene(s)
        return
    import multiprocessing as mp
    import queue as queue_mod

    ticks = mp.get_context("spawn").Queue()  # a fresh GL context per worker; never fork a process holding one
    for _, result in run_jobs(
        _worker_run_scene,
        scene_ids,
        workers,
        initializer=_init_worker,
        initargs=(task, ticks),
        worker_mb=RENDER_WORKER_MB,
        in_flight=1,
        poll=lambda: _drain(ticks, tick, queue_mod),
        broken_hint="Prepared scenes are kept: run the same command again to resume.",
    ):
        yield result


def _drain(ticks, tick, queue_mod) -> None:
    while True:
        try:
            tick(ticks.get_nowait())
        except queue_mod.Empty:
            return


_STATE: _WorkerState | None = None


def _init_worker(task: _TaskConfig, ticks) -> None:
    global _STATE
    _STATE = _WorkerState(task, ticks.put)


def _worker_run_scene(scene_id: int) -> dict:
    assert _STATE is not None
    return _STATE.run_scene(scene_id)


class _WorkerState:
    """Per-process state: the dataset (with its read caches) and the models added to the renderers."""

    def __init__(self, task: _TaskConfig, tick: Callable[[int], object]):
        from bopnp.bop.dataset import BopDataset

        self.task = task
        self.tick = tick
        self.dataset = BopDataset(task.dataset_dir, task.split)
        self.cache_dir = Path(task.cache_dir)
        self.objects = set(task.objects)
        self._added: dict[tuple[int, int], set[int]] = defaultdict(set)

    def renderer(self, width: int, height: int, obj_ids):
        """This process's renderer of that size, with the meshes of ``obj_ids`` added."""
        from bopnp.render import get_renderer

        r = get_renderer(width, height)
        added = self._added[(width, height)]
        for o in obj_ids:
            if o not in added:
                r.add_model(o, self.dataset.mesh(o))
                added.add(o)
        return r

    # ---------------------------------------------------------------------------- one scene
    def run_scene(self, scene_id: int) -> dict:
        try:
            return self._run_scene(scene_id)
        except BopnpError as exc:
            return {"scene_id": scene_id, "failed": str(exc)}

    def _run_scene(self, scene_id: int) -> dict:
        from bopnp.bop.annotations import save_scene_gt_info

        ds = self.dataset
        scene_gt = ds.scene_gt(scene_id)
        scene_camera = ds.scene_camera(scene_id)
        info_path = ds.scene_path(scene_id) / "scene_gt_info.json"
        gt_info = dict(ds.scene_gt_info(scene_id)) if ds.has_gt_info(scene_id) else {}
        missing = {im for im, gts in scene_gt.items() if len(gt_info.get(im, ())) != len(gts)}

        skipped: list[dict] = []
        dropped: list[dict] = []  # instances without a usable crop
        crops: dict[int, list[tuple[dict, np.ndarray, np.ndarray, np.ndarray]]] = defaultdict(list)
        pending_ticks, last_tick = 0, time.perf_counter()
        for im_id in sorted(scene_gt):
            gts = scene_gt[im_id]
            cam = scene_camera.get(im_id)
            if cam is None:
                skipped.append(
                    _skip_record(
                        scene_id, im_id, info_path.with_name("scene_camera.json"), f"no entry for image {im_id}"
                    )
                )
            else:
                rendered_masks = None
                if im_id in missing:
                    gt_info[im_id], rendered_masks = self._compute_gt_info(scene_id, im_id, gts, cam.K)
                try:  # all of an image's crops, or none
                    image_dropped: list[dict] = []
                    for obj_id, item in list(
                        self._image_crops(scene_id, im_id, gts, gt_info[im_id], cam.K, rendered_masks, image_dropped)
                    ):
                        crops[obj_id].append(item)
                    dropped += image_dropped
                except _Skip as exc:
                    skipped.append(_skip_record(scene_id, im_id, exc.file, exc.reason))
            pending_ticks += 1
            if time.perf_counter() - last_tick > 0.1:
                self.tick(pending_ticks)
                pending_ticks, last_tick = 0, time.perf_counter()
        if pending_ticks:
            self.tick(pending_ticks)

        written = None
        if missing:
            save_scene_gt_info(info_path, {im: gt_info[im] for im in sorted(gt_info) if im in scene_gt})
            written = str(info_path)
        counts = {}
        for obj_id in sorted(crops):
            items = crops[obj_id]
            arrays = ShardArrays(
                rgb=np.stack([it[1] for it in items]),
                xyz=np.stack([it[2] for it in items]),
                mask=np.stack([it[3] for it in items]),
                records=[it[0] for it in items],
            )
            write_shard(self.cache_dir / obj_dir_name(obj_id), scene_id, obj_id, arrays)
            counts[str(obj_id)] = len(items)
        marker = {
            "scene_id": scene_id,
            "images": len(scene_gt),
            "crops": counts,
            "skipped": skipped,
            "instances_skipped": dropped,
            "gt_info_computed": len(missing),
        }
        write_json_atomic(marker_path(self.cache_dir, scene_id), marker)
        return {"scene_id": scene_id, "failed": None, "gt_info_written": written, "skipped": skipped, "crops": counts}

    def _sensor_depth(self, scene_id: int, im_id: int) -> np.ndarray | None:
        """The split's depth image in mm, or None when there is none (or it cannot be read: warned)."""
        ds = self.dataset
        if not ds.depth_path(scene_id, im_id).is_file():
            return None
        try:
            return ds.depth(scene_id, im_id)
        except DatasetError as exc:
            log.warning("%s; visibility of image %d uses the rendered depth", exc, im_id)
            return None

    def _compute_gt_info(self, scene_id: int, im_id: int, gts, K: np.ndarray):
        """scene_gt_info entries and (full, visible) masks (each (N, H, W) bool) of one image, with
        bop_toolkit's definitions; the split's depth image is the sensor depth when present, else the
        rendered one."""
        from bopnp.render.gt_info import compute_gt_info_and_masks

        width, height = self._image_size(scene_id, im_id)
        instances = [(g.obj_id, g.R_m2c, g.t_m2c) for g in gts]
        renderer = self.renderer(width, height, sorted({g.obj_id for g in gts}))
        depth_mm = self._sensor_depth(scene_id, im_id)
        if depth_mm is not None and depth_mm.shape != (height, width):
            log.warning(
                "depth image %d of scene %d is %s, the image %dx%d: using the rendered depth",
                im_id,
                scene_id,
                depth_mm.shape,
                width,
                height,
            )
            depth_mm = None
        infos, masks_full, masks_visib = compute_gt_info_and_masks(renderer, K, instances, depth_mm)
        return [_as_gt_info(e) for e in infos], (masks_full, masks_visib)

    def _image_size(self, scene_id: int, im_id: int) -> tuple[int, int]:
        """(width, height) of an image, from its file header, else from camera.json."""
        from bopnp.bop.images import image_size

        path = self.dataset.image_path(scene_id, im_id)
        if path.is_file():
            try:
                return tuple(image_size(path))
            except DatasetError:
                pass
        cam = self.dataset.camera
        return cam.width, cam.height

    def _image_crops(
        self,
        scene_id: int,
        im_id: int,
        gts,
        infos,
        K: np.ndarray,
        rendered_masks: tuple[np.ndarray, np.ndarray] | None = None,
        dropped: list[dict] | None = None,
    ):
        """Yield ``(obj_id, (record, rgb, xyz, mask))`` for each selected instance of one image.

        An instance whose ``scene_gt_info.json`` boxes cannot be the image's (negative size, outside the
        image or its 3x canvas: :func:`bopnp.bop.validate.gt_box_problems`) or whose visible mask in the
        crop is empty gets no crop: it is appended to ``dropped`` with the reason.

        Masks of the image: the split's ``mask_visib`` and ``mask`` pngs, else ``rendered_masks`` (full,
        visible; each (N, H, W)), else computed here with bop_toolkit's definitions
        (:func:`bopnp.render.gt_info.compute_masks`).

        Raises:
            _Skip: the image or one of its masks is missing or corrupt (the image is skipped).
        """
        from bopnp.bop.images import as_rgb, load_image, load_mask

        task, ds = self.task, self.dataset
        chosen = [
            (gt_id, g, inf)
            for gt_id, (g, inf) in enumerate(zip(gts, infos))
            if g.obj_id in self.objects and inf.px_count_visib > 0 and inf.visib_fract >= task.min_visib_fract
        ]
        if not chosen:
            return
        path = ds.image_path(scene_id, im_id)
        if not path.is_file():
            raise _Skip(path, "not found (no rgb or gray image of this id)")
        image = as_rgb(_Skip.guard(path, load_image))
        H, W = image.shape[:2]
        usable = []
        for gt_id, g, inf in chosen:
            bad = gt_box_problems(inf.bbox_obj, inf.bbox_visib, inf.px_count_visib, W, H)
            if bad:
                _drop(dropped, scene_id, im_id, gt_id, g.obj_id, f"scene_gt_info.json {bad[0][0]}: {bad[0][1]}")
            else:
                usable.append((gt_id, g, inf))
        chosen = usable
        if not chosen:
            return

        visib_masks: dict[int, np.ndarray] = {}
        full_masks: dict[int, np.ndarray] = {}
        # an unoccluded instance's visible crop is its full crop: it needs no mask of the image
        occluded = [(gt_id, g, inf) for gt_id, g, inf in chosen if not _unoccluded(inf)]
        for gt_id, _g, _inf in occluded:
            for visib, masks in ((True, visib_masks), (False, full_masks)):
                mpath = ds.mask_path(scene_id, im_id, gt_id, visib=visib)
                if mpath.is_file():
                    m = _Skip.guard(mpath, load_mask)
                    if m.shape != (H, W):
                        raise _Skip(mpath, f"the mask is {m.shape[1]}x{m.shape[0]} pixels but the image is {W}x{H}")
                    masks[gt_id] = m
        if len(visib_masks) < len(occluded):  # no mask files: visible masks from renders
            if rendered_masks is None or rendered_masks[1].shape[1:] != (H, W):
                from bopnp.render.gt_info import compute_masks

                scene = [(g.obj_id, g.R_m2c, g.t_m2c) for g in gts]
                depth_mm = self._sensor_depth(scene_id, im_id)
                if depth_mm is not None and depth_mm.shape != (H, W):
                    depth_mm = None
                rendered_masks = compute_masks(self.renderer(W, H, sorted({g.obj_id for g in gts})), K, scene, depth_mm)
            for gt_id, _, _ in occluded:
                if gt_id not in visib_masks:
                    visib_masks[gt_id], full_masks[gt_id] = rendered_masks[1][gt_id], rendered_masks[0][gt_id]

        S = task.crop_size
        crop_renderer = self.renderer(S, S, sorted({g.obj_id for _, g, _ in chosen}))
        for gt_id, g, inf in chosen:
            box = square_box(np.asarray(getattr(inf, task.box_source), dtype=np.float64), task.enlarge, S)
            Kc = crop_K(K, box, S)
            R_t, t_t = target_pose(ds.models_info[g.obj_id], g.R_m2c, g.t_m2c)
            inside = inside_image_mask((W, H), box, S)
            xyz, full = render_crop_target(crop_renderer, g.obj_id, Kc, R_t, t_t, inside)
            visib = (
                full.copy()
                if _unoccluded(inf)
                else visible_in_crop(full, visib_masks[gt_id], full_masks.get(gt_id), box, S)
            )
            if not visib.any():
                _drop(dropped, scene_id, im_id, gt_id, g.obj_id, "the visible mask is empty in the crop")
                continue
            record = {
                "scene_id": int(scene_id),
                "im_id": int(im_id),
                "gt_id": int(gt_id),
                "obj_id": int(g.obj_id),
                "box_xyxy": box.tolist(),
                "bbox_obj": np.asarray(inf.bbox_obj).astype(int).tolist(),
                "bbox_visib": np.asarray(inf.bbox_visib).astype(int).tolist(),
                "px_count_visib": int(inf.px_count_visib),
                "visib_fract": float(inf.visib_fract),
                "K": Kc.tolist(),
                "R_m2c": np.asarray(g.R_m2c, dtype=np.float64).tolist(),
                "t_m2c": np.asarray(g.t_m2c, dtype=np.float64).reshape(3).tolist(),
                "R_m2c_target": R_t.tolist(),
                "t_m2c_target": t_t.reshape(3).tolist(),
            }
            yield g.obj_id, (record, warp_crop(image, box, S), xyz, pack_masks(full, visib, inside))


def _as_gt_info(entry):
    """A :class:`bopnp.bop.records.GtInfo` from a record or a ``scene_gt_info.json``-style dict."""
    from bopnp.bop.records import GtInfo

    if isinstance(entry, GtInfo):
        return entry
    return GtInfo(
        bbox_obj=np.asarray(entry["bbox_obj"], dtype=np.int64),
        bbox_visib=np.asarray(entry["bbox_visib"], dtype=np.int64),
        px_count_all=int(entry["px_count_all"]),
        px_count_valid=int(entry["px_count_valid"]),
        px_count_visib=int(entry["px_count_visib"]),
        visib_fract=float(entry["visib_fract"]),
    )


def _drop(dropped: list[dict] | None, scene_id: int, im_id: int, gt_id: int, obj_id: int, reason: str) -> None:
    if dropped is not None:
        dropped.append(
            {
                "scene_id": int(scene_id),
                "im_id": int(im_id),
                "gt_id": int(gt_id),
                "obj_id": int(obj_id),
                "reason": reason,
            }
        )


def _skip_record(scene_id: int, im_id: int, file, reason: str) -> dict:
    return {"scene_id": int(scene_id), "im_id": int(im_id), "file": str(file), "reason": reason}


def _unoccluded(info) -> bool:
    """Whether scene_gt_info counts every pixel of the instance's silhouette as visible."""
    return 0 < info.px_count_all <= info.px_count_visib


def visible_in_crop(
    full_crop: np.ndarray, visib_image: np.ndarray, full_image: np.ndarray | None, box, S: int
) -> np.ndarray:
    """The visible mask of a crop: its full mask minus what occludes the object in the image.

    The full mask is rendered at the crop's own pixel centres, the image's masks are resampled by the
    nearest neighbour, and the two silhouettes differ by up to a pixel along the edge. Resampling only the
    occlusion (``full_image & ~visib_image``), and giving crop pixels off the resampled silhouette the
    occlusion of the nearest pixel on it, keeps the visible mask inside the full one, with neither a
    rim of hidden pixels along an unoccluded edge nor of visible ones along an occluded edge.

    Args:
        full_crop: (S, S) bool full mask rendered for the crop.
        visib_image: (H, W) bool visible mask of the instance in the image.
        full_image: (H, W) bool full mask in the image, or None (then the visible mask is resampled
            and bounded by ``full_crop``; its unoccluded edge may lose a rim of pixels).
        box: the crop's square box (x0, y0, x1, y1) in image pixels; S: crop side, px.
    Returns:
        (S, S) bool.
    """
    if full_image is not None:
        full_s = warp_crop(full_image, box, S, nearest=True)
        if full_s.any():
            occluded = warp_crop(full_image & ~visib_image, box, S, nearest=True)
            if not full_s.all():
                from scipy import ndimage

                iy, ix = ndimage.distance_transform_edt(~full_s, return_distances=False, return_indices=True)
                occluded = occluded[iy, ix]
            return full_crop & ~occluded
    return full_crop & warp_crop(visib_image, box, S, nearest=True)


class _Skip(Exception):
    """An image that cannot be used: its file and the reason."""

    def __init__(self, file, reason: str):
        super().__init__(f"{file}: {reason}")
        self.file, self.reason = str(file), reason

    @classmethod
    def guard(cls, path: Path, load: Callable):
        """``load(path)``, turning a DatasetError into a _Skip naming ``path``."""
        try:
            return load(path)
        except DatasetError as exc:
            reason = str(exc)
            for prefix in (f"{path}: ", f"{path} "):
                reason = reason.removeprefix(prefix)
            raise cls(path, reason) from None


__all__ = [
    "DEFAULT_SPLITS",
    "PrepareConfig",
    "PrepareSummary",
    "marker_path",
    "prepare",
    "resolve_split",
    "validate_inputs",
]

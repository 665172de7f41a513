"""``bopnp predict``: poses for every target image of a split, written as a BOP19 results CSV.

A loop over the split around :class:`bopnp.infer.estimator.Estimator` (``bopnp.Estimator``), the same code path
as the library's ``estimate``: for each batch of images, the images are read (in threads), then
:meth:`Estimator.run <bopnp.infer.estimator.Estimator.run>` has the detection source give each image's
detections, keeps per object as many as the targets ask for and ``extra_candidates`` more
(:func:`bopnp.infer.detect.select_detections`) and
estimates all of them at once with the pose stage (:class:`bopnp.infer.pose.PoseEstimator`). Valid poses become
the rows of ``OUT/METHOD_DATASET-SPLIT.csv`` (BOP's naming; written atomically at the end).

``time`` of a row is the image's share of its batch's wall time (reading, detection, both network passes, PnP:
the batch's seconds divided by its images), plus, for detections from a file, the seconds the file gives for the
image; every row of an image has the same time, as BOP requires.

Under ``torchrun --nproc-per-node N -m bopnp predict ...`` each process takes every N-th image left to do (each on
its own GPU, ``cuda:LOCAL_RANK``, with CUDA) and the main process writes the CSV.

Images without detections give no rows and are counted; a missing or corrupt image is reported, skipped and
retried by the next run. Finished images are kept in a work folder beside the CSV (:mod:`bopnp.infer.store`)
until the CSV is written, so an interrupted run resumes where it stopped; the folder is removed once every image
is done. ``OUT/METHOD_DATASET-SPLIT.predict.json`` then records the settings and the summary: a rerun of the same
command finds the CSV complete and does nothing.
"""

from __future__ import annotations

import json
import logging
import os
import time
from collections import defaultdict
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any, Literal

from bopnp.bop.atomic import write_text_atomic
from bopnp.bop.dataset import BopDataset
from bopnp.bop.images import as_rgb
from bopnp.bop.results import parse_result_filename, save_results_csv, split_folder
from bopnp.device import resolve_device
from bopnp.errors import BopnpError, ConfigError, DatasetError
from bopnp.infer.detect import DetectionSource, FileDetections, GtDetections, audit_detections, check_image_size
from bopnp.infer.estimator import Estimator
from bopnp.infer.pose import PoseConfig, PoseEstimator
from bopnp.infer.store import ImageRecord, WorkStore, settings_differences
from bopnp.progress import progress_bar

log = logging.getLogger(__name__)

TargetsChoice = Literal["bop19", "all"]
#: with ``targets="all"`` on images without GT: most instances per object kept
INSTANCES_WITHOUT_GT = 10
#: pose settings that do not change the results (a resumed run may change them)
RESULT_NEUTRAL = ("pnp_threads", "max_crops")
#: skipped images listed by :meth:`PredictSummary.format` (all of them are in ``skipped.txt`` of the work folder)
SHOWN_SKIPPED = 5


@dataclass(frozen=True)
class PredictConfig:
    """What ``bopnp predict`` does.

    Attributes:
        bop_path, name, split: the dataset and split (folder name, e.g. ``test``).
        pose: a pose-training run folder (``best.pt``, else ``last.pt``) or a checkpoint file.
        detections: a BOP COCO-style detections file, or ``"gt"`` for the ground truth's visible boxes.
        detector: a detector checkpoint (instead of ``detections``).
        targets: ``bop19`` (the images and instance counts of ``test_targets_bop19.json``) or ``all`` (every
            image of the split; per object as many instances as its GT has, else up to ``INSTANCES_WITHOUT_GT``).
        method: the CSV's METHOD (no ``_``, BOP's rule).
        out: folder of the CSV.
        device: ``auto`` (CUDA when present), ``cpu`` or ``cuda``.
        batch_size: images per batch (all their detections share one network call and one PnP call).
        workers: threads reading images.
        images: only these (scene_id, im_id); None: all of the targets.
        scenes: only these scenes; None: all.
        overwrite: discard an earlier run's CSV or unfinished work instead of resuming it.
        pose_config: the pose stage's settings; None: the defaults with the network's own thresholds.
        threads: torch's CPU threads (None: torch's default, one per core); fewer help on a machine whose cores
            other jobs use.
        progress: show a progress bar.
        extra_candidates: with a detector or a detections file, per object this many detections beyond the
            targets' instance count get a pose too and compete by score
            (:meth:`bopnp.infer.estimator.Estimator.run`); on the demo 3 took AR from 0.123 to 0.139 with the same
            networks.
    """

    bop_path: Path
    name: str
    pose: Path
    detections: str | None = None
    detector: Path | None = None
    split: str = "test"
    targets: TargetsChoice = "bop19"
    method: str = "bopnp"
    out: Path = Path("results")
    device: str = "auto"
    batch_size: int = 4
    workers: int = 2
    images: tuple[tuple[int, int], ...] | None = None
    scenes: tuple[int, ...] | None = None
    overwrite: bool = False
    pose_config: PoseConfig | None = None
    threads: int | None = None
    progress: bool = True
    extra_candidates: int = 3

    def validate(self) -> PredictConfig:
        """Raise :class:`ConfigError` saying how to fix the first bad value; returns self."""
        check_method_name(self.method)
        if (self.detections is None) == (self.detector is None):
            raise ConfigError(
                "give the detections: --detections FILE.json (e.g. BOP's default detections), --detections gt (the "
                "ground truth's boxes), or --detector CKPT (a trained detector) - exactly one of them"
            )
        if self.targets not in ("bop19", "all"):
            raise ConfigError(f"targets must be 'bop19' or 'all', got {self.targets!r}")
        if self.device not in ("auto", "cpu", "cuda"):
            raise ConfigError(f"device must be auto, cpu or cuda, got {self.device!r}")
        if self.batch_size < 1:
            raise ConfigError(f"--batch-size must be at least 1 image, got {self.batch_size}")
        if self.workers < 0:
            raise ConfigError(f"--workers must be >= 0, got {self.workers}")
        if self.threads is not None and self.threads < 1:
            raise ConfigError(f"--threads must be >= 1, got {self.threads}")
        if self.extra_candidates < 0:
            raise ConfigError(f"--extra-candidates must be >= 0, got {self.extra_candidates}")
        if self.pose_config is not None:
            self.pose_config.validate()
        self.csv_path  # noqa: B018  (the file name must follow BOP's pattern)
        return self

    @property
    def stem(self) -> str:
        return f"{self.method}_{self.name}-{self.split.replace('_', '-')}"

    @property
    def csv_path(self) -> Path:
        path = Path(self.out) / f"{self.stem}.csv"
        parsed = parse_result_filename(path)
        if parsed.dataset != self.name or split_folder(parsed) != self.split:
            raise ConfigError(
                f"dataset {self.name!r} and split {self.split!r} do not make a BOP result file name ({path.name} "
                f"reads as dataset {parsed.dataset!r}, split {split_folder(parsed)!r}); dataset names have no '_' "
                "or '-'"
            )
        return path

    @property
    def work_dir(self) -> Path:
        return Path(self.out) / f"{self.stem}.work"

    @property
    def summary_path(self) -> Path:
        return Path(self.out) / f"{self.stem}.predict.json"


def check_method_name(method: str) -> str:
    """BOP's rule for the METHOD of a result file name: no ``_`` (use ``-``), no path separators or spaces.

    Raises:
        ConfigError: naming the problem and a fixed name.
    """
    if not method:
        raise ConfigError("--method is empty: give a method name such as 'pix2pose-bpnp'")
    if "_" in method:
        raise ConfigError(
            f"--method {method!r} contains '_', which BOP's result file names (METHOD_DATASET-SPLIT.csv) reserve "
            f"as the separator: use '-' instead, e.g. {method.replace('_', '-')!r}"
        )
    bad = sorted({c for c in method if c in "/\\" or c.isspace()})
    if bad or method in (".", ".."):
        raise ConfigError(f"--method {method!r} must be a plain name without {bad or method!r}, e.g. 'pix2pose-bpnp'")
    return method


@dataclass
class PredictSummary:
    """What a run did.

    Attributes:
        csv: the results CSV.
        images: images of the run (after filters).
        done_now: images finished by this run. resumed: images finished by an earlier run.
        without_detections: finished images whose detection source found nothing the targets ask for.
        estimates: rows of the CSV. invalid: detections whose pose PnP could not find (no row).
        skipped: ``{"scene_id", "im_id", "reason"}`` of images that could not be read.
        unserved_objects: objects of the targets that the network does not serve (no estimates for them).
        already_complete: the CSV was complete before this run; nothing was done.
        seconds: wall time of this run. times: seconds per part (read, detect, crop, network, pnp).
        scored: the (scene_id, im_id) whose targets the CSV answers (the finished images).
        notes: detections of the file dropped or ignored, one line per kind (:func:`audit_detections`).
    """

    csv: Path
    images: int = 0
    done_now: int = 0
    resumed: int = 0
    without_detections: int = 0
    estimates: int = 0
    invalid: int = 0
    skipped: list[dict[str, Any]] = field(default_factory=list)
    unserved_objects: list[int] = field(default_factory=list)
    already_complete: bool = False
    seconds: float = 0.0
    times: dict[str, float] = field(default_factory=dict)
    scored: list[tuple[int, int]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def format(self) -> str:
        lines = [f"results: {self.csv}"]
        if self.already_complete:
            lines.append("already complete: nothing to do (pass --overwrite to predict again)")
        finished = self.done_now + self.resumed
        lines.append(
            f"images: {self.images}; {finished} finished ({self.done_now} now"
            + (f", {self.resumed} by an earlier run)" if self.resumed else ")")
            + f", {self.without_detections} without detections, {len(self.skipped)} skipped"
        )
        lines.append(
            f"estimates: {self.estimates} rows" + (f"; {self.invalid} detections gave no pose" if self.invalid else "")
        )
        lines += [f"note: {n}" for n in self.notes]
        if self.unserved_objects:
            lines.append(
                f"objects {self.unserved_objects} are in the targets but not in the pose network: no estimates"
            )
        if self.skipped:
            by_reason: dict[str, int] = defaultdict(int)
            for s in self.skipped:
                by_reason["file missing" if "not found" in s["reason"] else "unreadable"] += 1
            lines.append("skipped: " + ", ".join(f"{n} {why}" for why, n in sorted(by_reason.items())))
            lines += [
                f"  - scene {s['scene_id']} image {s['im_id']}: {s['reason']}" for s in self.skipped[:SHOWN_SKIPPED]
            ]
            if len(self.skipped) > SHOWN_SKIPPED:
                lines.append(f"  ... and {len(self.skipped) - SHOWN_SKIPPED} more (skipped.txt in the work folder)")
            lines.append("run the same command again once they are fixed: finished images are kept")
        if self.done_now and self.times:
            n = max(self.done_now, 1)
            parts = ", ".join(f"{k} {1000 * v / n:.0f}" for k, v in self.times.items())
            lines.append(f"time per image (ms): {parts}; {self.done_now / max(self.seconds, 1e-9):.2f} images/s")
        return "\n".join(lines)


# ----------------------------------------------------------------------------------------- inputs


def make_detection_source(
    detections: str | os.PathLike | None, detector: str | os.PathLike | None, dataset: BopDataset, device
) -> DetectionSource:
    """The detection source the options name: a detections file, the GT (``"gt"``), or a trained detector.

    Raises:
        CheckpointError: no detector checkpoint there; ResultsFormatError: a bad detections file.
    """
    if detector is not None:
        from bopnp.infer.maskrcnn import MaskRcnnDetections
        from bopnp.infer.network import resolve_checkpoint

        return MaskRcnnDetections(resolve_checkpoint(detector, stage="detector"), device=device)
    if detections is None:
        raise ConfigError("give --detections FILE.json, --detections gt or --detector CKPT")
    if str(detections) == "gt":
        return GtDetections(dataset)
    return FileDetections(detections)


def wanted_objects(
    dataset: BopDataset, targets: TargetsChoice, obj_ids: list[int]
) -> dict[tuple[int, int], dict[int, int]]:
    """Per image (scene_id, im_id), obj_id -> instances to estimate.

    Raises:
        DatasetError: the split has no targets file (``bop19``) or no images.
    """
    wanted: dict[tuple[int, int], dict[int, int]] = defaultdict(dict)
    if targets == "bop19":
        for t in dataset.targets():
            wanted[(t.scene_id, t.im_id)][t.obj_id] = int(t.inst_count)
        return dict(wanted)
    for scene_id in dataset.scene_ids():
        gt = dataset.scene_gt(scene_id) if dataset.has_gt(scene_id) else None
        for im_id in dataset.image_ids(scene_id):
            if gt is not None:
                counts: dict[int, int] = defaultdict(int)
                for g in gt.get(im_id, []):
                    counts[g.obj_id] += 1
                wanted[(scene_id, im_id)] = dict(counts)
            else:
                wanted[(scene_id, im_id)] = {o: INSTANCES_WITHOUT_GT for o in obj_ids}
    return dict(wanted)


def _file_identity(path: str | os.PathLike | None) -> dict[str, Any] | None:
    if path is None:
        return None
    p = Path(path)
    if not p.is_file():
        return {"path": str(p)}
    from bopnp.infer.network import file_digest

    return {"path": str(p.resolve()), "sha256": file_digest(p)}


def run_settings(config: PredictConfig, network_digest: str, pose_config: PoseConfig) -> dict[str, Any]:
    """What the results depend on: a resumed run must have the same (device, workers and batch size aside)."""
    return {
        "dataset": str((Path(config.bop_path) / config.name).resolve()),
        "split": config.split,
        "targets": config.targets,
        "images": None if config.images is None else [list(k) for k in config.images],
        "scenes": None if config.scenes is None else list(config.scenes),
        "detections": "gt" if config.detections == "gt" else _file_identity(config.detections),
        "detector": _file_identity(config.detector),
        "extra_candidates": config.extra_candidates,
        "pose_sha256": network_digest,
        "pose": {k: v for k, v in asdict(pose_config).items() if k not in RESULT_NEUTRAL},
        "method": config.method,
    }


def _read_image(dataset: BopDataset, key: tuple[int, int]):
    try:
        return dataset.image(*key), None
    except (BopnpError, OSError) as exc:
        return None, str(exc)


# ----------------------------------------------------------------------------------------- the run


def predict(config: PredictConfig) -> PredictSummary:
    """Run the prediction (see the module docstring); resumable.

    Raises:
        ConfigError: bad options; an output made with other settings (pass ``overwrite``).
        DatasetError, ResultsFormatError: missing or malformed dataset or detections files.
        CheckpointError: an unusable pose checkpoint.
    """
    import torch

    from bopnp.infer.network import load_pose_network

    t_start = time.perf_counter()
    config.validate()
    csv = config.csv_path
    dataset = BopDataset.from_bop_path(config.bop_path, config.name, config.split)
    shard = Shard.from_env()
    if config.threads:
        torch.set_num_threads(config.threads)
    device = resolve_device(config.device)
    if device.type == "cuda" and shard.world > 1:
        device = torch.device("cuda", shard.local_rank)
    store = WorkStore(config.work_dir, rank=shard.rank)
    if config.overwrite and shard.rank == 0:
        for p in (csv, config.summary_path):
            p.unlink(missing_ok=True)
        store.remove()
    shard.barrier()
    network = load_pose_network(config.pose, device=device)
    meshes = {o: dataset.mesh(o) for o in network.obj_ids if o in dataset.models_info}
    unknown = [o for o in network.obj_ids if o not in dataset.models_info]
    if unknown:
        raise ConfigError(
            f"{network.path} was trained on objects {unknown} that {dataset.models_info_path} does not list: is the "
            "checkpoint for another dataset?"
        )
    pose_config = config.pose_config or replace(
        PoseConfig(), max_err=network.e2e.max_err, min_coord=network.e2e.min_coord, min_points=network.e2e.min_points
    )
    settings = run_settings(config, network.digest, pose_config)

    summary = PredictSummary(csv=csv)
    if not store.exists and csv.exists():
        return _complete_already(config, settings, summary)

    wanted = wanted_objects(dataset, config.targets, network.obj_ids)
    keys = sorted(wanted)
    if config.scenes is not None:
        keys = [k for k in keys if k[0] in set(config.scenes)]
    if config.images is not None:
        chosen = {(int(s), int(i)) for s, i in config.images}
        absent = sorted(chosen - set(keys))
        if absent:
            raise ConfigError(
                f"images {absent} (scene, image) are not among the {len(wanted)} images of the targets "
                f"({config.targets}) of {dataset.split_path}"
            )
        keys = [k for k in keys if k in chosen]
    if not keys:
        raise DatasetError(f"{dataset.split_path}: no images to predict for (targets: {config.targets})")
    served = set(network.obj_ids)
    summary.unserved_objects = sorted({o for k in keys for o in wanted[k]} - served)
    summary.images = len(keys)

    source = make_detection_source(config.detections, config.detector, dataset, device)
    summary.notes = audit_detections(source, dataset)
    estimator = Estimator(PoseEstimator.from_network(network, meshes, pose_config), source)
    store.check(settings)  # every process, before the main one touches the folder
    shard.barrier()
    done = store.open(settings, resume=True) if shard.rank == 0 else {}
    shard.barrier()
    if shard.rank != 0:
        done = store.open(settings, resume=True)
    summary.resumed = sum(1 for k in keys if k in done)
    todo = [k for k in keys if k not in done][shard.rank :: shard.world]
    times = {"read": 0.0, "detect": 0.0}
    pool = ThreadPoolExecutor(max_workers=config.workers) if config.workers > 0 else None
    try:
        with progress_bar(
            total=len(todo),
            desc=f"predict {config.name}/{config.split}"
            + (f" [{shard.rank}/{shard.world}]" if shard.world > 1 else ""),
            unit="img",
            enabled=config.progress and shard.rank == 0,
        ) as bar:
            for b in range(0, len(todo), config.batch_size):
                batch = todo[b : b + config.batch_size]
                records = _run_batch(dataset, batch, wanted, estimator, pool, times, summary, config.extra_candidates)
                store.append(records)
                for r in records:
                    done[r.key] = r
                summary.done_now += len(records)
                bar.update(len(batch))
                bar.set_postfix(estimates=sum(len(r.estimates) for r in done.values()), skipped=len(summary.skipped))
    finally:
        if pool is not None:
            pool.shutdown()
        store.close()
        if device.type == "cuda":
            torch.cuda.empty_cache()

    t = estimator.pose.times
    summary.times = {"read": times["read"], "detect": times["detect"], "crop": t.crop_s, "network": t.network_s,
                     "pnp": t.pnp_s}  # fmt: skip
    if shard.world > 1:  # every process's counts; the main one gathers the finished images from the files
        shard.barrier()
        parts = shard.gather((summary.done_now, summary.invalid, summary.skipped, summary.times))
        summary.done_now = sum(p[0] for p in parts)
        summary.invalid = sum(p[1] for p in parts)
        summary.skipped = sorted((s for p in parts for s in p[2]), key=lambda s: (s["scene_id"], s["im_id"]))
        summary.times = {k: sum(p[3][k] for p in parts) / shard.world for k in summary.times}
        done = store.read()
    finished = [done[k] for k in keys if k in done]
    summary.without_detections = sum(1 for r in finished if r.selected == 0)
    summary.invalid = sum(r.selected - len(r.estimates) for r in finished)  # earlier runs' images too
    summary.scored = [r.key for r in finished]
    estimates = [e for r in finished for e in r.result_rows()]
    summary.estimates = len(estimates)
    summary.seconds = time.perf_counter() - t_start
    if shard.rank != 0:
        shard.barrier()  # the main process writes the outputs
        return summary
    csv.parent.mkdir(parents=True, exist_ok=True)
    save_results_csv(csv, estimates)
    if summary.skipped:
        write_text_atomic(
            store.path / "skipped.txt",
            "".join(f"scene {s['scene_id']} image {s['im_id']}: {s['reason']}\n" for s in summary.skipped),
        )
    else:
        store.remove()
    _write_summary(config.summary_path, settings, summary)
    shard.barrier()
    return summary


@dataclass(frozen=True)
class Shard:
    """This process among ``torchrun``'s (``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK``): each takes every ``world``-th
    image left to do; the main process (rank 0) writes the outputs. A single process needs no process group."""

    rank: int = 0
    world: int = 1
    local_rank: int = 0

    @classmethod
    def from_env(cls) -> Shard:
        world = int(os.environ.get("WORLD_SIZE", "1"))
        if world <= 1:
            return cls()
        import torch.distributed as dist

        if not dist.is_initialized():
            dist.init_process_group("gloo")  # only barriers and small objects: gloo on any device
        return cls(int(os.environ["RANK"]), world, int(os.environ.get("LOCAL_RANK", "0")))

    def barrier(self) -> None:
        if self.world > 1:
            import torch.distributed as dist

            dist.barrier()

    def gather(self, obj) -> list:
        """``obj`` of every process, by rank."""
        import torch.distributed as dist

        out: list = [None] * self.world
        dist.all_gather_object(out, obj)
        return out


def _run_batch(
    dataset, batch, wanted, estimator: Estimator, pool, times, summary, extra_candidates: int
) -> list[ImageRecord]:
    """Read one batch of images, then detect and estimate them (:meth:`Estimator.run`); the records of the images
    that could be read."""
    t0 = time.perf_counter()
    loaded = (
        list(pool.map(lambda k: _read_image(dataset, k), batch)) if pool else [_read_image(dataset, k) for k in batch]
    )
    keys, images, Ks = [], [], []
    for key, (image, why) in zip(batch, loaded):
        if image is None:
            summary.skipped.append({"scene_id": key[0], "im_id": key[1], "reason": why})
            log.warning("skipped scene %d image %d: %s", key[0], key[1], why)
            continue
        check_image_size(dataset, key, image)
        try:
            K = dataset.K(*key)
        except DatasetError as exc:
            summary.skipped.append({"scene_id": key[0], "im_id": key[1], "reason": str(exc)})
            continue
        keys.append(key)
        images.append(as_rgb(image))  # gray datasets (ITODD) as RGB
        Ks.append(K)
    t1 = time.perf_counter()
    times["read"] += t1 - t0
    if not keys:
        return []
    results = estimator.run(
        images, Ks, instances=[wanted[k] for k in keys], keys=keys, extra_candidates=extra_candidates
    )
    times["detect"] += sum(r.times["detect"] for r in results)
    per_image_s = (time.perf_counter() - t0) / len(keys)
    records = []
    for key, res in zip(keys, results):
        ests = [{"obj_id": e.obj_id, "score": e.score, "R": e.R_m2c.reshape(9).tolist(), "t": e.t_mm.tolist()}
                for e in res.estimates]  # fmt: skip
        summary.invalid += res.invalid
        external = max(res.detect_s, 0.0)
        records.append(ImageRecord(key[0], key[1], per_image_s + external, res.detections, res.selected, ests))
    return records


def _write_summary(path: Path, settings: dict[str, Any], summary: PredictSummary) -> None:
    data = {
        "settings": settings,
        "csv": str(summary.csv),
        "images": summary.images,
        "finished": len(summary.scored),
        "scored": [list(k) for k in summary.scored],
        "without_detections": summary.without_detections,
        "estimates": summary.estimates,
        "invalid": summary.invalid,
        "skipped": summary.skipped,
        "unserved_objects": summary.unserved_objects,
    }
    write_text_atomic(path, json.dumps(data, indent=1) + "\n")


def _complete_already(config: PredictConfig, settings: dict[str, Any], summary: PredictSummary) -> PredictSummary:
    """A CSV without a work folder: complete if its summary says it was made with these settings."""
    path = config.summary_path
    if not path.is_file():
        raise ConfigError(
            f"{summary.csv} exists and was not written by this command (no {path.name} beside it): pass --overwrite "
            "to replace it, or choose another --method or --out"
        )
    saved = json.loads(path.read_text(encoding="utf-8"))
    diff = settings_differences(saved.get("settings", {}), settings)
    if diff:
        raise ConfigError(
            f"{summary.csv} was made with other settings ({'; '.join(diff)}): pass --overwrite to replace it, or "
            "choose another --method or --out"
        )
    summary.already_complete = True
    summary.images = int(saved.get("images", 0))
    summary.resumed = int(saved.get("finished", 0))
    summary.without_detections = int(saved.get("without_detections", 0))
    summary.estimates = int(saved.get("estimates", 0))
    summary.invalid = int(saved.get("invalid", 0))
    summary.skipped = list(saved.get("skipped", []))
    summary.unserved_objects = list(saved.get("unserved_objects", []))
    summary.scored = [tuple(k) for k in saved.get("scored", [])]
    return summary


# ----------------------------------------------------------------------------------------- evaluation


def scored_targets(config: PredictConfig, summary: PredictSummary):
    """The targets the CSV of a run answers, to score it on: those of the images the run finished (images skipped
    or filtered out are left out; ``bopnp eval CSV`` scores every target and counts them as misses). With
    ``targets="all"``: every GT instance of the finished images.

    Returns:
        ([Target], a note for the report or None when every target of the split is there).
    Raises:
        DatasetError: no target among the finished images.
    """
    from bopnp.bop.records import Target

    dataset = BopDataset.from_bop_path(config.bop_path, config.name, config.split)
    scored = {tuple(k) for k in summary.scored}
    note = None
    if config.targets == "bop19":
        all_targets = dataset.targets()
        targets = [t for t in all_targets if (t.scene_id, t.im_id) in scored]
        left_out = len({(t.scene_id, t.im_id) for t in all_targets}) - len({(t.scene_id, t.im_id) for t in targets})
        if left_out:
            note = f"{left_out} target image(s) skipped or not selected are not scored"
    else:
        targets = []
        for s, i in sorted(scored):
            counts: dict[int, int] = defaultdict(int)
            for g in dataset.scene_gt(s).get(i, []) if dataset.has_gt(s) else []:
                counts[g.obj_id] += 1
            targets += [Target(s, i, o, n) for o, n in sorted(counts.items())]
        note = "targets: every GT instance of the finished images"
    if not targets:
        raise DatasetError(f"no target of {dataset.split_path} among the finished images: nothing to score")
    return targets, note


__all__ = [
    "INSTANCES_WITHOUT_GT",
    "PredictConfig",
    "PredictSummary",
    "check_method_name",
    "make_detection_source",
    "predict",
    "resolve_device",
    "run_settings",
    "scored_targets",
    "wanted_objects",
]

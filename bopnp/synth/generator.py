"""Synthetic BOP datasets: procedural (or given) objects rendered at random poses over procedural backgrounds.

:func:`synthesize` writes a complete BOP dataset under ``bop_path / name``::

    models/            obj_XXXXXX.ply (mm, vertex colours and normals) + models_info.json (symmetries)
    models_eval/       the same meshes
    camera.json        640 x 480, LM-O intrinsics by default, depth_scale 0.1
    train_pbr/SSSSSS/  rgb/*.jpg depth/*.png mask/ mask_visib/ scene_gt.json scene_gt_info.json scene_camera.json
    test/SSSSSS/       the same with rgb/*.png
    test_targets_bop19.json   instances at least ``min_visib_fract`` visible, counted per image and object
    synth_config.json  the options the dataset was made with (checked by ``resume``)

Every image is a function of ``(seed, split, scene_id, im_id)`` only, so the output does not depend on the
number of worker processes, and an interrupted run resumes where it stopped: a finished image leaves a
small record in its scene's ``.partial/`` folder, a finished scene its three json files.

Example:
    >>> cfg = SynthConfig(name="demo", bop_path=Path("datasets"))   # doctest: +SKIP
    >>> summary = synthesize(cfg)                                   # doctest: +SKIP
"""

from __future__ import annotations

import json
import logging
import math
import shutil
import time
import zlib
from collections.abc import Sequence
from dataclasses import dataclass, field, fields
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy as np

from bopnp.errors import ConfigError, DatasetError
from bopnp.parallel import RENDER_WORKER_MB, bounded_workers, run_jobs
from bopnp.progress import progress_bar

if TYPE_CHECKING:
    from bopnp.bop.records import ModelInfo

log = logging.getLogger(__name__)

#: LM-O intrinsics (fx, fy, cx, cy) at 640 x 480
LMO_INTRINSICS = (572.4114, 573.57043, 325.2611, 242.04899)
#: the default images of ``bopnp synth NAME``: the demo dataset (see :class:`SynthConfig`)
DEMO_TRAIN_IMAGES = 300
DEMO_TEST_IMAGES = 50
#: object ids of distractors inside the renderer (never written to any annotation)
DISTRACTOR_ID_BASE = 1_000_000
#: file recording the options a dataset was made with
CONFIG_FILE = "synth_config.json"

SPLITS = ("train_pbr", "test")


@dataclass(frozen=True)
class SynthConfig:
    """Options of a synthetic dataset. ``validate()`` says how to fix a bad value.

    Attributes:
        name: dataset folder name under ``bop_path``.
        bop_path: folder of BOP datasets.
        train_images: images of the ``train_pbr`` split (0 for none).
        test_images: images of the ``test`` split (0 for none); ``test_targets_bop19.json`` lists their targets.
        seed: everything random derives from it (objects are the same for every seed).
        models_dir: a BOP ``models/`` folder (ply + models_info.json) to render instead of the procedural objects.
        workers: processes rendering in parallel, None for one per CPU core (at most 8); capped by the
            images, cores and memory; the output does not depend on it.
        mode: ``"new"`` refuses an existing dataset, ``"overwrite"`` replaces one made by synth,
            ``"resume"`` finishes one made with the same options.
        images_per_scene: images per scene folder (BOP: at most 1000).
        width, height: image size, pixels.
        intrinsics: (fx, fy, cx, cy), pixels.
        depth_scale: mm per unit of the 16-bit depth pngs.
        objects_per_image: (min, max) dataset objects per image (each at most once).
        distractors_per_image: (min, max) distractor objects per image.
        num_distractor_meshes: size of the pool of random distractor meshes.
        depth_range_mm: (near, far) range of the objects' centre distance along the optical axis, mm.
        cluster_prob: probability that an image's objects gather around one point (clutter, occlusion).
        poses: rotations of the dataset objects: ``tabletop`` (standing on a table, model +z up, seen from 10..75
            degrees above, as in BOP's test images; see :func:`bopnp.synth.scene.tabletop_rotation_np`) or
            ``uniform`` over SO(3). Distractors always turn uniformly.
        min_visib_fract: a test instance is a target when at least this fraction of it is visible (BOP: 0.1).
        noise_std: (min, max) standard deviation of the Gaussian pixel noise added to rgb, in 0..255 units.
        progress: show a progress bar.
    """

    name: str = "demo"
    bop_path: Path = Path("datasets")
    train_images: int = DEMO_TRAIN_IMAGES
    test_images: int = DEMO_TEST_IMAGES
    seed: int = 0
    models_dir: Path | None = None
    workers: int | None = None
    mode: Literal["new", "overwrite", "resume"] = "new"
    images_per_scene: int = 1000
    width: int = 640
    height: int = 480
    intrinsics: tuple[float, float, float, float] = LMO_INTRINSICS
    depth_scale: float = 0.1
    objects_per_image: tuple[int, int] = (3, 6)
    distractors_per_image: tuple[int, int] = (1, 4)
    num_distractor_meshes: int = 12
    depth_range_mm: tuple[float, float] = (450.0, 1300.0)
    cluster_prob: float = 0.5
    poses: Literal["tabletop", "uniform"] = "tabletop"
    min_visib_fract: float = 0.1
    noise_std: tuple[float, float] = (0.0, 6.0)
    progress: bool = True

    @property
    def dataset_dir(self) -> Path:
        """``bop_path / name``."""
        return Path(self.bop_path) / self.name

    @property
    def K(self) -> np.ndarray:
        """(3, 3) float64 camera intrinsics."""
        fx, fy, cx, cy = self.intrinsics
        return np.array([[fx, 0.0, cx], [0.0, fy, cy], [0.0, 0.0, 1.0]])

    def validate(self) -> SynthConfig:
        """Return self, or raise :class:`ConfigError` naming the option and how to fix it."""
        bad: list[str] = []
        if (
            not self.name
            or self.name in (".", "..")
            or any(c in self.name for c in "/\\")
            or self.name.strip() != self.name
        ):
            bad.append(f"name {self.name!r}: use a plain folder name such as 'demo' (no slashes or surrounding spaces)")
        for opt, value in (("train_images", self.train_images), ("test_images", self.test_images)):
            if not isinstance(value, int) or value < 0:
                bad.append(f"{opt} = {value!r}: use a whole number >= 0 (--{opt.replace('_', '-')})")
        if (
            isinstance(self.train_images, int)
            and isinstance(self.test_images, int)
            and self.train_images + self.test_images == 0
        ):
            bad.append(
                "train_images and test_images are both 0: ask for some images (--train-images N / --test-images M)"
            )
        if not isinstance(self.seed, int) or not 0 <= self.seed < 2**63:
            bad.append(f"seed = {self.seed!r}: use a whole number in [0, 2^63) (--seed)")
        if self.workers is not None and (not isinstance(self.workers, int) or self.workers < 1):
            bad.append(f"workers = {self.workers!r}: use 1 or more processes, or None for one per CPU core (--workers)")
        if self.mode not in ("new", "overwrite", "resume"):
            bad.append(f"mode = {self.mode!r}: use 'new', 'overwrite' or 'resume'")
        if not isinstance(self.images_per_scene, int) or not 1 <= self.images_per_scene <= 1000:
            bad.append(f"images_per_scene = {self.images_per_scene!r}: BOP scenes hold 1 to 1000 images")
        if not (
            isinstance(self.width, int)
            and isinstance(self.height, int)
            and 16 <= self.width <= 8192
            and 16 <= self.height <= 8192
        ):
            bad.append(f"image size {self.width}x{self.height}: use 16 to 8192 pixels per side")
        fx, fy, cx, cy = self.intrinsics
        if not (fx > 0 and fy > 0 and all(math.isfinite(v) for v in self.intrinsics)):
            bad.append(f"intrinsics {self.intrinsics}: fx and fy must be positive, all finite (pixels)")
        for opt, (lo, hi), least in (
            ("objects_per_image", self.objects_per_image, 1),
            ("distractors_per_image", self.distractors_per_image, 0),
        ):
            if not (isinstance(lo, int) and isinstance(hi, int) and least <= lo <= hi):
                bad.append(f"{opt} = {(lo, hi)}: use (min, max) whole numbers with {least} <= min <= max")
        if self.distractors_per_image[1] > 0 and self.num_distractor_meshes < 1:
            bad.append(
                "num_distractor_meshes must be >= 1 when distractors are asked for "
                "(or set distractors_per_image=(0, 0))"
            )
        near, far = self.depth_range_mm
        if not (0 < near <= far and math.isfinite(far)):
            bad.append(f"depth_range_mm = {self.depth_range_mm}: use 0 < near <= far (mm)")
        elif not self.depth_scale > 0 or (far * 1.5) / self.depth_scale > 65535:
            bad.append(
                f"depth_scale = {self.depth_scale}: depths up to {far * 1.5:.0f} mm must fit 16 bits; "
                f"use depth_scale >= {far * 1.5 / 65535:.3g} or a nearer depth_range_mm"
            )
        if not 0 <= self.cluster_prob <= 1:
            bad.append(f"cluster_prob = {self.cluster_prob}: use a probability in [0, 1]")
        if self.poses not in ("tabletop", "uniform"):
            bad.append(f"poses = {self.poses!r}: use 'tabletop' or 'uniform'")
        if not 0 <= self.min_visib_fract <= 1:
            bad.append(f"min_visib_fract = {self.min_visib_fract}: use a fraction in [0, 1] (BOP uses 0.1)")
        if not 0 <= self.noise_std[0] <= self.noise_std[1]:
            bad.append(f"noise_std = {self.noise_std}: use 0 <= min <= max")
        if self.models_dir is not None:
            md = Path(self.models_dir)
            if not (md / "models_info.json").is_file():
                bad.append(
                    f"models_dir {md}: no models_info.json there; pass a BOP models/ folder (e.g. datasets/lmo/models)"
                )
            else:
                try:
                    md.resolve().relative_to(self.dataset_dir.resolve())
                    bad.append(
                        f"models_dir {md} lies inside the output {self.dataset_dir}: choose another dataset name"
                    )
                except ValueError:
                    pass
        if bad:
            raise ConfigError("invalid synth options:\n" + "\n".join(f"  - {b}" for b in bad))
        return self

    def fingerprint(self) -> dict[str, Any]:
        """The options that determine the dataset's content (what ``resume`` must match), json-ready."""
        skip = {"bop_path", "workers", "mode", "progress", "name"}
        out = {}
        for f in fields(self):
            if f.name in skip:
                continue
            v = getattr(self, f.name)
            out[f.name] = str(Path(v).resolve()) if isinstance(v, Path) else list(v) if isinstance(v, tuple) else v
        return out


@dataclass(frozen=True)
class SynthSummary:
    """What :func:`synthesize` did.

    Attributes:
        dataset_dir: the dataset folder.
        images_rendered: images rendered by this call (per split).
        images_skipped: images already finished (``resume``) (per split).
        instances: annotated object instances in the whole dataset (per split).
        targets: entries of ``test_targets_bop19.json``.
        seconds: wall time.
    """

    dataset_dir: Path
    images_rendered: dict[str, int]
    images_skipped: dict[str, int]
    instances: dict[str, int]
    targets: int
    seconds: float


# ------------------------------------------------------------------------------------------- object sets
@dataclass(frozen=True, eq=False)
class ObjectSet:
    """The dataset objects and the distractor pool.

    Attributes:
        meshes: obj_id -> mesh of every dataset object.
        infos: obj_id -> the object's ``models_info.json`` record.
        distractors: distractor meshes (renderer ids ``DISTRACTOR_ID_BASE + index``).
        source_dir: the given models folder, or None for procedural objects.
    """

    meshes: dict[int, Any]
    infos: dict[int, ModelInfo]
    distractors: tuple = ()
    source_dir: Path | None = None

    @cached_property
    def radii_mm(self) -> dict[int, float]:
        """obj_id -> radius of the bounding sphere about the model origin, mm."""
        return {i: origin_radius_mm(m) for i, m in self.meshes.items()}

    @cached_property
    def distractor_radii_mm(self) -> list[float]:
        """Radius of each distractor's bounding sphere about its origin, mm."""
        return [origin_radius_mm(m) for m in self.distractors]


def origin_radius_mm(mesh) -> float:
    """Radius of the sphere about the model origin that holds every vertex, mm (what a pose's t places)."""
    return float(np.linalg.norm(np.asarray(mesh.vertices_mm, np.float64), axis=1).max())


def make_object_set(config: SynthConfig) -> ObjectSet:
    """The procedural objects (or those of ``config.models_dir``) and ``config.num_distractor_meshes`` random
    distractors drawn from ``config.seed``."""
    from bopnp.synth.procedural import dataset_objects, model_info, random_distractor

    rng = np.random.default_rng(np.random.SeedSequence([config.seed, zlib.crc32(b"distractors")]))
    n_dis = config.num_distractor_meshes if config.distractors_per_image[1] > 0 else 0
    distractors = tuple(random_distractor(rng) for _ in range(n_dis))
    if config.models_dir is None:
        objs = dict(enumerate(dataset_objects(), start=1))
        meshes = {obj_id: obj.mesh for obj_id, obj in objs.items()}
        infos = {
            obj_id: model_info(obj_id, obj.mesh, obj.symmetries_discrete, obj.symmetries_continuous)
            for obj_id, obj in objs.items()
        }
        return ObjectSet(meshes, infos, distractors)
    from bopnp.bop.io import load_models_info
    from bopnp.synth.models import load_model_meshes

    md = Path(config.models_dir)
    infos = load_models_info(md / "models_info.json")  # validates the file
    return ObjectSet(load_model_meshes(md, infos), infos, distractors, md)


# ---------------------------------------------------------------------------------------------- seeding
def image_rng(seed: int, split: str, scene_id: int, im_id: int) -> np.random.Generator:
    """The random generator of one image: a function of (seed, split, scene_id, im_id) only."""
    return np.random.default_rng(np.random.SeedSequence([seed, zlib.crc32(split.encode()), scene_id, im_id]))


def split_layout(n_images: int, images_per_scene: int) -> dict[int, list[int]]:
    """scene_id -> im_ids of a split of ``n_images`` images cut into scenes of ``images_per_scene``."""
    out: dict[int, list[int]] = {}
    for i in range(n_images):
        out.setdefault(i // images_per_scene, []).append(i % images_per_scene)
    return out


# ----------------------------------------------------------------------------------------- one image
@dataclass
class ImageMaker:
    """Renders and writes single images; one per process (it owns that process's renderer).

    Args:
        config: the dataset options.
        objects: the object set.
    """

    config: SynthConfig
    objects: ObjectSet
    renderer: Any = field(default=None, init=False)

    def __post_init__(self):
        from bopnp.render import get_renderer

        self.renderer = get_renderer(self.config.width, self.config.height)
        for obj_id, mesh in self.objects.meshes.items():
            self.renderer.add_model(obj_id, mesh)
        for k, mesh in enumerate(self.objects.distractors):
            self.renderer.add_model(DISTRACTOR_ID_BASE + k, mesh)

    def sample_scene(self, rng: np.random.Generator):
        """Random objects, distractors and their poses: (gt placements, distractor placements)."""
        from bopnp.synth.scene import sample_layout

        cfg = self.config
        ids = sorted(self.objects.meshes)
        lo, hi = cfg.objects_per_image
        k = min(int(rng.integers(lo, hi + 1)), len(ids))
        chosen = [int(i) for i in rng.choice(ids, size=k, replace=False)]
        size = (cfg.width, cfg.height)
        cluster = None
        if rng.uniform() < cfg.cluster_prob:  # a cluttered pile: more occlusion
            cluster = (rng.uniform(0.25, 0.75) * cfg.width, rng.uniform(0.25, 0.75) * cfg.height, 0.12 * cfg.width)
        gts = sample_layout(
            rng,
            cfg.K,
            size,
            [(i, self.objects.radii_mm[i]) for i in chosen],
            cfg.depth_range_mm,
            cluster_px=cluster,
            poses=cfg.poses,
        )
        dis: list = []
        if self.objects.distractors:
            dlo, dhi = cfg.distractors_per_image
            d = int(rng.integers(dlo, dhi + 1))
            pool = rng.integers(0, len(self.objects.distractors), size=d)
            radii = self.objects.distractor_radii_mm
            near, far = cfg.depth_range_mm
            dis = sample_layout(
                rng,
                cfg.K,
                size,
                [(DISTRACTOR_ID_BASE + int(p), radii[int(p)]) for p in pool],
                (0.8 * near, far),
                placed=gts,
                radii_placed_mm=[self.objects.radii_mm[g.obj_id] for g in gts],
                cluster_px=cluster,
            )
        return gts, dis

    def make(self, split: str, scene_id: int, im_id: int) -> dict:
        """Render image ``im_id`` of scene ``scene_id`` of ``split``, write its rgb, depth and masks.

        Returns:
            the image's record: json fragments ``scene_gt``, ``scene_gt_info`` (lists, gt_id order) and
            ``scene_camera`` (dict), as they appear under the image's key in the scene files.
        """
        from bopnp.bop.annotations import scene_camera_to_json, scene_gt_to_json
        from bopnp.bop.io import GtPose, ImageCamera, save_depth, save_image, save_mask
        from bopnp.render import Lighting
        from bopnp.render.gt_info import compute_gt_info_and_masks
        from bopnp.synth.background import random_background

        cfg = self.config
        rng = image_rng(cfg.seed, split, scene_id, im_id)
        K = cfg.K
        for _ in range(10):  # re-draw a scene that holds nothing to annotate
            gts, dis = self.sample_scene(rng)
            lighting = Lighting.random(rng)
            instances = [(p.obj_id, p.R_m2c, p.t_m2c) for p in gts + dis]
            out = self.renderer.render(K, instances, rgb=True, lighting=lighting, full_masks=False)
            gt_instances = instances[: len(gts)]
            # bop_toolkit's definitions; the scene depth includes the distractors, which occlude
            infos, masks_full, masks_visib = compute_gt_info_and_masks(self.renderer, K, gt_instances, out.depth_mm)
            visible = [info["visib_fract"] >= cfg.min_visib_fract for info in infos]
            # a test image must hold at least one target; a training image only needs an annotated object
            if any(visible) if split == "test" else len(gts) > 0:
                break
        background = random_background(rng, cfg.height, cfg.width)
        fg = out.instance_map >= 0
        rgb = np.where(fg[..., None], out.rgb, background).astype(np.float32)
        rgb += np.float32(rng.uniform(*cfg.noise_std)) * rng.standard_normal(rgb.shape, dtype=np.float32)
        rgb = np.clip(np.round(rgb), 0, 255).astype(np.uint8)

        scene_dir = cfg.dataset_dir / split / f"{scene_id:06d}"
        ext = "jpg" if split.endswith("_pbr") else "png"
        save_image(scene_dir / "rgb" / f"{im_id:06d}.{ext}", rgb)
        save_depth(scene_dir / "depth" / f"{im_id:06d}.png", out.depth_mm, cfg.depth_scale)
        for gt_id, (mask_full, mask_visib) in enumerate(zip(masks_full, masks_visib)):
            save_mask(scene_dir / "mask" / f"{im_id:06d}_{gt_id:06d}.png", mask_full)
            save_mask(scene_dir / "mask_visib" / f"{im_id:06d}_{gt_id:06d}.png", mask_visib)
        key = str(im_id)
        return {
            "scene_gt": scene_gt_to_json({key: [GtPose(p.obj_id, p.R_m2c, p.t_m2c) for p in gts]})[key],
            "scene_gt_info": infos,
            "scene_camera": scene_camera_to_json({key: ImageCamera(K=K, depth_scale=cfg.depth_scale)})[key],
        }


# ------------------------------------------------------------------------------------ worker processes
_WORKER: ImageMaker | None = None


def _init_worker(config: SynthConfig) -> None:
    # only the small config crosses the process boundary: the object set is rebuilt here (it is a
    # function of the config), which keeps the spawn payload far below a pipe buffer
    global _WORKER
    logging.basicConfig(level=logging.WARNING)
    _WORKER = ImageMaker(config, make_object_set(config))


def _work(job: tuple[str, int, int]) -> tuple[tuple[str, int, int], dict]:
    assert _WORKER is not None
    return job, _finish_image(_WORKER, *job)


def _partial_path(config: SynthConfig, split: str, scene_id: int, im_id: int) -> Path:
    return config.dataset_dir / split / f"{scene_id:06d}" / ".partial" / f"{im_id:06d}.json"


def _finish_image(maker: ImageMaker, split: str, scene_id: int, im_id: int) -> dict:
    """Make one image and record it as finished (the record is written after all its files)."""
    from bopnp.bop.io import write_text_atomic

    record = maker.make(split, scene_id, im_id)
    write_text_atomic(_partial_path(maker.config, split, scene_id, im_id), json.dumps(record))
    return record


# ------------------------------------------------------------------------------------------ the dataset
SCENE_FILES = ("scene_gt.json", "scene_gt_info.json", "scene_camera.json")


def _prepare_output(config: SynthConfig) -> None:
    """Apply the overwrite/resume policy to the output folder (raises ConfigError when refused)."""
    out = config.dataset_dir
    marker = out / CONFIG_FILE
    exists = out.exists() and (not out.is_dir() or any(out.iterdir()))
    if not exists:
        return
    if not out.is_dir():
        raise ConfigError(f"{out} exists and is not a folder: choose another dataset name or --bop-path")
    if config.mode == "new":
        raise ConfigError(
            f"{out} already exists: pass --resume to finish it, --overwrite to replace it, or choose another name"
        )
    if not marker.is_file():
        raise ConfigError(
            f"{out} exists but was not made by `bopnp synth` (no {CONFIG_FILE}): it is left untouched; "
            "choose another dataset name, or delete the folder yourself"
        )
    if config.mode == "overwrite":
        log.info("removing %s (--overwrite)", out)
        shutil.rmtree(out)
        return
    try:
        old = json.loads(marker.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise ConfigError(f"{marker} is unreadable ({exc}): pass --overwrite to start again") from None
    new = json.loads(json.dumps(config.fingerprint()))
    diffs = [
        f"{k}: {old.get(k)!r} before, {new.get(k)!r} now"
        for k in sorted(set(old) | set(new))
        if old.get(k) != new.get(k)
    ]
    if diffs:
        raise ConfigError(
            f"cannot resume {out}: it was made with other options:\n"
            + "\n".join(f"  - {d}" for d in diffs)
            + "\nrun again with the original options, or pass --overwrite to start again"
        )


def _write_models(config: SynthConfig, objects: ObjectSet) -> None:
    """models/, models_eval/, models_info.json and camera.json."""
    from bopnp.bop.io import Camera, save_camera, save_models_info, save_ply, write_bytes_atomic

    out = config.dataset_dir
    if objects.source_dir is None:
        for sub in ("models", "models_eval"):
            for obj_id, mesh in objects.meshes.items():
                save_ply(out / sub / f"obj_{obj_id:06d}.ply", mesh, binary=True)
            save_models_info(out / sub / "models_info.json", objects.infos)
    else:
        src = objects.source_dir
        eval_src = src.parent / "models_eval"
        for sub, folder in (("models", src), ("models_eval", eval_src if eval_src.is_dir() else src)):
            for f in sorted(folder.iterdir()):
                if f.is_file():
                    write_bytes_atomic(out / sub / f.name, f.read_bytes())
    save_camera(
        out / "camera.json",
        Camera(K=config.K, width=config.width, height=config.height, depth_scale=config.depth_scale),
    )


def _scene_done(scene_dir: Path, im_ids: Sequence[int]) -> bool:
    """Whether the scene's three json files exist and list exactly ``im_ids`` (else it is (re)made)."""
    from bopnp.bop.io import read_json

    if not all((scene_dir / f).is_file() for f in SCENE_FILES):
        return False
    try:
        if all(sorted(int(k) for k in read_json(scene_dir / f)) == sorted(im_ids) for f in SCENE_FILES):
            return True
    except (DatasetError, ValueError, TypeError):
        pass
    log.warning("%s: scene files unreadable or incomplete; rendering the scene again", scene_dir)
    return False


def _read_partial(path: Path) -> dict | None:
    """The record of a finished image, or None when absent or unreadable (the image is rendered again)."""
    if not path.is_file():
        return None
    try:
        record = json.loads(path.read_text())
        if isinstance(record, dict) and set(record) >= {"scene_gt", "scene_gt_info", "scene_camera"}:
            return record
    except (OSError, json.JSONDecodeError):
        pass
    log.warning("%s: unreadable record of a finished image; rendering it again", path)
    return None


def _write_scene(scene_dir: Path, records: dict[int, dict]) -> None:
    from bopnp.bop.io import write_json

    for name in SCENE_FILES:
        key = name[: -len(".json")]
        write_json(scene_dir / name, {str(im_id): records[im_id][key] for im_id in sorted(records)})
    shutil.rmtree(scene_dir / ".partial", ignore_errors=True)


def _write_targets(config: SynthConfig) -> int:
    from bopnp.bop.io import Target, load_scene_gt, load_scene_gt_info, save_targets

    targets = []
    for scene_id in sorted(split_layout(config.test_images, config.images_per_scene)):
        scene_dir = config.dataset_dir / "test" / f"{scene_id:06d}"
        gt, info = load_scene_gt(scene_dir / "scene_gt.json"), load_scene_gt_info(scene_dir / "scene_gt_info.json")
        for im_id in sorted(gt):
            counts: dict[int, int] = {}
            for pose, vis in zip(gt[im_id], info[im_id]):
                if vis.visib_fract >= config.min_visib_fract:
                    counts[pose.obj_id] = counts.get(pose.obj_id, 0) + 1
            targets += [Target(scene_id, im_id, obj_id, n) for obj_id, n in sorted(counts.items())]
    save_targets(config.dataset_dir / "test_targets_bop19.json", targets)
    return len(targets)


def synthesize(config: SynthConfig) -> SynthSummary:
    """Write the synthetic BOP dataset ``config`` describes (see the module docstring).

    Raises:
        ConfigError: bad options, or an existing output that the mode does not allow touching.
        DatasetError: a given model is missing or unusable (raised before any output is created or replaced).
        RenderError: the renderer could not start.
    """
    import multiprocessing as mp

    from bopnp.bop.atomic import remove_temporaries
    from bopnp.bop.io import write_text_atomic

    start = time.perf_counter()
    if getattr(mp.current_process(), "_inheriting", False):
        raise ConfigError(
            "synthesize() was called while a worker process was starting: the script runs it at import time; "
            "put the call under `if __name__ == '__main__':`"
        )
    config.validate()
    objects = make_object_set(config)  # loads and checks given models before anything is created or replaced
    _prepare_output(config)
    out = config.dataset_dir
    if config.mode == "resume" and out.is_dir():  # what a killed run was writing
        removed = remove_temporaries(out)
        if removed:
            log.info("removed %d unfinished file(s) of the interrupted run", removed)
    out.mkdir(parents=True, exist_ok=True)
    write_text_atomic(out / CONFIG_FILE, json.dumps(config.fingerprint(), indent=2, sort_keys=True) + "\n")
    _write_models(config, objects)

    counts = {"train_pbr": config.train_images, "test": config.test_images}
    rendered = {s: 0 for s in SPLITS}
    skipped = {s: 0 for s in SPLITS}
    pending: dict[tuple[str, int], dict[int, dict]] = {}  # (split, scene) -> finished records
    expected: dict[tuple[str, int], list[int]] = {}
    jobs: list[tuple[str, int, int]] = []
    for split in SPLITS:
        for scene_id, im_ids in split_layout(counts[split], config.images_per_scene).items():
            scene_dir = out / split / f"{scene_id:06d}"
            if _scene_done(scene_dir, im_ids):
                skipped[split] += len(im_ids)
                continue
            expected[(split, scene_id)] = im_ids
            records = pending.setdefault((split, scene_id), {})
            for im_id in im_ids:
                record = _read_partial(_partial_path(config, split, scene_id, im_id))
                if record is not None:
                    records[im_id] = record
                    skipped[split] += 1
                else:
                    jobs.append((split, scene_id, im_id))

    def done(job: tuple[str, int, int], record: dict) -> None:
        split, scene_id, im_id = job
        rendered[split] += 1
        records = pending[(split, scene_id)]
        records[im_id] = record
        if len(records) == len(expected[(split, scene_id)]):
            _write_scene(out / split / f"{scene_id:06d}", records)
            del pending[(split, scene_id)]

    # scenes whose images were all finished before an interruption
    for key in [k for k, recs in pending.items() if len(recs) == len(expected[k])]:
        _write_scene(out / key[0] / f"{key[1]:06d}", pending.pop(key))

    workers = bounded_workers(config.workers, len(jobs), worker_mb=RENDER_WORKER_MB)
    bar = progress_bar(total=len(jobs), desc=f"synth {config.name}", unit="img", enabled=config.progress and bool(jobs))
    try:
        if workers == 1:
            maker = ImageMaker(config, objects) if jobs else None
            for job in jobs:
                done(job, _finish_image(maker, *job))
                bar.update()
        else:
            _run_pool(config, jobs, workers, done, bar)
    finally:
        bar.close()

    instances = {s: 0 for s in SPLITS}
    for split in SPLITS:
        for scene_id in split_layout(counts[split], config.images_per_scene):
            from bopnp.bop.io import read_json

            gt = read_json(out / split / f"{scene_id:06d}" / "scene_gt.json")
            instances[split] += sum(len(v) for v in gt.values())
    n_targets = _write_targets(config) if config.test_images else 0
    return SynthSummary(out, rendered, skipped, instances, n_targets, time.perf_counter() - start)


def _run_pool(config: SynthConfig, jobs, workers: int, done, bar) -> None:
    """Render ``jobs`` in ``workers`` spawned processes (one renderer each)."""
    hint = "Finished images are kept: fix the cause and run again with --resume (or use --workers 1)"
    for job, (_, record) in run_jobs(
        _work, jobs, workers, initializer=_init_worker, initargs=(config,), worker_mb=RENDER_WORKER_MB, broken_hint=hint
    ):
        done(job, record)
        bar.update()

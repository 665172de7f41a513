"""``bopnp.Estimator``: an RGB image and its intrinsics in, the 6D poses of the objects in it out.

It joins the two stages: a detection source (a trained Mask R-CNN, or detections the caller gives) and the pose
stage (:class:`bopnp.infer.pose.PoseEstimator`: square crops, Pix2Pose's two passes, batched PnP with RANSAC).
``bopnp predict`` is a loop over a BOP split around :meth:`Estimator.run`, the method that :meth:`Estimator.estimate`
and :meth:`Estimator.estimate_batch` call too: the library and the command compute the same poses.

Example:
    >>> from bopnp import Estimator                                                     # doctest: +SKIP
    >>> est = Estimator.load(pose="results/train/demo/pose", detector="results/train/demo/detector")  # doctest: +SKIP
    >>> for p in est.estimate(rgb, K):            # rgb (H, W, 3) uint8, K (3, 3) pixels     # doctest: +SKIP
    ...     print(p.obj_id, p.score, p.R_m2c, p.t_mm)

Inputs are checked before any work: an image must be (H, W, 3) uint8 RGB, ``K`` a (3, 3) upper-triangular
intrinsic matrix, every given detection a box of positive size inside the image, of an object the pose network
serves. A violation raises :class:`bopnp.errors.ShapeError` (or :class:`ConfigError`) naming the image, detection
and field. An empty detection list is no error: it gives no estimates, as an image where the detector found nothing.
"""

from __future__ import annotations

import os
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from bopnp.bop.detections import Detection
from bopnp.bop.mesh import Mesh
from bopnp.bop.rle import Rle
from bopnp.errors import ConfigError, DatasetError, ShapeError
from bopnp.infer.detect import DetectionSource, ImageItem, select_detections
from bopnp.infer.pose import PoseConfig, PoseEstimator, PoseResult

#: the stages whose seconds every estimate carries (its image's share of the batch)
STAGES = ("detect", "crop", "network", "pnp")


@dataclass(frozen=True, eq=False)
class PoseEstimate:
    """One object's estimated pose (not :class:`bopnp.bop.records.ResultRow`, a row of a results CSV).

    Attributes:
        obj_id: the object.
        R_m2c: (3, 3) float64 model-to-camera rotation. t_mm: (3,) float64 model-to-camera translation, mm.
        score: detection score x RANSAC inlier fraction, in [0, 1].
        box: (4,) float64 detection box ``(x, y, width, height)``, pixels.
        times: seconds per stage (:data:`STAGES`) spent on this estimate's image (its share of the batch).
        detection: the detection it comes from (``mask`` decodes its mask).
        inlier_fraction: share of the PnP correspondences that RANSAC kept. n_points: correspondences used.
        image_shape: (H, W) of the image.
    """

    obj_id: int
    R_m2c: np.ndarray
    t_mm: np.ndarray
    score: float
    box: np.ndarray
    times: dict[str, float]
    detection: Detection
    inlier_fraction: float = 1.0
    n_points: int = 0
    image_shape: tuple[int, int] = (0, 0)

    @property
    def mask(self) -> np.ndarray | None:
        """(H, W) bool mask of the detection, or None when the detection came without one."""
        rle = self.detection.rle
        return None if rle is None else rle.decode()

    @property
    def T_m2c(self) -> np.ndarray:
        """(4, 4) float64 model-to-camera transform, translation in mm."""
        T = np.eye(4)
        T[:3, :3], T[:3, 3] = self.R_m2c, self.t_mm
        return T


@dataclass
class ImageEstimates:
    """What :meth:`Estimator.run` did on one image.

    Attributes:
        estimates: the valid poses, in the order of the detections kept.
        detections: detections the source gave. selected: those kept for the pose stage.
        invalid: kept detections whose pose PnP could not find (no estimate).
        detect_s: the detection source's own seconds for the image (a file's ``time``; -1 unknown).
        times: seconds per stage (:data:`STAGES`), the image's share of the batch.
    """

    estimates: list[PoseEstimate] = field(default_factory=list)
    detections: int = 0
    selected: int = 0
    invalid: int = 0
    detect_s: float = -1.0
    times: dict[str, float] = field(default_factory=dict)


# ------------------------------------------------------------------------------------------------ input checks


def check_image(image: Any, where: str = "image") -> np.ndarray:
    """The image as (H, W, 3) uint8 RGB (uint16 scaled down by 256).

    Raises:
        ShapeError: not an array, not 3 channels (a grey image says how to make it RGB), or another dtype.
    """
    if not isinstance(image, np.ndarray):
        raise ShapeError(f"{where}: expected a numpy array (H, W, 3) uint8 RGB, got {type(image).__name__}")
    if image.ndim == 2 or (image.ndim == 3 and image.shape[2] == 1):
        raise ShapeError(
            f"{where}: a grey image {image.shape}; the networks take (H, W, 3) RGB: repeat the channel, e.g. "
            "np.repeat(gray.reshape(H, W, 1), 3, axis=2)"
        )
    if image.ndim != 3 or image.shape[2] != 3:
        raise ShapeError(f"{where}: expected (H, W, 3) RGB, got shape {image.shape} (channels last, RGB order)")
    if image.dtype == np.uint16:
        image = (image >> 8).astype(np.uint8)
    if image.dtype != np.uint8:
        raise ShapeError(
            f"{where}: expected uint8 pixels in [0, 255], got {image.dtype} (for floats in [0, 1]: "
            "(image * 255).round().astype(np.uint8))"
        )
    if image.shape[0] < 2 or image.shape[1] < 2:
        raise ShapeError(f"{where}: an empty image {image.shape}")
    return image


def check_K(K: Any, where: str = "K") -> np.ndarray:
    """The intrinsics as a (3, 3) float64 array.

    Raises:
        ShapeError: another shape, non-finite values, or not ``[[fx, s, cx], [0, fy, cy], [0, 0, 1]]`` with
        fx, fy > 0.
    """
    K = np.asarray(K, dtype=np.float64) if not isinstance(K, np.ndarray) else K.astype(np.float64)
    if K.shape != (3, 3):
        hint = " (BOP's cam_K is 9 numbers: K.reshape(3, 3))" if K.size == 9 else ""
        raise ShapeError(f"{where}: expected the (3, 3) intrinsic matrix, got shape {K.shape}{hint}")
    if not np.isfinite(K).all():
        raise ShapeError(f"{where}: has non-finite values")
    if not np.allclose(K[2], [0.0, 0.0, 1.0]) or K[1, 0] != 0 or K[0, 0] <= 0 or K[1, 1] <= 0:
        raise ShapeError(
            f"{where}: expected [[fx, 0, cx], [0, fy, cy], [0, 0, 1]] in pixels with fx, fy > 0, got "
            f"{np.array2string(K, precision=3)}"
        )
    return K


def as_detection(det: Any, key: tuple[int, int], shape: tuple[int, int], where: str) -> Detection:
    """A caller's detection as a :class:`Detection` of image ``key``.

    Args:
        det: a :class:`Detection`, or a mapping with ``obj_id``, ``bbox`` (x, y, width, height, pixels), and
            optionally ``score`` (1) and ``mask`` ((H, W) bool).
        key: (scene_id, im_id) given to a mapping's detection.
        shape: (H, W) of the image.
        where: how the error messages name it.
    Raises:
        ShapeError: a missing field, a box without area or outside the image, a mask of another size.
    """
    H, W = shape
    if isinstance(det, Detection):
        obj_id, score, box, rle = det.obj_id, det.score, det.bbox_xywh, det.rle
    elif isinstance(det, Mapping):
        missing = [k for k in ("obj_id", "bbox") if k not in det]
        if missing:
            raise ShapeError(f"{where}: no {' or '.join(missing)} (give obj_id, bbox (x, y, width, height), score)")
        obj_id, score, box, rle = det["obj_id"], det.get("score", 1.0), det["bbox"], None
        if det.get("mask") is not None:
            mask = np.asarray(det["mask"])
            if mask.shape != (H, W):
                raise ShapeError(f"{where}: mask of shape {mask.shape} for an image of {(H, W)}")
            rle = Rle.encode(mask.astype(bool))
    else:
        raise ShapeError(f"{where}: expected a Detection or a dict with obj_id, bbox, score; got {type(det).__name__}")
    box = np.asarray(box, dtype=np.float64).reshape(-1)
    if box.shape != (4,) or not np.isfinite(box).all():
        raise ShapeError(f"{where}: bbox must be 4 finite numbers (x, y, width, height), got {box.tolist()}")
    x, y, w, h = box
    if w <= 0 or h <= 0:
        raise ShapeError(f"{where}: an empty box (width {w:g}, height {h:g}); boxes are (x, y, width, height)")
    if x >= W or y >= H or x + w <= 0 or y + h <= 0:
        raise ShapeError(f"{where}: box {box.tolist()} lies outside the {W}x{H} image")
    if rle is not None and (rle.height, rle.width) != (H, W):
        raise ShapeError(f"{where}: mask of {rle.height}x{rle.width} (HxW) for an image of {H}x{W}")
    if not np.isfinite(float(score)):
        raise ShapeError(f"{where}: score {score} is not finite")
    return Detection(int(key[0]), int(key[1]), int(obj_id), float(score), box, rle, -1.0)


# ------------------------------------------------------------------------------------------------ the estimator


class Estimator:
    """Detections and poses for RGB images (see the module docstring).

    Args:
        pose: the pose stage.
        detector: where detections come from when the caller gives none (a
            :class:`bopnp.infer.detect.DetectionSource`: a trained Mask R-CNN, a BOP detections file, the GT), or None.
    """

    def __init__(self, pose: PoseEstimator, detector: DetectionSource | None = None):
        self.pose = pose
        self.detector = detector

    @property
    def obj_ids(self) -> list[int]:
        """The objects the pose network serves."""
        return list(self.pose.obj_ids)

    @property
    def device(self):
        return self.pose.device

    def __repr__(self) -> str:
        return f"Estimator(objects {self.obj_ids}, detector {self.detector!r}, on {self.device})"

    @classmethod
    def from_network(
        cls,
        network,
        meshes: Mapping[int, Mesh],
        detector: DetectionSource | None = None,
        config: PoseConfig | None = None,
        *,
        autocast: bool = False,
    ) -> Estimator:
        """The estimator of a loaded :class:`bopnp.infer.network.PoseNetwork` (see
        :meth:`PoseEstimator.from_network`)."""
        return cls(PoseEstimator.from_network(network, meshes, config, autocast=autocast), detector)

    @classmethod
    def load(
        cls,
        pose: str | os.PathLike,
        detector: str | os.PathLike | None = None,
        device: str = "auto",
        *,
        models: str | os.PathLike | Mapping[int, Mesh] | None = None,
        config: PoseConfig | None = None,
        score_threshold: float = 0.05,
        autocast: bool = False,
    ) -> Estimator:
        """Load trained networks.

        Args:
            pose: a ``bopnp train --stage pose`` run folder (``best.pt``, else ``last.pt``) or checkpoint file.
            detector: a ``bopnp train --stage detector`` run folder or checkpoint; None: detections must be given.
            device: ``auto`` (CUDA when present), ``cpu`` or ``cuda``.
            models: the objects' meshes (the pose stage needs each object's extent): a BOP dataset folder, its
                ``models`` folder, or obj_id -> :class:`Mesh`; None: the dataset the pose network was trained on
                (``bop_path``/``name`` of its training config).
            config: the pose stage's settings; None: the defaults with the network's own thresholds.
            score_threshold: the detector's detections scoring below this are dropped.
            autocast: the pose network in bf16 on CUDA (off by default, as in ``bopnp predict``).
        Raises:
            CheckpointError: no usable checkpoint. DatasetError: meshes not found. ConfigError: bad options.
        """
        from bopnp.device import resolve_device
        from bopnp.infer.network import load_pose_network, resolve_checkpoint

        dev = resolve_device(device)
        network = load_pose_network(pose, device=dev)
        meshes = load_meshes(models, network.obj_ids, network.config, network.path)
        source = None
        if detector is not None:
            from bopnp.infer.maskrcnn import MaskRcnnDetections

            source = MaskRcnnDetections(
                resolve_checkpoint(detector, stage="detector"), device=dev, score_threshold=score_threshold
            )
        return cls.from_network(network, meshes, source, config, autocast=autocast)

    # -------------------------------------------------------------------------------------------- public API
    def estimate(
        self,
        image: np.ndarray,
        K: np.ndarray,
        detections: Sequence[Detection | Mapping[str, Any]] | None = None,
        *,
        instances: int | Mapping[int, int] = 1,
    ) -> list[PoseEstimate]:
        """The poses of the objects in one image.

        Args:
            image: (H, W, 3) uint8 RGB.
            K: (3, 3) intrinsics, pixels.
            detections: the objects to estimate (:class:`Detection` or dicts with ``obj_id``, ``bbox`` (x, y,
                width, height), ``score``, ``mask``); each is estimated. None: the detector's, keeping per object
                the ``instances`` best-scoring ones.
            instances: with the detector: instances kept per object (an int for all, or obj_id -> count).
        Returns:
            the valid estimates (a detection whose pose PnP could not find gives none).
        Raises:
            ShapeError: bad image, K or detection (named, with the fix). ConfigError: no detections and no detector,
            or a detection of an object the network does not serve.
        """
        dets = None if detections is None else [detections]
        return self.estimate_batch([image], [K], dets, instances=instances)[0]

    def estimate_batch(
        self,
        images: Sequence[np.ndarray],
        Ks: Sequence[np.ndarray],
        detections: Sequence[Sequence[Detection | Mapping[str, Any]]] | None = None,
        *,
        instances: int | Mapping[int, int] = 1,
    ) -> list[list[PoseEstimate]]:
        """:meth:`estimate` for several images at once (one network call and one PnP call for all of them).

        Args:
            images: per image (H, W, 3) uint8 RGB (sizes may differ). Ks: per image (3, 3).
            detections: per image its detections, or None for the detector's.
        Returns:
            per image its estimates.
        """
        return [r.estimates for r in self.run(images, Ks, detections, instances=instances)]

    # -------------------------------------------------------------------------------------------- the core
    def run(
        self,
        images: Sequence[np.ndarray],
        Ks: Sequence[np.ndarray],
        detections: Sequence[Sequence[Detection | Mapping[str, Any]]] | None = None,
        *,
        instances: int | Mapping[int, int] | Sequence[Mapping[int, int]] = 1,
        keys: Sequence[tuple[int, int]] | None = None,
        extra_candidates: int = 0,
    ) -> list[ImageEstimates]:
        """Detect (unless detections are given), select, estimate: what :meth:`estimate_batch` and ``bopnp predict``
        both run.

        Args:
            images, Ks, detections: as :meth:`estimate_batch`.
            instances: instances kept per object among the detector's detections: an int, obj_id -> count, or one
                such mapping per image (``bopnp predict``: what the BOP19 targets ask for; objects absent from it
                are dropped). Given detections are all kept.
            keys: per image its BOP (scene_id, im_id), for detection sources that look images up (a detections
                file, the GT); default ``(0, index)``.
            extra_candidates: per object, this many of the detector's next-best detections beyond ``instances`` get
                a pose too; every estimate's score is the detection score times the PnP inlier fraction, so a
                candidate whose coordinates agree better with one rigid pose can outrank a better-scoring detection
                (BOP's evaluator scores, per object, only the as many best-scoring estimates as there are instances).
        Returns:
            per image an :class:`ImageEstimates`.
        """
        n = len(images)
        if len(Ks) != n or (detections is not None and len(detections) != n):
            given = f"{n} images, {len(Ks)} K" + ("" if detections is None else f", {len(detections)} detection lists")
            raise ShapeError(f"one K and one detection list per image: {given}")
        if keys is None:
            keys = [(0, i) for i in range(n)]
        elif len(keys) != n:
            raise ShapeError(f"{n} images but {len(keys)} keys")
        if extra_candidates < 0:
            raise ConfigError(f"extra_candidates must be >= 0, got {extra_candidates}")
        tags = [f"image {i}" if n > 1 else "image" for i in range(n)]
        rgbs = [check_image(im, tag) for im, tag in zip(images, tags)]
        Ks = [check_K(K, f"K of {tag}" if n > 1 else "K") for K, tag in zip(Ks, tags)]
        out = [ImageEstimates() for _ in range(n)]
        if n == 0:
            return out
        t0 = time.perf_counter()
        if detections is None:
            if self.detector is None:
                raise ConfigError(
                    "this Estimator has no detector: pass detections=[...] (dicts with obj_id, bbox, score) or load "
                    "one with Estimator.load(pose=..., detector=RUN_OR_CKPT)"
                )
            needs = getattr(self.detector, "needs_pixels", True)
            items = [ImageItem(s, i, rgb if needs else None) for (s, i), rgb in zip(keys, rgbs)]
            found = self.detector(items)
            per_image = instances if isinstance(instances, Sequence) else [instances] * n
            served = set(self.obj_ids)
            selected = []
            for dets, want in zip(found, per_image):
                if isinstance(want, Mapping):
                    wanted = {int(o): int(c) for o, c in want.items() if int(o) in served}
                else:
                    wanted = {o: int(want) for o in served}
                selected.append(select_detections(dets, wanted, extra=extra_candidates))
            for r, dets in zip(out, found):
                r.detections = len(dets)
                if not needs:
                    r.detect_s = max([d.time_s for d in dets if d.time_s >= 0] or [0.0])
        else:
            selected = []
            for i, (dets, rgb, key, tag) in enumerate(zip(detections, rgbs, keys, tags)):
                if isinstance(dets, (Detection, Mapping)):
                    raise ShapeError(f"detections of {tag}: expected a list of detections, got one detection")
                conv = [as_detection(d, key, rgb.shape[:2], f"detection {j} of {tag}") for j, d in enumerate(dets)]
                unknown = sorted({d.obj_id for d in conv} - set(self.obj_ids))
                if unknown:
                    raise ConfigError(
                        f"detections of {tag} are of objects {unknown}, which the pose network does not serve (it "
                        f"serves {self.obj_ids})"
                    )
                selected.append(conv)
                out[i].detections = len(conv)
        t_detect = time.perf_counter() - t0
        before = _stage_seconds(self.pose)
        results = self.pose(rgbs, Ks, selected)
        after = _stage_seconds(self.pose)
        share = {"detect": t_detect / n, **{k: (after[k] - before[k]) / n for k in after}}
        for r, sel, res, rgb in zip(out, selected, results, rgbs):
            r.selected = len(sel)
            r.times = dict(share)
            r.estimates = [_estimate(p, share, rgb.shape[:2]) for p in res if p.valid]
            r.invalid = sum(1 for p in res if not p.valid)
        return out


def _stage_seconds(pose: PoseEstimator) -> dict[str, float]:
    t = pose.times
    return {"crop": t.crop_s, "network": t.network_s, "pnp": t.pnp_s}


def _estimate(r: PoseResult, times: dict[str, float], shape: tuple[int, int]) -> PoseEstimate:
    return PoseEstimate(
        obj_id=r.obj_id,
        R_m2c=np.asarray(r.R_m2c, np.float64),
        t_mm=np.asarray(r.t_m2c, np.float64),
        score=float(r.score),
        box=np.asarray(r.detection.bbox_xywh, np.float64),
        times=dict(times),
        detection=r.detection,
        inlier_fraction=float(r.inlier_fraction),
        n_points=int(r.n_points),
        image_shape=(int(shape[0]), int(shape[1])),
    )


def load_meshes(
    models: str | os.PathLike | Mapping[int, Mesh] | None,
    obj_ids: Sequence[int],
    train_config: Mapping[str, Any] | None = None,
    checkpoint: str | os.PathLike | None = None,
) -> dict[int, Mesh]:
    """The meshes of ``obj_ids``: from a mapping, a BOP dataset folder, a models folder (``obj_XXXXXX.ply``), or,
    with ``models`` None, the dataset of the training config (``bop_path``/``name``).

    Raises:
        DatasetError: a folder or mesh not found, naming what to pass.
    """
    from bopnp.bop.io import load_ply

    if isinstance(models, Mapping):
        missing = [o for o in obj_ids if o not in models]
        if missing:
            raise DatasetError(f"models: no mesh for objects {missing} of the pose network")
        return {int(o): models[o] for o in obj_ids}
    if models is None:
        cfg = dict(train_config or {})
        if not cfg.get("name"):
            raise DatasetError(f"{checkpoint}: its training config names no dataset; pass models=DATASET_OR_MODELS")
        folder = Path(cfg.get("bop_path") or "datasets") / str(cfg["name"])
        if not folder.is_dir():
            raise DatasetError(
                f"{folder}, the dataset the pose network was trained on, is not here: pass models= the dataset "
                "folder (or its models folder) that holds obj_XXXXXX.ply of its objects"
            )
        models = folder
    folder = Path(models)
    if (folder / "models").is_dir() and not any(folder.glob("obj_*.ply")):
        folder = folder / "models"
    meshes = {}
    for o in obj_ids:
        path = folder / f"obj_{int(o):06d}.ply"
        if not path.is_file():
            raise DatasetError(f"{path} not found: models= must hold the meshes of objects {list(obj_ids)}")
        meshes[int(o)] = load_ply(path)
    return meshes


__all__ = [
    "STAGES",
    "Estimator",
    "ImageEstimates",
    "PoseEstimate",
    "as_detection",
    "check_K",
    "check_image",
    "load_meshes",
]

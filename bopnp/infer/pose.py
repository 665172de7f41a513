"""The pose stage: from detections to 6D poses, Pix2Pose's two-stage inference followed by batched PnP.

For every detection of a batch of images at once:

1. **First crop.** A square box ``enlarge`` (1.5, as ``bopnp prepare``) times the longer side of the detection
   box, centred on it (:func:`bopnp.data.crop_geometry.square_box`), resampled to the network's crop size.
2. **First pass.** The coordinate network predicts normalised object coordinates and their error per pixel.
3. **Re-centring.** Pixels whose predicted error exceeds ``outlier_err``, and background pixels (all coordinates
   near 0), are dropped; the box of the remaining predicted object pixels, which cover the whole object (the
   network is trained on full silhouettes), gives a new square crop like the training crops (centred on the whole
   object, not on its visible part). Where fewer than ``min_points`` pixels remain, or the box would shrink or grow
   more than :data:`MAX_RECROP_SCALE` times, the first crop stays.
4. **Second pass** on the new crops.
5. **PnP.** Every predicted object pixel whose error is below ``max_err`` is a 2D-3D correspondence
   (:func:`bopnp.models.correspondences.crop_correspondences`: image pixel, model point in mm, weight falling with
   the predicted error); at most ``max_points`` of them per detection, an evenly spread subset fixed per pixel
   position, go to :func:`bopnp.pnp.solve_pnp` with RANSAC, one call for the whole batch.

**Score** = detection score x inlier fraction (the share of the PnP correspondences that RANSAC kept): a detection
whose coordinates agree with one rigid pose ranks above one whose do not. A pose is ``valid`` when PnP converged on
at least ``min_points`` inliers; invalid poses give no estimate.

The network is behind :class:`CoordPredictor`, so the geometry can be tested with an oracle that returns the true
coordinate maps (tests/infer/test_pose.py).

Example:
    >>> from bopnp.infer.network import load_pose_network                       # doctest: +SKIP
    >>> est = PoseEstimator.from_network(load_pose_network("run/"), meshes)     # doctest: +SKIP
    >>> results = est([rgb], [K], [detections])                                 # doctest: +SKIP
    >>> results[0][0].R_m2c, results[0][0].t_m2c, results[0][0].score           # doctest: +SKIP
"""

from __future__ import annotations

import math
import time
from collections.abc import Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Protocol

import numpy as np
import torch
from torch import Tensor

from bopnp.bop.detections import Detection
from bopnp.bop.images import as_rgb
from bopnp.bop.mesh import Mesh
from bopnp.data.crop_geometry import square_box, warp_crop
from bopnp.errors import ConfigError
from bopnp.geometry.radial_surface import expand_coordinates, radial_profile
from bopnp.infer.detect import detection_mask
from bopnp.models.correspondences import crop_correspondences, crop_pixel_centres
from bopnp.pnp import RansacConfig, solve_pnp

#: the re-centred crop keeps the first one where its side would change by more than this factor
MAX_RECROP_SCALE = 4.0
#: golden-ratio step of the fixed, evenly spread order in which crop pixels are kept for PnP
_GOLDEN = (math.sqrt(5.0) - 1.0) / 2.0


@dataclass(frozen=True)
class PoseConfig:
    """Settings of the pose stage.

    Attributes:
        enlarge: crop side relative to the longer side of the box (as ``bopnp prepare``: 1.5).
        two_stage: re-centre and re-crop on the first pass's object pixels (Pix2Pose); False: one pass.
        use_mask: PnP uses only pixels inside the detection's mask (its box where the mask is missing or empty), as
            training's validation uses the visible mask; False: the predicted coordinates alone say which pixels are
            the object.
        outlier_err: first pass: pixels whose predicted error exceeds this are not object pixels for re-centring.
        max_err: PnP: pixels whose predicted error reaches this get no weight (as the network's e2e training).
        min_coord: pixels whose largest |normalised coordinate| is at most this are background.
        min_points: fewest correspondences (and RANSAC inliers) of a valid pose.
        max_points: most correspondences per detection given to PnP (an evenly spread subset).
        ransac_px: RANSAC inlier threshold, pixels of the image.
        ransac_iterations: minimal sets drawn per detection.
        seed: RANSAC's seed (results are deterministic for a given batch).
        max_crops: most crops per network call (bounds memory; all of a batch's detections share one PnP call).
        pnp_float64: solve PnP in float64; float32 (the default) is about 1.5 times faster on a CPU and, on exact
            coordinates, within 0.02 degrees and 0.001 mm of float64 (far below any network's error).
        pnp_threads: CPU threads of the PnP step (0: torch's setting). Its many small operations gain little from
            threads and lose much when the cores are busy: with 2 threads on a loaded 2-core machine it took 3.5 times
            as long as with 1.
        pnp_execution: how :func:`bopnp.pnp.solve_pnp` runs its refinement (same result): ``"eager"``,
            ``"sync_free"`` or ``"cuda_graph"`` (replayed CUDA graphs: for GPUs).
        surface: move predicted model points that lie inside the object out to its surface along their direction
            from the object's centre before PnP (:mod:`bopnp.geometry.radial_surface`): a network that is still
            learning shrinks its points towards the centre, which puts the object too close to the camera. Needs
            the objects' meshes (:meth:`PoseEstimator.from_network`); a perfect prediction is unchanged.
    """

    enlarge: float = 1.5
    two_stage: bool = True
    use_mask: bool = True
    outlier_err: float = 0.5
    max_err: float = 0.5
    min_coord: float = 0.1
    min_points: int = 16
    max_points: int = 1024
    ransac_px: float = 4.0
    ransac_iterations: int = 100
    seed: int = 0
    max_crops: int = 64
    pnp_float64: bool = False
    pnp_threads: int = 1
    pnp_execution: str = "eager"
    surface: bool = True

    def validate(self) -> PoseConfig:
        """Raise :class:`ConfigError` naming the first bad value and its range; returns self."""

        def need(ok: bool, msg: str) -> None:
            if not ok:
                raise ConfigError(msg)

        need(1.0 <= self.enlarge <= 4.0, f"enlarge must be in [1, 4] (Pix2Pose: 1.5), got {self.enlarge}")
        need(
            0 < self.outlier_err <= 1, f"outlier_err must be in (0, 1] (the error map's range), got {self.outlier_err}"
        )
        need(0 < self.max_err <= 1, f"max_err must be in (0, 1] (the error map's range), got {self.max_err}")
        need(0 <= self.min_coord < 1, f"min_coord must be in [0, 1), got {self.min_coord}")
        need(self.min_points >= 4, f"min_points must be at least 4 (PnP needs 4 points), got {self.min_points}")
        need(self.max_points >= self.min_points, f"max_points must be >= min_points, got {self.max_points}")
        need(self.max_crops >= 1, f"max_crops must be >= 1, got {self.max_crops}")
        need(self.pnp_threads >= 0, f"pnp_threads must be >= 0 (0: torch's setting), got {self.pnp_threads}")
        need(
            self.pnp_execution in ("eager", "sync_free", "cuda_graph"),
            f"pnp_execution must be 'eager', 'sync_free' or 'cuda_graph', got {self.pnp_execution!r}",
        )
        self.ransac()  # RansacConfig validates the rest
        return self

    def ransac(self) -> RansacConfig:
        return RansacConfig(threshold_px=float(self.ransac_px), iterations=int(self.ransac_iterations), seed=self.seed)


@dataclass(frozen=True, eq=False)
class CropContext:
    """What a :class:`CoordPredictor` may know about its crops besides their pixels.

    Attributes:
        box_xyxy: (B, 4) float64 crop boxes, pixels of the full images.
        K: (B, 3, 3) float64 intrinsics of each crop's full image.
        detections: the B detections the crops belong to.
        crop_size: S, the crops' side in pixels.
    """

    box_xyxy: np.ndarray
    K: np.ndarray
    detections: Sequence[Detection]
    crop_size: int


class CoordPredictor(Protocol):
    """Maps crops to coordinate and error maps.

    ``__call__(image, obj_index, context)``: image (B, 3, S, S) float RGB in [0, 1]; obj_index (B,) int64 output
    groups; context: :class:`CropContext`. Returns xyz (B, 3, S, S) normalised coordinates in [-1, 1] (0 off the
    object) and err (B, 1, S, S) predicted error in [0, 1], on the image's device.
    """

    def __call__(self, image: Tensor, obj_index: Tensor, context: CropContext) -> tuple[Tensor, Tensor]: ...


class NetworkPredictor:
    """The coordinate network as a :class:`CoordPredictor`: eval mode, no autograd, at most ``max_crops`` crops
    per forward pass; bf16 autocast on CUDA when ``autocast``."""

    def __init__(self, net: torch.nn.Module, max_crops: int = 64, autocast: bool = False):
        self.net = net.eval()
        self.max_crops = int(max_crops)
        self.autocast = autocast

    def __call__(self, image: Tensor, obj_index: Tensor, context: CropContext) -> tuple[Tensor, Tensor]:
        xyz, err = [], []
        use_amp = self.autocast and image.device.type == "cuda"
        with torch.inference_mode(), torch.autocast(image.device.type, dtype=torch.bfloat16, enabled=use_amp):
            for i in range(0, image.shape[0], self.max_crops):
                x, e = self.net(image[i : i + self.max_crops], obj_index[i : i + self.max_crops])
                xyz.append(x.float())
                err.append(e.float())
        return torch.cat(xyz), torch.cat(err)


@dataclass(frozen=True, eq=False)
class CropDebug:
    """What the pose stage saw and did for one detection (``debug=True``), for pictures.

    Attributes:
        box_first, box_second: (4,) crop boxes of the two passes, pixels of the image (equal with one pass).
        crop: (S, S, 3) uint8 RGB crop of the last pass.
        xyz: (S, S, 3) float32 predicted normalised coordinates. err: (S, S) float32 predicted error.
        weight: (S, S) float32 PnP weight of each pixel (0: background or error over ``max_err``).
        used: (S, S) bool, the pixels given to PnP. inliers: (S, S) bool, those RANSAC kept.
        K: (3, 3) the image's intrinsics.
    """

    box_first: np.ndarray
    box_second: np.ndarray
    crop: np.ndarray
    xyz: np.ndarray
    err: np.ndarray
    weight: np.ndarray
    used: np.ndarray
    inliers: np.ndarray
    K: np.ndarray


@dataclass(frozen=True, eq=False)
class PoseResult:
    """The pose of one detection.

    Attributes:
        detection: the detection it comes from.
        R_m2c: (3, 3) float64 rotation. t_m2c: (3,) float64 translation, mm.
        score: detection score x inlier fraction.
        valid: PnP converged on at least ``min_points`` inliers (an invalid pose is no estimate).
        inlier_fraction: RANSAC inliers / correspondences given to PnP (0 without correspondences).
        n_points: correspondences given to PnP.
        debug: what the stage saw (with ``debug=True``), else None.
    """

    detection: Detection
    R_m2c: np.ndarray
    t_m2c: np.ndarray
    score: float
    valid: bool
    inlier_fraction: float
    n_points: int
    debug: CropDebug | None = None

    @property
    def obj_id(self) -> int:
        return int(self.detection.obj_id)


@dataclass
class StageTimes:
    """Seconds spent in each part of the pose stage, summed over calls."""

    crop_s: float = 0.0
    network_s: float = 0.0
    pnp_s: float = 0.0
    calls: int = 0
    crops: int = 0

    def reset(self) -> None:
        self.crop_s = self.network_s = self.pnp_s = 0.0
        self.calls = self.crops = 0


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


@contextmanager
def _cpu_threads(n: int):
    """torch's CPU threads set to ``n`` for the block (0: unchanged)."""
    before = torch.get_num_threads()
    if n and n != before:
        torch.set_num_threads(n)
    try:
        yield
    finally:
        if n and n != before:
            torch.set_num_threads(before)


def spread_order(n: int, device: torch.device | None = None) -> Tensor:
    """(n,) float64 keys in [0, 1) that spread any prefix of a sorted order evenly over ``range(n)`` (the golden
    ratio sequence): the ``k`` largest keys among a set of pixels pick an evenly spread subset of them."""
    idx = torch.arange(n, dtype=torch.float64, device=device)
    return torch.remainder(idx * _GOLDEN, 1.0)


def recentred_boxes(
    xyz: Tensor, err: Tensor, box_xyxy: Tensor, *, enlarge: float, outlier_err: float, min_coord: float, min_points: int
) -> tuple[np.ndarray, np.ndarray]:
    """The second crops of Pix2Pose's two-stage inference.

    Args:
        xyz: (B, 3, S, S) first-pass coordinates. err: (B, 1, S, S) first-pass errors.
        box_xyxy: (B, 4) first crop boxes, image pixels.
        enlarge: crop side relative to the object box's longer side.
        outlier_err, min_coord: which pixels are object pixels (error below, some |coordinate| above).
        min_points: fewest object pixels for a new box.
    Returns:
        boxes: (B, 4) float64 new boxes (the first box where none could be made). moved: (B,) bool, a new box.
    """
    S = xyz.shape[-1]
    B = xyz.shape[0]
    obj = (xyz.abs().amax(1) > min_coord) & (err[:, 0] < outlier_err)  # (B, S, S)
    obj = obj.reshape(B, -1)
    uv = crop_pixel_centres(box_xyxy.to(torch.float64), S)  # (B, S*S, 2)
    inf = torch.tensor(float("inf"), dtype=torch.float64, device=uv.device)
    lo = torch.where(obj[..., None], uv, inf).amin(1)
    hi = torch.where(obj[..., None], uv, -inf).amax(1)
    count = obj.sum(1)
    first = box_xyxy.detach().to(torch.float64).cpu().numpy()
    lo, hi, count = lo.cpu().numpy(), hi.cpu().numpy(), count.cpu().numpy()
    scale = (first[:, 2] - first[:, 0]) / S  # image pixels per crop pixel
    ok = count >= min_points
    # BOP's (x, y, w, h) of the image pixels the crop pixels cover: a crop pixel spans `scale` image pixels
    grow = np.maximum(scale - 1.0, 0.0)[:, None]
    bbox = np.concatenate([lo - grow / 2, hi - lo + grow], axis=1)
    bbox = np.where(ok[:, None], bbox, np.array([0.0, 0.0, 1.0, 1.0]))
    boxes = square_box(bbox, enlarge=enlarge, out_size=S)
    ratio = (boxes[:, 2] - boxes[:, 0]) / (first[:, 2] - first[:, 0])
    moved = ok & (ratio <= MAX_RECROP_SCALE) & (ratio >= 1.0 / MAX_RECROP_SCALE)
    return np.where(moved[:, None], boxes, first), moved


class PoseEstimator:
    """The pose stage of a trained network (see the module docstring).

    Args:
        predictor: the coordinate network (:class:`NetworkPredictor`) or a stand-in.
        obj_ids: the object of each output group of the predictor.
        normalisation: obj_id -> (centre_mm (3,), half_extent_mm (3,)) of its coordinates
            (:func:`bopnp.infer.network.object_normalisation`).
        crop_size: S, the predictor's crop side, pixels.
        config: :class:`PoseConfig`.
        device: where crops, the predictor's outputs and PnP live.
    """

    def __init__(
        self,
        predictor: CoordPredictor,
        obj_ids: Sequence[int],
        normalisation: Mapping[int, tuple[np.ndarray, np.ndarray]],
        crop_size: int,
        config: PoseConfig | None = None,
        device: str | torch.device = "cpu",
        profiles: Mapping[int, np.ndarray] | None = None,
    ):
        self.predictor = predictor
        self.obj_ids = [int(o) for o in obj_ids]
        missing = [o for o in self.obj_ids if o not in normalisation]
        if missing:
            raise ConfigError(f"no coordinate normalisation for objects {missing}: load their meshes")
        self.normalisation = {
            int(o): (np.asarray(c, np.float64).reshape(3), np.asarray(h, np.float64).reshape(3))
            for o, (c, h) in normalisation.items()
        }
        self.crop_size = int(crop_size)
        self.config = (config or PoseConfig()).validate()
        self.device = torch.device(device)
        self.times = StageTimes()
        self.profiles = None
        if profiles is not None and self.config.surface:
            missing = [o for o in self.obj_ids if o not in profiles]
            if missing:
                raise ConfigError(f"no radial surface profile for objects {missing}: load their meshes")
            self.profiles = {int(o): np.asarray(profiles[o], np.float32) for o in self.obj_ids}

    @classmethod
    def from_network(
        cls, network, meshes: Mapping[int, Mesh], config: PoseConfig | None = None, *, autocast: bool = False
    ) -> PoseEstimator:
        """The estimator of a :class:`bopnp.infer.network.PoseNetwork`; ``meshes`` must hold its objects.

        ``config`` None: the defaults with the network's own ``max_err``, ``min_coord`` and ``min_points``.
        """
        from dataclasses import replace

        from bopnp.infer.network import object_normalisation

        if config is None:
            config = replace(
                PoseConfig(),
                max_err=network.e2e.max_err,
                min_coord=network.e2e.min_coord,
                min_points=network.e2e.min_points,
            )
        missing = [o for o in network.obj_ids if o not in meshes]
        if missing:
            raise ConfigError(f"{network.path}: the network serves objects {missing} whose meshes were not given")
        norm = {o: object_normalisation(meshes[o]) for o in network.obj_ids}
        profiles = None
        if config.surface:
            profiles = {o: radial_profile(meshes[o].vertices_mm, meshes[o].faces, norm[o][0]) for o in network.obj_ids}
        predictor = NetworkPredictor(network.net, config.max_crops, autocast=autocast)
        return cls(predictor, network.obj_ids, norm, network.crop_size, config, network.device, profiles)

    # ------------------------------------------------------------------------------------------ crops
    def _crops(self, images: Sequence[np.ndarray], which: np.ndarray, boxes: np.ndarray) -> tuple[Tensor, np.ndarray]:
        S = self.crop_size
        crops = np.stack([warp_crop(images[int(i)], box, S) for i, box in zip(which, boxes)])  # (B, S, S, 3) uint8
        t = torch.from_numpy(crops).to(self.device).permute(0, 3, 1, 2).float().div_(255.0)
        return t, crops

    def _predict(
        self, image: Tensor, obj_index: Tensor, boxes: np.ndarray, Ks: np.ndarray, dets
    ) -> tuple[Tensor, Tensor]:
        ctx = CropContext(box_xyxy=boxes, K=Ks, detections=dets, crop_size=self.crop_size)
        _sync(self.device)
        t0 = time.perf_counter()
        xyz, err = self.predictor(image, obj_index, ctx)
        _sync(self.device)
        self.times.network_s += time.perf_counter() - t0
        return xyz.float(), err.float()

    # ------------------------------------------------------------------------------------------ the stage
    def __call__(
        self,
        images: Sequence[np.ndarray],
        Ks: Sequence[np.ndarray],
        detections: Sequence[Sequence[Detection]],
        *,
        debug: bool = False,
    ) -> list[list[PoseResult]]:
        """Poses of every detection of a batch of images.

        Args:
            images: per image (H, W, 3) uint8 RGB (or (H, W) gray).
            Ks: per image (3, 3) intrinsics, pixels.
            detections: per image its detections (of objects in ``obj_ids``; see
                :func:`bopnp.infer.detect.select_detections`).
            debug: attach a :class:`CropDebug` to every result.
        Returns:
            per image, one :class:`PoseResult` per detection, in the order given.
        Raises:
            ConfigError: a detection of an object the network does not serve, or mismatched lengths.
        """
        if not len(images) == len(Ks) == len(detections):
            raise ConfigError(f"{len(images)} images, {len(Ks)} intrinsics and {len(detections)} detection lists")
        flat = [(i, d) for i, dets in enumerate(detections) for d in dets]
        if not flat:
            return [[] for _ in images]
        unknown = sorted({int(d.obj_id) for _, d in flat} - set(self.obj_ids))
        if unknown:
            raise ConfigError(
                f"detections of objects {unknown}, which the pose network does not serve (it has {self.obj_ids}): "
                "select the detections first"
            )
        cfg, S, dev = self.config, self.crop_size, self.device
        t0 = time.perf_counter()
        images = [as_rgb(im) for im in images]
        which = np.array([i for i, _ in flat])
        dets = [d for _, d in flat]
        Ks_det = np.stack([np.asarray(Ks[i], np.float64).reshape(3, 3) for i in which])
        obj_index = torch.tensor([self.obj_ids.index(int(d.obj_id)) for d in dets], dtype=torch.int64, device=dev)
        boxes1 = square_box(np.stack([np.asarray(d.bbox_xywh, np.float64) for d in dets]), cfg.enlarge, S)
        image, crops = self._crops(images, which, boxes1)
        self.times.crop_s += time.perf_counter() - t0
        xyz, err = self._predict(image, obj_index, boxes1, Ks_det, dets)
        boxes2 = boxes1
        if cfg.two_stage:
            t0 = time.perf_counter()
            boxes2, _ = recentred_boxes(
                xyz,
                err,
                torch.from_numpy(boxes1).to(dev),
                enlarge=cfg.enlarge,
                outlier_err=cfg.outlier_err,
                min_coord=cfg.min_coord,
                min_points=cfg.min_points,
            )
            image, crops = self._crops(images, which, boxes2)
            self.times.crop_s += time.perf_counter() - t0
            xyz, err = self._predict(image, obj_index, boxes2, Ks_det, dets)
        _sync(dev)
        t0 = time.perf_counter()
        masks = None
        if cfg.use_mask:
            masks = np.stack(
                [
                    warp_crop(detection_mask(d, images[i].shape[:2]), box, S, nearest=True)
                    for (i, d), box in zip(flat, boxes2)
                ]
            )
        with _cpu_threads(cfg.pnp_threads if dev.type == "cpu" else 0):
            out, extras = self._solve(xyz, err, boxes2, Ks_det, dets, debug, masks)
        _sync(dev)
        self.times.pnp_s += time.perf_counter() - t0
        self.times.calls += 1
        self.times.crops += len(dets) * (2 if cfg.two_stage else 1)
        per_image: list[list[PoseResult]] = [[] for _ in images]
        for k, (i, _) in enumerate(flat):
            r = out[k]
            if debug:
                r = _with_debug(r, {n: a[k] for n, a in extras.items()}, boxes1[k], boxes2[k], crops[k], Ks_det[k])
            per_image[i].append(r)
        return per_image

    def _solve(
        self, xyz: Tensor, err: Tensor, boxes: np.ndarray, Ks: np.ndarray, dets, debug: bool, masks=None
    ) -> tuple[list[PoseResult], dict[str, np.ndarray]]:
        """PnP with RANSAC for the whole batch; with ``debug`` also the per-pixel arrays of :class:`CropDebug`.
        ``masks``: (B, S, S) bool detection masks in the crops, or None."""
        cfg, dev = self.config, self.device
        dt = torch.float64 if cfg.pnp_float64 else torch.float32
        B, S = xyz.shape[0], xyz.shape[-1]
        centre = torch.tensor(np.stack([self.normalisation[int(d.obj_id)][0] for d in dets]), dtype=dt, device=dev)
        half = torch.tensor(np.stack([self.normalisation[int(d.obj_id)][1] for d in dets]), dtype=dt, device=dev)
        box_t = torch.from_numpy(np.asarray(boxes, np.float64)).to(device=dev, dtype=dt)
        mask_t = None if masks is None else torch.from_numpy(np.asarray(masks, dtype=bool)).to(dev)
        xyz = xyz.to(dt)
        if self.profiles is not None:
            profile = torch.from_numpy(np.stack([self.profiles[int(d.obj_id)] for d in dets])).to(dev)
            xyz = expand_coordinates(xyz, centre, half, profile, cfg.min_coord)
        x2d, x3d, w = crop_correspondences(
            xyz.to(dt), err.to(dt), box_t, centre, half, max_err=cfg.max_err, min_coord=cfg.min_coord, mask=mask_t
        )
        usable = w > 0
        n_usable = usable.sum(1)
        k = int(min(cfg.max_points, max(int(n_usable.max()), 4)))
        key = torch.where(
            usable, spread_order(S * S, dev)[None].expand(B, -1), torch.full_like(w, -1.0, dtype=torch.float64)
        )
        idx = key.topk(k, dim=1).indices  # (B, k): usable pixels first, evenly spread
        pick = lambda a: a.gather(1, idx[..., None].expand(-1, -1, a.shape[-1]))  # noqa: E731
        x2d_k, x3d_k, w_k = pick(x2d), pick(x3d), w.gather(1, idx)
        n_points = (w_k > 0).sum(1)
        enough = n_points >= cfg.min_points
        K_t = torch.from_numpy(Ks).to(device=dev, dtype=dt)
        res = solve_pnp(x2d_k, x3d_k, K_t, w_k * enough[:, None], ransac=cfg.ransac(), execution=cfg.pnp_execution)
        inl = res.inliers & (w_k > 0)
        n_inl = inl.sum(1)
        frac = torch.where(n_points > 0, n_inl.to(dt) / n_points.clamp(min=1).to(dt), torch.zeros_like(n_inl, dtype=dt))
        valid = res.valid & enough & (n_inl >= cfg.min_points)
        R = res.R.detach().to(torch.float64).cpu().numpy()
        t = res.t.detach().to(torch.float64).cpu().numpy()
        valid_np, frac_np, n_np = valid.cpu().numpy(), frac.cpu().numpy(), n_points.cpu().numpy()
        extras: dict[str, np.ndarray] = {}
        if debug:
            used_full = torch.zeros(B, S * S, dtype=torch.bool, device=dev)
            used_full.scatter_(1, idx, w_k > 0)
            inl_full = torch.zeros(B, S * S, dtype=torch.bool, device=dev)
            inl_full.scatter_(1, idx, inl)
            extras = {
                "xyz": xyz.permute(0, 2, 3, 1).cpu().numpy().astype(np.float32),
                "err": err[:, 0].cpu().numpy().astype(np.float32),
                "weight": w.reshape(B, S, S).cpu().numpy().astype(np.float32),
                "used": used_full.reshape(B, S, S).cpu().numpy(),
                "inliers": inl_full.reshape(B, S, S).cpu().numpy(),
            }
        out = []
        for b, d in enumerate(dets):
            ok = bool(valid_np[b])
            r = PoseResult(
                detection=d,
                R_m2c=R[b] if ok else np.eye(3),
                t_m2c=t[b] if ok else np.zeros(3),
                score=float(d.score) * float(frac_np[b]) if ok else 0.0,
                valid=ok,
                inlier_fraction=float(frac_np[b]),
                n_points=int(n_np[b]),
            )
            out.append(r)
        return out, extras


def _with_debug(
    r: PoseResult, a: dict[str, np.ndarray], box1: np.ndarray, box2: np.ndarray, crop: np.ndarray, K: np.ndarray
) -> PoseResult:
    dbg = CropDebug(
        box_first=np.asarray(box1, np.float64),
        box_second=np.asarray(box2, np.float64),
        crop=crop,
        xyz=a["xyz"],
        err=a["err"],
        weight=a["weight"],
        used=a["used"],
        inliers=a["inliers"],
        K=np.asarray(K, np.float64),
    )
    return PoseResult(r.detection, r.R_m2c, r.t_m2c, r.score, r.valid, r.inlier_fraction, r.n_points, dbg)


__all__ = [
    "CoordPredictor",
    "CropContext",
    "CropDebug",
    "MAX_RECROP_SCALE",
    "NetworkPredictor",
    "PoseConfig",
    "PoseEstimator",
    "PoseResult",
    "StageTimes",
    "recentred_boxes",
    "spread_order",
]

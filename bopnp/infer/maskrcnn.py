"""Our trained Mask R-CNN as a :class:`bopnp.infer.detect.DetectionSource`: batches of images in, per-image
:class:`bopnp.bop.detections.Detection` lists out (object id, score, box, RLE mask, seconds per image).

Example:
    >>> src = MaskRcnnDetections("results/train/demo/detector/best.pt")            # doctest: +SKIP
    >>> dets = src([ImageItem(0, 3, rgb)])[0]                                        # doctest: +SKIP
    >>> [(d.obj_id, round(d.score, 2)) for d in dets[:2]]                            # doctest: +SKIP
    [(4, 0.98), (1, 0.95)]
"""

from __future__ import annotations

import os
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from torch import nn

from bopnp.bop.detections import Detection
from bopnp.bop.rle import Rle
from bopnp.errors import CheckpointError, ConfigError, ShapeError
from bopnp.infer.detect import ImageItem
from bopnp.models.detector import DetectorSpec, build_from_spec
from bopnp.train.checkpoint import load_checkpoint


def load_detector(path: str | os.PathLike, device: str | torch.device = "cpu") -> tuple[nn.Module, list[int]]:
    """The Mask R-CNN of a ``bopnp train --stage detector`` checkpoint, in eval mode on ``device``.

    Returns:
        (model, obj_ids): label ``k + 1`` is object ``obj_ids[k]``.
    Raises:
        CheckpointError: missing or unreadable file, or the checkpoint of another stage.
    """
    ckpt = load_checkpoint(path, map_location="cpu")
    if "detector" not in ckpt or "obj_ids" not in ckpt:
        raise CheckpointError(
            f"{path}: not a detector checkpoint (it has no network description; a pose network's?); pass best.pt "
            "of a `bopnp train NAME --stage detector` run"
        )
    model = build_from_spec(DetectorSpec.from_dict(ckpt["detector"]))
    try:
        model.load_state_dict(ckpt["model"])
    except RuntimeError as exc:
        raise CheckpointError(f"{path}: the weights do not fit the network it describes ({str(exc)[:300]})") from None
    return model.to(device).eval(), [int(o) for o in ckpt["obj_ids"]]


class MaskRcnnDetections:
    """Detections of a trained Mask R-CNN, batched on one device.

    Args:
        checkpoint: a detector checkpoint (``best.pt`` of ``bopnp train NAME --stage detector``), or
        model: a built detector (with ``obj_ids``: label ``k + 1`` is ``obj_ids[k]``).
        device: where the network runs (``"cpu"``, ``"cuda"``); images are moved there.
        score_threshold: detections scoring below this are dropped.
        mask_threshold: a pixel belongs to the mask where its probability is at least this.
        batch_size: images per forward pass.
    """

    needs_pixels = True

    def __init__(
        self,
        checkpoint: str | os.PathLike | None = None,
        *,
        model: nn.Module | None = None,
        obj_ids: Sequence[int] | None = None,
        device: str | torch.device = "cpu",
        score_threshold: float = 0.05,
        mask_threshold: float = 0.5,
        batch_size: int = 4,
    ):
        if (checkpoint is None) == (model is None):
            raise ConfigError("give a detector checkpoint or a model, one of the two")
        if not 0 <= score_threshold < 1 or not 0 < mask_threshold < 1:
            raise ConfigError(
                f"score_threshold must be in [0, 1) and mask_threshold in (0, 1), got {score_threshold}, "
                f"{mask_threshold}"
            )
        if batch_size < 1:
            raise ConfigError(f"batch_size must be at least 1, got {batch_size}")
        self.device = torch.device(device)
        if checkpoint is not None:
            self.path: Path | None = Path(checkpoint)
            self.model, self.obj_ids = load_detector(checkpoint, self.device)
        else:
            if obj_ids is None:
                raise ConfigError("a detector model needs its obj_ids (label k + 1 is obj_ids[k])")
            self.path, self.model, self.obj_ids = None, model.to(self.device).eval(), [int(o) for o in obj_ids]
        self.score_threshold, self.mask_threshold, self.batch_size = score_threshold, mask_threshold, batch_size

    def __repr__(self) -> str:
        where = str(self.path) if self.path else "a model"
        return f"MaskRcnnDetections({where!r}, objects {self.obj_ids}, on {self.device})"

    def _tensor(self, item: ImageItem) -> torch.Tensor:
        rgb = item.rgb
        if rgb is None:
            raise ShapeError(
                f"scene {item.scene_id} image {item.im_id}: the Mask R-CNN needs the pixels (needs_pixels is True)"
            )
        rgb = np.asarray(rgb)
        if rgb.ndim == 2:
            rgb = np.repeat(rgb[:, :, None], 3, axis=2)
        if rgb.ndim != 3 or rgb.shape[2] != 3:
            raise ShapeError(f"scene {item.scene_id} image {item.im_id}: expected (H, W, 3) RGB, got {rgb.shape}")
        if rgb.dtype == np.uint16:
            rgb = (rgb >> 8).astype(np.uint8)
        if rgb.dtype != np.uint8:
            raise ShapeError(f"scene {item.scene_id} image {item.im_id}: expected uint8 pixels, got {rgb.dtype}")
        t = torch.from_numpy(np.ascontiguousarray(rgb)).to(self.device).permute(2, 0, 1)
        return t.float().div_(255.0)

    @torch.inference_mode()
    def __call__(self, items: Sequence[ImageItem]) -> list[list[Detection]]:
        out: list[list[Detection]] = []
        for start in range(0, len(items), self.batch_size):
            chunk = items[start : start + self.batch_size]
            images = [self._tensor(it) for it in chunk]
            if self.device.type == "cuda":
                torch.cuda.synchronize(self.device)
            t0 = time.perf_counter()
            results = self.model(images)
            if self.device.type == "cuda":
                torch.cuda.synchronize(self.device)
            seconds = (time.perf_counter() - t0) / len(chunk)
            for item, res in zip(chunk, results):
                out.append(self._detections(item, res, seconds))
        return out

    def _detections(self, item: ImageItem, res: dict[str, torch.Tensor], seconds: float) -> list[Detection]:
        keep = res["scores"] >= self.score_threshold
        boxes = res["boxes"][keep].float().cpu().numpy().astype(np.float64)
        scores = res["scores"][keep].float().cpu().numpy()
        labels = res["labels"][keep].cpu().numpy()
        masks = (res["masks"][keep][:, 0] >= self.mask_threshold).cpu().numpy()
        dets = []
        for box, score, label, mask in zip(boxes, scores, labels, masks):
            x1, y1, x2, y2 = box
            dets.append(
                Detection(
                    scene_id=int(item.scene_id),
                    im_id=int(item.im_id),
                    obj_id=self.obj_ids[int(label) - 1],
                    score=float(score),
                    bbox_xywh=np.array([x1, y1, x2 - x1, y2 - y1]),
                    rle=Rle.encode(mask),
                    time_s=float(seconds),
                )
            )
        return dets


__all__ = ["MaskRcnnDetections", "load_detector"]

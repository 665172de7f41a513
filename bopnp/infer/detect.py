"""The detection stage behind one interface: whatever produces them, detections arrive per image as
:class:`bopnp.bop.detections.Detection` lists, so the pose stage never knows their source.

Three sources implement :class:`DetectionSource`:

- :class:`FileDetections`: a BOP default-detections file (COCO-style json, as BOP publishes for pose-only
  methods), keyed by image; the pixels are not looked at.
- :class:`GtDetections`: the ground truth's visible boxes and masks with score 1, an oracle detector that scores
  the pose stage alone.
- a trained Mask R-CNN (``bopnp.infer.maskrcnn``), batched on the input's device.

:func:`select_detections` then keeps, per object, what the test targets ask for, and :func:`detection_mask`
gives every detection a mask (748 of the 4572 LM-O default detections have an empty one: the box stands in).

Example:
    >>> import numpy as np
    >>> from bopnp.bop.detections import Detection
    >>> d = Detection(1, 3, 5, 0.9, np.array([10.0, 20.0, 4.0, 2.0]))
    >>> int(detection_mask(d, (48, 64)).sum())
    8
"""

from __future__ import annotations

import os
from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import numpy as np

from bopnp.bop.dataset import BopDataset
from bopnp.bop.detections import Detection, load_detections
from bopnp.bop.rle import Rle

ImageKey = tuple[int, int]  # (scene_id, im_id)


@dataclass(frozen=True, eq=False)
class ImageItem:
    """One image to detect in.

    Attributes:
        scene_id, im_id: the image's BOP keys.
        rgb: (H, W, 3) uint8 RGB, or None for sources that do not look at pixels (a detections file).
    """

    scene_id: int
    im_id: int
    rgb: np.ndarray | None = None

    @property
    def key(self) -> ImageKey:
        return (int(self.scene_id), int(self.im_id))


class DetectionSource(Protocol):
    """Turns a batch of images into per-image detections.

    ``needs_pixels`` tells the caller whether ``ImageItem.rgb`` must be loaded. ``__call__(items)`` returns one
    list per item (possibly empty), each detection with ``time_s`` the source's seconds for that image (-1 when
    unknown).
    """

    needs_pixels: bool

    def __call__(self, items: Sequence[ImageItem]) -> list[list[Detection]]: ...


class FileDetections:
    """The detections of a BOP COCO-style file, served per image.

    Args:
        path: ``.json`` or ``.json.gz`` (e.g. BOP's ``cosypose-maskrcnn-pbr_lmo-test.json``).
    Raises:
        ResultsFormatError: the file is missing or malformed (every bad entry is listed).
    """

    needs_pixels = False

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)
        by_image: dict[ImageKey, list[Detection]] = defaultdict(list)
        for det in load_detections(self.path):
            by_image[(det.scene_id, det.im_id)].append(det)
        self.by_image = dict(by_image)

    def __repr__(self) -> str:
        return f"FileDetections({str(self.path)!r}, {len(self.by_image)} images)"

    def keys(self) -> list[ImageKey]:
        """The images the file has detections for, sorted."""
        return sorted(self.by_image)

    def __call__(self, items: Sequence[ImageItem]) -> list[list[Detection]]:
        return [list(self.by_image.get(item.key, [])) for item in items]


class GtDetections:
    """The ground truth as detections: per annotated instance with a visible part, its ``bbox_visib`` from
    ``scene_gt_info.json``, its ``mask_visib`` png as the mask (when the split has it), score 1 and time 0.

    Args:
        dataset: a :class:`BopDataset` opened on the split (it needs ``scene_gt.json`` and ``scene_gt_info.json``).
        masks: attach the visible masks (reads one png per instance); False: boxes only.
    Raises:
        DatasetError: (when called) a scene without ``scene_gt.json`` or ``scene_gt_info.json``, saying how to
        make the latter.
    """

    needs_pixels = False

    def __init__(self, dataset: BopDataset, masks: bool = True):
        self.dataset = dataset
        self.masks = masks

    def __repr__(self) -> str:
        return f"GtDetections({str(self.dataset.split_path)!r})"

    def image(self, scene_id: int, im_id: int) -> list[Detection]:
        """The detections of one image (empty for an image without annotations)."""
        ds = self.dataset
        gts = ds.scene_gt(scene_id).get(im_id, [])
        infos = ds.scene_gt_info(scene_id).get(im_id, [])
        out = []
        for gt_id, (gt, info) in enumerate(zip(gts, infos)):
            box = np.asarray(info.bbox_visib, np.float64)
            if info.px_count_visib <= 0 or box[2] < 0 or box[3] < 0:
                continue
            rle = None
            path = ds.mask_path(scene_id, im_id, gt_id)
            if self.masks and path.is_file():
                rle = Rle.encode(ds.mask(scene_id, im_id, gt_id))
            out.append(Detection(int(scene_id), int(im_id), int(gt.obj_id), 1.0, box, rle, 0.0))
        return out

    def __call__(self, items: Sequence[ImageItem]) -> list[list[Detection]]:
        return [self.image(*item.key) for item in items]


def select_detections(
    detections: Sequence[Detection],
    wanted: Mapping[int, int],
    *,
    min_score: float = 0.0,
    extra: int = 0,
) -> list[Detection]:
    """The detections the pose stage works on: per object, the best-scoring ones the targets ask for.

    Args:
        detections: one image's detections.
        wanted: obj_id -> number of instances the test targets ask for in this image; other objects are dropped.
        min_score: detections scoring below this are dropped first.
        extra: keep this many more candidates per object than asked for.
    Returns:
        the kept detections, by object id then falling score.
    """
    by_obj: dict[int, list[Detection]] = defaultdict(list)
    for det in detections:
        if det.obj_id in wanted and det.score >= min_score:
            by_obj[det.obj_id].append(det)
    out: list[Detection] = []
    for obj_id in sorted(by_obj):
        ranked = sorted(by_obj[obj_id], key=lambda d: -d.score)
        out.extend(ranked[: max(0, int(wanted[obj_id])) + max(0, int(extra))])
    return out


def detection_mask(det: Detection, shape: tuple[int, int]) -> np.ndarray:
    """The detection's instance mask, or its box filled where the mask is missing or empty.

    Args:
        det: a detection.
        shape: (H, W) of the image, pixels.
    Returns:
        (H, W) bool.
    """
    H, W = int(shape[0]), int(shape[1])
    if det.rle is not None and (det.rle.height, det.rle.width) == (H, W):
        mask = det.rle.decode()
        if mask.any():
            return mask
    x, y, w, h = (float(v) for v in np.asarray(det.bbox_xywh).reshape(4))
    x0, y0 = int(np.clip(np.floor(x), 0, W)), int(np.clip(np.floor(y), 0, H))
    x1, y1 = int(np.clip(np.ceil(x + w), 0, W)), int(np.clip(np.ceil(y + h), 0, H))
    mask = np.zeros((H, W), dtype=bool)
    mask[y0:y1, x0:x1] = True
    return mask


__all__ = [
    "DetectionSource",
    "FileDetections",
    "GtDetections",
    "ImageItem",
    "ImageKey",
    "detection_mask",
    "select_detections",
]

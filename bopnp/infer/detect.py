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
from bopnp.errors import DatasetError, ResultsFormatError

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
        self._entry: dict[int, int] = {}  # id(detection) -> its index in the file, to name it in messages
        for k, det in enumerate(load_detections(self.path)):
            by_image[(det.scene_id, det.im_id)].append(det)
            self._entry[id(det)] = k
        self.by_image = dict(by_image)

    def __repr__(self) -> str:
        return f"FileDetections({str(self.path)!r}, {len(self.by_image)} images)"

    def keys(self) -> list[ImageKey]:
        """The images the file has detections for, sorted."""
        return sorted(self.by_image)

    def __call__(self, items: Sequence[ImageItem]) -> list[list[Detection]]:
        return [list(self.by_image.get(item.key, [])) for item in items]

    def audit(self, dataset: BopDataset) -> list[str]:
        """Check the file against the dataset before any pose is estimated, and drop what cannot give a pose.

        Refuses masks whose size is not the images' (``camera.json``): decoded on another grid they would
        move every pose. Drops detections with a zero- or negative-size box (no crop can come from them)
        so that they take no target's place. Counts detections of images the split lacks, of objects that
        ``models_info.json`` does not list, and with an empty mask (their box stands in for it: 748 of
        BOP's LM-O default detections have one).

        Returns:
            one line per kind of detection dropped or ignored (empty when there is none).
        Raises:
            ResultsFormatError: masks of the wrong size, each named by its entry in the file.
        """
        index = self._entry
        dets = sorted((d for v in self.by_image.values() for d in v), key=lambda d: index[id(d)])

        def name(d: Detection) -> str:
            return f"[{index[id(d)]}] (scene {d.scene_id} image {d.im_id} object {d.obj_id}, score {d.score:.3g})"

        size = (dataset.camera.height, dataset.camera.width) if dataset.camera_path.is_file() else None
        wrong = [d for d in dets if size is not None and d.rle is not None and (d.rle.height, d.rle.width) != size]
        if wrong:
            raise ResultsFormatError(
                f"{self.path}: {len(wrong)} detection mask(s) are not of the images' size {size[1]}x{size[0]} "
                f"({dataset.camera_path}): are the detections for another dataset or image size?",
                [
                    f"{name(d)}: segmentation size [{d.rle.height}, {d.rle.width}] (height, width), the images are "
                    f"[{size[0]}, {size[1]}]"
                    for d in wrong[:SHOWN_DETECTIONS]
                ]
                + ([f"... {len(wrong) - SHOWN_DETECTIONS} more"] if len(wrong) > SHOWN_DETECTIONS else []),
            )
        images = {(s, i) for s in dataset.scene_ids() for i in dataset.image_ids(s)}
        known = set(dataset.models_info)
        notes = []
        kinds = (
            ("of images that the split does not have: ignored", lambda d: (d.scene_id, d.im_id) not in images, False),
            (f"of objects not in {dataset.models_info_path}: ignored", lambda d: d.obj_id not in known, False),
            ("with a zero- or negative-size box: dropped, no pose can come from them", _no_box, True),
            (
                "with an empty mask: their box stands in for the mask",
                lambda d: d.rle is not None and d.rle.area == 0,
                False,
            ),
        )
        for what, test, drop in kinds:
            hit = [d for d in dets if test(d)]
            if hit:
                first = "; ".join(name(d) for d in hit[:3])
                notes.append(f"{self.path.name}: {len(hit)} detection(s) {what} (first: {first})")
                if drop:
                    gone = {id(d) for d in hit}
                    self.by_image = {k: [d for d in v if id(d) not in gone] for k, v in self.by_image.items()}
        return notes


#: detections named one by one in a refusal; the rest are counted
SHOWN_DETECTIONS = 10


def audit_detections(source: DetectionSource, dataset: BopDataset) -> list[str]:
    """:meth:`FileDetections.audit` for a detections file; nothing to check (empty) for other sources."""
    return source.audit(dataset) if isinstance(source, FileDetections) else []


def _no_box(d: Detection) -> bool:
    _, _, w, h = np.asarray(d.bbox_xywh, np.float64).reshape(4)
    return not (w > 0 and h > 0)


def check_image_size(dataset: BopDataset, key: ImageKey, image: np.ndarray) -> None:
    """Refuse an image whose size is not ``camera.json``'s: its intrinsics, and any detections or ground truth
    made for that size, would not fit it. No check when the dataset has no camera file.

    Raises:
        DatasetError: naming the image file and both sizes.
    """
    if not dataset.camera_path.is_file():
        return
    cam = dataset.camera
    h, w = np.asarray(image).shape[:2]
    if (w, h) != (cam.width, cam.height):
        raise DatasetError(
            f"{dataset.image_path(*key)}: the image is {w}x{h} pixels but {dataset.camera_path} says "
            f"{cam.width}x{cam.height} (width x height): its intrinsics (scene_camera.json) are for that size; "
            "resize the images back, or fix camera.json and scene_camera.json for this size"
        )


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
    "audit_detections",
    "check_image_size",
    "FileDetections",
    "GtDetections",
    "ImageItem",
    "ImageKey",
    "detection_mask",
    "select_detections",
]

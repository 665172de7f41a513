"""The detector's training data: whole images of a BOP split with their visible instances, in torchvision's detection
format, augmented with ``torchvision.transforms.v2`` so boxes and masks follow the image.

Instances come from ``scene_gt_info.json``: those of the chosen objects at least ``min_visib_fract`` visible, with
their ``bbox_visib`` box and ``mask_visib`` mask (read when the item is loaded, never before); images without such
an instance are skipped. Labels are the object's index in ``obj_ids`` plus one (0 is the background).

Boxes are x1y1x2y2 with pixel edges: a mask covering columns 4..19 has ``x1 = 4``, ``x2 = 20`` (bop_toolkit's
``bbox_visib`` width is ``x_max - x_min``, so ``x2 = x + w + 1``), as COCO and ``masks_to_boxes + 1`` count them.

Augmentation (:class:`DetectionAugmentConfig`): scale jitter (a random zoom in or out about a random point,
the image size kept), colour jitter, blur and noise. Horizontal flips are off by default: a mirrored object is
another object. Every item is augmented with its own seed, as :class:`bopnp.data.training_set.TrainingSet`, so a
resumed run sees the same images.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor
from torch.utils.data import Dataset

from bopnp.bop.dataset import BopDataset
from bopnp.data.training_set import index_seed
from bopnp.errors import ConfigError, DatasetError


@dataclass(frozen=True)
class DetectionAugmentConfig:
    """Augmentation of whole training images.

    Attributes:
        scale_range: (low, high) zoom factor of the scale jitter (> 1 zooms in, < 1 zooms out and pads with black);
            (1, 1) disables it.
        max_shift: the zoom centre moves by up to this fraction of the image size (each axis, uniform).
        color: colour jitter (``brightness``, ``contrast``, ``saturation``, ``hue``: ``v2.ColorJitter`` ranges; hue
            is off by default: it costs a third of an item's time and colours tell objects apart),
            blur (probability ``blur_p``) and additive Gaussian noise (``noise_std``; 0 disables it).
        hflip_p: probability of a horizontal flip (0 by default: it turns an object into its mirror image).
        min_mask_px: instances with fewer visible pixels after the zoom are dropped.
    """

    scale_range: tuple[float, float] = (0.75, 1.33)
    max_shift: float = 0.1
    color: bool = True
    brightness: float = 0.3
    contrast: float = 0.3
    saturation: float = 0.3
    hue: float = 0.0
    blur_p: float = 0.2
    noise_std: float = 0.02
    hflip_p: float = 0.0
    min_mask_px: int = 16

    def validate(self) -> DetectionAugmentConfig:
        lo, hi = self.scale_range
        if not 0 < lo <= hi:
            raise ConfigError(f"augment scale_range must be 0 < low <= high, got {self.scale_range}")
        if not 0 <= self.max_shift < 0.5:
            raise ConfigError(f"augment max_shift must be in [0, 0.5), got {self.max_shift}")
        for name in ("blur_p", "hflip_p"):
            if not 0 <= getattr(self, name) <= 1:
                raise ConfigError(f"augment {name} must be a probability in [0, 1], got {getattr(self, name)}")
        if self.noise_std < 0:
            raise ConfigError(f"augment noise_std must be >= 0, got {self.noise_std}")
        if self.min_mask_px < 1:
            raise ConfigError(f"augment min_mask_px must be at least 1, got {self.min_mask_px}")
        return self

    def color_transform(self):
        """The image-only ``v2`` pipeline (colour jitter, blur, noise) on a float image, or None."""
        from torchvision.transforms import v2

        if not self.color:
            return None
        steps = [
            v2.ColorJitter(
                brightness=self.brightness, contrast=self.contrast, saturation=self.saturation, hue=self.hue
            ),
            v2.RandomApply([v2.GaussianBlur(kernel_size=5, sigma=(0.1, 1.5))], p=self.blur_p),
        ]
        if self.noise_std > 0:
            steps.append(v2.GaussianNoise(mean=0.0, sigma=self.noise_std, clip=True))
        return v2.Compose(steps)


def output_size(height: int, width: int, min_size: int | None, max_size: int | None) -> tuple[int, int]:
    """The size torchvision's detection transform resizes an image to: the short side to ``min_size``, unless the
    long side would pass ``max_size`` (None: the image's own size).

    >>> output_size(480, 640, 240, 320)
    (240, 320)
    """
    if min_size is None:
        return height, width
    scale = min_size / min(height, width)
    if max_size is not None:
        scale = min(scale, max_size / max(height, width))
    return max(1, round(height * scale)), max(1, round(width * scale))


@dataclass(frozen=True)
class ImageRecord:
    """One training image and its kept instances.

    Attributes:
        scene_id, im_id: the image.
        gt_ids: (N,) the instances' positions in ``scene_gt.json``.
        obj_ids: (N,) their objects.
        boxes_xyxy: (N, 4) float32 x1y1x2y2 (pixel edges) from ``bbox_visib``.
    """

    scene_id: int
    im_id: int
    gt_ids: tuple[int, ...]
    obj_ids: tuple[int, ...]
    boxes_xyxy: np.ndarray

    @property
    def key(self) -> tuple[int, int]:
        return (self.scene_id, self.im_id)


def detection_records(
    dataset: BopDataset, obj_ids: Sequence[int], min_visib_fract: float = 0.1, scene_ids: Sequence[int] | None = None
) -> list[ImageRecord]:
    """The images of ``dataset``'s split that show at least one instance of ``obj_ids`` at least
    ``min_visib_fract`` visible, in scene and image order.

    Raises:
        DatasetError: a scene has no ``scene_gt_info.json`` (the message says to run ``bopnp prepare``).
    """
    wanted = {int(o) for o in obj_ids}
    out = []
    for scene_id in dataset.scene_ids() if scene_ids is None else scene_ids:
        gts = dataset.scene_gt(scene_id)
        infos = dataset.scene_gt_info(scene_id)
        for im_id in sorted(gts):
            info = infos.get(im_id, [])
            keep = []
            for gt_id, g in enumerate(gts[im_id]):
                if g.obj_id not in wanted or gt_id >= len(info):
                    continue
                x, y, w, h = (float(v) for v in info[gt_id].bbox_visib)
                if info[gt_id].visib_fract >= min_visib_fract and w >= 0 and h >= 0 and x >= 0:
                    keep.append((gt_id, g.obj_id, (x, y, x + w + 1, y + h + 1)))
            if keep:
                out.append(
                    ImageRecord(
                        scene_id,
                        im_id,
                        tuple(k[0] for k in keep),
                        tuple(k[1] for k in keep),
                        np.asarray([k[2] for k in keep], np.float32).reshape(-1, 4),
                    )
                )
    return out


def masks_to_boxes_xyxy(masks: Tensor) -> Tensor:
    """Pixel-edge boxes of masks.

    Args:
        masks: (N, H, W) bool or uint8, none empty.
    Returns:
        (N, 4) float32 x1y1x2y2 (``x2`` = last column + 1).
    """
    from torchvision.ops import masks_to_boxes

    if len(masks) == 0:
        return torch.zeros(0, 4)
    return masks_to_boxes(masks.bool()) + torch.tensor([0.0, 0.0, 1.0, 1.0])


class DetectionSet(Dataset):
    """Images and targets for the detector.

    Args:
        dataset: a :class:`BopDataset` with a split (``train_pbr``, ``train``, ...).
        obj_ids: the objects the detector learns (label = index in this sorted list + 1).
        records: the images to serve (see :func:`detection_records`; None: all of the split).
        min_visib_fract: with ``records=None``: instances less visible than this are not targets.
        augment: the augmentation, or None (validation).
        min_size, max_size: resize images (and masks) as the detector will (see :func:`output_size`), so that
            loading and augmentation work on the pixels the network sees; None keeps the image size.

    ``dataset[i]`` or ``dataset[(i, seed)]`` is a dict:
        ``image``: (3, h, w) float32 RGB in [0, 1].
        ``boxes``: (N, 4) float32 x1y1x2y2 pixels of ``image``. ``labels``: (N,) int64 in 1..len(obj_ids).
        ``masks``: (N, h, w) uint8 in {0, 1}. ``gt_ids``: (N,) int64.
        ``scene_id``, ``im_id``: int64 scalars; ``scale``: float32 scalar, ``image`` pixels per original pixel
        (without augmentation).
    N may be 0 when the augmentation zoomed every instance out of the picture.
    """

    def __init__(
        self,
        dataset: BopDataset,
        obj_ids: Sequence[int],
        records: Sequence[ImageRecord] | None = None,
        *,
        min_visib_fract: float = 0.1,
        augment: DetectionAugmentConfig | None = None,
        min_size: int | None = None,
        max_size: int | None = None,
    ):
        self.dataset = dataset
        self.obj_ids = sorted(int(o) for o in obj_ids)
        if not self.obj_ids:
            raise ConfigError("the detector needs at least one object id")
        if records is None:
            records = detection_records(dataset, self.obj_ids, min_visib_fract)
        self.records = list(records)
        self.augment = augment.validate() if augment is not None else None
        self._color = self.augment.color_transform() if self.augment is not None else None
        self._label = {o: k + 1 for k, o in enumerate(self.obj_ids)}
        self.min_size, self.max_size = min_size, max_size

    def __len__(self) -> int:
        return len(self.records)

    def label_of(self, obj_id: int) -> int:
        """The label of an object id (its index in :attr:`obj_ids` + 1)."""
        return self._label[int(obj_id)]

    def _load(self, rec: ImageRecord) -> tuple[Tensor, Tensor]:
        ds = self.dataset
        rgb = ds.image(rec.scene_id, rec.im_id)
        if rgb.ndim == 2:
            rgb = np.repeat(rgb[:, :, None], 3, axis=2)
        if rgb.dtype != np.uint8:
            rgb = (rgb >> 8).astype(np.uint8)
        H, W = rgb.shape[:2]
        masks = np.zeros((len(rec.gt_ids), H, W), np.uint8)
        for k, gt_id in enumerate(rec.gt_ids):
            m = ds.mask(rec.scene_id, rec.im_id, gt_id, visib=True)
            if m.shape != (H, W):
                raise DatasetError(
                    f"{ds.mask_path(rec.scene_id, rec.im_id, gt_id)}: mask is {m.shape[1]}x{m.shape[0]} but the image "
                    f"is {W}x{H}; the split's masks do not belong to its images"
                )
            masks[k] = m
        return torch.from_numpy(np.ascontiguousarray(rgb)).permute(2, 0, 1), torch.from_numpy(masks)

    def __getitem__(self, key: int | tuple[int, int]) -> dict[str, Tensor]:
        from torchvision import tv_tensors
        from torchvision.transforms.v2 import functional as TF

        index, seed = key if isinstance(key, tuple) else (key, index_seed(0, 0, key))
        if not 0 <= int(index) < len(self):
            raise IndexError(f"index {index} out of range for {len(self)} images")
        rec = self.records[int(index)]
        image_u8, masks = self._load(rec)
        H, W = image_u8.shape[-2:]
        oh, ow = output_size(H, W, self.min_size, self.max_size)
        labels = torch.tensor([self._label[o] for o in rec.obj_ids], dtype=torch.int64)
        gt_ids = torch.tensor(rec.gt_ids, dtype=torch.int64)
        boxes = tv_tensors.BoundingBoxes(torch.from_numpy(rec.boxes_xyxy.copy()), format="XYXY", canvas_size=(H, W))
        sample = (tv_tensors.Image(image_u8), tv_tensors.Mask(masks), boxes)
        aug = self.augment
        gen = torch.Generator().manual_seed(int(seed))
        if aug is None:
            if (oh, ow) != (H, W):
                sample = tuple(TF.resize(x, [oh, ow], antialias=True) for x in sample)
        else:
            # scale jitter: the zoomed window of the image (padded with black where it leaves it), resized to the
            # output size; boxes and masks follow the image
            lo, hi = aug.scale_range
            u = torch.rand(4, generator=gen, dtype=torch.float64).tolist()
            zoom = lo * (hi / lo) ** u[0]  # log-uniform: zooming in and out equally likely
            ch, cw = H / zoom, W / zoom
            cy = H / 2 + (2 * u[1] - 1) * aug.max_shift * H
            cx = W / 2 + (2 * u[2] - 1) * aug.max_shift * W
            top, left = round(cy - ch / 2), round(cx - cw / 2)
            sample = tuple(
                TF.resized_crop(x, top, left, round(ch), round(cw), [oh, ow], antialias=True) for x in sample
            )
            if u[3] < aug.hflip_p:
                sample = tuple(TF.horizontal_flip(x) for x in sample)
        image = sample[0].as_subclass(Tensor).float().div_(255.0)
        masks = sample[1].as_subclass(Tensor).contiguous()
        boxes = sample[2].as_subclass(Tensor).float()
        if aug is not None:
            if self._color is not None:
                with torch.random.fork_rng(devices=[]):
                    torch.default_generator.manual_seed(int(seed) + 1)  # CPU only: seeding CUDA costs ms
                    image = self._color(tv_tensors.Image(image)).as_subclass(Tensor).clamp_(0, 1)
            # what stays visible of each instance: its box is that of its mask
            keep = masks.flatten(1).sum(1) >= aug.min_mask_px
            masks, labels, gt_ids = masks[keep], labels[keep], gt_ids[keep]
            boxes = masks_to_boxes_xyxy(masks)
        return {
            "image": image.contiguous(),
            "boxes": boxes,
            "labels": labels,
            "masks": masks,
            "gt_ids": gt_ids,
            "scene_id": torch.tensor(rec.scene_id),
            "im_id": torch.tensor(rec.im_id),
            "scale": torch.tensor(ow / W, dtype=torch.float32),
        }


def collate_detections(items: Sequence[dict[str, Tensor]]) -> dict:
    """A batch of :class:`DetectionSet` items as the detector takes it.

    Returns:
        ``image``: list of (3, H, W) tensors; ``targets``: list of dicts with ``boxes``, ``labels``, ``masks``;
        ``scene_id``, ``im_id``: (B,) int64; ``gt_ids``: list of (N,) int64.
    """
    return {
        "image": [it["image"] for it in items],
        "targets": [{k: it[k] for k in ("boxes", "labels", "masks")} for it in items],
        "gt_ids": [it["gt_ids"] for it in items],
        "scene_id": torch.stack([it["scene_id"] for it in items]),
        "im_id": torch.stack([it["im_id"] for it in items]),
    }


__all__ = [
    "DetectionAugmentConfig",
    "DetectionSet",
    "ImageRecord",
    "collate_detections",
    "detection_records",
    "masks_to_boxes_xyxy",
]

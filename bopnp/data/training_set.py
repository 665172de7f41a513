"""The pose network's training set: the crops of several objects as one dataset, with Pix2Pose's augmentation,
drawn in an order that a resumed run reproduces exactly.

Every item is augmented with its own seed (passed with the index by :class:`EpochSampler`), not from a global
random state: an item looks the same whichever worker loads it and whether or not the run was interrupted, so a
resumed run ends with the same weights as an uninterrupted one.

Augmentation (:class:`AugmentConfig`), as Pix2Pose trains: box jitter (detector errors), a random background
replacing every pixel outside the visible mask (a procedural texture or another training crop: no image corpus is
needed), random occluders covering part of the object's box, then colour jitter, blur and noise. The targets keep the
full object's coordinates, so the network learns to predict occluded parts.

Two paths give it: per item in the loader (``TrainingSet(..., augment)``: the reference, and what a preview of one
item uses), or, with ``device_augment=True``, batched on the training device: the items are the raw crops, their
seeds and the background crops they draw, and :func:`bopnp.data.batch_augment.augment_batch` augments the collated
batch where the network runs.
"""

from __future__ import annotations

from bisect import bisect_right
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor
from torch.utils.data import Dataset, Sampler

from bopnp.data.augment import BoxJitter, color_augment
from bopnp.data.crop_dataset import CropDataset
from bopnp.errors import ConfigError


@dataclass(frozen=True)
class AugmentConfig:
    """Pix2Pose's augmentation of training crops.

    Attributes:
        background_p: probability of replacing the pixels outside the visible mask.
        background_crop_p: of those, the share that takes another training crop as background (else a texture).
        occluder_p: probability of pasting a random occluder.
        occluder_cover: (low, high) share of the object's box the occluder covers.
        box_shift, box_scale: box jitter (see :class:`bopnp.data.augment.BoxJitter`); shift 0 and scale (1, 1)
            disable it.
        color: colour jitter, blur and noise (:func:`bopnp.data.augment.color_augment`).
    """

    background_p: float = 0.8
    background_crop_p: float = 0.5
    occluder_p: float = 0.5
    occluder_cover: tuple[float, float] = (0.2, 0.7)
    box_shift: float = 0.1
    box_scale: tuple[float, float] = (0.85, 1.15)
    color: bool = True

    def validate(self) -> None:
        for name in ("background_p", "background_crop_p", "occluder_p"):
            v = getattr(self, name)
            if not 0.0 <= v <= 1.0:
                raise ConfigError(f"augment {name} must be a probability in [0, 1], got {v}")
        lo, hi = self.occluder_cover
        if not 0.0 < lo <= hi <= 1.0:
            raise ConfigError(f"augment occluder_cover must be 0 < low <= high <= 1, got {self.occluder_cover}")
        BoxJitter(self.box_shift, self.box_scale).validate()

    @classmethod
    def preset(cls, name: str) -> AugmentConfig:
        """A named strength: ``pix2pose`` (the defaults: for training on renders that must transfer to real
        photos), ``light`` (textured backgrounds on a third of the crops, small occluders on a fifth, box and colour
        jitter: for test images rendered like the training ones, where a CPU budget cannot afford the full strength)
        or ``none``."""
        if name == "pix2pose":
            return cls()
        if name == "light":
            return cls(background_p=0.3, background_crop_p=0.0, occluder_p=0.2, occluder_cover=(0.1, 0.4))
        if name == "none":
            return cls(background_p=0.0, occluder_p=0.0, box_shift=0.0, box_scale=(1.0, 1.0), color=False)
        raise ConfigError(f"unknown augmentation {name!r}: use one of {list(AUGMENT_PRESETS)}")

    @property
    def box_jitter(self) -> BoxJitter | None:
        if self.box_shift == 0 and tuple(self.box_scale) == (1.0, 1.0):
            return None
        return BoxJitter(self.box_shift, tuple(self.box_scale))


#: the names :meth:`AugmentConfig.preset` knows, strongest first
AUGMENT_PRESETS = ("pix2pose", "light", "none")


def procedural_texture(size: int, generator: torch.Generator) -> Tensor:
    """A random background: smooth colour noise at a random scale over a colour gradient.

    Returns:
        (3, size, size) float32 in [0, 1].
    """
    cells = int(torch.randint(2, 17, (1,), generator=generator))
    noise = torch.rand(1, 3, cells, cells, generator=generator)
    smooth = F.interpolate(noise, size=(size, size), mode="bicubic", align_corners=False)[0]
    ramp = torch.linspace(0, 1, size)
    c0, c1 = torch.rand(3, 1, 1, generator=generator), torch.rand(3, 1, 1, generator=generator)
    w = float(torch.rand(1, generator=generator))
    gradient = c0 + (c1 - c0) * (ramp[None, :, None] if w < 0.5 else ramp[None, None, :])
    mix = float(torch.rand(1, generator=generator))
    return (mix * smooth + (1 - mix) * gradient).clamp(0, 1)


def occluder_mask(box_xyxy: Sequence[int], size: int, cover: float, generator: torch.Generator) -> Tensor:
    """A random ellipse or rectangle covering about ``cover`` of the box ``(x1, y1, x2, y2)`` (crop pixels).

    Returns:
        (size, size) bool.
    """
    x1, y1, x2, y2 = box_xyxy
    bw, bh = max(x2 - x1, 1), max(y2 - y1, 1)
    aspect = float(torch.empty(1).uniform_(0.5, 2.0, generator=generator))
    ellipse = float(torch.rand(1, generator=generator)) < 0.5
    # the shape's bounding rectangle: an ellipse fills pi/4 of it; clipped to the box, the other side grows
    area = min(cover * bw * bh * (4 / torch.pi if ellipse else 1.0), bw * bh)
    w = min((area * aspect) ** 0.5, bw)
    h = min(area / w, bh)
    w = min(area / h, bw)
    cx = x1 + w / 2 + float(torch.rand(1, generator=generator)) * (bw - w)
    cy = y1 + h / 2 + float(torch.rand(1, generator=generator)) * (bh - h)
    yy, xx = torch.meshgrid(torch.arange(size) + 0.5, torch.arange(size) + 0.5, indexing="ij")
    if ellipse:
        return (((xx - cx) / (w / 2)) ** 2 + ((yy - cy) / (h / 2)) ** 2) <= 1
    return ((xx - cx).abs() <= w / 2) & ((yy - cy).abs() <= h / 2)


class TrainingSet(Dataset):
    """Crops of several objects as one dataset for the class-aware network.

    Args:
        datasets: per object id, its :class:`CropDataset` (no image transform or box jitter of its own).
        augment: the augmentation, or None (validation).
        indices: keep only these crops (positions in the objects' crops one after another, object by object in
            ``obj_ids`` order); None keeps all.

        device_augment: leave the augmentation to :func:`bopnp.data.batch_augment.augment_batch` on the collated
            batch: items are not augmented here but carry what it needs (below).

    ``dataset[i]`` or ``dataset[(i, seed)]`` is the :class:`CropDataset` item, augmented with ``seed``, plus
        ``obj_index``: int64 position of its object in :attr:`obj_ids`;
        ``pool``: (P, 4, 4) float32 symmetry pool padded with identities to the largest pool of the set;
        ``centre_mm``, ``half_extent_mm``: (3,) float32 normalisation of its object.
    With ``device_augment`` (and an augmentation) the item is the raw crop plus
        ``aug_seed``: int64 scalar, the seed; ``background_index``: int64 scalar, the training crop whose image is
        the item's background (:func:`bopnp.data.batch_augment.background_choice`), or -1; ``background``:
        (3, S, S) uint8, that crop's image (zeros when there is none).
    """

    def __init__(
        self,
        datasets: Mapping[int, CropDataset],
        augment: AugmentConfig | None = None,
        indices: Sequence[int] | None = None,
        device_augment: bool = False,
    ):
        if not datasets:
            raise ConfigError("a training set needs at least one object with crops; run `bopnp prepare NAME` first")
        if augment is not None:
            augment.validate()
        self.obj_ids = sorted(int(o) for o in datasets)
        self.datasets = [datasets[o] for o in self.obj_ids]
        self.device_augment = bool(device_augment) and augment is not None
        for ds in self.datasets:
            ds.box_jitter = None
            ds.image_transform = None
        self.augment = augment
        self._color = color_augment() if augment is not None and augment.color and not self.device_augment else None
        self.offsets = [0]
        for ds in self.datasets:
            self.offsets.append(self.offsets[-1] + len(ds))
        total = self.offsets[-1]
        self.indices = list(range(total)) if indices is None else [int(i) for i in indices]
        if any(not 0 <= i < total for i in self.indices):
            raise ConfigError(f"indices must lie in [0, {total}): the objects have {total} crops")
        p_max = max(len(ds.symmetry_pool) for ds in self.datasets)
        self.pools = [_pad_pool(ds.symmetry_pool, p_max) for ds in self.datasets]
        self.norms = [
            tuple(torch.as_tensor(a, dtype=torch.float32) for a in ds.xyz_normalisation) for ds in self.datasets
        ]

    def __len__(self) -> int:
        return len(self.indices)

    def locate(self, index: int) -> tuple[int, int]:
        """(object position, index within that object's crops) of item ``index``."""
        if not 0 <= index < len(self):
            raise IndexError(f"index {index} out of range for {len(self)} crops")
        g = self.indices[index]
        k = bisect_right(self.offsets, g) - 1
        return k, g - self.offsets[k]

    def all_records(self) -> list[dict]:
        """The ``index.json`` record of every crop of the objects (all of them, whatever ``indices`` keeps)."""
        return [ds.record(i) for ds in self.datasets for i in range(len(ds))]

    def __getitem__(self, key: int | tuple[int, int]) -> dict[str, Tensor]:
        index, seed = key if isinstance(key, tuple) else (key, index_seed(0, 0, key))
        k, local = self.locate(int(index))
        if self.device_augment:
            item = self.datasets[k][local]
            item.update(self._background(int(seed), item["image"].shape[-1]))
        else:
            with torch.random.fork_rng(devices=[]):
                # the CPU generator only: torch.manual_seed also seeds CUDA, which costs a quarter of the loading time
                torch.default_generator.manual_seed(int(seed))
                item = self.datasets[k].jittered(local, self.augment.box_jitter if self.augment else None)
                if self.augment is not None:
                    item["image"] = self._augment(item, torch.Generator().manual_seed(int(seed) + 1))
        item["obj_index"] = torch.tensor(k)
        item["pool"] = self.pools[k]
        item["centre_mm"], item["half_extent_mm"] = self.norms[k]
        return item

    def _background(self, seed: int, size: int) -> dict[str, Tensor]:
        """What the batched augmentation needs of this item besides the crop: its seed and background crop."""
        from bopnp.data.batch_augment import background_choice

        aug = self.augment
        seed_t = torch.tensor([seed], dtype=torch.long)
        other = int(background_choice(seed_t, aug.background_p, aug.background_crop_p, len(self))[0])
        if other >= 0:
            k, local = self.locate(other)
            rgb = self.datasets[k].raw(local, ("rgb",))["rgb"]
            background = torch.from_numpy(rgb).permute(2, 0, 1).contiguous()
        else:
            background = torch.zeros(3, size, size, dtype=torch.uint8)
        return {"aug_seed": seed_t[0], "background_index": torch.tensor(other), "background": background}

    def _augment(self, item: dict[str, Tensor], gen: torch.Generator) -> Tensor:
        aug = self.augment
        image, visib = item["image"], item["mask_visib"]
        S = image.shape[-1]
        if float(torch.rand(1, generator=gen)) < aug.background_p:
            if float(torch.rand(1, generator=gen)) < aug.background_crop_p and len(self) > 1:
                other = int(torch.randint(len(self), (1,), generator=gen))
                k, local = self.locate(other)
                raw = self.datasets[k].raw(local, ("rgb",))["rgb"]
                background = torch.from_numpy(raw.copy()).permute(2, 0, 1).float().div_(255.0)
            else:
                background = procedural_texture(S, gen)
            image = torch.where(visib[None], image, background)
        if float(torch.rand(1, generator=gen)) < aug.occluder_p and bool(item["mask_full"].any()):
            ys, xs = torch.nonzero(item["mask_full"], as_tuple=True)
            box = (int(xs.min()), int(ys.min()), int(xs.max()) + 1, int(ys.max()) + 1)
            lo, hi = aug.occluder_cover
            cover = lo + (hi - lo) * float(torch.rand(1, generator=gen))
            occ = occluder_mask(box, S, cover, gen)
            image = torch.where(occ[None], procedural_texture(S, gen), image)
        if self._color is not None:
            from torchvision import tv_tensors

            image = self._color(tv_tensors.Image(image)).as_subclass(Tensor)
        return image.clamp(0, 1)


def _pad_pool(pool: Tensor, size: int) -> Tensor:
    eye = torch.eye(4, dtype=pool.dtype).expand(size - len(pool), 4, 4)
    return torch.cat([pool, eye]) if len(pool) < size else pool


def index_seed(seed: int, epoch: int, index: int) -> int:
    """The augmentation seed of one item in one epoch (a fixed function: the same on resume)."""
    return (int(seed) * 1_000_003 + int(epoch) * 97_003 + int(index) * 7_919) % (2**31 - 1)


class EpochSampler(Sampler):
    """Yields ``(index, seed)`` pairs: a permutation fixed by ``(seed, epoch)``, this rank's share of it, from
    position ``start`` on (a resumed epoch skips what was already trained, without loading it).

    Args:
        n: dataset size. seed: the run's seed. rank, world_size: this process among the distributed ones (each takes
        every ``world_size``-th item; the permutation is padded by wrapping so every rank gets as many).
    """

    def __init__(self, n: int, seed: int = 0, rank: int = 0, world_size: int = 1):
        if n < 1:
            raise ConfigError("the training set is empty: no crops to train on")
        self.n, self.seed, self.rank, self.world_size = n, int(seed), int(rank), int(world_size)
        self.epoch, self.start = 0, 0

    def set_epoch(self, epoch: int, start: int = 0) -> None:
        """Choose the epoch, and the first position (in this rank's share) to yield."""
        self.epoch, self.start = int(epoch), int(start)

    def per_rank(self) -> int:
        return -(-self.n // self.world_size)

    def __len__(self) -> int:
        return max(self.per_rank() - self.start, 0)

    def __iter__(self) -> Iterator[tuple[int, int]]:
        gen = torch.Generator().manual_seed(self.seed * 10_007 + self.epoch)
        order = torch.randperm(self.n, generator=gen).tolist()
        total = self.per_rank() * self.world_size
        order = (order * (total // self.n + 1))[:total]
        mine = order[self.rank :: self.world_size]
        for i in mine[self.start :]:
            yield i, index_seed(self.seed, self.epoch, i)


__all__ = [
    "AUGMENT_PRESETS",
    "AugmentConfig",
    "EpochSampler",
    "TrainingSet",
    "index_seed",
    "occluder_mask",
    "procedural_texture",
]

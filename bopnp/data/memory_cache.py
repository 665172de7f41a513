"""The training crops held in memory as tensors on the training device, batches drawn there by index: no loader
workers, no per-item Python, no host-to-device copy per step.

:class:`DeviceCrops` holds what a :class:`bopnp.data.training_set.TrainingSet` made with ``device_augment=True``
gives, for every item at once; :meth:`DeviceCrops.batch` returns the same batch the DataLoader would collate from
those items (so :func:`bopnp.data.batch_augment.augment_batch` gives the same augmented batch, and a run trains the
same way whichever way it reads). :class:`DeviceBatches` iterates an :class:`bopnp.data.training_set.EpochSampler`'s
epoch as batches, as a DataLoader with ``drop_last=True`` does. :func:`crops_nbytes` and :func:`fits_in_memory`
decide whether a cache fits.
"""

from __future__ import annotations

import os
from collections.abc import Iterator

import numpy as np
import torch
from torch import Tensor

from bopnp.data.batch_augment import background_choice
from bopnp.data.cache import unpack_masks

#: bytes per crop pixel held: rgb 3 (uint8), xyz 6 (float16), mask bits 1
BYTES_PER_PIXEL = 10

#: records held per crop as float32 tensors, with their shapes
_RECORD_FLOATS = {"K": (3, 3), "box_xyxy": (4,), "R_m2c": (3, 3), "t_m2c": (3,), "R_m2c_target": (3, 3)}
_RECORD_FLOATS["t_m2c_target"] = (3,)
_RECORD_INTS = ("obj_id", "scene_id", "im_id", "gt_id")


def crops_nbytes(n_crops: int, size: int) -> int:
    """Bytes :class:`DeviceCrops` holds for ``n_crops`` crops of ``size`` px (the arrays; records are small)."""
    return int(n_crops) * int(size) ** 2 * BYTES_PER_PIXEL


def free_bytes(device: torch.device) -> int:
    """Free memory where tensors of ``device`` live: the GPU's free memory, or the host's available memory."""
    if device.type == "cuda":
        return int(torch.cuda.mem_get_info(device)[0])
    try:
        return int(os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE"))
    except (ValueError, OSError, AttributeError):
        return 0


def fits_in_memory(nbytes: int, device: torch.device, share: float = 0.25) -> tuple[bool, int]:
    """Whether ``nbytes`` take at most ``share`` of the free memory of ``device`` (the rest is the training's);
    returns (fits, free bytes)."""
    free = free_bytes(device)
    return nbytes <= share * free, free


class DeviceCrops:
    """Every item of a training set as tensors on ``device``.

    Args:
        train_set: a :class:`bopnp.data.training_set.TrainingSet` made with ``device_augment=True``.
        device: where the tensors live.
    """

    def __init__(self, train_set, device: torch.device):
        self.device = torch.device(device)
        self.augment = train_set.augment
        self.n = len(train_set)
        rgb, xyz, mask, records = [], [], [], []
        for ds in train_set.datasets:  # whole shards at once, in each object's crop order
            kept: dict[int, list[int]] = {}
            for s, i in ds.index.items:
                kept.setdefault(s, []).append(i)
            for s, keep in sorted(kept.items()):
                shard = ds.index.shards[s]
                rgb.append(np.asarray(shard.array("rgb"))[keep])
                xyz.append(np.asarray(shard.array("xyz"))[keep])
                mask.append(np.asarray(shard.array("mask"))[keep])
                records.extend(shard.records[i] for i in keep)
        order = torch.as_tensor(train_set.indices, dtype=torch.long)  # training-set position -> all crops' order
        obj_of = torch.as_tensor(np.searchsorted(train_set.offsets, train_set.indices, side="right") - 1)
        put = lambda a: torch.from_numpy(np.concatenate(a))[order].to(self.device)  # noqa: E731
        self.rgb = put(rgb).permute(0, 3, 1, 2).contiguous()  # (N, 3, S, S) uint8
        self.xyz = put(xyz).permute(0, 3, 1, 2).contiguous()  # (N, 3, S, S) float16
        self.mask = put(mask)  # (N, S, S) uint8 bits
        recs = [records[i] for i in order.tolist()]
        self.floats = {
            k: torch.as_tensor(np.asarray([r[k] for r in recs], np.float32).reshape(-1, *shape)).to(self.device)
            for k, shape in _RECORD_FLOATS.items()
        }
        self.ints = {
            k: torch.as_tensor([int(r[k]) for r in recs], dtype=torch.long).to(self.device) for k in _RECORD_INTS
        }
        self.visib_fract = torch.as_tensor([float(r["visib_fract"]) for r in recs], dtype=torch.float32).to(self.device)
        self.obj_index = obj_of.long().to(self.device)
        self.pools = torch.stack(train_set.pools).to(self.device)  # (objects, P, 4, 4)
        self.centre_mm = torch.stack([c for c, _ in train_set.norms]).to(self.device)
        self.half_extent_mm = torch.stack([h for _, h in train_set.norms]).to(self.device)

    @property
    def nbytes(self) -> int:
        return sum(t.numel() * t.element_size() for t in (self.rgb, self.xyz, self.mask))

    def batch(self, index: Tensor, seed: Tensor) -> dict[str, Tensor]:
        """The collated raw batch of items ``index`` with augmentation seeds ``seed``.

        Args:
            index: (B,) int64 training-set positions. seed: (B,) int64.
        Returns:
            the dict a DataLoader collates from ``train_set[(i, seed)]`` items, on :attr:`device`.
        """
        index, seed = index.to(self.device), seed.to(self.device)
        full, visib, inside = unpack_masks(self.mask[index])
        k = self.obj_index[index]
        out = {
            "image": self.rgb[index].float().div_(255.0),
            "xyz": self.xyz[index].float(),
            "mask_full": full,
            "mask_visib": visib,
            "mask_inside": inside,
            **{name: t[index] for name, t in self.floats.items()},
            **{name: t[index] for name, t in self.ints.items()},
            "visib_fract": self.visib_fract[index],
            "obj_index": k,
            "pool": self.pools[k],
            "centre_mm": self.centre_mm[k],
            "half_extent_mm": self.half_extent_mm[k],
        }
        if self.augment is not None:
            aug = self.augment
            other = background_choice(seed, aug.background_p, aug.background_crop_p, self.n)
            background = self.rgb[other.clamp(min=0)] * (other >= 0)[:, None, None, None].to(torch.uint8)
            out.update(aug_seed=seed.long(), background_index=other, background=background)
        return out


class DeviceBatches:
    """The batches of one epoch of ``sampler`` (read when iteration starts, so ``sampler.set_epoch`` applies), drawn
    from a :class:`DeviceCrops`; the last incomplete batch is dropped, as the training DataLoader drops it.

    Args:
        crops: the crops. sampler: an :class:`bopnp.data.training_set.EpochSampler`. batch_size: items per batch.
    """

    def __init__(self, crops: DeviceCrops, sampler, batch_size: int):
        self.crops, self.sampler, self.batch_size = crops, sampler, int(batch_size)

    def __len__(self) -> int:
        return len(self.sampler) // self.batch_size

    def __iter__(self) -> Iterator[dict[str, Tensor]]:
        pairs = list(self.sampler)
        n = len(pairs) // self.batch_size * self.batch_size
        if n == 0:
            return
        table = torch.as_tensor(pairs[:n], dtype=torch.long).to(self.crops.device)
        for start in range(0, n, self.batch_size):
            rows = table[start : start + self.batch_size]
            yield self.crops.batch(rows[:, 0], rows[:, 1])


__all__ = ["BYTES_PER_PIXEL", "DeviceBatches", "DeviceCrops", "crops_nbytes", "fits_in_memory", "free_bytes"]

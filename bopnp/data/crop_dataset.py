"""A torch ``Dataset`` of Pix2Pose training crops read from the crop cache (see :mod:`bopnp.data.cache`).

Arrays are memory-mapped (``np.load(mmap_mode="r")``), opened lazily in each DataLoader worker, so a
dataset of any size costs only its ``index.json`` records in memory and no image is decoded.

Example:
    >>> ds = CropDataset("datasets/demo/crops/train_pbr", obj_id=1)       # doctest: +SKIP
    >>> item = ds[0]; item["image"].shape, item["xyz"].dtype              # doctest: +SKIP
    (torch.Size([3, 128, 128]), torch.float32)
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import torch
from torch import Tensor
from torch.utils.data import Dataset

from bopnp.data.augment import BoxJitter
from bopnp.data.cache import (
    CropIndex,
    Shard,
    list_shards,
    obj_dir_name,
    read_cache_meta,
    read_object_meta,
    unpack_masks,
)
from bopnp.data.crop_geometry import crop_K, warp_crop
from bopnp.errors import ConfigError, DatasetError


class CropDataset(Dataset):
    """The training crops of one object.

    Args:
        cache_dir: a cache folder (``BOP_PATH/NAME/crops/SPLIT``).
        obj_id: the object.
        scene_ids: only these scenes (None: all).
        min_visib_fract: drop crops whose instance is less visible than this (BOP ``visib_fract``).
        image_transform: applied to the image only (e.g. :func:`bopnp.data.augment.color_augment`):
            (3, S, S) float32 in [0, 1] -> same.
        box_jitter: re-crop everything from a jittered box (see :class:`bopnp.data.augment.BoxJitter`).

    Each item is a dict:
        ``image``: (3, S, S) float32 RGB in [0, 1].
        ``xyz``: (3, S, S) float32 model coordinates normalised to [-1, 1] (0 off the object);
        ``xyz_mm = centre_mm + xyz * half_extent_mm`` per axis with :attr:`xyz_normalisation`.
        ``mask_full``, ``mask_visib``, ``mask_inside``: (S, S) bool; the unoccluded object, its visible part,
        and the pixels that sample the image (not the zero padding).
        ``K``: (3, 3) float32 intrinsics of the crop. ``box_xyxy``: (4,) float32 crop box in image pixels.
        ``R_m2c``: (3, 3), ``t_m2c``: (3,) mm, float32: the annotated pose.
        ``R_m2c_target``, ``t_m2c_target``: the pose the target was rendered in (canonicalised for a
        continuous symmetry; else equal to the annotated pose).
        ``obj_id``, ``scene_id``, ``im_id``, ``gt_id``: int64 scalars; ``visib_fract``: float32 scalar.
    """

    def __init__(
        self,
        cache_dir: str | Path,
        obj_id: int,
        scene_ids: Sequence[int] | None = None,
        min_visib_fract: float = 0.0,
        image_transform: Callable[[Tensor], Tensor] | None = None,
        box_jitter: BoxJitter | None = None,
    ):
        self.cache_dir = Path(cache_dir)
        self.obj_id = int(obj_id)
        self.cache_meta = read_cache_meta(self.cache_dir)
        self.meta = read_object_meta(self.cache_dir, self.obj_id)
        self.crop_size = int(self.cache_meta["crop_size"])
        self.image_transform = image_transform
        if box_jitter is not None:
            box_jitter.validate()
        self.box_jitter = box_jitter
        if not 0.0 <= min_visib_fract <= 1.0:
            raise ConfigError(f"min_visib_fract must be in [0, 1], got {min_visib_fract}")
        self.index = CropIndex(list_shards(self.cache_dir, self.obj_id, scene_ids), min_visib_fract)

    # -- object-level metadata -------------------------------------------------------------------
    @property
    def xyz_normalisation(self) -> tuple[np.ndarray, np.ndarray]:
        """(centre_mm (3,), half_extent_mm (3,)) float64: ``xyz_mm = centre_mm + xyz * half_extent_mm``."""
        try:
            norm = self.meta["xyz_normalisation"]
            centre_mm = np.asarray(norm["centre_mm"], dtype=np.float64).reshape(3)
            half_extent_mm = np.asarray(norm["half_extent_mm"], dtype=np.float64).reshape(3)
        except (KeyError, TypeError, ValueError) as exc:
            raise DatasetError(
                f"{self.cache_dir / obj_dir_name(self.obj_id) / 'meta.json'}: xyz_normalisation needs centre_mm and "
                f"half_extent_mm, 3 numbers each ({type(exc).__name__}: {exc}); rebuild the cache with "
                "`bopnp prepare NAME --overwrite`"
            ) from None
        return centre_mm, half_extent_mm

    @property
    def symmetry_pool(self) -> Tensor:
        """(P, 4, 4) float32 discrete symmetry transforms of the object (identity first; t in mm)."""
        return torch.as_tensor(np.asarray(self.meta["symmetry_pool"], dtype=np.float32).reshape(-1, 4, 4))

    @property
    def shards(self) -> list[Shard]:
        """The object's shards (of the chosen scenes), by scene id."""
        return self.index.shards

    def record(self, index: int) -> dict:
        """The ``index.json`` record of item ``index`` (no array is read)."""
        return self.index.record(index)

    def __len__(self) -> int:
        return len(self.index)

    def raw(self, index: int, names: Sequence[str] = ("rgb", "xyz", "mask")) -> dict[str, np.ndarray]:
        """The stored arrays ``names`` of item ``index`` as numpy copies (see :meth:`CropIndex.raw`); no
        transform."""
        return self.index.raw(index, names)

    def __getitem__(self, index: int) -> dict[str, Tensor]:
        return self.jittered(index, self.box_jitter)

    def jittered(self, index: int, box_jitter: BoxJitter | None) -> dict[str, Tensor]:
        """Item ``index`` re-cropped with ``box_jitter`` (None: as stored), then the image transform."""
        if not -len(self) <= index < len(self):
            raise IndexError(f"index {index} out of range for {len(self)} crops")
        index %= len(self)
        rec = self.record(index)
        raw = self.raw(index)
        rgb, xyz, mask = raw["rgb"], raw["xyz"].astype(np.float32), raw["mask"]
        K = np.asarray(rec["K"], dtype=np.float64)
        box = np.asarray(rec["box_xyxy"], dtype=np.float64)
        if box_jitter is not None:
            rgb, xyz, mask, K, box = self._jitter(box_jitter, rgb, xyz, mask, K, box)
        image = torch.from_numpy(np.ascontiguousarray(rgb)).permute(2, 0, 1).float().div_(255.0)
        if self.image_transform is not None:
            from torchvision import tv_tensors

            image = self.image_transform(tv_tensors.Image(image)).as_subclass(Tensor)
        f32 = lambda key: torch.as_tensor(np.asarray(rec[key], dtype=np.float32))  # noqa: E731
        mask_full, mask_visib, mask_inside = unpack_masks(torch.from_numpy(np.ascontiguousarray(mask)))
        return {
            "image": image,
            "xyz": torch.from_numpy(np.ascontiguousarray(xyz)).permute(2, 0, 1).contiguous(),
            "mask_full": mask_full,
            "mask_visib": mask_visib,
            "mask_inside": mask_inside,
            "K": torch.as_tensor(K, dtype=torch.float32),
            "box_xyxy": torch.as_tensor(box, dtype=torch.float32),
            "R_m2c": f32("R_m2c"),
            "t_m2c": f32("t_m2c"),
            "R_m2c_target": f32("R_m2c_target"),
            "t_m2c_target": f32("t_m2c_target"),
            "obj_id": torch.tensor(int(rec["obj_id"])),
            "scene_id": torch.tensor(int(rec["scene_id"])),
            "im_id": torch.tensor(int(rec["im_id"])),
            "gt_id": torch.tensor(int(rec["gt_id"])),
            "visib_fract": torch.tensor(float(rec["visib_fract"]), dtype=torch.float32),
        }

    def _jitter(self, box_jitter: BoxJitter, rgb, xyz, mask, K, box):
        S = self.crop_size
        sub = box_jitter.sample_box(S)  # in crop pixels
        rgb = warp_crop(rgb, sub, S)
        xyz = warp_crop(xyz, sub, S, nearest=True)
        mask = warp_crop(mask, sub, S, nearest=True)
        K = crop_K(K, sub, S)
        sx, sy = (box[2] - box[0]) / S, (box[3] - box[1]) / S  # image pixels per crop pixel
        box = np.array([box[0] + sub[0] * sx, box[1] + sub[1] * sy, box[0] + sub[2] * sx, box[1] + sub[3] * sy])
        return rgb, xyz, mask, K, box


def open_crop_datasets(cache_dir: str | Path, obj_ids: Sequence[int] | None = None, **kwargs) -> dict[int, CropDataset]:
    """One :class:`CropDataset` per object of a cache (all objects of ``cache.json`` by default)."""
    meta = read_cache_meta(Path(cache_dir))
    ids = list(obj_ids) if obj_ids is not None else [int(o) for o in meta["objects"]]
    missing = [o for o in ids if int(o) not in {int(x) for x in meta["objects"]}]
    if missing:
        raise DatasetError(
            f"{Path(cache_dir) / 'cache.json'}: objects {missing} were not prepared; run `bopnp prepare NAME "
            "--objects ...` with them"
        )
    return {int(o): CropDataset(cache_dir, int(o), **kwargs) for o in ids}


__all__ = ["CropDataset", "open_crop_datasets"]

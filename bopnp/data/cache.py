"""The Pix2Pose training-crop cache: a versioned, per-object folder of ``.npy`` arrays that training
memory-maps (``np.load(..., mmap_mode="r")``) without decoding any PNG.

Layout (``bopnp prepare NAME`` writes it to ``BOP_PATH/NAME/crops/SPLIT/``)::

    cache.json                  format, version, dataset, split, crop settings, object ids
    obj_000001/
      meta.json                 obj_id, xyz normalisation, symmetry pool, diameter
      000000/                   one shard per scene that holds crops of this object
        index.json              format, version, obj_id, scene_id, count, one record per crop
        rgb.npy                 (N, S, S, 3) uint8   RGB crop (bilinear), zeros outside the image
        xyz.npy                 (N, S, S, 3) float16 model coordinates normalised to [-1, 1], 0 off the object
        mask.npy                (N, S, S)    uint8   bit 0: full (unoccluded) object mask,
                                                     bit 1: visible mask, bit 2: inside the image
    scenes/
      000000.json               the scene is complete: crops per object, images skipped and why

``S`` is the crop side (default 128). A record of ``index.json`` holds, for crop ``i`` of the shard:
``scene_id``, ``im_id``, ``gt_id``, ``obj_id``, ``box_xyxy`` (the crop box in pixels of the full image),
``bbox_obj`` and ``bbox_visib`` (BOP's ``x, y, w, h``), ``px_count_visib``, ``visib_fract``, ``K`` (3x3, the
crop's intrinsics), ``R_m2c`` / ``t_m2c`` (the annotated pose, mm) and ``R_m2c_target`` / ``t_m2c_target``
(the pose the coordinate target was rendered in: the annotated pose canonicalised for objects with a
continuous symmetry, else the same). Floats are written with full float64 precision.

``meta.json`` holds ``xyz_normalisation``: ``{"centre_mm": [3], "half_extent_mm": [3]}`` with
``xyz_mm = centre_mm + xyz * half_extent_mm`` per axis, and ``symmetry_pool``: a list of 4x4 model-frame
transforms (identity first, translation in mm) of the object's discrete symmetries, for the transformer
loss; ``continuous_symmetries`` lists the BOP ``{axis, offset}`` entries the targets were canonicalised for.

Writes are atomic: a shard is written to a hidden temporary folder beside its final place and renamed
when complete, and a scene's marker in ``scenes/`` is written (atomically) only after all its shards.
A reader therefore never sees a half-written shard, and a crash loses at most the scenes in progress:
a rerun finds no marker for them and redoes them. The format is versioned by ``CACHE_VERSION``; a reader
refuses other versions with the command that rebuilds the cache.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from bopnp.bop.annotations import read_json
from bopnp.bop.atomic import DIR_MODE, write_text_atomic
from bopnp.errors import DatasetError

CACHE_FORMAT = "bopnp-pix2pose-crops"
CACHE_VERSION = 3  # 3: meta.json's centre_mm (was center_mm); 2: visible mask = full minus resampled occlusion

#: bits of ``mask.npy``
MASK_FULL = 1
MASK_VISIB = 2
MASK_INSIDE = 4

ARRAY_FILES = ("rgb.npy", "xyz.npy", "mask.npy")

#: what to do about a damaged cache file (the hint of :func:`bopnp.bop.annotations.read_json`'s errors)
REBUILD_HINT = "rebuild the cache with `bopnp prepare NAME --overwrite`"


def cache_dir_for(bop_path: str | os.PathLike, name: str, split: str | None = None) -> Path:
    """Where ``bopnp prepare`` writes the crop cache of a dataset split, ``BOP_PATH/NAME/crops/SPLIT``
    (without a split: the folder holding the caches of every split)."""
    root = Path(bop_path) / name / "crops"
    return root if split is None else root / split


def obj_dir_name(obj_id: int) -> str:
    return f"obj_{int(obj_id):06d}"


def scene_dir_name(scene_id: int) -> str:
    return f"{int(scene_id):06d}"


_NUMBER_LIST = re.compile(r"\[\s*(-?[0-9][-+0-9.eE]*(?:,\s*-?[0-9][-+0-9.eE]*)*)\s*\]")


def dumps_json(data: Any) -> str:
    """JSON text with one key per line but lists of numbers (vectors, matrix rows) on one line."""
    text = json.dumps(data, indent=1, allow_nan=False)
    return _NUMBER_LIST.sub(lambda m: "[" + ", ".join(x.strip() for x in m.group(1).split(",")) + "]", text) + "\n"


def write_json_atomic(path: Path, data: Any) -> None:
    """Write ``data`` as JSON to ``path`` atomically (see :func:`bopnp.bop.atomic.write_text_atomic`)."""
    write_text_atomic(path, dumps_json(data))


def pack_masks(mask_full: np.ndarray, mask_visib: np.ndarray, inside: np.ndarray) -> np.ndarray:
    """Pack three boolean masks of the same shape into the uint8 bits of ``mask.npy``."""
    return (
        mask_full.astype(np.uint8) * MASK_FULL
        | mask_visib.astype(np.uint8) * MASK_VISIB
        | inside.astype(np.uint8) * MASK_INSIDE
    )


def unpack_masks(bits):
    """The inverse of :func:`pack_masks`: (full, visible, inside) boolean masks from ``mask.npy`` bits
    (a numpy array or a torch tensor; the masks are of the same kind).

    Example:
        >>> full, visib, inside = unpack_masks(
        ...     pack_masks(np.array([True, True]), np.array([False, True]), np.array([True, False]))
        ... )
        >>> full.tolist(), visib.tolist(), inside.tolist()
        ([True, True], [False, True], [True, False])
    """
    return (bits & MASK_FULL) > 0, (bits & MASK_VISIB) > 0, (bits & MASK_INSIDE) > 0


@dataclass
class ShardArrays:
    """The crops of one object in one scene, before they are written.

    Attributes:
        rgb: (N, S, S, 3) uint8.
        xyz: (N, S, S, 3) float16 in [-1, 1].
        mask: (N, S, S) uint8 bits (see ``MASK_*``).
        records: N dicts, see the module docstring.
    """

    rgb: np.ndarray
    xyz: np.ndarray
    mask: np.ndarray
    records: list[dict]

    def __post_init__(self) -> None:
        n = len(self.records)
        for name, dtype, ndim in (("rgb", np.uint8, 4), ("xyz", np.float16, 4), ("mask", np.uint8, 3)):
            a = getattr(self, name)
            if a.dtype != dtype or a.ndim != ndim or a.shape[0] != n:
                raise ValueError(
                    f"shard {name}: expected {n} crops of dtype {np.dtype(dtype)} and {ndim} dims, got {a.dtype} "
                    f"{a.shape}"
                )


def write_shard(obj_dir: Path, scene_id: int, obj_id: int, arrays: ShardArrays) -> Path:
    """Write one shard atomically: into a hidden temporary folder, then renamed to its place.

    An existing shard of the same scene (from an unfinished earlier run) is replaced.

    Returns:
        the shard's folder.
    """
    obj_dir = Path(obj_dir)
    obj_dir.mkdir(parents=True, exist_ok=True)
    final = obj_dir / scene_dir_name(scene_id)
    tmp = Path(tempfile.mkdtemp(prefix=f".{final.name}.", suffix=".tmp", dir=obj_dir))
    tmp.chmod(DIR_MODE)  # mkdtemp makes it private; the shard it becomes is not
    try:
        for file in ARRAY_FILES:
            np.save(tmp / file, np.ascontiguousarray(getattr(arrays, file.removesuffix(".npy"))))
        index = {
            "format": CACHE_FORMAT,
            "version": CACHE_VERSION,
            "obj_id": int(obj_id),
            "scene_id": int(scene_id),
            "count": len(arrays.records),
            "crops": arrays.records,
        }
        (tmp / "index.json").write_text(dumps_json(index), encoding="utf-8")
        if final.exists():
            shutil.rmtree(final)
        os.rename(tmp, final)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return final


def remove_stale_temporaries(cache_dir: Path) -> int:
    """Delete the hidden temporary folders and files a killed run left in ``cache_dir``; returns how many."""
    n = 0
    cache_dir = Path(cache_dir)
    if not cache_dir.is_dir():
        return 0
    for parent in [cache_dir, *[p for p in cache_dir.iterdir() if p.is_dir()]]:
        for p in parent.glob(".*.tmp"):
            if p.is_dir():
                shutil.rmtree(p, ignore_errors=True)
            else:
                p.unlink(missing_ok=True)
            n += 1
    return n


@dataclass
class Shard:
    """One complete shard on disk; arrays are memory-mapped on first use.

    Attributes:
        path: the shard's folder.
        obj_id, scene_id: what it holds.
        records: one dict per crop (``index.json``).
    """

    path: Path
    obj_id: int
    scene_id: int
    records: list[dict]
    _arrays: dict[str, np.ndarray] = field(default_factory=dict, repr=False)

    def __len__(self) -> int:
        return len(self.records)

    def array(self, name: str) -> np.ndarray:
        """The memory-mapped array ``rgb``, ``xyz`` or ``mask``.

        Raises:
            TruncatedCacheError: the file is shorter than its header says.
        """
        if name not in self._arrays:
            path = self.path / f"{name}.npy"
            try:
                a = np.load(path, mmap_mode="r")
            except (OSError, ValueError) as exc:
                _check_npy_size(path)
                raise DatasetError(
                    f"{path} cannot be read ({exc}): rebuild the cache with `bopnp prepare ... --overwrite`"
                ) from None
            if a.shape[0] != len(self.records):
                raise DatasetError(
                    f"{path} holds {a.shape[0]} crops but index.json lists {len(self.records)}: rebuild the cache "
                    "with `bopnp prepare ... --overwrite`"
                )
            self._arrays[name] = a
        return self._arrays[name]

    def read(self, name: str, index: int) -> np.ndarray:
        """A copy of crop ``index`` of the array ``name``, after checking that its file still holds every byte its
        header announces: reading a memory map past the end of a file truncated since it was mapped (a cache
        rewritten while a run trains) kills the process with a bus error instead of raising.

        Raises:
            TruncatedCacheError: naming the file.
        """
        a = self.array(name)
        path = self.path / f"{name}.npy"
        expected = int(a.offset) + a.nbytes
        try:
            size = os.stat(path).st_size
        except OSError as exc:
            raise DatasetError(f"{path} disappeared while it was read ({exc}): {REBUILD_HINT}") from None
        if size < expected:
            raise _truncated(path, size, expected)
        return np.array(a[index])

    def __getstate__(self):  # memory maps are reopened in each worker process
        state = self.__dict__.copy()
        state["_arrays"] = {}
        return state


class TruncatedCacheError(DatasetError):
    """A crop-cache array file is shorter than its ``.npy`` header says (cut by a full disk, a killed copy, or a
    ``bopnp prepare --overwrite`` run while training read it). One message argument, so that a DataLoader worker's
    error reaches the main process as this type."""


def _truncated(path: Path, size: int, expected: int) -> TruncatedCacheError:
    return TruncatedCacheError(
        f"{path} is truncated: {size} bytes where its header announces {expected}; was the cache rewritten or copied "
        f"while this ran? {REBUILD_HINT}"
    )


def _check_npy_size(path: Path) -> None:
    """Raise :class:`TruncatedCacheError` when the ``.npy`` file at ``path`` is shorter than its header says (an
    unreadable header is left to the caller)."""
    try:
        with open(path, "rb") as f:
            version = np.lib.format.read_magic(f)
            if version == (1, 0):
                shape, _, dtype = np.lib.format.read_array_header_1_0(f)
            elif version == (2, 0):
                shape, _, dtype = np.lib.format.read_array_header_2_0(f)
            else:
                return
            offset = f.tell()
        size = os.stat(path).st_size
    except (OSError, ValueError):
        return
    expected = offset + int(np.prod(shape, dtype=np.int64)) * np.dtype(dtype).itemsize
    if size < expected:
        raise _truncated(path, size, expected)


def read_shard(path: Path) -> Shard:
    """Open a shard folder (reads ``index.json``; arrays are mapped lazily)."""
    path = Path(path)
    index = read_json(path / "index.json", "shard index", fix=f"the shard is incomplete: {REBUILD_HINT}")
    _check_version(index, path / "index.json")
    if int(index.get("count", -1)) != len(index.get("crops", [])):
        raise DatasetError(
            f"{path / 'index.json'}: count {index.get('count')} disagrees with {len(index.get('crops', []))} crops"
        )
    return Shard(path=path, obj_id=int(index["obj_id"]), scene_id=int(index["scene_id"]), records=index["crops"])


class CropIndex:
    """The crops of one object in cache order (scene, then position in the shard): the records and the
    stored arrays of each, without torch (:class:`bopnp.data.crop_dataset.CropDataset` wraps it).

    Args:
        shards: the object's shards (:func:`list_shards`).
        min_visib_fract: keep only crops whose instance is at least this visible (BOP ``visib_fract``).
    """

    def __init__(self, shards: Sequence[Shard], min_visib_fract: float = 0.0):
        self.shards = list(shards)
        #: (shard index, crop index) of every kept crop
        self.items: list[tuple[int, int]] = [
            (s, i)
            for s, shard in enumerate(self.shards)
            for i, rec in enumerate(shard.records)
            if float(rec["visib_fract"]) >= min_visib_fract
        ]

    def __len__(self) -> int:
        return len(self.items)

    def record(self, index: int) -> dict:
        """The ``index.json`` record of crop ``index`` (no array is read)."""
        s, i = self.items[index]
        return self.shards[s].records[i]

    def raw(self, index: int, names: Sequence[str] = ("rgb", "xyz", "mask")) -> dict[str, np.ndarray]:
        """The stored arrays ``names`` of crop ``index`` as numpy copies: rgb (S, S, 3) uint8, xyz (S, S, 3)
        float16, mask (S, S) uint8 bits (:func:`unpack_masks`)."""
        s, i = self.items[index]
        shard = self.shards[s]
        return {name: shard.read(name, i) for name in names}


def _check_version(data: dict, path: Path) -> None:
    if data.get("format") != CACHE_FORMAT or data.get("version") != CACHE_VERSION:
        raise DatasetError(
            f"{path}: crop cache format {data.get('format')!r} version {data.get('version')!r}, expected "
            f"{CACHE_FORMAT!r} version {CACHE_VERSION}: rebuild it with `bopnp prepare NAME --overwrite`"
        )


def write_cache_meta(cache_dir: Path, meta: dict) -> dict:
    """Write ``cache.json`` (adds ``format`` and ``version``); returns what was written."""
    data = {"format": CACHE_FORMAT, "version": CACHE_VERSION, **meta}
    write_json_atomic(Path(cache_dir) / "cache.json", data)
    return data


def write_object_meta(cache_dir: Path, obj_id: int, meta: dict) -> dict:
    """Write ``obj_XXXXXX/meta.json`` (adds ``format``, ``version`` and ``obj_id``); returns what was written."""
    data = {"format": CACHE_FORMAT, "version": CACHE_VERSION, "obj_id": int(obj_id), **meta}
    write_json_atomic(Path(cache_dir) / obj_dir_name(obj_id) / "meta.json", data)
    return data


def read_cache_meta(cache_dir: Path) -> dict:
    """``cache.json`` of a cache folder, version-checked."""
    path = Path(cache_dir) / "cache.json"
    meta = read_json(path, "crop cache settings", fix="no crop cache here: run `bopnp prepare NAME` first")
    _check_version(meta, path)
    return meta


def read_object_meta(cache_dir: Path, obj_id: int) -> dict:
    """``obj_XXXXXX/meta.json`` of one object, version-checked."""
    path = Path(cache_dir) / obj_dir_name(obj_id) / "meta.json"
    meta = read_json(
        path,
        "object metadata",
        fix=f"object {obj_id} has no crops in this cache (run `bopnp prepare NAME --objects {obj_id}`)",
    )
    _check_version(meta, path)
    return meta


def list_shards(cache_dir: Path, obj_id: int, scene_ids: Sequence[int] | None = None) -> list[Shard]:
    """The complete shards of one object, sorted by scene id (hidden temporaries are ignored)."""
    obj_dir = Path(cache_dir) / obj_dir_name(obj_id)
    wanted = None if scene_ids is None else {int(s) for s in scene_ids}
    shards = []
    for p in sorted(obj_dir.iterdir()) if obj_dir.is_dir() else []:
        if p.is_dir() and not p.name.startswith(".") and p.name.isdigit():
            if wanted is None or int(p.name) in wanted:
                shards.append(read_shard(p))
    return shards


__all__ = [
    "ARRAY_FILES",
    "CACHE_FORMAT",
    "CACHE_VERSION",
    "CropIndex",
    "MASK_FULL",
    "MASK_INSIDE",
    "MASK_VISIB",
    "REBUILD_HINT",
    "Shard",
    "TruncatedCacheError",
    "cache_dir_for",
    "ShardArrays",
    "list_shards",
    "obj_dir_name",
    "pack_masks",
    "read_cache_meta",
    "read_object_meta",
    "read_shard",
    "remove_stale_temporaries",
    "scene_dir_name",
    "unpack_masks",
    "write_cache_meta",
    "write_json_atomic",
    "write_object_meta",
    "write_shard",
]

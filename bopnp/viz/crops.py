"""A preview of a Pix2Pose crop cache (what ``bopnp prepare`` wrote): one row per object, a few crops
each, every crop as a 2 x 2 block

    image           | coordinate target (xyz -> RGB, :func:`bopnp.viz.colors.xyz_to_rgb`)
    full mask       | visible mask (occluded part of the object in red)

under a caption ``scene/image/gt, visib_fract``. The crops are spread evenly over each object's list
(deterministic), so they span its scenes.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from bopnp.errors import ConfigError, DatasetError
from bopnp.viz.colors import INK, PAPER, xyz_to_rgb
from bopnp.viz.grid import resize_to_width, stack, with_legend
from bopnp.viz.text import draw_text, text_box_size

#: colours of the mask panels
MASK_ON = (245, 245, 245)
MASK_OCCLUDED = (200, 40, 40)
MASK_OFF = (20, 20, 20)
#: pixels outside the source image (zero padding of crops at the image border)
OUTSIDE = (70, 70, 110)


def crop_panels(
    rgb: np.ndarray, xyz: np.ndarray, mask_full: np.ndarray, mask_visib: np.ndarray, inside: np.ndarray | None = None
) -> np.ndarray:
    """The 2 x 2 block of one crop (see the module docstring).

    Args:
        rgb: (S, S, 3) uint8 crop. xyz: (S, S, 3) float normalised coordinates in [-1, 1].
        mask_full, mask_visib: (S, S) bool. inside: (S, S) bool, pixels inside the source image.
    Returns:
        (2 S + 2, 2 S + 2, 3) uint8 RGB (a 2-pixel light gap between panels).
    """
    S = rgb.shape[0]
    full = np.where(mask_full[..., None], np.uint8(MASK_ON), np.uint8(MASK_OFF)).astype(np.uint8)
    visib = np.full((S, S, 3), MASK_OFF, np.uint8)
    visib[mask_full & ~mask_visib] = MASK_OCCLUDED
    visib[mask_visib] = MASK_ON
    panels = [rgb.copy(), xyz_to_rgb(xyz, mask_full), full, visib]
    if inside is not None:
        for p in panels[2:]:
            p[~inside] = OUTSIDE
    gap = 2
    out = np.full((2 * S + gap, 2 * S + gap, 3), 255, np.uint8)
    for k, p in enumerate(panels):
        r, c = divmod(k, 2)
        out[r * (S + gap) : r * (S + gap) + S, c * (S + gap) : c * (S + gap) + S] = p
    return out


def _spread(n: int, k: int) -> list[int]:
    if n <= k:
        return list(range(n))
    return [int(i) for i in np.unique(np.rint(np.linspace(0, n - 1, k)).astype(int))]


def crops_preview(
    cache_dir: str | os.PathLike, per_object: int = 8, panel: int = 128, text_size: int = 14
) -> np.ndarray:
    """Picture of a crop cache: one row per object, ``per_object`` crops each (see the module docstring).

    Args:
        cache_dir: the cache folder, ``BOP_PATH/NAME/crops/SPLIT``.
        per_object: crops shown per object.
        panel: side of each of the four panels of a crop, pixels (crops are resized to it).
        text_size: font size, pixels.
    Returns:
        (H, W, 3) uint8 RGB.
    Raises:
        DatasetError: no cache there (the message says to run ``bopnp prepare``), or it holds no crop.
    """
    # the cache's own readers (as CropDataset uses them), without torch: a preview costs no torch import
    from bopnp.data.cache import CropIndex, list_shards, read_cache_meta, unpack_masks

    cache_dir = Path(cache_dir)
    if per_object < 1:
        raise ConfigError(f"per_object must be >= 1, got {per_object}")
    if not (cache_dir / "cache.json").is_file():
        name = cache_dir.parent.parent.name if cache_dir.parent.name == "crops" else "NAME"
        raise DatasetError(f"{cache_dir} holds no crop cache (no cache.json): run `bopnp prepare {name}` first")
    meta = read_cache_meta(cache_dir)
    datasets = {int(o): CropIndex(list_shards(cache_dir, int(o))) for o in meta["objects"]}
    if not any(len(d) for d in datasets.values()):
        raise DatasetError(
            f"{cache_dir}: the cache holds no crop yet; run `bopnp prepare {meta.get('dataset', 'NAME')}` to "
            "(finish) preparing it"
        )
    label_w = (
        max(
            max(text_box_size(f"obj {o}", text_size + 4)[0], text_box_size(f"{len(d)} crops", text_size)[0])
            for o, d in datasets.items()
        )
        + 16
    )
    cap_h = text_box_size("Ag", text_size, pad=2)[1]
    block = 2 * panel + 2
    rows = []
    for obj_id, ds in sorted(datasets.items()):
        picks = _spread(len(ds), per_object)
        row_w = label_w + max(per_object, 1) * (block + 10)
        row = np.full((block + cap_h + 12, row_w, 3), PAPER, np.uint8)
        row = draw_text(row, f"obj {obj_id}", (8, 6), size=text_size + 4, color=INK, bg=None, pad=2)
        row = draw_text(row, f"{len(ds)} crops", (8, 6 + cap_h + 8), size=text_size, color=(90, 90, 90), bg=None, pad=2)
        if not picks:
            row = draw_text(
                row,
                "no crops (no instance visible enough)",
                (label_w, 6 + block // 2),
                size=text_size,
                color=(150, 40, 40),
                bg=None,
            )
        for k, index in enumerate(picks):
            raw = ds.raw(index)
            rec = ds.record(index)
            blk = crop_panels(raw["rgb"], raw["xyz"].astype(np.float32), *unpack_masks(raw["mask"]))
            if blk.shape[1] != block:
                blk = resize_to_width(blk, block, nearest=blk.shape[1] < block)[:block, :block]
            x = label_w + k * (block + 10)
            row[6 : 6 + blk.shape[0], x : x + blk.shape[1]] = blk
            cap = (
                f"{int(rec['scene_id'])}/{int(rec['im_id'])}/{int(rec['gt_id'])}  visib {float(rec['visib_fract']):.2f}"
            )
            row = draw_text(row, cap, (x, 6 + block + 2), size=text_size, color=INK, bg=None, pad=2)
        rows.append(row)
    S = int(meta.get("crop_size", panel))
    title = (
        f"crops of {meta.get('dataset', '?')} / {meta.get('split', '?')}: {S} px, "
        f"{meta.get('box_source', 'bbox_obj')} x {meta.get('enlarge', '?')}"
    )
    entries = [(MASK_ON, "object / visible"), (MASK_OCCLUDED, "occluded"), (OUTSIDE, "outside the image")]
    notes = [
        "each crop: image | coordinate target (x, y, z in [-1, 1] -> R, G, B)  /  full mask | visible mask;"
        "  caption: scene/image/gt_id and visible fraction"
    ]
    return with_legend(stack(rows), title, entries, notes, size=text_size + 2)


__all__ = ["crop_panels", "crops_preview"]

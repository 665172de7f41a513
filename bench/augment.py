"""Benchmark: Pix2Pose training augmentation, per item in the loader (the baseline) against batched on the training
device (:func:`bopnp.data.batch_augment.augment_batch`), both through the real DataLoader over a crop cache.

Rows: batch size x path, with ``crops/s`` (augmented crops delivered on the device per wall second, after warm-up),
the main process's CPU seconds per 1,000 crops (with ``--workers 0`` that is all the work) and the ratio against the
per-item row of the same batch size. Paths: per item in the loader (the baseline); batched where the batch lands
(the device); batched in the loader workers' collate (CPU runs with workers); crops held in memory on the device and
batches drawn there (``--cache-in-memory on``, no loader). The cache is a synthetic one written to a temporary
folder (discs on a flat ground, ``--crops`` of them, ``--size`` px) unless ``--cache BOP_PATH/NAME/crops/SPLIT``
names a real one.

    python bench/augment.py                                   # CPU, 64 px, batches 8 and 256, in-process loading
    python bench/augment.py --workers 2 --augment light       # the demo's loader settings
    python bench/augment.py --device cuda --workers 12 --batches 8 256 1024
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import DataLoader

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from bopnp.data.batch_augment import AugmentingCollate, augment_batch  # noqa: E402
from bopnp.data.cache import ShardArrays, pack_masks, write_cache_meta, write_object_meta, write_shard  # noqa: E402
from bopnp.data.crop_dataset import open_crop_datasets  # noqa: E402
from bopnp.data.memory_cache import DeviceBatches, DeviceCrops  # noqa: E402
from bopnp.data.training_set import AugmentConfig, EpochSampler, TrainingSet  # noqa: E402


def synthetic_cache(root: Path, size: int, n_crops: int, seed: int = 0) -> Path:
    """A crop cache of two objects, ``n_crops`` discs in all (half each), coloured by position, on a flat ground."""
    rng = np.random.default_rng(seed)
    write_cache_meta(root, {"crop_size": size, "objects": [1, 2]})
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float64)
    K = np.array([[500.0, 0.0, 320.0], [0.0, 500.0, 240.0], [0.0, 0.0, 1.0]])
    for obj_id in (1, 2):
        n = n_crops // 2
        write_object_meta(
            root,
            obj_id,
            {
                "xyz_normalisation": {"centre_mm": [0.0] * 3, "half_extent_mm": [50.0] * 3},
                "symmetry_pool": [np.eye(4).tolist()],
            },
        )
        rgb = np.empty((n, size, size, 3), np.uint8)
        xyz = np.zeros((n, size, size, 3), np.float16)
        masks = np.empty((n, size, size), np.uint8)
        records = []
        for i in range(n):
            cx, cy = size / 2 + rng.uniform(-4, 4, 2)
            r = size * rng.uniform(0.25, 0.4)
            full = (xx - cx) ** 2 + (yy - cy) ** 2 <= r**2
            visib = full & ~((xx > cx + r * 0.4) & (yy > cy))
            coords = np.stack([(xx - cx) / r, (yy - cy) / r, np.zeros_like(xx)], -1) * 0.9
            xyz[i] = np.where(full[..., None], coords, 0).astype(np.float16)
            img = np.full((size, size, 3), rng.uniform(40, 200, 3))
            img[full] = (coords[full] * 0.5 + 0.5) * 255
            rgb[i] = img.astype(np.uint8)
            masks[i] = pack_masks(full, visib, np.ones_like(full))
            box = [300.0, 220.0, 300.0 + size, 220.0 + size]
            eye, t = np.eye(3).tolist(), [0.0, 0.0, 800.0]
            records.append(
                {
                    "scene_id": 0, "im_id": i, "gt_id": 0, "obj_id": obj_id, "box_xyxy": box, "bbox_obj": box,
                    "bbox_visib": box, "px_count_visib": int(visib.sum()),
                    "visib_fract": float(visib.sum() / full.sum()),
                    "K": K.tolist(), "R_m2c": eye, "t_m2c": t, "R_m2c_target": eye, "t_m2c_target": t,
                }
            )  # fmt: skip
        write_shard(root / f"obj_{obj_id:06d}", 0, obj_id, ShardArrays(rgb, xyz, masks, records))
    return root


def _loader(ds, sampler, cfg, *, batch, device, workers, mode) -> DataLoader:
    return DataLoader(
        ds,
        batch_size=batch,
        sampler=sampler,
        num_workers=workers,
        drop_last=True,
        persistent_workers=workers > 0,
        multiprocessing_context="spawn" if workers else None,
        pin_memory=device.type == "cuda",
        collate_fn=AugmentingCollate(cfg) if mode == "worker" else None,
    )


def run_path(
    cache: Path, cfg: AugmentConfig, *, batch: int, device: torch.device, workers: int, batches: int, mode: str
) -> dict:
    """Deliver ``batches`` augmented batches on ``device`` (after one warm-up batch); wall and CPU seconds.

    ``mode``: ``item`` (per item in the loader), ``device`` (batched where the batch lands), ``worker`` (batched
    in the loader's collate, on the CPU), ``memory`` (crops on the device, batched there)."""
    crops = open_crop_datasets(cache)
    batched = mode in ("device", "memory")
    ds = TrainingSet(crops, cfg, device_augment=mode != "item")
    sampler = EpochSampler(len(ds), seed=0)
    if mode == "memory":
        loader = DeviceBatches(DeviceCrops(ds, device), sampler, batch)
        workers = 0
    else:
        loader = _loader(ds, sampler, cfg, batch=batch, device=device, workers=workers, mode=mode)

    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    done, epoch, t0, c0 = -1, 0, 0.0, 0.0
    while done < batches:
        sampler.set_epoch(epoch)
        for b in loader:
            b = {k: v.to(device, non_blocking=True) for k, v in b.items()}
            if batched:
                b = augment_batch(b, cfg)
            float(b["image"][0, 0, 0, 0])  # the batch is ready on the device
            sync()
            done += 1
            if done == 0:  # warm-up batch done: workers up, kernels loaded
                t0, c0 = time.perf_counter(), time.process_time()
            if done >= batches:
                break
        epoch += 1
    wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    iterator = getattr(loader, "_iterator", None)
    if iterator is not None and hasattr(iterator, "_shutdown_workers"):
        iterator._shutdown_workers()
    n = batches * batch
    return {"crops_s": n / wall, "cpu_ms_per_1k": 1000 * cpu / n * 1000, "wall_s": wall}


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--device", default="cpu", help="cpu or cuda (where the batched path augments)")
    p.add_argument("--batches", type=int, nargs="+", default=[8, 256], help="batch sizes")
    p.add_argument("--size", type=int, default=64, help="crop side of the synthetic cache, px")
    p.add_argument("--crops", type=int, default=2048, help="crops in the synthetic cache")
    p.add_argument("--cache", type=Path, help="a real crop cache folder instead of the synthetic one")
    p.add_argument("--workers", type=int, default=0, help="DataLoader workers (0: everything in this process)")
    p.add_argument("--augment", default="pix2pose", help="pix2pose or light")
    p.add_argument("--crops-per-row", type=int, default=1024, help="crops timed per row (at least 2 batches)")
    p.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: torch's default)")
    args = p.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    cfg = AugmentConfig.preset(args.augment)
    with tempfile.TemporaryDirectory() as tmp:
        cache = args.cache or synthetic_cache(Path(tmp) / "crops", args.size, args.crops)
        size = open_crop_datasets(cache)[1].crop_size if args.cache else args.size
        print(
            f"augmentation {args.augment}, {size} px crops, device {device}, {args.workers} loader workers, "
            f"torch {torch.__version__}, {torch.get_num_threads()} CPU threads"
        )
        print("| batch | path | crops/s | main-process CPU ms / 1k crops | ratio vs per-item |")
        print("| --- | --- | --- | --- | --- |")
        for batch in args.batches:
            n_batches = max(2, args.crops_per_row // batch)
            base = None
            modes = [("per-item in the loader", "item"), ("batched on " + device.type, "device")]
            if args.workers and device.type == "cpu":
                modes.append(("batched in the loader workers", "worker"))
            modes.append((f"in memory on {device.type}, batched there", "memory"))
            for name, mode in modes:
                r = run_path(cache, cfg, batch=batch, device=device, workers=args.workers, batches=n_batches, mode=mode)
                base = base or r["crops_s"]
                print(
                    f"| {batch} | {name} | {r['crops_s']:,.0f} | {r['cpu_ms_per_1k']:,.0f} | "
                    f"{r['crops_s'] / base:.2f}x |",
                    flush=True,
                )


if __name__ == "__main__":
    main()

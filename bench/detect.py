"""Benchmark: the detector's training speed (images/s of forward + backward + SGD step) and inference latency
(ms per image) per backbone, at BOP's 640x480 and at the demo's 320x240.

Rows: device x input size x backbone x knobs, with the ratio against ``resnet50_fpn_v2`` at the same size and knobs
(the baseline). Knobs: ``torchvision`` (its proposal counts, RoI samples and head widths) or ``cpu`` (the light
settings of the ``cpu`` preset of ``bopnp train --stage detector``: fewer proposals and RoI samples, narrow heads,
and for ResNet-18 a pyramid on strides 8 and 16 only). Inputs are random images with five random boxes and masks
each, so no dataset is needed; inference keeps every detection (score threshold 0), its worst case.
``train CPU s/img`` is the process's CPU time per training image (all threads): on a shared machine it moves less than
the wall-clock rates.

    python bench/detect.py                                  # CPU: both sizes, all backbones, both knobs
    python bench/detect.py --sizes 240 --backbones resnet18_fpn mobilenet_v3_large_fpn --knobs cpu
    python bench/detect.py --device cuda --batch 8
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from dataclasses import replace
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from bopnp.models.detector import BACKBONES, build_maskrcnn  # noqa: E402
from bopnp.train.detector_config import PRESETS  # noqa: E402

#: min_size -> (height, width) of the input images
SIZES = {480: (480, 640), 240: (240, 320)}


def knobs(kind: str, backbone: str, min_size: int) -> dict:
    """Keyword arguments of build_maskrcnn for a row."""
    if kind == "torchvision":
        net = replace(PRESETS["full"], backbone=backbone)
    else:
        net = replace(PRESETS["cpu"], backbone=backbone)
        if backbone != "resnet18_fpn":
            net = replace(net, returned_layers=None)
    net = replace(net, min_size=min_size, max_size=min_size * 4 // 3, box_score_thresh=0.0)
    return net.knobs()


def _batch(B: int, H: int, W: int, n_classes: int, device: torch.device, gen: torch.Generator):
    images, targets = [], []
    for _ in range(B):
        images.append(torch.rand(3, H, W, generator=gen).to(device))
        boxes, masks = [], torch.zeros(5, H, W, dtype=torch.uint8)
        for k in range(5):
            w, h = int(W * 0.1) + int(torch.randint(W // 5, (1,), generator=gen)), int(H * 0.1)
            h += int(torch.randint(H // 5, (1,), generator=gen))
            x, y = int(torch.randint(W - w, (1,), generator=gen)), int(torch.randint(H - h, (1,), generator=gen))
            boxes.append([x, y, x + w, y + h])
            masks[k, y : y + h, x : x + w] = 1
        targets.append(
            {
                "boxes": torch.tensor(boxes, dtype=torch.float32, device=device),
                "labels": torch.randint(1, n_classes, (5,), generator=gen).to(device),
                "masks": masks.to(device),
            }
        )
    return images, targets


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def time_row(backbone: str, kind: str, min_size: int, device: torch.device, args) -> tuple[float, float, float]:
    """(training images/s, inference ms per image, training CPU seconds per image): the CPU time of this process
    (all its threads) does not depend on what else runs on a shared machine, as the wall time does."""
    H, W = SIZES[min_size]
    gen = torch.Generator().manual_seed(0)
    torch.manual_seed(0)
    net = build_maskrcnn(num_classes=7, **knobs(kind, backbone, min_size)).to(device)
    opt = torch.optim.SGD([p for p in net.parameters() if p.requires_grad], lr=1e-3, momentum=0.9)
    net.train()
    times, cpu = [], []
    for i in range(args.warmup + args.steps):
        images, targets = _batch(args.batch, H, W, 7, device, gen)
        _sync(device)
        t0, c0 = time.perf_counter(), time.process_time()
        losses = net(images, targets)
        opt.zero_grad(set_to_none=True)
        sum(losses.values()).backward()
        opt.step()
        _sync(device)
        if i >= args.warmup:
            times.append(time.perf_counter() - t0)
            cpu.append(time.process_time() - c0)
    train = args.batch / statistics.median(times)
    net.eval()
    times = []
    with torch.inference_mode():
        for i in range(args.warmup + args.steps):
            image = torch.rand(3, H, W, generator=gen).to(device)
            _sync(device)
            t0 = time.perf_counter()
            net([image])
            _sync(device)
            if i >= args.warmup:
                times.append(time.perf_counter() - t0)
    return train, statistics.median(times) * 1e3, statistics.median(cpu) / args.batch


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--device", choices=["cpu", "cuda", "all"], default="all", help="all: CPU, and CUDA when present")
    p.add_argument("--sizes", type=int, nargs="+", default=[480, 240], choices=sorted(SIZES))
    p.add_argument("--backbones", nargs="+", default=list(BACKBONES), choices=BACKBONES)
    p.add_argument("--knobs", nargs="+", default=["torchvision", "cpu"], choices=["torchvision", "cpu"])
    p.add_argument("--batch", type=int, default=2, help="images per training step")
    p.add_argument("--steps", type=int, default=3, help="timed steps per row (median)")
    p.add_argument("--warmup", type=int, default=1)
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    args = p.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    devices = ["cpu"] if args.device == "cpu" else ["cuda"] if args.device == "cuda" else ["cpu"]
    if args.device == "all" and torch.cuda.is_available():
        devices.append("cuda")
    backbones = sorted(args.backbones, key=lambda b: b != "resnet50_fpn_v2")  # the baseline first
    print(
        f"torch {torch.__version__}, {torch.get_num_threads()} CPU threads, batch {args.batch}, "
        "Mask R-CNN fwd+bwd+SGD from scratch; inference of one image"
    )
    print("| device | input | knobs | backbone | train img/s | x r50 | train CPU s/img | infer ms/img | x r50 |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    for d in devices:
        device = torch.device(d)
        for size in args.sizes:
            H, W = SIZES[size]
            for kind in args.knobs:
                base = None
                for backbone in backbones:
                    train, infer_ms, cpu_s = time_row(backbone, kind, size, device, args)
                    if backbone == "resnet50_fpn_v2":
                        base = (train, infer_ms)
                    ratio = (f"{train / base[0]:.2f}", f"{base[1] / infer_ms:.2f}") if base else ("-", "-")
                    print(
                        f"| {d} | {W}x{H} | {kind} | {backbone} | {train:.2f} | {ratio[0]} | {cpu_s:.2f} | "
                        f"{infer_ms:.0f} | {ratio[1]} |",
                        flush=True,
                    )


if __name__ == "__main__":
    main()

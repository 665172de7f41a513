"""Benchmark: training throughput of the pose network (forward + backward + Adam step of L_trans) and the cost of
loading and augmenting its crops.

Rows: crop size x width x variant, with ``crops/s`` (batch / median step time) and the ratio against the eager
float32 row of the same size and width (the baseline). Variants: ``eager``; ``channels_last`` (NHWC memory format);
``compile`` (``torch.compile``, with ``--compile``: its first call compiles for minutes on a CPU); ``bf16`` (autocast,
CUDA rows only). Inputs are random crops and targets of the shapes training uses (6 objects, a symmetry pool of 2),
so the compute rows need no dataset. With ``--cache BOP_PATH/NAME/crops/SPLIT`` a last table times the DataLoader
side on real crops: reading and augmenting one batch in the main process, and the share of a training step it is.

With ``--runs BOP_PATH NAME`` it adds end-to-end rows: a real ``bopnp train`` process per batch size (loader,
augmentation, step, logging), crops/s over its logged steps after the first, the seconds from its start to its first
step and its CPU-seconds; ``--baseline DIR`` (a checkout of another revision, e.g. ``git worktree add /tmp/base
main``) runs the same commands with that code, in the same run, for the ratios.

With ``--e2e-step`` (and ``--cache``) a table of the end-to-end training step (``--stage pose --e2e``: L_trans plus
the projection loss through the PnP layer) against the L_trans step at equal batch (``--e2e-batches``), on a batch of
the cache's crops built as ``bopnp train`` builds one (raw crops, batched ``light`` augmentation), the network fresh
(``--e2e-init CKPT``: a trained one) and both steps timed alternately in one process: ms per step and the ratio.
With ``--baseline DIR`` the same runs with that checkout's code, in the same run; ``--e2e-executions`` adds rows of
this code with other PnP executions (e.g. ``eager sync_free cuda_graph`` on a GPU).

    python bench/train.py                                   # CPU: 64 and 128 px, widths 16 and 32
    python bench/train.py --cache datasets/demo/crops/train_pbr --workers 0
    python bench/train.py --sizes 128 --widths 32 64 --compile --device cuda
    python bench/train.py --device cpu --sizes 64 --widths 16 --runs datasets demo --run-batches 8 \
        --run-args "--width 16 --augment light" --baseline /tmp/base          # demo settings, today vs baseline
    python bench/train.py --device cpu --no-compute --cache datasets/demo/crops/train_pbr --e2e-step \
        --e2e-batches 8 256 --baseline /tmp/base                            # e2e step / L_trans step, demo settings
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shlex
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from bopnp.models import build_coord_unet, transformer_loss  # noqa: E402


def _batch(B: int, S: int, n_objects: int, device: torch.device, gen: torch.Generator) -> dict[str, torch.Tensor]:
    mask = torch.rand(B, S, S, generator=gen) > 0.7
    pool = torch.eye(4).repeat(B, 2, 1, 1)
    pool[:, 1, :2, :2] = -pool[:, 1, :2, :2]  # 180 deg about z
    batch = {
        "image": torch.rand(B, 3, S, S, generator=gen),
        "xyz": torch.where(mask[:, None], torch.rand(B, 3, S, S, generator=gen) * 2 - 1, 0.0),
        "mask_full": mask,
        "obj_index": torch.randint(n_objects, (B,), generator=gen),
        "pool": pool,
        "centre_mm": torch.zeros(B, 3),
        "half_extent_mm": torch.full((B, 3), 50.0),
    }
    return {k: v.to(device) for k, v in batch.items()}


def time_steps(net, batch, *, steps: int, warmup: int, autocast: torch.dtype | None, channels_last: bool) -> float:
    """Median seconds of one optimiser step."""
    device = batch["image"].device
    opt = torch.optim.Adam(net.parameters(), lr=1e-4)
    image = batch["image"].contiguous(memory_format=torch.channels_last) if channels_last else batch["image"]
    times = []
    for i in range(warmup + steps):
        if device.type == "cuda":
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        with torch.autocast(device.type, dtype=autocast, enabled=autocast is not None):
            xyz, err = net(image, batch["obj_index"])
        out = transformer_loss(
            xyz.float(),
            err.float(),
            batch["xyz"],
            batch["mask_full"],
            batch["pool"],
            batch["centre_mm"],
            batch["half_extent_mm"],
        )
        opt.zero_grad(set_to_none=True)
        out["loss"].backward()
        opt.step()
        if device.type == "cuda":
            torch.cuda.synchronize()
        if i >= warmup:
            times.append(time.perf_counter() - t0)
    return statistics.median(times)


def compute_rows(args, device: torch.device) -> list[dict]:
    rows = []
    gen = torch.Generator().manual_seed(0)
    variants = (
        ["eager", "channels_last"] + (["compile"] if args.compile else []) + (["bf16"] if device.type == "cuda" else [])
    )
    for S in args.sizes:
        for w in args.widths:
            batch = _batch(args.batch, S, 6, device, gen)
            base = None
            for variant in variants:
                torch.manual_seed(0)
                net = build_coord_unet(num_objects=6, width=w, crop_size=S).to(device)
                if variant == "channels_last":
                    net = net.to(memory_format=torch.channels_last)
                if variant == "compile":
                    net = torch.compile(net)
                sec = time_steps(
                    net,
                    batch,
                    steps=args.steps,
                    warmup=args.warmup + (2 if variant == "compile" else 0),
                    autocast=torch.bfloat16 if variant == "bf16" else None,
                    channels_last=variant == "channels_last",
                )
                crops_s = args.batch / sec
                base = crops_s if variant == "eager" else base
                rows.append(
                    {
                        "device": device.type,
                        "size": S,
                        "width": w,
                        "variant": variant,
                        "ms": sec * 1e3,
                        "crops_s": crops_s,
                        "x": crops_s / base,
                    }
                )
                print(
                    f"| {device.type} | {S} | {w} | {variant} | {sec * 1e3:.0f} | {crops_s:.1f} | "
                    f"{crops_s / base:.2f} |",
                    flush=True,
                )
    return rows


def loader_rows(args, step_ms: dict[int, float]) -> None:
    from torch.utils.data import DataLoader

    from bopnp.data.crop_dataset import open_crop_datasets
    from bopnp.data.training_set import AugmentConfig, EpochSampler, TrainingSet

    ts = TrainingSet(open_crop_datasets(args.cache), AugmentConfig())
    S = ts.datasets[0].crop_size
    sampler = EpochSampler(len(ts), seed=0)
    loader = DataLoader(ts, batch_size=args.batch, sampler=sampler, num_workers=args.workers)
    it = iter(loader)
    next(it)  # workers started, first batch
    times = []
    for _ in range(args.steps):
        t0 = time.perf_counter()
        next(it)
        times.append(time.perf_counter() - t0)
    ms = statistics.median(times) * 1e3
    print(
        f"\nloading + augmenting {args.batch} crops of {S} px from {args.cache} ({args.workers} workers): "
        f"{ms:.0f} ms per batch, {args.batch / ms * 1e3:.0f} crops/s"
    )
    for w, step in sorted(step_ms.items()):
        print(
            f"  vs a width-{w} training step at {S} px ({step:.0f} ms): loading is {ms / (ms + step):.0%} of the "
            "time when done in the same process"
        )


def run_train(src: Path, args, batch: int, out: Path) -> dict:
    """One ``bopnp train`` process with the code of ``src``; its end-to-end rate from its log."""
    cmd = [
        sys.executable, "-m", "bopnp", "train", args.runs[1], "--bop-path", args.runs[0], "--stage", "pose",
        "--steps", str(args.run_steps), "--batch-size", str(batch), "--val-every", "0", "--workers", str(args.workers),
        "--device", args.device if args.device != "all" else "auto", "--out", str(out), "--overwrite", "--no-progress",
        *shlex.split(args.run_args),
    ]  # fmt: skip
    env = {**os.environ, "PYTHONPATH": str(src)}
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    # run from the checkout itself: `python -m` puts the working folder first on the path
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, cwd=src)
    wall = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed:\n{proc.stderr[-2000:]}")
    records = [json.loads(line) for line in (out / "log.jsonl").read_text().splitlines()]
    steps = [r for r in records if "loss" in r and "elapsed_s" in r]
    start = next((r for r in records if r.get("startup")), None)
    a, b = steps[0], steps[-1]
    rate = (b["step"] - a["step"]) * batch / max(b["elapsed_s"] - a["elapsed_s"], 1e-9)
    return {
        "crops_s": rate,
        "first_step_s": start["total_s"] if start else float("nan"),
        "wall_s": wall,
        "cpu_s": (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime),
        "data_wait": b.get("data_wait", float("nan")),
    }


def e2e_rows(args) -> None:
    """End-to-end rows: real training processes, this code against ``--baseline``, per batch size."""
    sources = [("this", REPO)] + ([("baseline", args.baseline.resolve())] if args.baseline else [])
    args.runs = [str(Path(args.runs[0]).resolve()), args.runs[1]]
    print(
        f"\nend to end: `bopnp train {args.runs[1]} --stage pose --steps {args.run_steps} {args.run_args}`, "
        f"{args.workers} loader workers; crops/s between its first and last logged steps"
    )
    print("| batch | code | crops/s | x baseline | start -> first step s | data wait | wall s | CPU s |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- |")
    with tempfile.TemporaryDirectory() as tmp:
        for batch in args.run_batches:
            res = {name: run_train(src, args, batch, Path(tmp) / f"{name}{batch}") for name, src in sources}
            base = res.get("baseline", res["this"])["crops_s"]
            for name, r in res.items():
                print(
                    f"| {batch} | {name} | {r['crops_s']:.1f} | {r['crops_s'] / base:.2f} | {r['first_step_s']:.1f} | "
                    f"{r['data_wait']:.2f} | {r['wall_s']:.1f} | {r['cpu_s']:.1f} |",
                    flush=True,
                )


def e2e_step_worker(spec: dict) -> dict:
    """Median seconds of an L_trans step and of an e2e step (fwd + bwd + Adam) at one batch, timed alternately, with
    the ``bopnp`` already imported (this checkout's or a baseline's). ``spec``: cache, batch, width, arch, steps,
    warmup, device, threads, init, execution (``E2EConfig.pnp_execution``; None: the code's default)."""
    from torch.utils.data import default_collate

    from bopnp.data.batch_augment import augment_batch
    from bopnp.data.crop_dataset import open_crop_datasets
    from bopnp.data.training_set import AugmentConfig, TrainingSet, index_seed
    from bopnp.models import build_coord_net
    from bopnp.models.e2e import E2EConfig, e2e_projection_loss

    if spec["threads"]:
        torch.set_num_threads(spec["threads"])
    device = torch.device(spec["device"])
    aug = AugmentConfig.preset("light")
    ts = TrainingSet(open_crop_datasets(spec["cache"]), aug, device_augment=True)
    B = spec["batch"]
    picks = torch.linspace(0, len(ts) - 1, B).round().long().tolist()
    batch = default_collate([ts[(i, index_seed(0, 0, i))] for i in picks])
    batch = augment_batch({k: v.to(device) for k, v in batch.items()}, aug)
    torch.manual_seed(0)
    S = batch["image"].shape[-1]
    net = build_coord_net(arch=spec["arch"], num_objects=len(ts.obj_ids), width=spec["width"], crop_size=S)
    if spec["init"]:
        net.load_state_dict(torch.load(spec["init"], map_location="cpu", weights_only=False)["model"])
    net = net.to(device).train()
    opt = torch.optim.Adam(net.parameters(), lr=1e-4)
    cfg = E2EConfig() if spec["execution"] is None else E2EConfig(pnp_execution=spec["execution"])
    valid_share = []

    def step(e2e: bool) -> float:
        if device.type == "cuda":
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        xyz, err = net(batch["image"], batch["obj_index"])
        xyz, err = xyz.float(), err.float()
        out = transformer_loss(
            xyz, err, batch["xyz"], batch["mask_full"], batch["pool"], batch["centre_mm"], batch["half_extent_mm"]
        )
        loss = out["loss"]
        if e2e:
            proj, _, valid = e2e_projection_loss(xyz, err, batch, out["best"], cfg)
            loss = loss + cfg.lambda_proj * proj
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        float(loss.detach())  # wait for the device, as the trainer's budget timing does
        if e2e:
            valid_share.append(float(valid.float().mean()))
        return time.perf_counter() - t0

    times: dict[bool, list[float]] = {False: [], True: []}
    for i in range(spec["warmup"] + spec["steps"]):
        for e2e in (False, True):
            sec = step(e2e)
            if i >= spec["warmup"]:
                times[e2e].append(sec)
    return {
        "ltrans_ms": statistics.median(times[False]) * 1e3,
        "e2e_ms": statistics.median(times[True]) * 1e3,
        "valid": statistics.mean(valid_share),
        "threads": torch.get_num_threads(),
    }


def run_e2e_worker(src: Path, spec: dict) -> dict:
    """:func:`e2e_step_worker` in a fresh process that imports ``bopnp`` from ``src``."""
    code = (
        f"import sys, json; sys.path.insert(0, {str(src)!r}); import bopnp; "
        f"sys.path.insert(0, {str(Path(__file__).resolve().parent)!r}); import train; "
        "print(json.dumps(train.e2e_step_worker(json.loads(sys.argv[1]))))"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code, json.dumps(spec)],
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": ""},
    )
    if proc.returncode != 0:
        raise SystemExit(f"the e2e step measurement with the code of {src} failed:\n{proc.stderr[-2000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def e2e_step_rows(args, device: str) -> None:
    """The e2e step against the L_trans step at equal batch, this code and ``--baseline``'s."""
    if args.cache is None:
        raise SystemExit("--e2e-step needs --cache BOP_PATH/NAME/crops/SPLIT (a batch of real crops)")
    sources = [("this", REPO)] + ([("baseline", args.baseline.resolve())] if args.baseline else [])
    print(
        f"\ne2e step (L_trans + projection loss through PnP) vs L_trans step, fwd + bwd + Adam, {device}, "
        f"--arch {args.e2e_arch} --width {args.e2e_width}, crops of {args.cache}, "
        f"{'network from ' + str(args.e2e_init) if args.e2e_init else 'fresh network'}; medians of {args.steps} "
        "alternating steps"
    )
    print("| batch | code | PnP execution | threads | L_trans ms | e2e ms | e2e / L_trans | poses valid |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- |")
    for batch in args.e2e_batches:
        spec = {
            "cache": str(Path(args.cache).resolve()),
            "batch": batch,
            "width": args.e2e_width,
            "arch": args.e2e_arch,
            "steps": args.steps,
            "warmup": args.warmup,
            "device": device,
            "threads": args.threads,
            "init": str(Path(args.e2e_init).resolve()) if args.e2e_init else None,
        }
        # this code with each execution asked for, the baseline with its own default
        runs = [("this", REPO, ex) for ex in args.e2e_executions] + [(n, src, None) for n, src in sources[1:]]
        for name, src, execution in runs:
            r = run_e2e_worker(src, {**spec, "execution": None if execution == "auto" else execution})
            print(
                f"| {batch} | {name} | {execution or 'default'} | {r['threads']} | {r['ltrans_ms']:.0f} | "
                f"{r['e2e_ms']:.0f} | {r['e2e_ms'] / r['ltrans_ms']:.2f} | {r['valid']:.2f} |",
                flush=True,
            )


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--device", choices=["cpu", "cuda", "all"], default="all", help="all: CPU, and CUDA when present")
    p.add_argument("--sizes", type=int, nargs="+", default=[64, 128])
    p.add_argument("--widths", type=int, nargs="+", default=[16, 32])
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--steps", type=int, default=5, help="timed steps per row (median)")
    p.add_argument("--warmup", type=int, default=2)
    p.add_argument("--compile", action="store_true", help="add torch.compile rows")
    p.add_argument("--cache", type=Path, default=None, help="a crop cache folder to time loading on")
    p.add_argument("--workers", type=int, default=0)
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    p.add_argument("--runs", nargs=2, metavar=("BOP_PATH", "NAME"), default=None, help="add end-to-end rows")
    p.add_argument("--run-batches", type=int, nargs="+", default=[8, 32])
    p.add_argument("--run-steps", type=int, default=200)
    p.add_argument("--run-args", default="--width 16 --augment light", help="more `bopnp train` options")
    p.add_argument("--baseline", type=Path, default=None, help="a checkout of the code to compare with")
    p.add_argument("--no-compute", action="store_true", help="only the end-to-end rows")
    p.add_argument("--e2e-step", action="store_true", help="add the e2e step vs L_trans step table (needs --cache)")
    p.add_argument("--e2e-batches", type=int, nargs="+", default=[8])
    p.add_argument("--e2e-width", type=int, default=16)
    p.add_argument("--e2e-arch", default="pix2pose")
    p.add_argument("--e2e-init", type=Path, default=None, help="a checkpoint of that network (default: fresh)")
    p.add_argument(
        "--e2e-executions",
        nargs="+",
        default=["auto"],
        choices=["auto", "eager", "sync_free", "cuda_graph"],
        help="PnP executions of this code's e2e rows (E2EConfig.pnp_execution)",
    )
    args = p.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    devices = ["cpu"] if args.device == "cpu" else ["cuda"] if args.device == "cuda" else ["cpu"]
    if args.device == "all" and torch.cuda.is_available():
        devices.append("cuda")
    print(f"torch {torch.__version__}, {torch.get_num_threads()} CPU threads, batch {args.batch}, L_trans fwd+bwd+Adam")
    if not args.no_compute:
        print("| device | crop px | width | variant | ms / step | crops/s | x eager |")
        print("| --- | --- | --- | --- | --- | --- | --- |")
    rows = []
    for d in devices if not args.no_compute else []:
        rows += compute_rows(args, torch.device(d))
    if args.cache is not None and not (args.e2e_step and args.no_compute):  # --e2e-step: the cache gives its batch
        size = None
        from bopnp.data.cache import read_cache_meta

        size = int(read_cache_meta(args.cache)["crop_size"])
        step_ms = {
            r["width"]: r["ms"] for r in rows if r["size"] == size and r["variant"] == "eager" and r["device"] == "cpu"
        }
        loader_rows(args, step_ms)
    if args.e2e_step:
        for d in devices:
            e2e_step_rows(args, d)
    if args.runs is not None:
        e2e_rows(args)


if __name__ == "__main__":
    main()

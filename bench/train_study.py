"""Training study: one pose-network run whose validations are logged against crops seen and training CPU-seconds.

``run`` trains one arm (``bopnp train NAME --stage pose`` with the given options, in this process, one thread,
no loader workers, so that every CPU-second of the run is this process's) and writes ``study.json`` beside the run:
per validation the step, crops seen, the CPU-seconds spent training so far (validation's own CPU time excluded),
held-out L_3D and the recalls (ADD(-S), MSSD, MSPD, AR* = their mean of MSSD and MSPD). ``plot`` draws the arms'
curves into PNGs and prints a table. A finished arm is not rerun.

    python bench/train_study.py run --arch pix2pose --width 16 --steps 830 --out results/study/pix2pose
    python bench/train_study.py plot results/study/* --out docs/img
"""

from __future__ import annotations

import argparse
import json
import resource
import sys
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from bopnp.data.training_set import AUGMENT_PRESETS, AugmentConfig  # noqa: E402
from bopnp.models import ARCHS  # noqa: E402
from bopnp.train.config import PoseTrainConfig  # noqa: E402
from bopnp.train.pose import train_pose  # noqa: E402


def cpu_seconds() -> float:
    """User + system CPU time of this process, seconds."""
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def run(args: argparse.Namespace) -> None:
    out = Path(args.out)
    record = out / "study.json"
    if record.is_file():
        print(f"{record} exists: arm already done")
        return
    torch.set_num_threads(1)
    cfg = PoseTrainConfig(
        bop_path=args.bop_path, name=args.name, out=str(out), steps=args.steps, batch_size=args.batch_size,
        lr=args.lr, width=args.width, arch=args.arch, norm=args.norm, val_every=args.val_every, workers=0,
        seed=args.seed, device="cpu", augment=AugmentConfig.preset(args.augment), ckpt_every=args.val_every,
    ).validate()  # fmt: skip
    points: list[dict] = []
    spent = {"val": 0.0}
    start = cpu_seconds()

    def hook(trainer) -> None:
        validate = trainer.validate

        def timed_validate():
            t0, before = cpu_seconds(), spent["val"]
            v = validate()
            spent["val"] += cpu_seconds() - t0
            if v is not None:
                train_cpu = t0 - start - before
                points.append({**v, "crops": v["step"] * cfg.batch_size, "train_cpu_s": round(train_cpu, 1)})
                print(json.dumps(points[-1]), flush=True)
            return v

        trainer.validate = timed_validate

    train_pose(cfg, overwrite=True, progress=False, on_ready=hook)
    total = cpu_seconds() - start
    summary = {"arm": vars(args), "points": points, "cpu_s_total": round(total, 1), "cpu_s_val": round(spent["val"], 1)}
    record.write_text(json.dumps(summary, indent=1) + "\n")
    print(f"{out}: {total:.0f} CPU-s in all, {spent['val']:.0f} of them validating")


def plot(args: argparse.Namespace) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    arms = []
    for folder in args.runs:
        f = Path(folder) / "study.json"
        if f.is_file():
            arms.append((Path(folder).name, json.loads(f.read_text())))
    if not arms:
        raise SystemExit("no study.json in the given folders")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    for x_key, x_label, name in (("crops", "crops seen", "crops"), ("train_cpu_s", "training CPU-seconds", "cpu")):
        fig, axes = plt.subplots(1, 2, figsize=(10, 4))
        for label, arm in arms:
            xs = [p[x_key] for p in arm["points"]]
            axes[0].plot(xs, [p["l3d"] for p in arm["points"]], marker="o", label=label)
            axes[1].plot(xs, [p["ar"] for p in arm["points"]], marker="o", label=label)
        axes[0].set_ylabel("held-out L_3D")
        axes[1].set_ylabel("held-out AR* (MSSD, MSPD), GT boxes")
        for ax in axes:
            ax.set_xlabel(x_label)
            ax.grid(alpha=0.3)
        axes[1].legend(fontsize=8)
        fig.tight_layout()
        path = out / f"{args.prefix}_{name}.png"
        fig.savefig(path, dpi=90)
        plt.close(fig)
        print(f"wrote {path}")
    print(f"{'arm':24s} {'steps':>6s} {'crops':>6s} {'train CPU-s':>11s} {'ms/crop':>8s} {'L_3D':>6s} {'MSSD':>6s} "
          f"{'MSPD':>6s} {'AR*':>6s}")  # fmt: skip
    for label, arm in arms:
        p = arm["points"][-1]
        print(
            f"{label:24s} {p['step']:6d} {p['crops']:6d} {p['train_cpu_s']:11.0f} "
            f"{1e3 * p['train_cpu_s'] / p['crops']:8.1f} {p['l3d']:6.3f} {p['mssd']:6.3f} {p['mspd']:6.3f} "
            f"{p['ar']:6.3f}"
        )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    r = sub.add_parser("run", help="train one arm")
    r.add_argument("--bop-path", default="datasets")
    r.add_argument("--name", default="demo")
    r.add_argument("--arch", choices=ARCHS, default="pix2pose")
    r.add_argument("--width", type=int, default=16)
    r.add_argument("--norm", choices=("batch", "group"), default="batch")
    r.add_argument("--steps", type=int, required=True)
    r.add_argument("--batch-size", type=int, default=8)
    r.add_argument("--lr", type=float, default=1e-3)
    r.add_argument("--val-every", type=int, required=True)
    r.add_argument("--augment", choices=AUGMENT_PRESETS, default="light")
    r.add_argument("--seed", type=int, default=0)
    r.add_argument("--out", required=True)
    p = sub.add_parser("plot", help="draw the arms' curves")
    p.add_argument("runs", nargs="+")
    p.add_argument("--out", default="docs/img")
    p.add_argument("--prefix", default="study")
    args = ap.parse_args()
    run(args) if args.cmd == "run" else plot(args)


if __name__ == "__main__":
    main()

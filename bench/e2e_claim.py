"""Experiment: does end-to-end fine-tuning through the PnP layer beat training without it, at equal budget?

Per seed, three kinds of runs on one training set, scored on a held-out test set (another dataset, e.g. rendered
with another seed):

- (a) ``L_trans`` for T steps;
- (b) (a)'s weights, then T2 steps of ``L_trans + lambda_proj L_proj`` (``--e2e``);
- (c) (a)'s weights, then T2 more steps of ``L_trans`` alone, with the same learning-rate schedule as (b).

(b) and (c) differ only in the loss of their last T2 steps. ``lambda_proj`` is chosen, before any test score is
looked at, on a validation split: the last scenes of the training set (``--val-fraction``), held out of every run.
(b) runs with every value of ``--lambdas`` for the first ``--sweep-seeds`` seeds; the value of the best mean
validation AR* is then used for the other seeds. Every network is scored on the test crops cut around the GT boxes
(``bopnp prepare TEST --split test``): PnP with RANSAC on the predicted coordinates, as training's validation does,
then ADD(-S) recall at 0.1 d and the MSSD and MSPD recalls of the BOP evaluator (their mean: AR*, the AR without
VSD). The verdict is the mean +- std (over seeds) of (b) - (c). Runs that exist are reused, so the script can be
stopped and restarted; the budgets are flags.

    bopnp synth lmo-synth --models datasets/lmo/models --train-images 1000 --test-images 0
    bopnp synth lmo-synth-test --models datasets/lmo/models --train-images 0 --test-images 100 --seed 1
    bopnp prepare lmo-synth --crop-size 64 && bopnp prepare lmo-synth-test --split test --crop-size 64
    python bench/e2e_claim.py --train lmo-synth --test lmo-synth-test --steps 4000 --e2e-steps 500
    python bench/e2e_claim.py ... --device cuda --batch-size 256 --workers 8   # on a GPU
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from bopnp.data.training_set import AUGMENT_PRESETS, AugmentConfig  # noqa: E402
from bopnp.device import resolve_device  # noqa: E402
from bopnp.models import ARCHS  # noqa: E402
from bopnp.models.e2e import E2EConfig  # noqa: E402
from bopnp.train.checkpoint import load_checkpoint  # noqa: E402
from bopnp.train.config import PoseTrainConfig  # noqa: E402
from bopnp.train.holdout import score_checkpoint  # noqa: E402
from bopnp.train.pose import train_pose  # noqa: E402

METRICS = ("add_s", "mssd", "mspd", "ar")


def run(cfg: PoseTrainConfig) -> float:
    """Train (or finish) a run; its wall seconds (0 when it was already complete)."""
    last = cfg.run_dir / "last.pt"
    if last.is_file() and load_checkpoint(last)["state"]["step"] >= cfg.steps:
        return 0.0
    t0 = time.perf_counter()
    # a run stopped before its first checkpoint has nothing to keep: start it over
    train_pose(cfg, resume=last.is_file(), overwrite=not last.is_file(), progress=False)
    return time.perf_counter() - t0


def final_validation(run_dir: Path) -> dict:
    """The run's last validation record (its held-out training scenes)."""
    records = [json.loads(line) for line in (run_dir / "log.jsonl").read_text().splitlines() if line.strip()]
    vals = [r for r in records if r.get("validation")]
    if not vals:
        raise SystemExit(f"{run_dir}: no validation logged; use --val-fraction > 0 on a dataset with several scenes")
    return vals[-1]


def lam_name(lam: float) -> str:
    return f"b_lam{lam:g}"


def mean_std(values: list[float]) -> tuple[float, float]:
    """Mean and sample standard deviation (0 for one value)."""
    a = np.asarray(values, dtype=float)
    return float(a.mean()), float(a.std(ddof=1)) if len(a) > 1 else 0.0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--bop-path", default="datasets")
    ap.add_argument("--train", required=True, help="dataset to train on (its train_pbr crops)")
    ap.add_argument("--test", required=True, help="dataset whose test split scores the networks")
    ap.add_argument("--test-split", default="test")
    ap.add_argument("--test-crops", type=int, default=0, help="score at most this many test crops (0: all)")
    ap.add_argument("--steps", type=int, default=1500, help="T: steps of (a)")
    ap.add_argument("--e2e-steps", type=int, default=500, help="T2: steps of the second phase of (b) and (c)")
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--lambdas", type=float, nargs="+", default=[1e-4, 1e-3, 1e-2], help="lambda_proj sweep")
    ap.add_argument("--sweep-seeds", type=int, default=1, help="the first N seeds run every lambda (at least 1)")
    ap.add_argument("--val-fraction", type=float, default=0.1, help="scenes of --train held out to choose lambda")
    ap.add_argument("--val-crops", type=int, default=256)
    ap.add_argument("--arch", choices=ARCHS, default="pix2pose")
    ap.add_argument("--width", type=int, default=16)
    ap.add_argument("--batch-size", type=int, default=16)
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--augment", choices=AUGMENT_PRESETS, default="light")
    ap.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto")
    ap.add_argument("--workers", type=int, default=0)
    ap.add_argument("--out", default="results/bench/e2e_claim")
    args = ap.parse_args()
    if len(args.lambdas) < 1 or args.sweep_seeds < 1 or not 0 < args.val_fraction < 1:
        raise SystemExit("need --lambdas, --sweep-seeds >= 1 and 0 < --val-fraction < 1")
    device = resolve_device(args.device)
    root = Path(args.out)
    common = dict(
        bop_path=args.bop_path, name=args.train, arch=args.arch, width=args.width, batch_size=args.batch_size,
        workers=args.workers, device=args.device, val_every=0, val_fraction=args.val_fraction,
        val_crops=args.val_crops, ckpt_every=max(100, args.steps // 10), augment=AugmentConfig.preset(args.augment),
    )  # fmt: skip
    # both second phases start from (a)'s weights at a tenth of its peak learning rate, with the same warm-up and decay
    lr2 = args.lr / 10

    def configs(seed: int, lams: list[float]) -> dict[str, PoseTrainConfig]:
        out = root / f"seed{seed}"
        init = str(out / "a" / "last.pt")
        cfgs = {
            "a": PoseTrainConfig(out=str(out / "a"), steps=args.steps, lr=args.lr, seed=seed, **common),
            "c": PoseTrainConfig(out=str(out / "c"), steps=args.e2e_steps, init=init, lr=lr2, seed=seed, **common),
        }
        for lam in lams:
            cfgs[lam_name(lam)] = PoseTrainConfig(
                out=str(out / lam_name(lam)), steps=args.e2e_steps, e2e=True, init=init, lr=lr2, seed=seed,
                e2e_loss=E2EConfig(lambda_proj=lam), **common,
            )  # fmt: skip
        return {k: c.validate() for k, c in cfgs.items()}

    seconds: dict[str, dict[str, float]] = {}
    sweep = args.seeds[: args.sweep_seeds]
    for seed in sweep:
        seconds[str(seed)] = {name: run(cfg) for name, cfg in configs(seed, args.lambdas).items()}
    # lambda by the mean validation AR* over the sweep seeds (ties: the smaller L_3D): no test score involved
    val = {lam: [final_validation(root / f"seed{s}" / lam_name(lam)) for s in sweep] for lam in args.lambdas}
    lam_best = max(
        args.lambdas, key=lambda lam: (np.mean([v["ar"] for v in val[lam]]), -np.mean([v["l3d"] for v in val[lam]]))
    )
    for seed in args.seeds[args.sweep_seeds :]:
        seconds[str(seed)] = {name: run(cfg) for name, cfg in configs(seed, [lam_best]).items()}

    rows: dict[str, dict[str, dict]] = {}
    for seed in args.seeds:
        folder = root / f"seed{seed}"
        rows[str(seed)] = {
            name: score_checkpoint(
                folder / run_name / "last.pt", args.bop_path, args.test, args.test_split, device=device,
                crops=args.test_crops,
            )
            for name, run_name in (("a", "a"), ("b", lam_name(lam_best)), ("c", "c"))
        }  # fmt: skip
    verdict = {k: mean_std([rows[str(s)]["b"][k] - rows[str(s)]["c"][k] for s in args.seeds]) for k in METRICS}
    summary = {
        "args": vars(args), "lambda_proj": lam_best, "validation": {f"{lam:g}": val[lam] for lam in args.lambdas},
        "seconds": seconds, "scores": rows, "b_minus_c": verdict,
    }  # fmt: skip
    (root / "scores.json").write_text(json.dumps(summary, indent=1) + "\n")

    T, T2, n = args.steps, args.e2e_steps, len(args.seeds)
    crops = rows[str(args.seeds[0])]["a"]["crops"]
    print(f"test: {args.test}/{args.test_split}, {crops} crops (GT boxes); train: {args.train}; seeds {args.seeds}")
    print(f"lambda_proj sweep on the held-out training scenes (seeds {sweep}), validation AR* and L_3D:")
    for lam in args.lambdas:
        ar, l3d = np.mean([v["ar"] for v in val[lam]]), np.mean([v["l3d"] for v in val[lam]])
        print(f"  {lam:<8g} AR* {ar:.3f}  L_3D {l3d:.3f}" + ("   <- chosen" if lam == lam_best else ""))
    label = {"a": f"(a) L_trans, {T} steps", "b": f"(b) (a) + e2e, {T2} steps", "c": f"(c) (a) + L_trans, {T2} steps"}
    head = f"run (mean +- std over {n} seeds)"
    print(f"{head:34s} {'ADD(-S)':>13s} {'MSSD':>13s} {'MSPD':>13s} {'AR*':>13s}")
    for name in ("a", "b", "c"):
        cells = [mean_std([rows[str(s)][name][k] for s in args.seeds]) for k in METRICS]
        print(f"{label[name]:34s} " + " ".join(f"{m:6.3f}+-{s:5.3f}" for m, s in cells))
    print("(b) - (c) " + ", ".join(f"{k}: {m:+.3f} +- {s:.3f}" for k, (m, s) in verdict.items()))
    print("AR* = (MSSD + MSPD) / 2, the BOP19 AR without VSD; std: sample standard deviation over the seeds")


if __name__ == "__main__":
    main()

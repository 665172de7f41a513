"""Experiment: does end-to-end fine-tuning through the PnP layer beat training without it, at equal budget?

Three runs on one training set, scored on a held-out test set (another dataset, e.g. rendered with another seed):

- (a) ``L_trans`` for T steps;
- (b) (a)'s weights, then T2 steps of ``L_trans + lambda_proj L_proj`` (``--e2e``);
- (c) (a)'s weights, then T2 more steps of ``L_trans`` alone, with the same learning-rate schedule as (b).

(b) and (c) differ only in the loss of their last T2 steps. Every network is scored on the test crops cut around the
GT boxes (``bopnp prepare TEST --split test``): PnP with RANSAC on the predicted coordinates, as training's
validation does, then ADD(-S) recall at 0.1 d and the MSSD and MSPD recalls of the BOP evaluator (their mean is
printed as AR without VSD). Runs that exist are resumed or reused, so the script can be stopped and restarted.

    bopnp synth lmo-synth --models datasets/lmo/models --train-images 1000 --test-images 0
    bopnp synth lmo-synth-test --models datasets/lmo/models --train-images 0 --test-images 100 --seed 1
    bopnp prepare lmo-synth --crop-size 64 && bopnp prepare lmo-synth-test --split test --crop-size 64
    python bench/e2e_claim.py --train lmo-synth --test lmo-synth-test --steps 1500 --e2e-steps 500
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import DataLoader

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from bopnp.bop.dataset import BopDataset  # noqa: E402
from bopnp.data.cache import cache_dir_for  # noqa: E402
from bopnp.data.crop_dataset import open_crop_datasets  # noqa: E402
from bopnp.data.training_set import AUGMENT_PRESETS, AugmentConfig, TrainingSet  # noqa: E402
from bopnp.models import build_coord_unet  # noqa: E402
from bopnp.models.e2e import E2EConfig, pose_from_prediction  # noqa: E402
from bopnp.train.checkpoint import load_checkpoint  # noqa: E402
from bopnp.train.config import PoseTrainConfig  # noqa: E402
from bopnp.train.engine import evaluate  # noqa: E402
from bopnp.train.pose import VAL_RANSAC, train_pose  # noqa: E402
from bopnp.train.pose_scores import load_object_models, pose_scores  # noqa: E402


def score_checkpoint(path: Path, bop_path: str, test: str, split: str, batch_size: int = 32) -> dict[str, float]:
    """Recalls of a checkpoint's network on every crop of ``test``'s ``split`` (GT boxes, no augmentation)."""
    ckpt = load_checkpoint(path)
    cfg = PoseTrainConfig.from_dict(ckpt["config"])
    obj_ids = [int(o) for o in ckpt["obj_ids"]]
    net = build_coord_unet(
        num_objects=len(obj_ids), width=cfg.width, crop_size=int(ckpt["crop_size"]), bottleneck=cfg.bottleneck
    )
    net.load_state_dict(ckpt["model"])
    dataset = BopDataset.from_bop_path(bop_path, test, split)
    crops = open_crop_datasets(cache_dir_for(bop_path, test, split), obj_ids, min_visib_fract=cfg.min_visib_fract)
    # the network's output group k serves obj_ids[k]: keep that order even when the test set lacks an object
    test_set = TrainingSet(crops, None)
    index_of = {o: k for k, o in enumerate(obj_ids)}

    def predict(model, batch):
        obj_index = torch.tensor([index_of[int(o)] for o in batch["obj_id"]])
        xyz, err = model(batch["image"], obj_index)
        res, K = pose_from_prediction(xyz.float(), err.float(), batch, cfg.e2e_loss, ransac=VAL_RANSAC)
        return {"R": res.R, "t": res.t, "valid": res.valid, "K": K, "R_gt": batch["R_m2c"], "t_gt": batch["t_m2c"],
                "obj_id": batch["obj_id"]}  # fmt: skip

    loader = DataLoader(test_set, batch_size=batch_size, num_workers=0)
    pred = evaluate(net, loader, predict, device=torch.device("cpu"))
    d = lambda k: pred[k].double().numpy()  # noqa: E731
    models = load_object_models(dataset, sorted(crops))
    scores = pose_scores(
        d("R"), d("t"), d("R_gt"), d("t_gt"), d("K"), pred["obj_id"].numpy(), pred["valid"].numpy().astype(bool),
        models, dataset.camera.width,
    )  # fmt: skip
    scores["crops"] = len(test_set)
    return scores


def run(cfg: PoseTrainConfig) -> float:
    """Train (or finish) a run; its wall seconds (0 when it was already complete)."""
    run_dir = cfg.run_dir
    last = run_dir / "last.pt"
    if last.is_file() and load_checkpoint(last)["state"]["step"] >= cfg.steps:
        return 0.0
    t0 = time.perf_counter()
    train_pose(cfg, resume=last.is_file(), progress=False)
    return time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--bop-path", default="datasets")
    ap.add_argument("--train", required=True, help="dataset to train on (its train_pbr crops)")
    ap.add_argument("--test", required=True, help="dataset whose test split scores the networks")
    ap.add_argument("--test-split", default="test")
    ap.add_argument("--steps", type=int, default=1500, help="T: steps of (a)")
    ap.add_argument("--e2e-steps", type=int, default=500, help="T2: steps of the second phase of (b) and (c)")
    ap.add_argument("--width", type=int, default=16)
    ap.add_argument("--batch-size", type=int, default=16)
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--lambda-proj", type=float, default=None, help="weight of L_proj (default: E2EConfig's)")
    ap.add_argument("--augment", choices=AUGMENT_PRESETS, default="light")
    ap.add_argument("--workers", type=int, default=0)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", default="results/bench/e2e_claim")
    args = ap.parse_args()

    out = Path(args.out)
    common = dict(
        bop_path=args.bop_path, name=args.train, width=args.width, batch_size=args.batch_size, workers=args.workers,
        seed=args.seed, val_every=0, val_fraction=0.0, ckpt_every=100, augment=AugmentConfig.preset(args.augment),
    )  # fmt: skip
    e2e_loss = E2EConfig() if args.lambda_proj is None else E2EConfig(lambda_proj=args.lambda_proj)
    a = PoseTrainConfig(out=str(out / "a"), steps=args.steps, lr=args.lr, **common).validate()
    init = str(out / "a" / "last.pt")
    # both second phases start from (a)'s weights at a tenth of its peak learning rate, with the same warm-up and decay
    lr2 = args.lr / 10
    b = PoseTrainConfig(
        out=str(out / "b"), steps=args.e2e_steps, e2e=True, init=init, lr=lr2, e2e_loss=e2e_loss, **common
    ).validate()
    c = PoseTrainConfig(out=str(out / "c"), steps=args.e2e_steps, init=init, lr=lr2, **common).validate()

    seconds = {"a": run(a)}
    seconds["b"] = run(b)
    seconds["c"] = run(c)
    rows = {}
    for name in ("a", "b", "c"):
        rows[name] = score_checkpoint(out / name / "last.pt", args.bop_path, args.test, args.test_split)
    (out / "scores.json").write_text(json.dumps({"args": vars(args), "seconds": seconds, "scores": rows}, indent=1))

    T, T2 = args.steps, args.e2e_steps
    label = {"a": f"(a) L_trans, {T} steps", "b": f"(b) (a) + e2e, {T2} steps", "c": f"(c) (a) + L_trans, {T2} steps"}
    print(f"test: {args.test}/{args.test_split}, {rows['a']['crops']} crops (GT boxes); train: {args.train}")
    print(f"{'run':34s} {'ADD(-S)':>8s} {'MSSD':>7s} {'MSPD':>7s} {'AR*':>7s} {'valid':>6s} {'train s':>8s}")
    for name, r in rows.items():
        print(
            f"{label[name]:34s} {r['add_s']:8.3f} {r['mssd']:7.3f} {r['mspd']:7.3f} {r['ar']:7.3f} {r['valid']:6.2f} "
            f"{seconds[name]:8.0f}"
        )
    print("AR* = (MSSD + MSPD) / 2, the BOP19 AR without VSD; 'train s' is 0 for runs that were already complete")
    diff = np.array([rows["b"][k] - rows["c"][k] for k in ("add_s", "mssd", "mspd")])
    print(f"(b) - (c): ADD(-S) {diff[0]:+.3f}, MSSD {diff[1]:+.3f}, MSPD {diff[2]:+.3f}")


if __name__ == "__main__":
    main()

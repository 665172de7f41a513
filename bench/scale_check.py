"""Where the pose stage's depth goes wrong, with GT boxes: a trained network against the oracle.

On the crops of a split (GT boxes, GT visible masks, as training validates), three PnP inputs run through the same
:func:`bopnp.models.e2e.pose_from_prediction`:

- ``oracle``: the target coordinates (error map 0): what crop intrinsics, normalisation box and pixel selection
  give when the network is perfect;
- ``net``: the network's coordinates and error map;
- ``net, shrink undone``: the network's coordinates scaled about their centroid so that their spread equals the
  target's (a test of the explanation below; it needs the target, so it is a diagnosis, not a method);
- ``net, surface``: the network's coordinates moved out to the object's surface along their direction from its
  centre (:mod:`bopnp.geometry.radial_surface`, what prediction does by default).

Per crop it prints the depth ratio ``t_z / t_z_gt``, the lateral error and the rotation error, and the spread
ratio of the predicted to the target model points on the visible pixels (RMS distance to their centroid, mm; a
rigid symmetry leaves it unchanged): below 1, the network's coordinates are shrunk towards the object's centre,
and PnP, which fits that smaller object to the same image pixels, puts it closer to the camera.

    python bench/scale_check.py results/train/demo/pose --name demo --split test
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import DataLoader

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from bopnp.bop.dataset import BopDataset  # noqa: E402
from bopnp.data.cache import cache_dir_for  # noqa: E402
from bopnp.data.crop_dataset import open_crop_datasets  # noqa: E402
from bopnp.data.training_set import TrainingSet  # noqa: E402
from bopnp.geometry.radial_surface import expand_coordinates  # noqa: E402
from bopnp.geometry.rotations import rotation_angle_deg  # noqa: E402
from bopnp.infer.network import load_pose_network  # noqa: E402
from bopnp.models.e2e import E2EConfig, pose_from_prediction  # noqa: E402
from bopnp.train.pose import VAL_RANSAC  # noqa: E402
from bopnp.train.pose_scores import load_radial_profiles  # noqa: E402
from bopnp.train.runner import evenly_spread  # noqa: E402


def spread_mm(xyz, mask, centre_mm, half_mm):
    """(B,) RMS distance of the masked model points to their centroid, mm. xyz: (B, 3, S, S); mask: (B, S, S)."""
    pts = centre_mm[:, :, None] + xyz.flatten(2) * half_mm[:, :, None]  # (B, 3, S*S) mm
    m = mask.flatten(1).float()[:, None]  # (B, 1, S*S)
    n = m.sum(-1).clamp(min=1)
    mean = (pts * m).sum(-1) / n
    return (((pts - mean[..., None]) ** 2 * m).sum((1, 2)) / n[:, 0]).sqrt()


def rescale(xyz, mask, centre_mm, half_mm, factor):
    """xyz with its masked model points scaled by ``factor`` (B,) about their centroid (normalised units back)."""
    pts = centre_mm[:, :, None, None] + xyz * half_mm[:, :, None, None]
    m = mask[:, None].float()
    mean = (pts * m).sum((2, 3), keepdim=True) / m.sum((2, 3), keepdim=True).clamp(min=1)
    pts = mean + (pts - mean) * factor[:, None, None, None]
    return (pts - centre_mm[:, :, None, None]) / half_mm[:, :, None, None]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("pose", help="pose run folder or checkpoint")
    ap.add_argument("--bop-path", default="datasets")
    ap.add_argument("--name", default="demo")
    ap.add_argument("--split", default="test")
    ap.add_argument("--crops", type=int, default=256, help="at most this many crops, evenly spread")
    ap.add_argument("--min-visib", type=float, default=0.1)
    args = ap.parse_args()
    torch.set_num_threads(1)
    net = load_pose_network(args.pose)
    crops = open_crop_datasets(
        cache_dir_for(args.bop_path, args.name, args.split), net.obj_ids, min_visib_fract=args.min_visib
    )
    every = TrainingSet(crops, None)
    data = TrainingSet(crops, None, indices=evenly_spread(list(range(len(every))), args.crops))
    index_of = {o: k for k, o in enumerate(net.obj_ids)}
    cfg = E2EConfig()
    profiles = load_radial_profiles(BopDataset.from_bop_path(args.bop_path, args.name, args.split), net.obj_ids)
    rows: dict[str, list] = {"oracle": [], "net": [], "net, shrink undone": [], "net, surface": []}
    spread_ratio = []
    with torch.inference_mode():
        for batch in DataLoader(data, batch_size=32):
            idx = torch.tensor([index_of[int(o)] for o in batch["obj_id"]])
            xyz, err = net.net(batch["image"], idx)
            mask = batch["mask_visib"]
            c, h = batch["centre_mm"], batch["half_extent_mm"]
            ratio = spread_mm(xyz, mask, c, h) / spread_mm(batch["xyz"], mask, c, h).clamp(min=1e-6)
            spread_ratio.append(ratio)
            inputs = {
                "oracle": (batch["xyz"], torch.zeros_like(err)),
                "net": (xyz, err),
                "net, shrink undone": (rescale(xyz, mask, c, h, 1 / ratio.clamp(min=1e-3)), err),
                "net, surface": (expand_coordinates(xyz, c, h, profiles[idx], cfg.min_coord), err),
            }
            for name, (x, e) in inputs.items():
                res, _ = pose_from_prediction(x, e, batch, cfg, ransac=VAL_RANSAC)
                t, t_gt = res.t.double(), batch["t_m2c"].double()
                rows[name].append(
                    torch.stack(
                        [
                            t[:, 2] / t_gt[:, 2],
                            (t[:, :2] - t_gt[:, :2]).norm(dim=1),
                            rotation_angle_deg(res.R.double(), batch["R_m2c"].double()),
                            res.valid.double(),
                        ],
                        1,
                    )
                )
    spread = torch.cat(spread_ratio).numpy()
    print(f"{args.pose} on {args.name}/{args.split}: {len(data)} crops (GT boxes, GT visible masks)")
    print(f"spread of predicted / target model points: median {np.median(spread):.3f}, "
          f"quartiles {np.percentile(spread, 25):.3f} .. {np.percentile(spread, 75):.3f}")  # fmt: skip
    print(f"{'input':20s} {'t_z / t_z_gt: median':>21s} {'quartiles':>15s} {'|dt_xy| mm':>11s} {'rot err deg':>12s} "
          f"{'valid':>6s}")  # fmt: skip
    for name, parts in rows.items():
        a = torch.cat(parts).numpy()
        ok = a[:, 3] > 0
        z, xy, rot = a[ok, 0], a[ok, 1], a[ok, 2]
        print(
            f"{name:20s} {np.median(z):21.3f} {np.percentile(z, 25):7.3f}..{np.percentile(z, 75):6.3f} "
            f"{np.median(xy):11.1f} {np.median(rot):12.1f} {ok.mean():6.2f}"
        )
    print("(symmetric objects' rotation errors are not reduced by their symmetries here: the depth is the point)")


if __name__ == "__main__":
    main()

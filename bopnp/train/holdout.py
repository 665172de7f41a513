"""Scoring a pose-network checkpoint on held-out crops cut around the ground-truth boxes (``bopnp prepare NAME
--split test``): PnP with RANSAC on the predicted coordinates, as training's validation does, then ADD(-S) recall at
0.1 d and the MSSD and MSPD recalls of the BOP evaluator (their mean: AR*, the BOP19 AR without VSD).

No detector takes part, so the score measures the pose network alone (the time-budgeted recipe and the
e2e-against-L_trans experiment use it).
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch.utils.data import DataLoader

from bopnp.bop.dataset import BopDataset
from bopnp.data.cache import cache_dir_for, read_cache_meta
from bopnp.data.crop_dataset import open_crop_datasets
from bopnp.data.training_set import TrainingSet
from bopnp.device import resolve_device
from bopnp.errors import ConfigError
from bopnp.geometry.radial_surface import expand_coordinates
from bopnp.models import coord_net_from_config
from bopnp.models.e2e import pose_from_prediction
from bopnp.train.checkpoint import load_checkpoint
from bopnp.train.config import PoseTrainConfig
from bopnp.train.engine import evaluate
from bopnp.train.pose import VAL_RANSAC
from bopnp.train.pose_scores import load_object_models, load_radial_profiles, pose_scores
from bopnp.train.runner import evenly_spread


def score_checkpoint(
    path: str | Path,
    bop_path: str | Path,
    name: str,
    split: str = "test",
    *,
    batch_size: int = 64,
    device: str | torch.device = "cpu",
    crops: int = 0,
    surface: bool = True,
) -> dict[str, float]:
    """Recalls of a checkpoint's network (any ``--arch``) on the crops of ``name``'s ``split`` (GT boxes, no
    augmentation): all of them, or at most ``crops`` evenly spread ones when ``crops`` > 0. ``surface``: predicted
    points inside the object move out to its surface before PnP, as prediction does (``PoseConfig.surface``).

    Returns:
        ``add_s``, ``mssd``, ``mspd``, ``ar`` (the mean of MSSD and MSPD), ``valid`` (share of crops with a pose),
        ``crops``.
    Raises:
        CheckpointError: an unreadable checkpoint, or one with non-finite weights. ConfigError: the split's crops
            hold none of the checkpoint's objects.
    """
    ckpt = load_checkpoint(path)
    cfg = PoseTrainConfig.from_dict(ckpt["config"])
    obj_ids = [int(o) for o in ckpt["obj_ids"]]
    dev = device if isinstance(device, torch.device) else resolve_device(device)
    net = coord_net_from_config(ckpt["config"], num_objects=len(obj_ids), crop_size=int(ckpt["crop_size"]))
    net.load_state_dict(ckpt["model"])
    net.to(dev)
    dataset = BopDataset.from_bop_path(bop_path, name, split)
    cache_dir = cache_dir_for(bop_path, name, split)
    meta_objects = {int(o) for o in read_cache_meta(cache_dir)["objects"]}
    present = [o for o in obj_ids if o in meta_objects]
    if not present:
        raise ConfigError(f"{cache_dir}: none of the checkpoint's objects {obj_ids}; prepare the split with them")
    crop_sets = open_crop_datasets(cache_dir, present, min_visib_fract=cfg.min_visib_fract)
    every = TrainingSet(crop_sets, None)
    test_set = TrainingSet(crop_sets, None, indices=evenly_spread(list(range(len(every))), crops or 10**9))
    # the network's output group k serves obj_ids[k]: keep that order even when the split lacks an object
    index_of = torch.tensor([obj_ids.index(o) if o in obj_ids else -1 for o in range(max(obj_ids) + 1)])

    profiles = load_radial_profiles(dataset, obj_ids).to(dev) if surface else None

    def predict(model, batch):
        group = index_of.to(batch["obj_id"].device)[batch["obj_id"]]
        xyz, err = model(batch["image"], group)
        xyz, err = xyz.float(), err.float()
        if profiles is not None:
            c, h = batch["centre_mm"], batch["half_extent_mm"]
            xyz = expand_coordinates(xyz, c, h, profiles[group], cfg.e2e_loss.min_coord)
        res, K = pose_from_prediction(xyz, err, batch, cfg.e2e_loss, ransac=VAL_RANSAC)
        return {"R": res.R, "t": res.t, "valid": res.valid, "K": K, "R_gt": batch["R_m2c"], "t_gt": batch["t_m2c"],
                "obj_id": batch["obj_id"]}  # fmt: skip

    loader = DataLoader(test_set, batch_size=batch_size, num_workers=0)
    pred = evaluate(net, loader, predict, device=dev)
    d = lambda k: pred[k].double().numpy()  # noqa: E731
    models = load_object_models(dataset, present)
    scores = pose_scores(
        d("R"), d("t"), d("R_gt"), d("t_gt"), d("K"), pred["obj_id"].numpy(), pred["valid"].numpy().astype(bool),
        models, dataset.camera.width,
    )  # fmt: skip
    scores["crops"] = len(test_set)
    return scores


__all__ = ["score_checkpoint"]

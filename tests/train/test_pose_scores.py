"""The validation path end to end on prepared crops: exact coordinates give perfect recalls, a wrong pose none."""

import numpy as np
import torch
from torch.utils.data import DataLoader

from bopnp.bop.dataset import BopDataset
from bopnp.data.crop_dataset import open_crop_datasets
from bopnp.data.prepare import PrepareConfig, prepare
from bopnp.data.training_set import TrainingSet
from bopnp.models.e2e import E2EConfig, pose_from_prediction
from bopnp.train.pose import VAL_RANSAC
from bopnp.train.pose_scores import load_object_models, pose_scores


def test_target_coordinates_score_perfectly_and_a_shifted_pose_scores_nothing(tiny_bop):
    bop, name = tiny_bop
    summary = prepare(PrepareConfig(bop_path=bop, name=name, crop_size=64, workers=1), progress=False)
    ts = TrainingSet(open_crop_datasets(summary.cache_dir))
    batch = next(iter(DataLoader(ts, batch_size=len(ts))))
    xyz = batch["xyz"]
    res, K = pose_from_prediction(xyz, torch.zeros_like(xyz[:, :1]), batch, E2EConfig(), ransac=VAL_RANSAC)
    ds = BopDataset.from_bop_path(bop, name)
    models = load_object_models(ds, ts.obj_ids)  # a box, and a cylinder whose targets are canonical
    obj = batch["obj_id"].numpy()
    assert set(obj.tolist()) == {1, 2}

    def score(t_offset_mm=0.0, valid=None):
        d = lambda x: x.double().numpy()  # noqa: E731
        t = d(res.t) + t_offset_mm
        ok = res.valid.numpy() if valid is None else valid
        return pose_scores(d(res.R), t, d(batch["R_m2c"]), d(batch["t_m2c"]), d(K), obj, ok, models, ds.camera.width)

    perfect = score()
    assert perfect["valid"] == 1.0
    for key in ("add_s", "mssd", "mspd", "ar"):
        assert perfect[key] == 1.0, perfect
    far = max(m.diameter_mm for m in models.values())
    assert score(t_offset_mm=far)["add_s"] == 0.0 and score(t_offset_mm=far)["mssd"] == 0.0
    none_found = score(valid=np.zeros(len(obj), bool))
    assert none_found["ar"] == 0.0 and none_found["valid"] == 0.0

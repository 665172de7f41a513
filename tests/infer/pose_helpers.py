"""Helpers of the pose-stage tests: an oracle CoordPredictor that renders each crop's true coordinate map with zero
predicted error (what a perfect network would output), and an untrained checkpoint in the format `bopnp train`
writes. The tests that use them load this file by path (test folders are not packages)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from bopnp.bop.dataset import BopDataset
from bopnp.bop.detections import Detection
from bopnp.data.crop_geometry import crop_K, inside_image_mask
from bopnp.infer.network import object_normalisation
from bopnp.infer.pose import PoseConfig, PoseEstimator


class OracleNetwork:
    """Renders, for each crop, the GT instance whose visible box the detection is (as GtDetections gives it), or,
    in a scene without scene_gt_info.json, the instance of the detection's object whose centre projects nearest to
    the detection box's centre. With ``unknown_is_background``, a detection that is no GT instance's (a decoy)
    gets a crop of background (all coordinates 0) instead of an error."""

    def __init__(self, dataset: BopDataset, unknown_is_background: bool = False):
        self.ds = dataset
        self.unknown_is_background = unknown_is_background
        self.calls = []

    def instance(self, det: Detection):
        gts = self.ds.scene_gt(det.scene_id)[det.im_id]
        if not self.ds.has_gt_info(det.scene_id):
            K = self.ds.K(det.scene_id, det.im_id)
            x, y, w, h = det.bbox_xywh
            mine = [g for g in gts if g.obj_id == det.obj_id]
            if not mine:
                raise AssertionError(f"no GT instance for {det}")
            uv = [(K @ g.t_m2c)[:2] / g.t_m2c[2] for g in mine]
            return mine[int(np.argmin([np.hypot(u - x - w / 2, v - y - h / 2) for u, v in uv]))]
        infos = self.ds.scene_gt_info(det.scene_id)[det.im_id]
        for gt, info in zip(gts, infos):
            if gt.obj_id == det.obj_id and np.array_equal(np.asarray(info.bbox_visib, float), det.bbox_xywh):
                return gt
        if self.unknown_is_background:
            return None
        raise AssertionError(f"no GT instance for {det}")

    def __call__(self, image, obj_index, ctx):
        from bopnp.render import get_renderer

        S = ctx.crop_size
        self.calls.append(ctx.box_xyxy.copy())
        r = get_renderer(S, S)
        cam = self.ds.camera
        xyz = np.zeros((len(ctx.detections), S, S, 3), np.float32)
        for b, det in enumerate(ctx.detections):
            gt = self.instance(det)
            if gt is None:
                continue
            r.add_model(gt.obj_id, self.ds.mesh(gt.obj_id))
            out = r.render(crop_K(ctx.K[b], ctx.box_xyxy[b], S), [(gt.obj_id, gt.R_m2c, gt.t_m2c)], full_masks=False)
            full = (out.instance_map == 0) & inside_image_mask((cam.width, cam.height), ctx.box_xyxy[b], S)
            xyz[b] = np.where(full[..., None], out.xyz_norm, 0.0)
        xyz_t = torch.from_numpy(xyz).permute(0, 3, 1, 2).to(image.device)
        return xyz_t, torch.zeros_like(xyz_t[:, :1])


def oracle_estimator(
    ds: BopDataset, crop_size: int = 64, config: PoseConfig | None = None, **settings
) -> tuple[PoseEstimator, OracleNetwork]:
    """A PoseEstimator whose network is the oracle of ``ds``'s GT (``config``, else ``PoseConfig(**settings)``)."""
    norm = {o: object_normalisation(ds.mesh(o)) for o in ds.obj_ids}
    oracle = OracleNetwork(ds)
    est = PoseEstimator(oracle, ds.obj_ids, norm, crop_size=crop_size, config=config or PoseConfig(**settings))
    return est, oracle


def save_untrained_checkpoint(path: Path, obj_ids, crop_size: int = 32, width: int = 4, seed: int = 0) -> Path:
    """A pose checkpoint in the format `bopnp train` writes, with an untrained tiny network (it finds no pose)."""
    from bopnp.models import build_coord_unet
    from bopnp.train.checkpoint import save_checkpoint
    from bopnp.train.config import PoseTrainConfig

    torch.manual_seed(seed)
    net = build_coord_unet(num_objects=len(obj_ids), width=width, crop_size=crop_size, bottleneck=0)
    config = PoseTrainConfig(width=width, bottleneck=0).to_dict()
    path.parent.mkdir(parents=True, exist_ok=True)
    state = {"model": net.state_dict(), "config": config, "obj_ids": list(obj_ids), "crop_size": crop_size}
    save_checkpoint(path, state)
    return path

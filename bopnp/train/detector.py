"""Training the detector: ``bopnp train NAME --stage detector``.

The run (folder rules, exact resume, DDP, the loop, validation and ``best.pt``) is
:class:`bopnp.train.runner.Runner`'s, the same as the pose stage's; here is what is particular to the detector:
whole training images with their visible instances as data (:class:`bopnp.data.detection_set.DetectionSet`), the
Mask R-CNN (:func:`bopnp.models.detector.build_maskrcnn`) and its summed losses, and validation on held-out images by
COCO box and mask mAP and the recall of the visible instances at IoU 0.5 (``best.pt``: the best box mAP).
``augmented.png`` shows augmented training images with their target boxes and masks.

A checkpoint holds, besides the training state, what inference needs to rebuild the network: ``detector`` (the
:class:`bopnp.models.detector.DetectorSpec`) and ``obj_ids`` (label ``k + 1`` is ``obj_ids[k]``).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import numpy as np
import torch
from torch import Tensor
from torch.utils.data import DataLoader

from bopnp.bop.dataset import BopDataset
from bopnp.data.detection_set import DetectionSet, collate_detections, detection_records
from bopnp.data.training_set import EpochSampler
from bopnp.errors import CheckpointError, ConfigError
from bopnp.metrics.detection import detection_scores, encode_masks
from bopnp.models.detector import build_maskrcnn, check_detection_inputs
from bopnp.train.checkpoint import load_checkpoint
from bopnp.train.detector_config import DetectorTrainConfig
from bopnp.train.engine import evaluate
from bopnp.train.runner import Runner, RunSummary, evenly_spread, holdout_split, warmup_cosine

log = logging.getLogger(__name__)

#: detector losses as torchvision names them, and the short names the log uses
LOSS_NAMES = {
    "loss_classifier": "cls",
    "loss_box_reg": "box",
    "loss_mask": "mask",
    "loss_objectness": "rpn_obj",
    "loss_rpn_box_reg": "rpn_box",
}

#: the average step of a run against its first ones, which a time budget times: the step grows dearer as the region
#: proposals find objects (more positive RoIs for the box and mask heads). Measured on the demo (cpu preset, 1 and 2
#: threads): 1.22 over 500 steps, 1.36 over 840, 1.35-1.55 over 1500; the budget takes a long run's value, so a
#: short run ends a little early rather than late
STEP_COST_GROWTH = 1.45


class DetectorTrainer(Runner):
    """One detector run (see the module docstring); :meth:`run` trains it."""

    stage = "detector"
    rate_name = "images_s"
    score_key = "ap_bbox"
    score_name = "box mAP"
    step_cost_growth = STEP_COST_GROWTH

    def __init__(
        self,
        config: DetectorTrainConfig,
        *,
        resume: bool = False,
        overwrite: bool = False,
        progress: bool | None = None,
    ):
        super().__init__(config, resume=resume, overwrite=overwrite, progress=progress)

    # -- set-up ------------------------------------------------------------------------------------
    def _build(self) -> None:
        cfg = self.config
        ds = BopDataset.from_bop_path(cfg.bop_path, cfg.name, cfg.split)
        self.obj_ids = sorted(cfg.objects) if cfg.objects else ds.obj_ids
        missing = sorted(set(self.obj_ids) - set(ds.obj_ids))
        if missing:
            raise ConfigError(f"objects {missing} are not in {ds.models_info_path} (objects: {ds.obj_ids})")
        records = detection_records(ds, self.obj_ids, cfg.min_visib_fract)
        train_idx, val_idx = holdout_split([r.key for r in records], cfg.val_fraction)
        if not train_idx:
            raise ConfigError(
                f"{ds.split_path}: no image shows these objects at least {cfg.min_visib_fract:.0%} visible; "
                "choose other --objects or another --split"
            )
        net_cfg = cfg.net
        sizes = {"min_size": net_cfg.min_size, "max_size": net_cfg.max_size}
        self.train_set = DetectionSet(ds, self.obj_ids, [records[i] for i in train_idx], augment=cfg.augment, **sizes)
        self.val_set = None
        if val_idx and cfg.val_images:
            val_records = [records[i] for i in evenly_spread(val_idx, cfg.val_images)]
            self.val_set = DetectionSet(ds, self.obj_ids, val_records, **sizes)
        per_rank = -(-len(self.train_set) // self.info.world_size)
        if per_rank < cfg.batch_size:
            raise ConfigError(
                f"batch size {cfg.batch_size} is larger than the {per_rank} training images of a process: "
                "lower --batch-size or use a split with more images"
            )
        torch.manual_seed(cfg.seed)
        net = build_maskrcnn(
            num_classes=len(self.obj_ids) + 1,
            backbone_weights=cfg.backbone_weights,
            hub_cache=cfg.hub_cache and cfg.init is None,
            **net_cfg.knobs(),
        )
        if cfg.init:
            state = load_checkpoint(cfg.init)
            try:
                net.load_state_dict(state["model"])
            except RuntimeError as exc:
                raise CheckpointError(
                    f"{cfg.init}: its network does not fit this run ({str(exc)[:300]}); use the same objects and "
                    "network settings it was trained with"
                ) from None
            net.init_source = str(cfg.init)
        if net.init_source == "scratch" and not self.resume and self.info.is_main:
            log.warning(
                "no pretrained weights for the %s backbone (pass --backbone-weights FILE, or put torchvision's file "
                "in %s): the detector trains from scratch",
                net_cfg.backbone,
                _hub_folder(),
            )
        self.init_source = net.init_source
        net.to(self.device)
        self.net = net
        self.model = net
        if self.info.distributed:
            ids = [self.device.index or 0] if self.device.type == "cuda" else None
            self.model = torch.nn.parallel.DistributedDataParallel(net, device_ids=ids)
        params = [p for p in net.parameters() if p.requires_grad]
        if cfg.optimizer == "sgd":
            self.optimizer = torch.optim.SGD(
                params, lr=cfg.learning_rate, momentum=cfg.momentum, weight_decay=cfg.weight_decay
            )
        else:
            self.optimizer = torch.optim.AdamW(params, lr=cfg.learning_rate, weight_decay=cfg.weight_decay)
        self.make_scheduler()
        self.sampler = EpochSampler(len(self.train_set), cfg.seed, self.info.rank, self.info.world_size)
        self.autocast = torch.bfloat16 if (cfg.amp and self.device.type == "cuda") else None
        self.collate_fn = collate_detections

    def make_scheduler(self) -> None:
        cfg = self.config
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(self.optimizer, warmup_cosine(cfg.steps, cfg.warmup))

    def extra_checkpoint(self) -> dict[str, Any]:
        return {
            "obj_ids": list(self.obj_ids),
            "detector": self.net.spec.to_dict(),
            "init_source": self.init_source,
        }

    # -- the loss of one step ----------------------------------------------------------------------
    def step_fn(self, model, batch: dict[str, Any], step: int) -> dict[str, Tensor]:
        check_detection_inputs(batch["image"], batch["targets"], len(self.obj_ids) + 1)
        losses = model(batch["image"], batch["targets"])
        out = {LOSS_NAMES.get(k, k): v.float() for k, v in losses.items()}
        out["loss"] = sum(out.values())
        return out

    # -- validation --------------------------------------------------------------------------------
    def predict_fn(self, model, batch: dict[str, Any]) -> dict[str, list]:
        outputs = model(batch["image"])
        preds, gts = [], []
        for out, target in zip(outputs, batch["targets"]):
            preds.append(
                {
                    "boxes": out["boxes"].float().cpu().numpy(),
                    "labels": out["labels"].cpu().numpy(),
                    "scores": out["scores"].float().cpu().numpy(),
                    "masks": encode_masks((out["masks"][:, 0] > 0.5).cpu().numpy()),
                }
            )
            gts.append(
                {
                    "boxes": target["boxes"].cpu().numpy(),
                    "labels": target["labels"].cpu().numpy(),
                    "masks": encode_masks(target["masks"].cpu().numpy()),
                }
            )
        return {"pred": preds, "gt": gts}

    def validate(self) -> dict | None:
        if self.val_set is None or not self.info.is_main:
            return None
        cfg = self.config
        loader = DataLoader(self.val_set, batch_size=cfg.batch_size, num_workers=0, collate_fn=collate_detections)
        out = evaluate(self.net, loader, self.predict_fn, device=self.device, autocast_dtype=self.autocast)
        scores = detection_scores(out["gt"], out["pred"], min_score=cfg.val_min_score)
        return {"step": self.state.step, **scores}

    def describe_validation(self, v: dict) -> str:
        return (
            f"box mAP {v['ap_bbox']:.3f} (AP50 {v['ap50_bbox']:.3f})  mask mAP {v['ap_segm']:.3f} "
            f"(AP50 {v['ap50_segm']:.3f})  recall@0.5 {v['recall50']:.3f} of {int(v['instances'])} visible instances"
        )

    def write_preview(self, n: int = 8) -> None:
        from torchvision.utils import draw_bounding_boxes, draw_segmentation_masks, save_image

        picks = np.linspace(0, len(self.train_set) - 1, min(n, len(self.train_set))).round().astype(int)
        pictures = []
        for i in picks:
            item = self.train_set[(int(i), int(i))]
            image = (item["image"] * 255).round().to(torch.uint8)
            if len(item["masks"]):
                image = draw_segmentation_masks(image, item["masks"].bool(), alpha=0.35)
                image = draw_bounding_boxes(image, item["boxes"], colors="red", width=1)
            pictures.append(image.float() / 255)
        save_image(torch.stack(pictures), self.run_dir / "augmented.png", nrow=4, padding=2)


def _hub_folder() -> str:
    return str(torch.hub.get_dir()) + "/checkpoints"


def train_detector(
    config: DetectorTrainConfig,
    *,
    resume: bool = False,
    overwrite: bool = False,
    progress: bool | None = None,
    on_ready: Callable[[DetectorTrainer], None] | None = None,
) -> RunSummary:
    """Train (or resume) a detector run; see :class:`DetectorTrainer`."""
    trainer = DetectorTrainer(config, resume=resume, overwrite=overwrite, progress=progress)
    if on_ready is not None:
        on_ready(trainer)
    return trainer.run()


__all__ = ["LOSS_NAMES", "DetectorTrainer", "train_detector"]

"""The detector stage's training configuration: one frozen dataclass, saved with the run as ``config.json``.

Two presets of the network (:data:`PRESETS`): ``full`` is torchvision's ``maskrcnn_resnet50_fpn_v2`` on BOP's
640x480 images (for real datasets and a GPU); ``cpu`` is a light network that learns in minutes on a laptop CPU
(ResNet-18 up to its third stage, a pyramid on strides 8 and 16, 320x240 input, narrow heads, few proposals and RoI
samples, half of them positive), which the demo uses. Any field of :class:`DetectorNetConfig` overrides its preset.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from bopnp.data.detection_set import DetectionAugmentConfig
from bopnp.errors import ConfigError
from bopnp.models.detector import BACKBONES, DetectorSpec
from bopnp.train.config import config_from_dict

DeviceChoice = Literal["auto", "cpu", "cuda"]
OptimizerChoice = Literal["sgd", "adamw"]


@dataclass(frozen=True)
class DetectorNetConfig:
    """The network's shape and CPU-speed knobs: :class:`bopnp.models.detector.DetectorSpec` without the number of
    classes (that comes from the objects)."""

    backbone: str = "resnet50_fpn_v2"
    min_size: int = 480
    max_size: int = 640
    fpn_channels: int = 256
    returned_layers: tuple[int, ...] | None = None
    smallest_anchor: int = 32
    rpn_pre_nms_top_n_train: int = 2000
    rpn_post_nms_top_n_train: int = 2000
    rpn_pre_nms_top_n_test: int = 1000
    rpn_post_nms_top_n_test: int = 1000
    rpn_batch_size_per_image: int = 256
    box_batch_size_per_image: int = 512
    box_positive_fraction: float = 0.25
    box_detections_per_img: int = 100
    box_score_thresh: float = 0.05
    box_head_dim: int = 1024
    mask_head_layers: int = 4
    mask_head_channels: int = 256

    def knobs(self) -> dict[str, Any]:
        """Keyword arguments of :func:`bopnp.models.detector.build_maskrcnn` besides ``num_classes``."""
        return dataclasses.asdict(self)

    def spec(self, num_classes: int) -> DetectorSpec:
        return DetectorSpec(num_classes=num_classes, **self.knobs())

    def validate(self) -> DetectorNetConfig:
        if self.backbone not in BACKBONES:
            raise ConfigError(f"unknown backbone {self.backbone!r}: choose one of {', '.join(BACKBONES)}")
        self.spec(2).validate()
        return self


#: named starting points for :class:`DetectorNetConfig` (see the module docstring)
PRESETS: dict[str, DetectorNetConfig] = {
    "full": DetectorNetConfig(),
    "cpu": DetectorNetConfig(
        backbone="resnet18_fpn",
        min_size=240,
        max_size=320,
        fpn_channels=128,
        returned_layers=(2, 3),
        smallest_anchor=16,
        rpn_pre_nms_top_n_train=600,
        rpn_post_nms_top_n_train=300,
        rpn_pre_nms_top_n_test=300,
        rpn_post_nms_top_n_test=150,
        rpn_batch_size_per_image=128,
        box_batch_size_per_image=64,
        box_positive_fraction=0.5,
        box_detections_per_img=50,
        box_head_dim=256,
        mask_head_layers=2,
        mask_head_channels=128,
    ),
}


#: augmentation by name: ``full`` (scale jitter and colour), ``color`` (colour, blur and noise only: a
#: short schedule learns faster without the zoom), ``none``; :data:`PRESET_AUGMENTS` picks each preset's
AUGMENTS: dict[str, DetectionAugmentConfig] = {
    "full": DetectionAugmentConfig(),
    "color": DetectionAugmentConfig(scale_range=(1.0, 1.0), max_shift=0.0),
    "none": DetectionAugmentConfig(scale_range=(1.0, 1.0), max_shift=0.0, color=False),
}

#: the optimiser each preset trains with by default: torchvision's SGD recipe for the full network (meant to start
#: from pretrained weights), AdamW for the light one (which learns fastest with it from scratch)
PRESET_OPTIMIZERS: dict[str, OptimizerChoice] = {"full": "sgd", "cpu": "adamw"}
#: the augmentation (a name of :data:`AUGMENTS`) each preset trains with by default
PRESET_AUGMENTS: dict[str, str] = {"full": "full", "cpu": "color"}


@dataclass(frozen=True)
class DetectorTrainConfig:
    """Everything a detector run depends on.

    Attributes:
        bop_path, name, split: the dataset and the split whose images train the detector (``train_pbr``, ``train``;
            it needs ``scene_gt_info.json``: ``bopnp prepare`` computes it).
        objects: object ids to detect (None: every object of ``models_info.json``); label = index + 1.
        out: run folder (None: ``results/train/NAME/detector``).
        steps: optimiser steps. batch_size: images per step (per process under torchrun).
        minutes: a time budget instead of ``steps``: the throughput is measured for a few seconds and ``steps``
            becomes the count that fits (validations included, and the cost of a step growing as the detector
            learns: :data:`bopnp.train.detector.STEP_COST_GROWTH`); ``config.json`` records it, a resumed run keeps it.
        net: the network (see :data:`PRESETS`).
        backbone_weights: ``imagenet``, ``coco`` (torchvision's, via torch's hub cache) or a local file of
            pretrained weights; hub_cache: else use torchvision's file when torch's hub
            cache already holds it. Without either the network trains from scratch (the run says so).
        init: a detector checkpoint whose weights start the run (the same objects and network).
        optimizer: ``sgd`` (momentum, as torchvision's references) or ``adamw``; momentum, weight_decay.
        lr: the peak learning rate (None: torchvision's 0.02 per 16 images for SGD, scaled to ``batch_size``;
            1e-3 for AdamW, which a network trained from scratch on a CPU budget learns fastest with).
        warmup_steps: linear warm-up, then cosine decay to 1 % (None: 5 % of the steps).
        min_visib_fract: instances less visible than this are no targets.
        val_fraction: share of the scenes held out (or, with one scene, of its last images).
        val_every: validate every this many steps (and at the end); 0: only at the end.
        val_images: validate on at most this many held-out images (a fixed, evenly spread subset).
        val_min_score: detections scoring below this do not count for the validation recall.
        ckpt_every, log_every, device, amp, workers, seed: as the pose stage's.
        augment: scale jitter and colour augmentation (:class:`bopnp.data.detection_set.DetectionAugmentConfig`).
    """

    bop_path: str = "datasets"
    name: str = "demo"
    split: str = "train_pbr"
    objects: tuple[int, ...] | None = None
    out: str | None = None
    steps: int = 2000
    minutes: float | None = None
    batch_size: int = 2
    net: DetectorNetConfig = field(default_factory=DetectorNetConfig)
    backbone_weights: str | None = None
    hub_cache: bool = True
    init: str | None = None
    optimizer: OptimizerChoice = "sgd"
    lr: float | None = None
    momentum: float = 0.9
    weight_decay: float = 1e-4
    warmup_steps: int | None = None
    min_visib_fract: float = 0.1
    val_fraction: float = 0.1
    val_every: int = 500
    val_images: int = 50
    val_min_score: float = 0.5
    ckpt_every: int = 100
    device: DeviceChoice = "auto"
    amp: bool = True
    workers: int = 2
    seed: int = 0
    log_every: int = 20
    augment: DetectionAugmentConfig = field(default_factory=DetectionAugmentConfig)

    @property
    def run_dir(self) -> Path:
        return Path(self.out) if self.out else Path("results") / "train" / self.name / "detector"

    @property
    def learning_rate(self) -> float:
        """``lr``, or the optimiser's default (see the class docstring)."""
        if self.lr is not None:
            return self.lr
        return 0.02 * self.batch_size / 16 if self.optimizer == "sgd" else 1e-3

    @property
    def warmup(self) -> int:
        return self.warmup_steps if self.warmup_steps is not None else max(1, self.steps // 20)

    def validate(self) -> DetectorTrainConfig:
        def need(ok: bool, msg: str) -> None:
            if not ok:
                raise ConfigError(msg)

        need(self.steps >= 1, f"steps must be at least 1, got {self.steps}")
        need(
            self.minutes is None or (math.isfinite(self.minutes) and self.minutes > 0),
            f"minutes must be a positive number of minutes, got {self.minutes}",
        )
        need(self.batch_size >= 1, f"batch_size must be at least 1, got {self.batch_size}")
        need(
            self.lr is None or (math.isfinite(self.lr) and self.lr > 0),
            f"lr must be a positive number (e.g. 0.0025), got {self.lr}",
        )
        need(self.optimizer in ("sgd", "adamw"), f"optimizer must be sgd or adamw, got {self.optimizer!r}")
        need(0 <= self.momentum < 1, f"momentum must be in [0, 1), got {self.momentum}")
        need(self.weight_decay >= 0, f"weight_decay must be >= 0, got {self.weight_decay}")
        need(self.warmup_steps is None or self.warmup_steps >= 0, f"warmup_steps must be >= 0, got {self.warmup_steps}")
        need(0 <= self.val_fraction < 1, f"val_fraction must be in [0, 1), got {self.val_fraction}")
        need(0 <= self.val_min_score < 1, f"val_min_score must be in [0, 1), got {self.val_min_score}")
        need(0 <= self.min_visib_fract <= 1, f"min_visib_fract must be in [0, 1], got {self.min_visib_fract}")
        for name in ("val_every", "ckpt_every", "log_every", "workers", "val_images"):
            need(getattr(self, name) >= 0, f"{name} must be >= 0, got {getattr(self, name)}")
        need(self.seed >= 0, f"seed must be >= 0, got {self.seed}")
        need(self.device in ("auto", "cpu", "cuda"), f"device must be auto, cpu or cuda, got {self.device!r}")
        need(not self.objects or min(self.objects) >= 1, f"objects must be positive ids, got {self.objects}")
        if self.backbone_weights is not None and self.backbone_weights not in ("imagenet", "coco"):
            need(
                Path(self.backbone_weights).is_file(),
                f"--backbone-weights {self.backbone_weights}: no such file; pass a torchvision .pth of the backbone",
            )
        self.net.validate()
        self.augment.validate()
        return self

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> DetectorTrainConfig:
        """The config of a saved ``to_dict()`` (tuples restored, unknown keys refused)."""
        return config_from_dict(cls, data, {"net": DetectorNetConfig, "augment": DetectionAugmentConfig})


__all__ = [
    "AUGMENTS",
    "PRESETS",
    "PRESET_AUGMENTS",
    "PRESET_OPTIMIZERS",
    "DetectorNetConfig",
    "DetectorTrainConfig",
]

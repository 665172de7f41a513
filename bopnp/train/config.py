"""The pose stage's training configuration: one frozen dataclass, saved with the run as ``config.json``."""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from bopnp.data.training_set import AugmentConfig
from bopnp.errors import ConfigError
from bopnp.models import ARCHS
from bopnp.models.blocks import NORMS
from bopnp.models.e2e import E2EConfig
from bopnp.models.losses import CoordLossConfig

DeviceChoice = Literal["auto", "cpu", "cuda"]
LrScale = Literal["none", "sqrt", "linear"]
Switch = Literal["auto", "on", "off"]

#: the batch size at which ``lr`` is the learning rate when it is scaled with the batch
LR_BASE_BATCH = 16


@dataclass(frozen=True)
class PoseTrainConfig:
    """Everything a pose-network run depends on.

    Attributes:
        bop_path, name, split: the dataset and the split whose crop cache (``bopnp prepare``) is trained on.
        objects: object ids to train (None: every object of the cache); one class-aware network serves them all.
        out: run folder (None: ``results/train/NAME/pose``).
        steps: optimiser steps in all, the e2e phase included.
        e2e: fine-tune end to end through the PnP layer for the last ``e2e_steps`` steps.
        e2e_steps: steps of the e2e phase (None: a quarter of ``steps``; all of them with ``init``).
        init: checkpoint whose weights start the run (e.g. a trained network to fine-tune with ``e2e``).
        batch_size: crops per optimiser step (per process under torchrun).
        lr: Adam's peak learning rate; warm-up over the first ``warmup`` of the steps, then cosine decay to 1 %.
        lr_scale: how the learning rate follows the batch (all processes together) for large batches: ``none``
            (``lr`` as given), ``sqrt`` (``lr * sqrt(batch / 16)``, Adam's rule) or ``linear`` (``lr * batch / 16``).
        warmup: share of the steps of the linear warm-up (large batches want a longer one, e.g. 0.05).
        minutes: a time budget: the throughput is measured for a few seconds and ``steps`` becomes the count that
            fits (schedule, e2e phase and validations included); ``config.json`` records it, and a resumed run keeps
            it.
        channels_last: NHWC memory format for the network (``auto``: on CUDA, where bf16 convolutions want it).
        compile: ``torch.compile`` the training network (its first steps compile: pays off on long runs only).
        width, bottleneck: the network (see :class:`bopnp.models.UNetConfig`); the crop size is the cache's.
        arch: the coordinate network (:data:`bopnp.models.ARCHS`: pix2pose, unet, resnet18, resnet34).
        norm: batch or group normalisation. backbone_weights: a torchvision ResNet state dict file that starts the
            resnet encoders (None: random init).
        val_fraction: share of the scenes held out for validation (at least one scene when there are two).
        val_every: validate every this many steps (and at the end); 0: only at the end.
        val_crops: validate on at most this many held-out crops (a fixed, evenly spread subset).
        ckpt_every: write ``last.pt`` every this many steps (also at every validation and at the end).
        min_visib_fract: crops of instances less visible than this are not trained on.
        device: ``auto`` (CUDA when present), ``cpu`` or ``cuda``. amp: bf16 autocast on CUDA.
        workers: DataLoader worker processes. seed: the run's seed (weights, order, augmentation).
        cache_in_memory: hold the training crops as tensors on the device and draw batches there, without loader
            workers: ``on``, ``off``, or ``auto`` (on a GPU, when they take at most a quarter of its free memory).
        log_every: log and write TensorBoard scalars every this many steps.
    """

    bop_path: str = "datasets"
    name: str = "demo"
    split: str = "train_pbr"
    objects: tuple[int, ...] | None = None
    out: str | None = None
    steps: int = 2000
    e2e: bool = False
    e2e_steps: int | None = None
    init: str | None = None
    batch_size: int = 16
    lr: float = 1e-3
    lr_scale: LrScale = "none"
    warmup: float = 0.02
    minutes: float | None = None
    channels_last: Switch = "auto"
    compile: bool = False
    width: int = 32
    bottleneck: int = 256
    arch: str = "pix2pose"
    norm: str = "batch"
    backbone_weights: str | None = None
    val_fraction: float = 0.1
    val_every: int = 500
    val_crops: int = 256
    ckpt_every: int = 100
    min_visib_fract: float = 0.1
    device: DeviceChoice = "auto"
    amp: bool = True
    workers: int = 2
    seed: int = 0
    cache_in_memory: Literal["auto", "on", "off"] = "auto"
    log_every: int = 20
    loss: CoordLossConfig = field(default_factory=CoordLossConfig)
    e2e_loss: E2EConfig = field(default_factory=E2EConfig)
    augment: AugmentConfig = field(default_factory=AugmentConfig)

    @property
    def run_dir(self) -> Path:
        return Path(self.out) if self.out else Path("results") / "train" / self.name / "pose"

    def peak_lr(self, world_size: int = 1) -> float:
        """The peak learning rate after :attr:`lr_scale` for ``batch_size * world_size`` crops a step."""
        ratio = self.batch_size * world_size / LR_BASE_BATCH
        return self.lr * {"none": 1.0, "sqrt": math.sqrt(ratio), "linear": ratio}[self.lr_scale]

    @property
    def e2e_start(self) -> int:
        """The step from which the e2e phase runs (``steps`` when there is none)."""
        if not self.e2e:
            return self.steps
        if self.e2e_steps is not None:
            return self.steps - self.e2e_steps
        return 0 if self.init else self.steps - max(1, self.steps // 4)

    def validate(self) -> PoseTrainConfig:
        def need(ok: bool, msg: str) -> None:
            if not ok:
                raise ConfigError(msg)

        need(self.steps >= 1, f"steps must be at least 1, got {self.steps}")
        need(self.batch_size >= 2, f"batch_size must be at least 2 (batch norm needs two crops), got {self.batch_size}")
        need(math.isfinite(self.lr) and self.lr > 0, f"lr must be a positive number (e.g. 1e-3), got {self.lr}")
        need(
            self.width >= 1 and self.bottleneck >= 0,
            f"width must be >= 1 and bottleneck >= 0, got {self.width}, {self.bottleneck}",
        )
        need(self.arch in ARCHS, f"arch must be one of {', '.join(ARCHS)}, got {self.arch!r}")
        need(self.norm in NORMS, f"norm must be one of {', '.join(NORMS)}, got {self.norm!r}")
        need(
            self.backbone_weights is None or self.arch.startswith("resnet"),
            f"backbone_weights serve the resnet archs, not {self.arch!r}",
        )
        need(self.lr_scale in ("none", "sqrt", "linear"), f"lr_scale must be none, sqrt or linear: {self.lr_scale!r}")
        need(0 <= self.warmup < 1, f"warmup must be a share of the steps in [0, 1), got {self.warmup}")
        need(
            self.minutes is None or (math.isfinite(self.minutes) and self.minutes > 0),
            f"minutes must be a positive number of minutes, got {self.minutes}",
        )
        need(
            self.channels_last in ("auto", "on", "off"),
            f"channels_last must be auto, on or off: {self.channels_last!r}",
        )
        need(0 <= self.val_fraction < 1, f"val_fraction must be in [0, 1), got {self.val_fraction}")
        for name in ("val_every", "ckpt_every", "log_every", "workers", "val_crops"):
            need(getattr(self, name) >= 0, f"{name} must be >= 0, got {getattr(self, name)}")
        need(self.seed >= 0, f"seed must be >= 0, got {self.seed}")
        need(self.device in ("auto", "cpu", "cuda"), f"device must be auto, cpu or cuda, got {self.device!r}")
        need(
            self.cache_in_memory in ("auto", "on", "off"),
            f"cache_in_memory must be auto, on or off, got {self.cache_in_memory!r}",
        )
        if self.e2e_steps is not None:
            need(self.e2e, "e2e_steps needs e2e (pass --e2e)")
            need(
                0 < self.e2e_steps <= self.steps, f"e2e_steps must be in [1, steps={self.steps}], got {self.e2e_steps}"
            )
        need(not self.objects or min(self.objects) >= 1, f"objects must be positive ids, got {self.objects}")
        self.loss.validate()
        self.e2e_loss.validate()
        self.augment.validate()
        return self

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> PoseTrainConfig:
        """The config of a saved ``to_dict()`` (tuples restored, unknown keys refused)."""
        return config_from_dict(cls, data, {"loss": CoordLossConfig, "e2e_loss": E2EConfig, "augment": AugmentConfig})


def config_from_dict(cls, data: dict[str, Any], nested: dict[str, type]):
    """A frozen config dataclass from its saved ``dataclasses.asdict``: unknown keys refused, nested configs
    rebuilt, json lists turned back into tuples (top level and nested).

    Args:
        cls: the config class. data: the saved dict. nested: field name -> config class of the nested fields.
    Raises:
        ConfigError: a key this version does not know.
    """
    data = dict(data)
    known = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - known)
    if unknown:
        raise ConfigError(f"unknown training settings {unknown}: this run was made by another version of bopnp")
    for key, kind in nested.items():
        if isinstance(data.get(key), dict):
            sub = dict(data[key])
            for f in dataclasses.fields(kind):
                if isinstance(sub.get(f.name), list):
                    sub[f.name] = tuple(sub[f.name])
            data[key] = kind(**sub)
    if isinstance(data.get("objects"), list):
        data["objects"] = tuple(data["objects"])
    return cls(**data)


__all__ = ["PoseTrainConfig", "config_from_dict"]

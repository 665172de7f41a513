"""Training the pose network: ``bopnp train NAME --stage pose [--e2e]``.

The run (folder rules, exact resume, DDP, the loop, validation and ``best.pt``) is :class:`bopnp.train.runner.Runner`'s;
here is what is particular to the pose network: the crop cache as data, the class-aware U-Net, L_trans (plus the
projection loss through the PnP layer in the e2e phase) and validation by pose errors (``best.pt``: the best AR of
MSSD and MSPD). Loader workers read raw crops; each training batch is augmented as a batch
(:func:`bopnp.data.batch_augment.augment_batch`) where the network runs, after it reaches the device and before the
network sees it; on a CPU run with loader workers, the workers augment the batch they collate instead (the main
process's cores are busy with the step; the result is the same). Validation crops are not augmented.
``augmented.png`` shows a grid of augmented training crops.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

import numpy as np
import torch
from torch import Tensor
from torch.utils.data import DataLoader, default_collate

from bopnp.bop.dataset import BopDataset
from bopnp.data.batch_augment import AugmentingCollate, augment_batch
from bopnp.data.cache import cache_dir_for, read_cache_meta
from bopnp.data.crop_dataset import open_crop_datasets
from bopnp.data.memory_cache import DeviceBatches, DeviceCrops, crops_nbytes, fits_in_memory
from bopnp.data.training_set import EpochSampler, TrainingSet
from bopnp.errors import CheckpointError, ConfigError
from bopnp.geometry.radial_surface import expand_coordinates
from bopnp.models import build_coord_net, symmetric_coord_loss, transformer_loss
from bopnp.models.e2e import e2e_projection_loss, pose_from_prediction
from bopnp.pnp import RansacConfig
from bopnp.train.checkpoint import load_checkpoint
from bopnp.train.config import PoseTrainConfig
from bopnp.train.engine import evaluate
from bopnp.train.pose_scores import load_object_models, load_radial_profiles, pose_scores
from bopnp.train.runner import (
    RUN_FILES,
    Runner,
    RunSummary,
    evenly_spread,
    holdout_split,
    resolve_device,
    warmup_cosine,
)

log = logging.getLogger(__name__)

#: the validation PnP: RANSAC on the confident object pixels
VAL_RANSAC = RansacConfig(threshold_px=4.0, iterations=64, seed=0)


class PoseTrainer(Runner):
    """One pose-network run (see the module docstring); :meth:`run` trains it."""

    stage = "pose"
    rate_name = "crops_s"
    score_key = "ar"
    score_name = "AR"

    def __init__(
        self, config: PoseTrainConfig, *, resume: bool = False, overwrite: bool = False, progress: bool | None = None
    ):
        self._models = None
        self._profiles = None
        super().__init__(config, resume=resume, overwrite=overwrite, progress=progress)

    # -- set-up ------------------------------------------------------------------------------------
    def _build(self) -> None:
        cfg = self.config
        cache_dir = cache_dir_for(cfg.bop_path, cfg.name, cfg.split)
        if not (cache_dir / "cache.json").is_file():
            raise ConfigError(
                f"{cache_dir / 'cache.json'} not found: run `bopnp prepare {cfg.name} --split {cfg.split}` first"
            )
        meta = read_cache_meta(cache_dir)
        self.crop_size = int(meta["crop_size"])
        objects = list(cfg.objects) if cfg.objects else [int(o) for o in meta["objects"]]
        crops = open_crop_datasets(cache_dir, objects, min_visib_fract=cfg.min_visib_fract)
        everything = TrainingSet(crops)
        keys = [(int(r["scene_id"]), int(r["im_id"])) for r in everything.all_records()]
        train_idx, val_idx = holdout_split(keys, cfg.val_fraction)
        if not train_idx:
            raise ConfigError(f"{cache_dir}: no crops to train on; run `bopnp prepare {cfg.name}` with these objects")
        self.train_set = TrainingSet(crops, cfg.augment, indices=train_idx, device_augment=True)
        self.device_crops = self._crops_in_memory()
        if self.device_crops is None and self.train_set.device_augment and self.device.type == "cpu" and cfg.workers:
            self.collate_fn = AugmentingCollate(cfg.augment)
        self.val_set = None
        if val_idx and cfg.val_crops:
            # the same opened crops: a TrainingSet only reads them (opening the cache again cost seconds at start-up)
            self.val_set = TrainingSet(crops, None, indices=evenly_spread(val_idx, cfg.val_crops))
        self.obj_ids = self.train_set.obj_ids
        per_rank = -(-len(self.train_set) // self.info.world_size)
        if per_rank < cfg.batch_size:
            raise ConfigError(
                f"batch size {cfg.batch_size} is larger than the {per_rank} training crops of a process: "
                "lower --batch-size or prepare more crops"
            )
        self.phase("data")
        torch.manual_seed(cfg.seed)
        net = build_coord_net(
            arch=cfg.arch,
            num_objects=len(self.obj_ids),
            width=cfg.width,
            crop_size=self.crop_size,
            bottleneck=cfg.bottleneck,
            norm=cfg.norm,
            backbone_weights=None if cfg.init else cfg.backbone_weights,
        ).to(self.device)
        if cfg.init:
            state = load_checkpoint(cfg.init)
            try:
                net.load_state_dict(state["model"])
            except RuntimeError as exc:
                raise CheckpointError(
                    f"{cfg.init}: its network does not fit this run ({str(exc)[:300]}); use the "
                    "same --arch, --width, crop size and objects it was trained with"
                ) from None
        self.channels_last = cfg.channels_last == "on" or (cfg.channels_last == "auto" and self.device.type == "cuda")
        if self.channels_last:
            net = net.to(memory_format=torch.channels_last)
        self.phase("model")
        self.net = net
        self.model = net
        if self.info.distributed:
            ids = [self.device.index or 0] if self.device.type == "cuda" else None
            self.model = torch.nn.parallel.DistributedDataParallel(net, device_ids=ids)
        if cfg.compile:
            self.model = torch.compile(self.model)
        # fused: one kernel for every parameter, and it can skip an update on the device (a non-finite loss)
        # without the loop reading the loss every step (bopnp.train.engine)
        self.optimizer = torch.optim.Adam(net.parameters(), lr=cfg.peak_lr(self.info.world_size), fused=True)
        self.make_scheduler()
        self.sampler = EpochSampler(len(self.train_set), cfg.seed, self.info.rank, self.info.world_size)
        self.autocast = torch.bfloat16 if (cfg.amp and self.device.type == "cuda") else None

    def _crops_in_memory(self) -> DeviceCrops | None:
        """The training crops on the device when ``cache_in_memory`` says so (``auto``: on a GPU, when they take
        at most a quarter of its free memory); the decision is logged."""
        choice, n = self.config.cache_in_memory, len(self.train_set)
        if choice == "off" or (choice == "auto" and self.device.type != "cuda"):
            log.info("crop cache read by the loader (cache_in_memory %s on %s)", choice, self.device.type)
            return None
        nbytes = crops_nbytes(n, self.crop_size)
        fits, free = fits_in_memory(nbytes, self.device)
        if not fits:
            msg = (
                f"the {n} training crops take {nbytes / 2**20:.0f} MiB, more than a quarter of the "
                f"{free / 2**20:.0f} MiB free on {self.device}"
            )
            if choice == "on":
                raise ConfigError(f"--cache-in-memory on: {msg}; use auto or off, or fewer --objects")
            log.info("crop cache read by the loader: %s", msg)
            return None
        crops = DeviceCrops(self.train_set, self.device)
        log.info(
            "crop cache held on %s: %d crops, %.0f MiB of %.0f MiB free", self.device, n, nbytes / 2**20, free / 2**20
        )
        return crops

    def make_loader(self):
        """Batches drawn on the device from the crops held there, or the DataLoader over the crop cache."""
        if self.device_crops is not None:
            self.workers = 0  # no loader processes: the batches are drawn on the device
            return DeviceBatches(self.device_crops, self.sampler, self.config.batch_size)
        return super().make_loader()

    def make_scheduler(self) -> None:
        cfg = self.config
        warmup = round(cfg.steps * cfg.warmup)
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(self.optimizer, warmup_cosine(cfg.steps, warmup))

    # -- a time budget -----------------------------------------------------------------------------
    def budget_phases(self) -> dict[str, int]:
        cfg = self.config
        if not cfg.e2e:
            return {"train": 0}
        if cfg.init and cfg.e2e_steps is None:
            return {"e2e": 0}
        return {"train": 0, "e2e": 2**62}  # any step past the e2e phase's start

    def steps_for_budget(self, seconds: float, step_s: dict[str, float], val_s: float) -> int:
        """Steps that fit ``seconds``: L_trans steps, then the e2e phase (a quarter of the steps, or
        ``e2e_steps``), plus a validation every ``val_every`` steps and one at the end."""
        cfg = self.config
        v = val_s / cfg.val_every if cfg.val_every else 0.0
        t_l, t_e = step_s.get("train", 0.0) + v, step_s.get("e2e", 0.0) + v
        seconds -= val_s
        if "e2e" not in step_s:
            return max(1, int(seconds / t_l))
        if "train" not in step_s:
            return max(1, int(seconds / t_e))
        if cfg.e2e_steps is not None:
            return max(cfg.e2e_steps, cfg.e2e_steps + int((seconds - cfg.e2e_steps * t_e) / t_l))
        return max(2, int(seconds / (0.75 * t_l + 0.25 * t_e)))

    # -- checkpoints -------------------------------------------------------------------------------
    def extra_checkpoint(self) -> dict:
        return {"obj_ids": list(self.obj_ids), "crop_size": self.crop_size}

    # -- the loss of one step ----------------------------------------------------------------------
    def augment(self, batch: dict[str, Tensor]) -> dict[str, Tensor]:
        """A training batch of raw crops augmented on the device it lies on (float32, outside autocast); a batch
        the loader workers augmented already is returned as it is."""
        return augment_batch(batch, self.config.augment) if "aug_seed" in batch else batch

    def step_fn(self, model, batch: dict[str, Tensor], step: int) -> dict[str, Tensor]:
        batch = self.augment(batch)
        image = batch["image"]
        if self.channels_last:
            image = image.contiguous(memory_format=torch.channels_last)
        xyz, err = model(image, batch["obj_index"])
        xyz, err = xyz.float(), err.float()
        cfg = self.config
        out = transformer_loss(
            xyz,
            err,
            batch["xyz"],
            batch["mask_full"],
            batch["pool"],
            batch["centre_mm"],
            batch["half_extent_mm"],
            cfg.loss,
        )
        best = out.pop("best")
        if step >= cfg.e2e_start:
            proj, _, valid = e2e_projection_loss(xyz, err, batch, best, cfg.e2e_loss)
            out["proj"] = proj
            out["proj_valid"] = valid.float().mean()
            out["loss"] = out["loss"] + cfg.e2e_loss.lambda_proj * proj
        return out

    # -- validation --------------------------------------------------------------------------------
    def predict_fn(self, model, batch: dict[str, Tensor]) -> dict[str, Tensor]:
        xyz, err = model(batch["image"], batch["obj_index"])
        xyz, err = xyz.float(), err.float()
        l3d, _, _ = symmetric_coord_loss(
            xyz,
            batch["xyz"],
            batch["mask_full"],
            batch["pool"],
            batch["centre_mm"],
            batch["half_extent_mm"],
            self.config.loss.beta,
        )
        if self._profiles is not None:  # as prediction does (PoseConfig.surface)
            profile = self._profiles[batch["obj_index"]]
            xyz = expand_coordinates(
                xyz, batch["centre_mm"], batch["half_extent_mm"], profile, self.config.e2e_loss.min_coord
            )
        res, K = pose_from_prediction(xyz, err, batch, self.config.e2e_loss, ransac=VAL_RANSAC)
        return {
            "l3d": l3d,
            "R": res.R,
            "t": res.t,
            "valid": res.valid,
            "K": K,
            "R_gt": batch["R_m2c"],
            "t_gt": batch["t_m2c"],
            "obj_id": batch["obj_id"],
        }

    def validate(self) -> dict | None:
        if self.val_set is None or not self.info.is_main:
            return None
        cfg = self.config
        if self._models is None:
            ds = BopDataset.from_bop_path(cfg.bop_path, cfg.name)
            self._models = load_object_models(ds, self.obj_ids)
            self._profiles = load_radial_profiles(ds, self.obj_ids).to(self.device)
            self._width = ds.camera.width
        loader = DataLoader(self.val_set, batch_size=cfg.batch_size, num_workers=0)
        pred = evaluate(self.net, loader, self.predict_fn, device=self.device, autocast_dtype=self.autocast)
        d = lambda k: pred[k].double().numpy()  # noqa: E731
        scores = pose_scores(
            d("R"),
            d("t"),
            d("R_gt"),
            d("t_gt"),
            d("K"),
            pred["obj_id"].numpy(),
            pred["valid"].numpy().astype(bool),
            self._models,
            self._width,
        )
        # L_3D on held-out crops: smoother than the recalls, and it moves long before they do
        return {"step": self.state.step, **scores, "l3d": float(pred["l3d"].mean())}

    def describe_validation(self, v: dict) -> str:
        return (
            f"ADD(-S) {v['add_s']:.3f}  MSSD {v['mssd']:.3f}  MSPD {v['mspd']:.3f}  AR(MSSD,MSPD) {v['ar']:.3f}  "
            f"poses found {v['valid']:.2f}  L_3D {v['l3d']:.3f}"
        )

    def write_preview(self, n: int = 16) -> None:
        from torchvision.utils import save_image

        picks = np.linspace(0, len(self.train_set) - 1, min(n, len(self.train_set))).round().astype(int)
        batch = self.augment(default_collate([self.train_set[(int(i), int(i))] for i in picks]))
        save_image(batch["image"], self.run_dir / "augmented.png", nrow=8, padding=2)


def train_pose(
    config: PoseTrainConfig,
    *,
    resume: bool = False,
    overwrite: bool = False,
    progress: bool | None = None,
    on_ready: Callable[[PoseTrainer], None] | None = None,
) -> RunSummary:
    """Train (or resume) a pose-network run; see :class:`PoseTrainer`."""
    trainer = PoseTrainer(config, resume=resume, overwrite=overwrite, progress=progress)
    if on_ready is not None:
        on_ready(trainer)
    return trainer.run()


__all__ = ["RUN_FILES", "PoseTrainer", "RunSummary", "holdout_split", "resolve_device", "train_pose"]

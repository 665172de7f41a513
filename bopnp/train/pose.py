"""Training the pose network: ``bopnp train NAME --stage pose [--e2e]``.

The run folder holds ``config.json``, ``last.pt`` (written atomically every ``ckpt_every`` steps and at every
validation), ``best.pt`` (the best validation AR so far), ``log.jsonl`` (one line per logged step and per
validation), ``augmented.png`` (a grid of augmented training inputs) and, when TensorBoard is installed, its event
files. A run folder that holds a run is never overwritten: ``resume`` continues it exactly (same weights as an
uninterrupted run on CPU), ``overwrite`` starts over.
"""

from __future__ import annotations

import json
import logging
import math
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch import Tensor
from torch.utils.data import DataLoader

from bopnp.bop.atomic import write_text_atomic
from bopnp.bop.dataset import BopDataset
from bopnp.data.cache import cache_dir_for, read_cache_meta
from bopnp.data.crop_dataset import open_crop_datasets
from bopnp.data.training_set import EpochSampler, TrainingSet
from bopnp.errors import CheckpointError, ConfigError, TrainingError
from bopnp.models import build_coord_unet, transformer_loss
from bopnp.models.e2e import e2e_projection_loss, pose_from_prediction
from bopnp.pnp import RansacConfig
from bopnp.progress import progress_bar
from bopnp.train.checkpoint import code_revision, load_checkpoint, rng_state, save_checkpoint, set_rng_state
from bopnp.train.config import PoseTrainConfig
from bopnp.train.distributed import DistInfo, all_true, average_buffers, barrier, cleanup, init_distributed
from bopnp.train.engine import NonFiniteLoss, TrainState, evaluate, train_one_epoch
from bopnp.train.pose_scores import load_object_models, pose_scores

log = logging.getLogger(__name__)

#: what a run writes into its folder (and ``--overwrite`` removes)
RUN_FILES = ("config.json", "last.pt", "best.pt", "nonfinite.pt", "log.jsonl", "augmented.png", "tb")

#: the validation PnP: RANSAC on the confident object pixels
VAL_RANSAC = RansacConfig(threshold_px=4.0, iterations=64, seed=0)


@dataclass
class RunSummary:
    """What a run did, for the CLI to print."""

    run_dir: Path
    steps: int
    resumed_from: int = 0
    validations: list[dict] = field(default_factory=list)
    best_step: int = -1
    best_score: float = float("nan")

    def format(self) -> str:
        lines = [
            f"run: {self.run_dir} ({self.steps} steps"
            + (f", resumed at step {self.resumed_from})" if self.resumed_from else ")")
        ]
        if self.validations:
            v = self.validations[-1]
            lines.append(
                f"last validation (step {v['step']}): ADD(-S) {v['add_s']:.3f}  MSSD {v['mssd']:.3f}  "
                f"MSPD {v['mspd']:.3f}  AR(MSSD,MSPD) {v['ar']:.3f}  poses found {v['valid']:.2f}"
            )
            lines.append(f"best: step {self.best_step}, AR {self.best_score:.3f} -> {self.run_dir / 'best.pt'}")
        return "\n".join(lines)


def resolve_device(choice: str) -> torch.device:
    """``auto``: CUDA when present, else CPU; ``cuda`` without a GPU is a ConfigError."""
    if choice == "cuda" and not torch.cuda.is_available():
        raise ConfigError("--device cuda: no CUDA device is available here; use --device cpu")
    if choice == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(choice)


def holdout_split(keys: list[tuple[int, int]], val_fraction: float) -> tuple[list[int], list[int]]:
    """(training, validation) positions of crops given as ``(scene_id, im_id)``: the last ``ceil(fraction * n)``
    scenes are held out, or, with a single scene (as a small synthetic dataset has), its last images; at least one
    scene or image always stays for training, and a fraction of 0 holds out nothing."""
    scenes = sorted({s for s, _ in keys})
    by_scene = len(scenes) > 1
    units = scenes if by_scene else sorted({i for _, i in keys})
    n_val = min(math.ceil(val_fraction * len(units)), len(units) - 1) if val_fraction > 0 and units else 0
    held = set(units[len(units) - n_val :])
    val = [p for p, (s, i) in enumerate(keys) if (s if by_scene else i) in held]
    held_pos = set(val)
    return [p for p in range(len(keys)) if p not in held_pos], val


def _prepare_run_dir(config: PoseTrainConfig, resume: bool, overwrite: bool, info: DistInfo) -> Path:
    run = config.run_dir
    has_run = (run / "config.json").is_file() or (run / "last.pt").is_file()
    if resume and overwrite:
        raise ConfigError("pass either --resume or --overwrite, not both")
    if has_run and not (resume or overwrite):
        raise ConfigError(
            f"{run} already holds a training run: pass --resume to continue it, --overwrite to start "
            "over, or --out for another folder"
        )
    if resume and not (run / "last.pt").is_file():
        raise CheckpointError(f"{run / 'last.pt'} not found: nothing to resume; start the run without --resume")
    if info.is_main:
        if overwrite and run.is_dir():
            for name in RUN_FILES:  # only what a run writes: --out may name a folder that holds other things
                path = run / name
                if path.is_dir():
                    shutil.rmtree(path)
                elif path.exists():
                    path.unlink()
        run.mkdir(parents=True, exist_ok=True)
    barrier(info)
    return run


def _check_resumable(saved: dict, config: PoseTrainConfig, path: Path) -> None:
    """A resumed run must continue the same experiment: only the step budget and bookkeeping may change."""
    free = {"steps", "val_every", "ckpt_every", "log_every", "workers", "device", "out"}
    now = config.to_dict()
    diff = sorted(k for k in now if k not in free and json.dumps(now[k]) != json.dumps(saved.get(k)))
    if diff:
        raise CheckpointError(
            f"{path}: the run was started with other settings ({', '.join(diff)}); resume with "
            "the same settings, or start a new run with --out or --overwrite"
        )


class PoseTrainer:
    """One pose-network run (see the module docstring); :meth:`run` trains it."""

    def __init__(
        self, config: PoseTrainConfig, *, resume: bool = False, overwrite: bool = False, progress: bool | None = None
    ):
        self.config = config.validate()
        self.device = resolve_device(config.device)
        self.info = init_distributed(self.device)
        self.progress = progress
        self.run_dir = _prepare_run_dir(config, resume, overwrite, self.info)
        self.resume = resume
        self._build()

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
        self.train_set = TrainingSet(crops, cfg.augment, indices=train_idx)
        self.val_set = None
        if val_idx and cfg.val_crops:
            keep = np.unique(np.linspace(0, len(val_idx) - 1, min(cfg.val_crops, len(val_idx))).round().astype(int))
            val_crops = open_crop_datasets(cache_dir, objects, min_visib_fract=cfg.min_visib_fract)
            self.val_set = TrainingSet(val_crops, None, indices=[val_idx[i] for i in keep])
        self.obj_ids = self.train_set.obj_ids
        per_rank = -(-len(self.train_set) // self.info.world_size)
        if per_rank < cfg.batch_size:
            raise ConfigError(
                f"batch size {cfg.batch_size} is larger than the {per_rank} training crops of a process: "
                "lower --batch-size or prepare more crops"
            )
        torch.manual_seed(cfg.seed)
        net = build_coord_unet(
            num_objects=len(self.obj_ids), width=cfg.width, crop_size=self.crop_size, bottleneck=cfg.bottleneck
        ).to(self.device)
        if cfg.init:
            state = load_checkpoint(cfg.init)
            try:
                net.load_state_dict(state["model"])
            except RuntimeError as exc:
                raise CheckpointError(
                    f"{cfg.init}: its network does not fit this run ({str(exc)[:300]}); use the "
                    "same --width, crop size and objects it was trained with"
                ) from None
        self.net = net
        self.model = net
        if self.info.distributed:
            ids = [self.device.index or 0] if self.device.type == "cuda" else None
            self.model = torch.nn.parallel.DistributedDataParallel(net, device_ids=ids)
        self.optimizer = torch.optim.Adam(net.parameters(), lr=cfg.lr)
        warmup = max(1, cfg.steps // 50)

        def lr_factor(step: int) -> float:
            if step < warmup:
                return (step + 1) / warmup
            p = (step - warmup) / max(1, cfg.steps - warmup)
            return 0.01 + 0.99 * 0.5 * (1 + math.cos(math.pi * min(p, 1.0)))

        self.scheduler = torch.optim.lr_scheduler.LambdaLR(self.optimizer, lr_factor)
        self.sampler = EpochSampler(len(self.train_set), cfg.seed, self.info.rank, self.info.world_size)
        self.state = TrainState()
        self.autocast = torch.bfloat16 if (cfg.amp and self.device.type == "cuda") else None
        self._models = None
        self._writer = None

    # -- checkpoints -------------------------------------------------------------------------------
    def _checkpoint(self) -> dict:
        return {
            "model": self.net.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            "state": self.state.to_dict(),
            "rng": rng_state(),
            "config": self.config.to_dict(),
            "obj_ids": list(self.obj_ids),
            "crop_size": self.crop_size,
            "revision": code_revision(),
        }

    def save(self) -> None:
        """Write ``last.pt`` from rank 0 (every process calls this: the buffers are averaged first)."""
        average_buffers(self.net, self.info)
        self._write("last.pt")

    def _write(self, name: str) -> None:
        if self.info.is_main:
            save_checkpoint(self.run_dir / name, self._checkpoint())

    def _restore(self) -> None:
        path = self.run_dir / "last.pt"
        ckpt = load_checkpoint(path, map_location=self.device)
        _check_resumable(ckpt["config"], self.config, path)
        self.net.load_state_dict(ckpt["model"])
        self.optimizer.load_state_dict(ckpt["optimizer"])
        self.scheduler.load_state_dict(ckpt["scheduler"])
        self.state = TrainState(**ckpt["state"])
        set_rng_state(ckpt["rng"])

    # -- the loss of one step ----------------------------------------------------------------------
    def step_fn(self, model, batch: dict[str, Tensor], step: int) -> dict[str, Tensor]:
        xyz, err = model(batch["image"], batch["obj_index"])
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
        res, K = pose_from_prediction(xyz.float(), err.float(), batch, self.config.e2e_loss, ransac=VAL_RANSAC)
        return {
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
        return {"step": self.state.step, **scores}

    # -- the loop ----------------------------------------------------------------------------------
    def run(self) -> RunSummary:
        cfg, info = self.config, self.info
        resumed_from = 0
        if self.resume:
            self._restore()
            resumed_from = self.state.step
        elif info.is_main:
            write_text_atomic(self.run_dir / "config.json", json.dumps(cfg.to_dict(), indent=1) + "\n")
            self._save_augmented_grid()
        summary = RunSummary(
            self.run_dir, cfg.steps, resumed_from, best_step=self.state.best_step, best_score=self.state.best_score
        )
        bar = progress_bar(
            total=cfg.steps, desc="train pose", unit="step", enabled=self.progress if info.is_main else False
        )
        bar.update(self.state.step)
        window: list[float] = []
        crops_s = [0.0]
        started = time.perf_counter()

        def on_step(values: dict[str, float], n: int, seconds: float) -> None:
            step = self.state.step
            crops_s[0] = n * info.world_size / max(seconds, 1e-9)
            bar.update(1)
            window.append(values["loss"])
            bar.set_postfix(loss=f"{np.mean(window[-20:]):.3f}", crops_s=f"{crops_s[0]:.0f}")
            if cfg.log_every and step % cfg.log_every == 0:
                self._log(
                    {
                        "step": step,
                        "elapsed_s": round(time.perf_counter() - started, 1),
                        "lr": self.scheduler.get_last_lr()[0],
                        "crops_s": crops_s[0],
                        **values,
                    }
                )
            if cfg.val_every and step % cfg.val_every == 0 and step < cfg.steps:
                self._validate_and_keep(summary)
            elif cfg.ckpt_every and step % cfg.ckpt_every == 0:
                self.save()

        try:
            # one loader for the run: its workers stay up across epochs (the sampler is read in this process, so
            # set_epoch still takes effect)
            loader = DataLoader(
                self.train_set,
                batch_size=cfg.batch_size,
                sampler=self.sampler,
                num_workers=cfg.workers,
                drop_last=True,
                persistent_workers=cfg.workers > 0,
                multiprocessing_context="spawn" if cfg.workers else None,
            )
            while self.state.step < cfg.steps:
                self.sampler.set_epoch(self.state.epoch, self.state.epoch_pos)
                train_one_epoch(
                    self.model,
                    self.optimizer,
                    self.scheduler,
                    loader,
                    self.step_fn,
                    self.state,
                    device=self.device,
                    end_step=cfg.steps,
                    autocast_dtype=self.autocast,
                    on_step=on_step,
                    all_agree=lambda ok: all_true(ok, info),
                )
            self._validate_and_keep(summary)
        except NonFiniteLoss as exc:
            bar.close()
            if info.is_main:
                save_checkpoint(self.run_dir / "nonfinite.pt", {**self._checkpoint(), "batch": exc.batch})
            raise TrainingError(
                f"{exc}. The weights before this step and the batch are in "
                f"{self.run_dir / 'nonfinite.pt'}; lower --lr or check these crops, then --resume "
                f"from {self.run_dir / 'last.pt'}"
            ) from None
        finally:
            bar.close()
            if self._writer:
                self._writer.close()
            cleanup(info)
        summary.best_step, summary.best_score = self.state.best_step, self.state.best_score
        return summary

    def _validate_and_keep(self, summary: RunSummary) -> None:
        average_buffers(self.net, self.info)  # every process, before rank 0 validates the common model
        scores = self.validate()
        if scores is not None:
            summary.validations.append(scores)
            self._log({"validation": True, **scores})
            if scores["ar"] > self.state.best_score:
                self.state.best_score, self.state.best_step = scores["ar"], self.state.step
                self._write("best.pt")
        self._write("last.pt")
        barrier(self.info)

    # -- logging -----------------------------------------------------------------------------------
    def _log(self, record: dict) -> None:
        if not self.info.is_main:
            return
        with open(self.run_dir / "log.jsonl", "a") as f:
            f.write(json.dumps(record) + "\n")
        writer = self._tensorboard()
        if writer is not None:
            tag = "val" if record.get("validation") else "train"
            for k, v in record.items():
                if isinstance(v, float | int) and not isinstance(v, bool) and k != "step":
                    writer.add_scalar(f"{tag}/{k}", v, record["step"])
        if record.get("validation"):
            log.info(
                "step %d validation: %s",
                record["step"],
                ", ".join(f"{k} {v:.3f}" for k, v in record.items() if isinstance(v, float)),
            )

    def _tensorboard(self):
        if self._writer is None:
            try:
                from torch.utils.tensorboard import SummaryWriter
            except ImportError:
                self._writer = False
            else:
                self._writer = SummaryWriter(str(self.run_dir / "tb"))
        return self._writer or None

    def _save_augmented_grid(self, n: int = 16) -> None:
        from torchvision.utils import save_image

        picks = np.linspace(0, len(self.train_set) - 1, min(n, len(self.train_set))).round().astype(int)
        images = [self.train_set[(int(i), int(i))]["image"] for i in picks]
        save_image(torch.stack(images), self.run_dir / "augmented.png", nrow=8, padding=2)


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


__all__ = ["PoseTrainer", "RunSummary", "holdout_split", "resolve_device", "train_pose"]

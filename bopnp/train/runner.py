"""What every training run shares, whatever it trains (the pose network, the detector): one engine, one set of
guarantees.

A :class:`Runner` owns the run folder and the loop around :func:`bopnp.train.engine.train_one_epoch`:

- the folder holds ``config.json``, ``last.pt`` (written atomically every ``ckpt_every`` steps and at every
  validation), ``best.pt`` (the best validation score so far), ``log.jsonl`` (one line per logged step and per
  validation), a picture of augmented training inputs and, when TensorBoard is installed, its event files. A folder
  that holds a run is never overwritten: ``resume`` continues it exactly (same weights as an uninterrupted run on
  CPU: model, optimiser, scheduler, loop position and every random generator are restored), ``overwrite`` starts
  over, removing only what a run writes;
- torchrun's distributed data parallel (only rank 0 logs, validates and saves), bf16 autocast on CUDA;
- a progress bar with the loss and the throughput, validation every ``val_every`` steps and at the end;
- a clear stop on a non-finite loss: the weights before the step and the batch go to ``nonfinite.pt``.

A subclass builds the model, data and optimiser (:meth:`Runner._build`) and says what one step computes
(:meth:`Runner.step_fn`) and how a validation scores (:meth:`Runner.validate`). Its config is a frozen dataclass
with at least the fields the loop reads: ``steps``, ``batch_size``, ``val_every``, ``ckpt_every``, ``log_every``,
``workers``, ``device``, ``seed``, ``out`` and ``to_dict()``, ``validate()``, ``run_dir``.
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
from typing import Any

import numpy as np
import torch
from torch import Tensor
from torch.utils.data import DataLoader

from bopnp.bop.atomic import write_text_atomic
from bopnp.device import resolve_device
from bopnp.errors import CheckpointError, ConfigError, TrainingError
from bopnp.progress import progress_bar
from bopnp.train.checkpoint import code_revision, load_checkpoint, rng_state, save_checkpoint, set_rng_state
from bopnp.train.distributed import DistInfo, all_true, average_buffers, barrier, cleanup, init_distributed
from bopnp.train.engine import NonFiniteLoss, TrainState, train_one_epoch

log = logging.getLogger(__name__)

#: what a run writes into its folder (and ``--overwrite`` removes)
RUN_FILES = ("config.json", "last.pt", "best.pt", "nonfinite.pt", "log.jsonl", "augmented.png", "tb")

#: settings a resumed run may change: the step budget and bookkeeping, not the experiment
RESUME_FREE = frozenset(
    {"steps", "val_every", "ckpt_every", "log_every", "workers", "device", "out", "cache_in_memory"}
)


@dataclass
class RunSummary:
    """What a run did, for the CLI to print.

    Attributes:
        describe: one line of a validation record (the stage's scores); ``score_name`` names the one that picks
            the best checkpoint.
    """

    run_dir: Path
    steps: int
    resumed_from: int = 0
    validations: list[dict] = field(default_factory=list)
    best_step: int = -1
    best_score: float = float("nan")
    score_name: str = "score"
    describe: Callable[[dict], str] | None = None

    def format(self) -> str:
        lines = [
            f"run: {self.run_dir} ({self.steps} steps"
            + (f", resumed at step {self.resumed_from})" if self.resumed_from else ")")
        ]
        if self.validations:
            v = self.validations[-1]
            text = self.describe(v) if self.describe else ", ".join(f"{k} {x:.3f}" for k, x in v.items())
            lines.append(f"last validation (step {v['step']}): {text}")
            lines.append(
                f"best: step {self.best_step}, {self.score_name} {self.best_score:.3f} -> {self.run_dir / 'best.pt'}"
            )
        return "\n".join(lines)


def holdout_split(keys: list[tuple[int, int]], val_fraction: float) -> tuple[list[int], list[int]]:
    """(training, validation) positions of items given as ``(scene_id, im_id)``: the last ``ceil(fraction * n)``
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


def evenly_spread(positions: list[int], limit: int) -> list[int]:
    """At most ``limit`` of ``positions``, evenly spread over them (all when there are fewer)."""
    if not positions or limit <= 0:
        return []
    keep = np.unique(np.linspace(0, len(positions) - 1, min(limit, len(positions))).round().astype(int))
    return [positions[i] for i in keep]


def warmup_cosine(steps: int, warmup: int) -> Callable[[int], float]:
    """Learning-rate factor: linear warm-up over ``warmup`` steps, then cosine decay to 1 % at ``steps``."""
    warmup = max(1, warmup)

    def factor(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        p = (step - warmup) / max(1, steps - warmup)
        return 0.01 + 0.99 * 0.5 * (1 + math.cos(math.pi * min(p, 1.0)))

    return factor


def _stop_workers(loader: DataLoader | None) -> None:
    """Shut the loader's persistent worker processes down now, while this process is whole: left to the garbage
    collector at interpreter exit, after multiprocessing has killed its daemonic children, the shutdown can block
    writing to a dead worker's queue and the finished run never exits."""
    iterator = getattr(loader, "_iterator", None)
    if iterator is not None and hasattr(iterator, "_shutdown_workers"):
        iterator._shutdown_workers()
        loader._iterator = None


def prepare_run_dir(run: Path, resume: bool, overwrite: bool, info: DistInfo) -> Path:
    """Apply the folder rules (see the module docstring) and create the folder (rank 0)."""
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


def check_resumable(saved: dict, now: dict, path: Path) -> None:
    """A resumed run must continue the same experiment: only the step budget and bookkeeping may change."""
    diff = sorted(k for k in now if k not in RESUME_FREE and json.dumps(now[k]) != json.dumps(saved.get(k)))
    if diff:
        raise CheckpointError(
            f"{path}: the run was started with other settings ({', '.join(diff)}); resume with "
            "the same settings, or start a new run with --out or --overwrite"
        )


class Runner:
    """One training run (see the module docstring); :meth:`run` trains it.

    A subclass sets, in :meth:`_build`: ``net`` (the bare model), ``model`` (``net`` or its DDP wrapper),
    ``optimizer``, ``scheduler``, ``train_set``, ``sampler`` (an :class:`bopnp.data.training_set.EpochSampler`) and
    ``autocast`` (a dtype or None); optionally ``collate_fn``.
    """

    #: the progress bar's name, the throughput's log key, the validation score that picks ``best.pt``
    stage: str = "train"
    rate_name: str = "items_s"
    score_key: str = "score"
    score_name: str = "score"
    #: the data loader's collate function (None: torch's default)
    collate_fn: Callable | None = None

    def __init__(self, config: Any, *, resume: bool = False, overwrite: bool = False, progress: bool | None = None):
        self.config = config.validate()
        self.device = resolve_device(config.device)
        self.info = init_distributed(self.device)
        self.progress = progress
        self.run_dir = prepare_run_dir(config.run_dir, resume, overwrite, self.info)
        self.resume = resume
        self.state = TrainState()
        self._writer = None
        self._build()

    # -- what a subclass provides ------------------------------------------------------------------
    def _build(self) -> None:
        raise NotImplementedError

    def step_fn(self, model, batch: dict[str, Any], step: int) -> dict[str, Tensor]:
        """The losses of one step (``"loss"`` is optimised; every scalar is logged)."""
        raise NotImplementedError

    def validate(self) -> dict | None:
        """Scores of the current model on the held-out data (rank 0; None when there is nothing to validate),
        with ``step`` and :attr:`score_key` among them."""
        return None

    def extra_checkpoint(self) -> dict[str, Any]:
        """What inference needs besides the weights (object ids, network shape, ...)."""
        return {}

    def describe_validation(self, record: dict) -> str:
        return ", ".join(f"{k} {v:.3f}" for k, v in record.items() if isinstance(v, float))

    def write_preview(self) -> None:
        """A picture of augmented training inputs in the run folder (rank 0, once per new run)."""

    # -- checkpoints -------------------------------------------------------------------------------
    def _checkpoint(self) -> dict:
        return {
            "model": self.net.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            "state": self.state.to_dict(),
            "rng": rng_state(),
            "config": self.config.to_dict(),
            **self.extra_checkpoint(),
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
        check_resumable(ckpt["config"], self.config.to_dict(), path)
        self.net.load_state_dict(ckpt["model"])
        self.optimizer.load_state_dict(ckpt["optimizer"])
        self.scheduler.load_state_dict(ckpt["scheduler"])
        self.state = TrainState(**ckpt["state"])
        set_rng_state(ckpt["rng"])

    # -- the loop ----------------------------------------------------------------------------------
    def make_loader(self) -> DataLoader:
        """One loader for the run: its workers stay up across epochs (the sampler is read in this process, so
        ``set_epoch`` still takes effect). It draws its workers' base seed from a generator of its own, not from the
        global one: a resumed run starts an epoch's iterator at another step than the interrupted run did, and the
        training step may draw from the global generator (the detector samples proposals), so that must not move."""
        cfg = self.config
        return DataLoader(
            self.train_set,
            batch_size=cfg.batch_size,
            sampler=self.sampler,
            num_workers=cfg.workers,
            collate_fn=self.collate_fn,
            drop_last=True,
            persistent_workers=cfg.workers > 0,
            multiprocessing_context="spawn" if cfg.workers else None,
            generator=torch.Generator().manual_seed(cfg.seed),
        )

    def run(self) -> RunSummary:
        cfg, info = self.config, self.info
        resumed_from = 0
        if self.resume:
            self._restore()
            resumed_from = self.state.step
        elif info.is_main:
            write_text_atomic(self.run_dir / "config.json", json.dumps(cfg.to_dict(), indent=1) + "\n")
            self.write_preview()
        summary = RunSummary(
            self.run_dir,
            cfg.steps,
            resumed_from,
            best_step=self.state.best_step,
            best_score=self.state.best_score,
            score_name=self.score_name,
            describe=self.describe_validation,
        )
        bar = progress_bar(
            total=cfg.steps, desc=f"train {self.stage}", unit="step", enabled=self.progress if info.is_main else False
        )
        bar.update(self.state.step)
        window: list[float] = []
        rate = [0.0]
        started = time.perf_counter()

        def on_step(values: dict[str, float], n: int, seconds: float) -> None:
            step = self.state.step
            rate[0] = n * info.world_size / max(seconds, 1e-9)
            bar.update(1)
            window.append(values["loss"])
            bar.set_postfix({"loss": f"{np.mean(window[-20:]):.3f}", self.rate_name: f"{rate[0]:.3g}"})
            if cfg.log_every and step % cfg.log_every == 0:
                self._log(
                    {
                        "step": step,
                        "elapsed_s": round(time.perf_counter() - started, 1),
                        "lr": self.scheduler.get_last_lr()[0],
                        self.rate_name: rate[0],
                        **values,
                    }
                )
            if cfg.val_every and step % cfg.val_every == 0 and step < cfg.steps:
                self._validate_and_keep(summary)
            elif cfg.ckpt_every and step % cfg.ckpt_every == 0:
                self.save()

        loader = None
        try:
            loader = self.make_loader()
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
            if not (resumed_from >= cfg.steps and self._validated_at(cfg.steps)):
                self._validate_and_keep(summary)  # a finished run that is resumed again redoes nothing
        except NonFiniteLoss as exc:
            bar.close()
            if info.is_main:
                save_checkpoint(self.run_dir / "nonfinite.pt", {**self._checkpoint(), "batch": exc.batch})
            raise TrainingError(
                f"{exc}. The weights before this step and the batch are in "
                f"{self.run_dir / 'nonfinite.pt'}; lower --lr or check these inputs, then --resume "
                f"from {self.run_dir / 'last.pt'}"
            ) from None
        finally:
            bar.close()
            _stop_workers(loader)
            if self._writer:
                self._writer.close()
            cleanup(info)
        summary.best_step, summary.best_score = self.state.best_step, self.state.best_score
        return summary

    def _validated_at(self, step: int) -> bool:
        """Whether ``log.jsonl`` records a validation at ``step`` (the same answer on every process)."""
        try:
            lines = (self.run_dir / "log.jsonl").read_text().splitlines()
        except OSError:
            return False
        for line in reversed(lines):
            try:
                record = json.loads(line)
            except json.JSONDecodeError:
                continue
            if record.get("validation") and record.get("step") == step:
                return True
        return False

    def _validate_and_keep(self, summary: RunSummary) -> None:
        average_buffers(self.net, self.info)  # every process, before rank 0 validates the common model
        scores = self.validate()
        if scores is not None:
            summary.validations.append(scores)
            self._log({"validation": True, **scores})
            if scores[self.score_key] > self.state.best_score:
                self.state.best_score, self.state.best_step = scores[self.score_key], self.state.step
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


__all__ = [
    "RESUME_FREE",
    "RUN_FILES",
    "RunSummary",
    "Runner",
    "check_resumable",
    "evenly_spread",
    "holdout_split",
    "prepare_run_dir",
    "resolve_device",
    "warmup_cosine",
]

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

import copy
import json
import logging
import math
import multiprocessing
import os
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor
from torch.utils.data import DataLoader

from bopnp.bop.atomic import write_text_atomic
from bopnp.device import resolve_device
from bopnp.errors import CheckpointError, ConfigError, TrainingError
from bopnp.parallel import bounded_workers
from bopnp.progress import progress_bar
from bopnp.train.checkpoint import (
    code_revision,
    load_checkpoint,
    preserved_rng,
    rng_state,
    save_checkpoint,
    set_rng_state,
)
from bopnp.train.distributed import DistInfo, all_true, average_buffers, barrier, cleanup, init_distributed
from bopnp.train.engine import NonFiniteLoss, StepRecord, TrainState, to_device, train_one_epoch

log = logging.getLogger(__name__)

#: what a run writes into its folder (and ``--overwrite`` removes)
RUN_FILES = ("config.json", "last.pt", "best.pt", "nonfinite.pt", "log.jsonl", "augmented.png", "tb")

#: settings a resumed run may change: the step budget and bookkeeping, not the experiment
RESUME_FREE = frozenset(
    {"steps", "val_every", "ckpt_every", "log_every", "workers", "device", "out", "minutes", "cache_in_memory"}
)

#: resident memory of one loader worker (forked: it shares the parent's pages; a spawned one imports torch), MB
LOADER_WORKER_MB = 400

#: measuring the throughput for a time budget: at least this many steps and seconds of each phase, the first
#: ``BUDGET_WARMUP`` steps (allocator, cudnn autotuning, compilation) not counted
BUDGET_STEPS, BUDGET_SECONDS, BUDGET_WARMUP = 4, 3.0, 2


def process_age_s() -> float | None:
    """Seconds since this process started (Linux: from /proc), None where unknown: the start-up record counts the
    interpreter and the imports before the run was built."""
    try:
        with open("/proc/self/stat") as f:
            start_ticks = int(f.read().rsplit(")", 1)[1].split()[19])
        with open("/proc/uptime") as f:
            uptime = float(f.read().split()[0])
        return max(0.0, uptime - start_ticks / os.sysconf("SC_CLK_TCK"))
    except (OSError, ValueError, IndexError, AttributeError):
        return None


def _cycle(loader: DataLoader, sampler) -> Any:
    """The loader's batches, epoch after epoch, from epoch 0 (the sampler's order; nothing of the run moves)."""
    epoch = 0
    while True:
        sampler.set_epoch(epoch, 0)
        yield from loader
        epoch += 1


def loader_start_method() -> str:
    """``fork`` where the platform has it, else ``spawn``. Loader workers only read the crop cache (no OpenGL, no
    CUDA in them), so forking is safe even after the parent initialised CUDA, and a forked worker starts at once: a
    spawned one first imports torch and bopnp and unpickles the dataset (seconds per worker, all of them before the
    first step). Forked workers' semaphores are unlinked at creation, so none is left for the resource tracker to
    report at exit."""
    return "fork" if "fork" in multiprocessing.get_all_start_methods() else "spawn"


class RateWindow:
    """The throughput over the steps between two logged ones: the step's own rate, the end-to-end rate, and the
    share of the time spent waiting for the loader.

    ``step_rate = items / step time``, ``e2e_rate = items / (step time + wait)``, ``wait_share = wait / (step time +
    wait)``, from the steps' own times (:class:`bopnp.train.engine.StepRecord`): what the loop does between steps
    (logging, checkpoints, validation) is not counted."""

    def __init__(self, world_size: int = 1):
        self.world_size = world_size
        self.items, self.wait, self.busy = 0, 0.0, 0.0

    def add(self, record: StepRecord) -> None:
        self.items += record.n * self.world_size
        self.wait += record.wait_s
        self.busy += record.step_s

    def take(self) -> dict[str, float]:
        wall = max(self.wait + self.busy, 1e-9)
        out = {
            "step_rate": self.items / max(self.busy, 1e-9),
            "e2e_rate": self.items / wall,
            "wait_share": self.wait / wall,
        }
        self.items, self.wait, self.busy = 0, 0.0, 0.0
        return out


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
    #: the average step of a run against its first ones, which a time budget times (:meth:`steps_for_budget`)
    step_cost_growth: float = 1.0
    #: the data loader's collate function (None: torch's default)
    collate_fn: Callable | None = None

    def __init__(self, config: Any, *, resume: bool = False, overwrite: bool = False, progress: bool | None = None):
        self._clock = self._created = time.perf_counter()
        age = process_age_s()
        self.startup: dict[str, float] = {} if age is None else {"process_s": round(age, 3)}
        self.config = config.validate()
        self.device = resolve_device(config.device)
        self.info = init_distributed(self.device)
        self.progress = progress
        self.run_dir = prepare_run_dir(config.run_dir, resume, overwrite, self.info)
        self.resume = resume
        self.state = TrainState()
        self._writer = None
        self.workers = self.config.workers
        self.phase("setup")
        self._build()
        self.phase("build")

    def phase(self, name: str) -> None:
        """Record the seconds since the last phase as start-up phase ``name`` (``log.jsonl``'s start-up record)."""
        now = time.perf_counter()
        self.startup[f"{name}_s"] = round(self.startup.get(f"{name}_s", 0.0) + now - self._clock, 3)
        self._clock = now

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

    def make_scheduler(self) -> None:
        """(Re)build ``scheduler`` for ``config.steps`` (a time budget fixes the steps after :meth:`_build`)."""
        raise NotImplementedError

    def budget_phases(self) -> dict[str, int]:
        """Phases whose step costs differ, each with a step index that runs it (for :meth:`steps_for_budget`)."""
        return {"train": 0}

    def steps_for_budget(self, seconds: float, step_s: dict[str, float], val_s: float) -> int:
        """The most steps whose training and validations fit ``seconds``, given the seconds of one step of each
        phase (the first steps: :attr:`step_cost_growth` scales them to a run's average) and of one validation."""
        val_every = self.config.val_every
        per_step = step_s["train"] * self.step_cost_growth + (val_s / val_every if val_every else 0.0)
        return max(1, int((seconds - val_s) / per_step))

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
        minutes, saved_minutes = getattr(self.config, "minutes", None), ckpt["config"].get("minutes")
        if minutes and saved_minutes != minutes:
            started = f"--minutes {saved_minutes:g}" if saved_minutes else f"--steps {ckpt['config'].get('steps')}"
            raise CheckpointError(
                f"{path}: the run was started with {started}, which fixed its {ckpt['config'].get('steps')} steps; "
                f"resume it with {started}, or with --steps N (and no --minutes) to change its step count"
            )
        if minutes:
            # the budget was turned into steps when the run started: the resumed run keeps them (exact resume)
            fixed = {k: ckpt["config"][k] for k in ("steps", "e2e_steps") if k in ckpt["config"]}
            self.config = replace(self.config, **fixed).validate()
            self.make_scheduler()
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
        training step may draw from the global generator (the detector samples proposals), so that must not move.

        Its workers are bounded as :func:`bopnp.parallel.bounded_workers` bounds a pool (usable cores, available
        memory; the cut is logged once) and forked where the platform allows (:func:`loader_start_method`)."""
        cfg = self.config
        workers = 0
        if cfg.workers > 0:
            batches = max(1, len(self.train_set) // max(1, cfg.batch_size))
            workers = bounded_workers(cfg.workers, batches, worker_mb=LOADER_WORKER_MB, what="--workers")
        self.workers = workers
        return DataLoader(
            self.train_set,
            batch_size=cfg.batch_size,
            sampler=self.sampler,
            num_workers=workers,
            collate_fn=self.collate_fn,
            drop_last=True,
            pin_memory=self.device.type == "cuda",
            persistent_workers=workers > 0,
            prefetch_factor=4 if workers else None,
            multiprocessing_context=loader_start_method() if workers else None,
            generator=torch.Generator().manual_seed(cfg.seed),
        )

    def _reads_at(self, step: int) -> bool:
        """Whether the loop must read the losses at ``step``: a checkpoint or a validation follows it."""
        cfg = self.config
        return bool((cfg.val_every and step % cfg.val_every == 0) or (cfg.ckpt_every and step % cfg.ckpt_every == 0))

    def fit_budget(self, loader: DataLoader) -> None:
        """Turn ``config.minutes`` into ``config.steps``: time a few steps of each phase (:meth:`budget_phases`)
        and one validation on the real loader, then give every process's state back as it was (weights, optimiser,
        scheduler, random generators), so the measured steps change nothing of the run."""
        cfg = self.config
        started = time.perf_counter()
        budget_s = cfg.minutes * 60.0 - (started - self._created)  # the budget counts from the run's start
        saved = copy.deepcopy({"model": self.net.state_dict(), "optimizer": self.optimizer.state_dict()})
        step_s: dict[str, float] = {}
        with preserved_rng():
            self.model.train()
            for name, at in self.budget_phases().items():
                times, t_phase = [], time.perf_counter()
                for batch in _cycle(loader, self.sampler):
                    t0 = time.perf_counter()
                    batch = to_device(batch, self.device)
                    with torch.autocast(self.device.type, dtype=self.autocast, enabled=self.autocast is not None):
                        loss = self.step_fn(self.model, batch, at)["loss"]
                    self.optimizer.zero_grad(set_to_none=True)
                    loss.backward()
                    self.optimizer.step()
                    float(loss.detach())  # wait for the device
                    times.append(time.perf_counter() - t0)
                    if len(times) >= BUDGET_WARMUP + BUDGET_STEPS and time.perf_counter() - t_phase >= BUDGET_SECONDS:
                        break
                # the end-to-end seconds of a step after the warm-up: the loader's waits count too
                warm = sum(times[:BUDGET_WARMUP])
                step_s[name] = (time.perf_counter() - t_phase - warm) / (len(times) - BUDGET_WARMUP)
            t0 = time.perf_counter()
            self.validate()
            val_s = time.perf_counter() - t0
        self.net.load_state_dict(saved["model"])
        self.optimizer.load_state_dict(saved["optimizer"])
        self.optimizer.zero_grad(set_to_none=True)
        if self.info.distributed:  # every process trains the same number of steps: the slowest one decides
            t = torch.tensor([max(step_s.values()), val_s], device=self.device)
            torch.distributed.all_reduce(t, op=torch.distributed.ReduceOp.MAX)
            scale = float(t[0]) / max(step_s.values())
            step_s, val_s = {k: v * scale for k, v in step_s.items()}, float(t[1])
        left = budget_s - (time.perf_counter() - started)
        steps = self.steps_for_budget(left, step_s, val_s)
        self.config = self.budgeted_config(steps).validate()
        self.make_scheduler()
        self.budget = {
            "minutes": cfg.minutes,
            "steps": self.config.steps,
            "budget_s": round(left, 1),
            "measure_s": round(time.perf_counter() - started, 2),
            "val_s": round(val_s, 3),
            **{f"{k}_step_s": round(v, 4) for k, v in step_s.items()},
        }
        log.info(
            "time budget %.1f min: %d steps (%s per step, a validation %.1f s)",
            cfg.minutes,
            self.config.steps,
            ", ".join(f"{k} {v * 1e3:.0f} ms" for k, v in step_s.items()),
            val_s,
        )

    def budgeted_config(self, steps: int) -> Any:
        """The config with ``steps`` fixed by a time budget."""
        return replace(self.config, steps=steps)

    def run(self) -> RunSummary:
        cfg, info = self.config, self.info
        resumed_from = 0
        self.budget: dict[str, Any] | None = None
        loader = None
        try:
            loader = self.make_loader()
            self.phase("loader")
            if self.resume:
                self._restore()
                resumed_from = self.state.step
            elif getattr(cfg, "minutes", None):
                self.fit_budget(loader)
                self.phase("budget")
            cfg = self.config
            if not self.resume and info.is_main:
                write_text_atomic(self.run_dir / "config.json", json.dumps(cfg.to_dict(), indent=1) + "\n")
                with preserved_rng():
                    self.write_preview()
                self.phase("preview")
            return self._loop(loader, resumed_from)
        finally:
            _stop_workers(loader)
            if self._writer:
                self._writer.close()
            cleanup(info)

    def _loop(self, loader: DataLoader, resumed_from: int) -> RunSummary:
        cfg, info = self.config, self.info
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
        rates = RateWindow(info.world_size)
        started = time.perf_counter()
        first = [True]

        def on_step(record: StepRecord) -> None:
            step = record.step
            if first[0]:  # the start-up: everything before the first step, then the first step itself
                first[0] = False
                self.startup["first_batch_s"] = round(record.wait_s, 3)
                self.startup["first_step_s"] = round(record.step_s, 3)
                total = sum(v for k, v in self.startup.items())
                self._log(
                    {
                        "startup": True,
                        "step": step,
                        **self.startup,
                        "total_s": round(total, 3),
                        "workers": self.workers,
                        "threads": torch.get_num_threads() if self.device.type == "cpu" else None,
                        "start_method": loader_start_method() if self.workers else "main",
                        **({"budget": self.budget} if self.budget else {}),
                    }
                )
                record = replace(record, wait_s=0.0)  # the wait for the first batch is the start-up's
            rates.add(record)
            bar.update(1)
            window.append(record.values["loss"])
            if cfg.log_every and step % cfg.log_every == 0:
                r = rates.take() if rates.items else None
                if r is not None:
                    bar.set_postfix({"loss": f"{np.mean(window[-20:]):.3f}", self.rate_name: f"{r['e2e_rate']:.3g}"})
                self._log(
                    {
                        "step": step,
                        "elapsed_s": round(time.perf_counter() - started, 1),
                        "lr": self.scheduler.get_last_lr()[0],
                        **(
                            {
                                self.rate_name: r["step_rate"],
                                f"{self.rate_name}_e2e": r["e2e_rate"],
                                "data_wait": r["wait_share"],
                            }
                            if r is not None
                            else {}
                        ),
                        **record.values,
                    }
                )
            if step != self.state.step:  # an earlier step of a window read now: nothing is saved for it
                return
            if cfg.val_every and step % cfg.val_every == 0 and step < cfg.steps:
                self._validate_and_keep(summary)
            elif cfg.ckpt_every and step % cfg.ckpt_every == 0:
                self.save()

        try:
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
                    all_agree=(lambda ok: all_true(ok, info)) if info.distributed else None,
                    read_every=max(1, cfg.log_every),
                    read_at=self._reads_at,
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
        with preserved_rng():  # where a run validates (a resumed one also where it stopped) must not move them
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

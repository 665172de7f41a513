"""The training engine, as torchvision's detection references shape it: :func:`train_one_epoch` and an
inference-mode :func:`evaluate`, with the model-specific work passed in as functions, so that one engine serves the
pose network and the detector.

Training is counted in optimiser steps: an epoch may end early (the run's last step) and a resumed run starts
mid-epoch (the sampler skips what was trained); :class:`TrainState` is what a checkpoint stores of the loop.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field
from typing import Any

import torch
from torch import Tensor

from bopnp.errors import TrainingError


@dataclass
class TrainState:
    """Where the loop is: optimiser steps done, the epoch, crops of the epoch this process has trained."""

    step: int = 0
    epoch: int = 0
    epoch_pos: int = 0
    best_score: float = float("-inf")
    best_step: int = -1

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class NonFiniteLoss(TrainingError):
    """A loss became NaN or infinite; carries the step and the offending batch for inspection."""

    def __init__(self, step: int, losses: dict[str, float], batch: dict[str, Tensor]):
        self.step, self.losses, self.batch = step, losses, batch
        ids = describe_batch(batch)
        super().__init__(f"non-finite loss at step {step + 1} ({losses}); batch: {ids}")


def describe_batch(batch: dict[str, Any], limit: int = 8) -> str:
    """The crops of a batch as ``scene/image/gt obj`` ids, or its images as ``scene/image`` (the first ``limit``)."""
    keys = ("scene_id", "im_id", "gt_id", "obj_id")
    if all(k in batch for k in keys):
        rows = [f"{s}/{i}/{g} obj {o}" for s, i, g, o in zip(*(batch[k].tolist() for k in keys))]
    elif "scene_id" in batch and "im_id" in batch:
        rows = [f"image {s}/{i}" for s, i in zip(batch["scene_id"].tolist(), batch["im_id"].tolist())]
    else:
        return f"{len(next(iter(batch.values())))} items"
    more = f" (+{len(rows) - limit} more)" if len(rows) > limit else ""
    return ", ".join(rows[:limit]) + more


def to_device(batch: Any, device: torch.device) -> Any:
    """Tensors moved to ``device``, also inside the lists and dicts of a batch (a detector's targets)."""
    if isinstance(batch, Tensor):
        return batch.to(device, non_blocking=True)
    if isinstance(batch, dict):
        return {k: to_device(v, device) for k, v in batch.items()}
    if isinstance(batch, list | tuple):
        return type(batch)(to_device(v, device) for v in batch)
    return batch


StepFn = Callable[[torch.nn.Module, dict[str, Tensor], int], dict[str, Tensor]]


@dataclass
class StepRecord:
    """One optimiser step as the loop reports it.

    Attributes:
        step: steps done after this one (1 for the first). values: the step's scalar losses.
        n: items (crops, images) of the batch on this process.
        wait_s: seconds spent waiting for the loader before the step.
        step_s: host seconds of the step (copy to the device, forward, backward, optimiser); on CUDA, between two
            reads of the losses, the time to queue its work: the step before a read also counts the read's wait for
            the device, so the sum over a window is its real time.
    """

    step: int
    values: dict[str, float]
    n: int
    wait_s: float
    step_s: float


def defers_checks(optimizer: torch.optim.Optimizer) -> bool:
    """Whether ``optimizer`` can skip its update on the device (torch's fused Adam/AdamW/SGD read a ``found_inf``
    tensor, as under a gradient scaler), so that the finiteness of the loss need not be read on the host every
    step."""
    return bool(getattr(optimizer, "defaults", {}).get("fused"))


def _scalars(losses: dict[str, Tensor]) -> dict[str, Tensor]:
    return {k: v.detach().float() for k, v in losses.items() if isinstance(v, Tensor) and v.dim() == 0}


def train_one_epoch(
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    scheduler: torch.optim.lr_scheduler.LRScheduler | None,
    loader: Iterable[dict[str, Tensor]],
    step_fn: StepFn,
    state: TrainState,
    *,
    device: torch.device,
    end_step: int,
    autocast_dtype: torch.dtype | None = None,
    on_step: Callable[[StepRecord], None] | None = None,
    all_agree: Callable[[bool], bool] | None = None,
    read_every: int = 1,
    read_at: Callable[[int], bool] | None = None,
) -> bool:
    """Train until the loader is exhausted or ``state.step`` reaches ``end_step``.

    The losses are read on the host (a device synchronisation) once every ``read_every`` steps, at ``end_step``
    and where ``read_at(step)`` says (a checkpoint, a validation), when the optimiser can skip an update on the
    device (:func:`defers_checks`); else every step. Between two reads a non-finite loss makes that step's update
    and every later one of the window a no-op on the device (a sticky ``found_inf``), so the weights stay those
    before the offending step (its buffers, batch-norm statistics, are put back too); the read then raises for that
    step with its batch, as a per-step read would. The batches of a window and a copy of the buffers before each
    step are kept until its read (``read_every`` batches of device memory).

    Args:
        step_fn: ``(model, batch, step) -> {"loss": scalar, ...}``; every scalar entry is logged.
        state: updated in place (step, epoch position; the epoch advances when the loader is exhausted).
        on_step: called for every step, in order, when its losses have been read (:class:`StepRecord`).
        all_agree: under distributed training, whether every process's loss is finite (given this one's), so that
            all stop together instead of some waiting for the others' gradients (losses are then read every step).
    Returns:
        True when the epoch ended (the loader was exhausted), False when ``end_step`` stopped it.
    Raises:
        NonFiniteLoss: with the weights, optimiser and ``state`` as they were before the offending step.
    """
    model.train()
    deferred = read_every > 1 and all_agree is None and defers_checks(optimizer)
    window: list[_Pending] = []
    bad: Tensor | None = None  # whether a loss of the window was non-finite, on the device

    def read() -> None:
        nonlocal bad, ready
        if not window:
            return
        flat = torch.cat([torch.stack(list(p.scalars.values())) for p in window]).tolist()  # one host read
        window[-1].step_s += time.perf_counter() - ready  # the read waited for the device's queued work
        first = state.step - len(window) + 1  # the step number of the window's first step
        for i, p in enumerate(window):
            values = dict(zip(p.scalars, flat[: len(p.scalars)]))
            flat = flat[len(p.scalars) :]
            if not all(math.isfinite(v) for v in values.values()):
                # this step's update and the later ones of the window were skipped: the loop goes back to it
                state.step, state.epoch_pos = first + i - 1, p.epoch_pos
                if scheduler is not None and p.scheduler is not None:
                    scheduler.load_state_dict(p.scheduler)
                with torch.no_grad():  # batch-norm statistics as before the step (later forwards moved them)
                    for buf, saved in zip(model.buffers(), p.buffers):
                        buf.copy_(saved)
                window.clear()
                raise NonFiniteLoss(state.step, values, p.batch)
            if on_step is not None:
                on_step(StepRecord(first + i, values, p.n, p.wait_s, p.step_s))
        window.clear()
        if deferred:
            bad = None
            optimizer.found_inf = None
        ready = time.perf_counter()

    ready = time.perf_counter()  # when the previous step (or read) was done: the wait for this batch starts
    for batch in loader:
        t0 = time.perf_counter()
        batch = to_device(batch, device)
        buffers = [b.detach().clone() for b in model.buffers()] if deferred else []
        with torch.autocast(device.type, dtype=autocast_dtype, enabled=autocast_dtype is not None):
            losses = step_fn(model, batch, state.step)
        scalars = _scalars(losses)
        n = len(batch["image"]) if "image" in batch else 0
        pending = _Pending(scalars, n, t0 - ready, 0.0, state.epoch_pos, buffers)
        if deferred:
            step_bad = ~torch.isfinite(torch.stack(list(scalars.values()))).all()
            bad = step_bad if bad is None else bad | step_bad
            optimizer.found_inf = bad.float()  # the fused optimiser skips its update while this is 1
            pending.batch = batch
            pending.scheduler = scheduler.state_dict() if scheduler is not None else None
        else:
            values = {k: float(v) for k, v in scalars.items()}
            finite = all(math.isfinite(v) for v in values.values())
            if all_agree is not None:
                finite = all_agree(finite)
            if not finite:
                raise NonFiniteLoss(state.step, values, batch)
        optimizer.zero_grad(set_to_none=True)
        losses["loss"].backward()
        optimizer.step()
        if scheduler is not None:
            scheduler.step()
        state.step += 1
        state.epoch_pos += n
        ready = time.perf_counter()
        pending.step_s = ready - t0
        window.append(pending)
        if not deferred or len(window) >= read_every or state.step >= end_step or (read_at and read_at(state.step)):
            read()
        if state.step >= end_step:
            return False
    read()
    state.epoch += 1
    state.epoch_pos = 0
    return True


@dataclass
class _Pending:
    """A step whose losses are not read yet."""

    scalars: dict[str, Tensor]
    n: int
    wait_s: float
    step_s: float
    epoch_pos: int
    buffers: list[Tensor]
    batch: dict[str, Any] = field(default_factory=dict)
    scheduler: dict | None = None


@torch.inference_mode()
def evaluate(
    model: torch.nn.Module,
    loader: Iterable[dict[str, Tensor]],
    predict_fn: Callable[[torch.nn.Module, dict[str, Tensor]], dict[str, Tensor]],
    *,
    device: torch.device,
    autocast_dtype: torch.dtype | None = None,
) -> dict[str, Any]:
    """Run ``predict_fn(model, batch)`` over the loader in eval mode and concatenate its outputs (on the CPU):
    tensors along their first dimension, lists (per-image records of varying size) one after another."""
    was_training = model.training
    model.eval()
    out: dict[str, list] = {}
    records: set[str] = set()  # keys whose values are lists of records, not tensors
    try:
        for batch in loader:
            batch = to_device(batch, device)
            with torch.autocast(device.type, dtype=autocast_dtype, enabled=autocast_dtype is not None):
                pred = predict_fn(model, batch)
            for k, v in pred.items():
                if isinstance(v, Tensor):
                    out.setdefault(k, []).append(v.detach().float().cpu() if v.is_floating_point() else v.cpu())
                else:
                    records.add(k)
                    out.setdefault(k, []).extend(v)
    finally:
        model.train(was_training)
    return {k: v if k in records else torch.cat(v) for k, v in out.items()}


__all__ = [
    "NonFiniteLoss",
    "StepRecord",
    "TrainState",
    "defers_checks",
    "describe_batch",
    "evaluate",
    "to_device",
    "train_one_epoch",
]

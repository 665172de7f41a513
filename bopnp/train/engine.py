"""The training engine, as torchvision's detection references shape it: :func:`train_one_epoch` and an
inference-mode :func:`evaluate`, with the model-specific work passed in as functions, so that one engine serves the
pose network and the detector.

Training is counted in optimiser steps: an epoch may end early (the run's last step) and a resumed run starts
mid-epoch (the sampler skips what was trained); :class:`TrainState` is what a checkpoint stores of the loop.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass
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
    on_step: Callable[[dict[str, float], int, float], None] | None = None,
    all_agree: Callable[[bool], bool] | None = None,
) -> bool:
    """Train until the loader is exhausted or ``state.step`` reaches ``end_step``.

    Args:
        step_fn: ``(model, batch, step) -> {"loss": scalar, ...}``; every entry is logged.
        state: updated in place (step, epoch position; the epoch advances when the loader is exhausted).
        on_step: called after every step with the losses as floats, the batch size and the seconds it took.
        all_agree: under distributed training, whether every process's loss is finite (given this one's), so that
            all stop together instead of some waiting for the others' gradients.
    Returns:
        True when the epoch ended (the loader was exhausted), False when ``end_step`` stopped it.
    Raises:
        NonFiniteLoss: before the optimiser step, so the weights are those that produced it.
    """
    model.train()
    for batch in loader:
        t0 = time.perf_counter()
        batch = to_device(batch, device)
        with torch.autocast(device.type, dtype=autocast_dtype, enabled=autocast_dtype is not None):
            losses = step_fn(model, batch, state.step)
        values = {k: float(v.detach()) for k, v in losses.items() if isinstance(v, Tensor) and v.dim() == 0}
        finite = all(v == v and abs(v) != float("inf") for v in values.values())
        if all_agree is not None:
            finite = all_agree(finite)
        if not finite:
            raise NonFiniteLoss(state.step, values, batch)
        optimizer.zero_grad(set_to_none=True)
        losses["loss"].backward()
        optimizer.step()
        if scheduler is not None:
            scheduler.step()
        n = len(batch["image"]) if "image" in batch else 0
        state.step += 1
        state.epoch_pos += n
        if on_step is not None:
            on_step(values, n, time.perf_counter() - t0)
        if state.step >= end_step:
            return False
    state.epoch += 1
    state.epoch_pos = 0
    return True


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


__all__ = ["NonFiniteLoss", "TrainState", "describe_batch", "evaluate", "to_device", "train_one_epoch"]

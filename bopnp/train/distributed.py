"""Distributed data parallel from torchrun's environment (``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK``).

``torchrun --nproc-per-node N -m bopnp train NAME ...`` (or ``bopnp train NAME --nproc N``, which launches that)
runs N processes; each trains on its share of every epoch, gradients are averaged, and only rank 0 logs and saves.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist


@dataclass(frozen=True)
class DistInfo:
    """This process among the training processes."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world_size > 1


def init_distributed(device: torch.device) -> DistInfo:
    """Join the process group torchrun set up (gloo on CPU, NCCL on CUDA); a single process needs nothing."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return DistInfo()
    info = DistInfo(int(os.environ["RANK"]), world, int(os.environ.get("LOCAL_RANK", "0")))
    if not dist.is_initialized():
        backend = "nccl" if device.type == "cuda" else "gloo"
        if device.type == "cuda":
            torch.cuda.set_device(info.local_rank)
        dist.init_process_group(backend=backend)
    return info


def barrier(info: DistInfo) -> None:
    if info.distributed:
        dist.barrier()


def all_true(flag: bool, info: DistInfo) -> bool:
    """Whether ``flag`` holds on every process."""
    if not info.distributed:
        return flag
    t = torch.tensor([0.0 if flag else 1.0])
    dist.all_reduce(t)
    return bool(t.item() == 0)


def average_buffers(module: torch.nn.Module, info: DistInfo) -> None:
    """Average the floating-point buffers (batch-norm running statistics) over the processes, in place, so every
    process holds the same model: gradients keep the parameters equal, but each process updates its own running
    statistics from its own crops."""
    if not info.distributed:
        return
    for buf in module.buffers():
        if buf.is_floating_point():
            dist.all_reduce(buf)
            buf /= info.world_size


def cleanup(info: DistInfo) -> None:
    if info.distributed and dist.is_initialized():
        dist.destroy_process_group()


__all__ = [
    "DistInfo",
    "all_true",
    "average_buffers",
    "barrier",
    "cleanup",
    "init_distributed",
]

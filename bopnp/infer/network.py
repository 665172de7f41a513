"""The trained pose network as inference uses it: loaded from a ``bopnp train --stage pose`` checkpoint, with what
the pose stage needs besides the weights (the objects of its output groups, its crop size, the thresholds it was
trained with) and each object's coordinate normalisation, derived from the dataset's meshes exactly as
``bopnp prepare`` derives it (so no crop cache is needed at inference).

Example:
    >>> net = load_pose_network("results/train/demo/pose")          # doctest: +SKIP
    >>> net.obj_ids, net.crop_size                                  # doctest: +SKIP
    ([1, 2, 3, 4, 5, 6], 128)
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from bopnp.bop.mesh import Mesh
from bopnp.errors import CheckpointError
from bopnp.models import coord_net_from_config
from bopnp.models.e2e import E2EConfig
from bopnp.train.checkpoint import load_checkpoint

#: checkpoint files tried, in order, in a run folder
RUN_CHECKPOINTS = ("best.pt", "last.pt")
#: smallest half extent of a normalisation axis, mm (a flat mesh still gets a finite normalisation)
MIN_HALF_EXTENT_MM = 1e-6


def resolve_checkpoint(path: str | os.PathLike, stage: str = "pose") -> Path:
    """The checkpoint a ``--pose`` (or ``--detector``) argument means: a ``.pt`` file, or a run folder's ``best.pt``,
    else ``last.pt``.

    Raises:
        CheckpointError: nothing usable there, saying what was looked for.
    """
    path = Path(path)
    if path.is_dir():
        for name in RUN_CHECKPOINTS:
            if (path / name).is_file():
                return path / name
        raise CheckpointError(
            f"{path}: a folder without {' or '.join(RUN_CHECKPOINTS)}; pass a run folder of "
            f"`bopnp train --stage {stage}` (or one of its .pt files)"
        )
    if not path.is_file():
        raise CheckpointError(
            f"{path} not found: pass a run folder of `bopnp train --stage {stage}` or the .pt file of one"
        )
    return path


def file_digest(path: str | os.PathLike, chunk: int = 1 << 20) -> str:
    """sha256 of a file (hex), read in chunks."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


def object_normalisation(mesh: Mesh) -> tuple[np.ndarray, np.ndarray]:
    """The normalisation of an object's coordinate maps: ``xyz_mm = centre_mm + xyz * half_extent_mm`` per axis,
    centred on the axis-aligned bounding box of the mesh's vertices (as the renderer and the crop cache have it).

    Args:
        mesh: the object's mesh (vertices in mm).
    Returns:
        centre_mm: (3,) float64. half_extent_mm: (3,) float64, at least :data:`MIN_HALF_EXTENT_MM`.

    Example:
        >>> m = Mesh(vertices_mm=np.array([[0.0, -2, 1], [4, 2, 3], [1, 0, 2]]), faces=np.array([[0, 1, 2]]))
        >>> c, h = object_normalisation(m)
        >>> c.tolist(), h.tolist()
        ([2.0, 0.0, 2.0], [2.0, 2.0, 1.0])
    """
    v = np.asarray(mesh.vertices_mm, dtype=np.float32)  # the renderer's precision
    lo, hi = v.min(0).astype(np.float64), v.max(0).astype(np.float64)
    return (lo + hi) / 2, np.maximum((hi - lo) / 2, MIN_HALF_EXTENT_MM)


@dataclass
class PoseNetwork:
    """A loaded pose network.

    Attributes:
        path: the checkpoint file.
        net: the coordinate network (:func:`bopnp.models.build_coord_net`) in eval mode on its device.
        obj_ids: the object of each output group (group k serves ``obj_ids[k]``).
        crop_size: side of the crops it takes, pixels.
        e2e: the thresholds of the e2e phase it was trained with (``max_err``, ``min_coord``, ``min_points``).
        config: the training config as saved (a dict; keys of other versions are kept as they are).
        digest: sha256 of the checkpoint file (a resumed prediction must use the same weights).
    """

    path: Path
    net: torch.nn.Module
    obj_ids: list[int]
    crop_size: int
    e2e: E2EConfig
    config: dict[str, Any] = field(default_factory=dict)
    digest: str = ""

    @property
    def device(self) -> torch.device:
        return next(self.net.parameters()).device

    def obj_index(self, obj_id: int) -> int:
        """The output group of an object."""
        return self.obj_ids.index(int(obj_id))


def _e2e_from(config: dict[str, Any]) -> E2EConfig:
    saved = config.get("e2e_loss") if isinstance(config.get("e2e_loss"), dict) else {}
    defaults = E2EConfig()
    return E2EConfig(
        max_err=float(saved.get("max_err", defaults.max_err)),
        min_coord=float(saved.get("min_coord", defaults.min_coord)),
        min_points=int(saved.get("min_points", defaults.min_points)),
    )


def load_pose_network(path: str | os.PathLike, device: str | torch.device = "cpu") -> PoseNetwork:
    """Load the pose network of a run folder or checkpoint file (see :func:`resolve_checkpoint`).

    Raises:
        CheckpointError: missing or unreadable file, or one that is not a pose-network checkpoint (naming what is
        missing or does not fit).
    """
    file = resolve_checkpoint(path)
    state = load_checkpoint(file, map_location="cpu")
    missing = [k for k in ("config", "obj_ids", "crop_size") if k not in state]
    if missing:
        raise CheckpointError(
            f"{file}: not a pose-network checkpoint (no {', '.join(missing)}); pass the run folder or a .pt file "
            "written by `bopnp train --stage pose`"
        )
    config = dict(state["config"]) if isinstance(state["config"], dict) else {}
    obj_ids = [int(o) for o in state["obj_ids"]]
    crop_size = int(state["crop_size"])
    try:
        net = coord_net_from_config(config, num_objects=len(obj_ids), crop_size=crop_size)
        net.load_state_dict(state["model"])
    except Exception as exc:  # a ConfigError of the builder or the RuntimeError of a state dict that does not fit
        raise CheckpointError(
            f"{file}: its weights do not fit the network its config describes ({type(exc).__name__}: "
            f"{str(exc)[:300]}); the file may come from another version of bopnp: retrain, or use that version"
        ) from None
    net = net.to(device).eval()
    return PoseNetwork(
        path=file,
        net=net,
        obj_ids=obj_ids,
        crop_size=crop_size,
        e2e=_e2e_from(config),
        config=config,
        digest=file_digest(file),
    )


__all__ = [
    "MIN_HALF_EXTENT_MM",
    "PoseNetwork",
    "RUN_CHECKPOINTS",
    "file_digest",
    "load_pose_network",
    "object_normalisation",
    "resolve_checkpoint",
]

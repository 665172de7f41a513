"""Validation scores of estimated poses, as the BOP evaluator defines them but without files: ADD(-S) recall at
0.1 x diameter, and the MSSD and MSPD average recalls over BOP19's thresholds (MSSD 0.05 .. 0.5 x diameter, MSPD
5 .. 50 px x width / 640). An invalid estimate counts as a miss."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from bopnp.bop.dataset import BopDataset
from bopnp.bop.symmetry import symmetry_transforms
from bopnp.geometry.radial_surface import radial_profile
from bopnp.metrics.pose_errors import add, adi, hull_points, mspd, mssd

MSSD_THRESHOLDS = np.arange(0.05, 0.51, 0.05)  # x diameter
MSPD_THRESHOLDS_PX = np.arange(5, 51, 5)  # x width / 640
ADD_THRESHOLD = 0.1  # x diameter


@dataclass(frozen=True)
class ObjectModel:
    """What scoring needs of one object: eval-model points, their hull, diameter and symmetries."""

    obj_id: int
    pts_mm: np.ndarray  # (V, 3)
    hull_mm: np.ndarray  # (H, 3)
    diameter_mm: float
    sym: np.ndarray  # (S, 4, 4), identity first
    symmetric: bool


def load_object_models(dataset: BopDataset, obj_ids, max_points: int = 2000) -> dict[int, ObjectModel]:
    """The eval models (``models_eval``, else ``models``) of the objects; at most ``max_points`` points for ADD."""
    out = {}
    for obj_id in obj_ids:
        info = dataset.models_info[int(obj_id)]
        use_eval = dataset.model_path(obj_id, eval=True).is_file()
        pts = np.asarray(dataset.mesh(obj_id, eval=use_eval).vertices_mm, dtype=np.float64)
        if len(pts) > max_points:
            pts = pts[np.linspace(0, len(pts) - 1, max_points).round().astype(int)]
        out[int(obj_id)] = ObjectModel(
            int(obj_id),
            pts,
            hull_points(pts),
            float(info.diameter_mm),
            symmetry_transforms(info),
            bool(info.is_symmetric),
        )
    return out


def load_radial_profiles(dataset: BopDataset, obj_ids) -> torch.Tensor:
    """(len(obj_ids), D) float32 radial surface profiles of the objects' meshes about their coordinate
    normalisation's centre (:func:`bopnp.geometry.radial_surface.radial_profile`), in ``obj_ids`` order."""
    rows = []
    for obj_id in obj_ids:
        mesh = dataset.mesh(int(obj_id))
        rows.append(radial_profile(mesh.vertices_mm, mesh.faces))
    return torch.from_numpy(np.stack(rows))


def pose_scores(
    R_est: np.ndarray,
    t_est: np.ndarray,
    R_gt: np.ndarray,
    t_gt: np.ndarray,
    K: np.ndarray,
    obj_ids: np.ndarray,
    valid: np.ndarray,
    models: dict[int, ObjectModel],
    image_width: int,
) -> dict[str, float]:
    """Recalls over a set of estimates.

    Args:
        R_est, R_gt: (P, 3, 3). t_est, t_gt: (P, 3) mm. K: (P, 3, 3) image intrinsics. obj_ids: (P,).
        valid: (P,) bool, False where no pose was found. models: per object id. image_width: pixels.
    Returns:
        ``add_s`` (ADD(-S) recall at 0.1 d), ``mssd``, ``mspd`` (average recalls), ``ar`` (their mean, the BOP19
        AR without VSD) and ``valid`` (share of estimates with a pose); 0 for an empty set.
    """
    n = len(obj_ids)
    if n == 0:
        return {"add_s": 0.0, "mssd": 0.0, "mspd": 0.0, "ar": 0.0, "valid": 0.0}
    hit_add = np.zeros(n)
    rec_mssd = np.zeros(n)
    rec_mspd = np.zeros(n)
    r = image_width / 640.0
    for obj_id in np.unique(obj_ids):
        m = models[int(obj_id)]
        sel = np.flatnonzero((obj_ids == obj_id) & valid)
        if len(sel) == 0:
            continue
        args = (R_est[sel], t_est[sel], R_gt[sel], t_gt[sel])
        e_add = (adi if m.symmetric else add)(*args, m.pts_mm)
        hit_add[sel] = e_add < ADD_THRESHOLD * m.diameter_mm
        e_mssd = mssd(*args, m.hull_mm, m.sym[:, :3, :3], m.sym[:, :3, 3])
        rec_mssd[sel] = (e_mssd[:, None] < MSSD_THRESHOLDS[None] * m.diameter_mm).mean(1)
        e_mspd = mspd(*args, K[sel], m.pts_mm, m.sym[:, :3, :3], m.sym[:, :3, 3])
        rec_mspd[sel] = (e_mspd[:, None] < MSPD_THRESHOLDS_PX[None] * r).mean(1)
    scores = {"add_s": hit_add.mean(), "mssd": rec_mssd.mean(), "mspd": rec_mspd.mean(), "valid": valid.mean()}
    scores["ar"] = (scores["mssd"] + scores["mspd"]) / 2
    return {k: float(v) for k, v in scores.items()}


__all__ = ["ObjectModel", "load_object_models", "pose_scores"]

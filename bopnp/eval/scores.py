"""Recall and average recall from matches (BOP19 localisation scores), and the ADD(-S) AUC.

A *target* is a valid GT instance (see :func:`bopnp.eval.matching.valid_gt_mask`); recall under one
condition (a threshold, or a threshold and a VSD tau) is the number of matched targets over the
number of targets -- targets without any estimate count as misses. The BOP19 average recall of a
metric is the mean of its recalls over all its conditions.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from bopnp.checks import check_shape

#: BOP19 thresholds: VSD and MSSD as fractions of the diameter, MSPD in pixels (of a 640-wide image);
#: built with np.arange exactly as bop_toolkit so that the comparisons give the same answers at the
#: boundaries.
VSD_TAUS = np.arange(0.05, 0.51, 0.05)
VSD_THRESHOLDS = np.arange(0.05, 0.51, 0.05)
MSSD_THRESHOLDS = np.arange(0.05, 0.51, 0.05)
MSPD_THRESHOLDS = np.arange(5, 51, 5).astype(np.float64)
#: ADD(-S): recall at 0.1 x diameter, and the AUC of recall over thresholds up to 100 mm
ADD_THRESHOLD = 0.1
ADD_AUC_MAX_MM = 100.0
ADD_AUC_STEP_MM = 1.0


@dataclass(frozen=True)
class Recalls:
    """Recall of one metric under each of its conditions.

    Attributes:
        tp: (C,) int64 matched targets per condition.
        n_targets: number of targets.
        obj_tp: obj_id -> (C,) matched targets of that object.
        obj_targets: obj_id -> number of targets of that object.
    """

    tp: np.ndarray
    n_targets: int
    obj_tp: dict[int, np.ndarray]
    obj_targets: dict[int, int]

    @property
    def recall(self) -> np.ndarray:
        """(C,) float64 recall per condition; 0 when there are no targets (as bop_toolkit)."""
        if self.n_targets == 0:
            return np.zeros(len(self.tp))
        return self.tp / float(self.n_targets)

    @property
    def average_recall(self) -> float:
        """Mean recall over the conditions (BOP19 AR of the metric)."""
        return float(np.mean(self.recall))

    def object_recall(self, obj_id: int) -> np.ndarray:
        """(C,) recall of one object per condition."""
        n = self.obj_targets.get(obj_id, 0)
        return np.zeros(len(self.tp)) if n == 0 else self.obj_tp[obj_id] / float(n)

    def object_average_recalls(self) -> dict[int, float]:
        """obj_id -> mean recall over the conditions, for every object with targets."""
        return {o: float(np.mean(self.object_recall(o))) for o in sorted(self.obj_targets)}


def count_recalls(
    matched: list[np.ndarray], gt_valid: list[np.ndarray], group_obj_ids: list[int], n_conditions: int
) -> Recalls:
    """Count matched targets per condition, overall and per object.

    Args:
        matched: per group a (C, N_g) array of matched estimate indices (-1 = none),
            from :func:`bopnp.eval.matching.match_groups`.
        gt_valid: per group a (N_g,) bool mask of the targets.
        group_obj_ids: per group its object id.
        n_conditions: C (needed when there are no groups).
    Returns:
        :class:`Recalls`.
    """
    tp = np.zeros(n_conditions, np.int64)
    n_targets = 0
    obj_tp: dict[int, np.ndarray] = {}
    obj_targets: dict[int, int] = {}
    for m, valid, obj in zip(matched, gt_valid, group_obj_ids):
        valid = np.asarray(valid, dtype=bool)
        check_shape(m, f"{n_conditions} {len(valid)}", "matched")
        hits = ((m >= 0) & valid[None]).sum(axis=1)
        n = int(valid.sum())
        tp += hits
        n_targets += n
        obj_tp[obj] = obj_tp.get(obj, np.zeros(n_conditions, np.int64)) + hits
        obj_targets[obj] = obj_targets.get(obj, 0) + n
    return Recalls(tp=tp, n_targets=n_targets, obj_tp=obj_tp, obj_targets=obj_targets)


def add_auc_thresholds_mm() -> np.ndarray:
    """(100,) thresholds 1, 2, ..., 100 mm at which the ADD(-S) recall curve is sampled."""
    return np.arange(1, int(ADD_AUC_MAX_MM / ADD_AUC_STEP_MM) + 1) * ADD_AUC_STEP_MM


def auc(recall: np.ndarray) -> float:
    """Area under a recall curve sampled at evenly spaced thresholds (step s) on (0, max],
    normalised to [0, 1]: the mean of the samples (a right Riemann sum divided by max).

    Args:
        recall: (T,) recall at thresholds s, 2s, ..., T s.
    """
    return float(np.mean(recall)) if len(recall) else 0.0


__all__ = [
    "VSD_TAUS",
    "VSD_THRESHOLDS",
    "MSSD_THRESHOLDS",
    "MSPD_THRESHOLDS",
    "ADD_THRESHOLD",
    "ADD_AUC_MAX_MM",
    "Recalls",
    "count_recalls",
    "add_auc_thresholds_mm",
    "auc",
]

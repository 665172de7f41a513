"""Greedy matching of pose estimates to ground-truth instances, as the BOP19 evaluation does it.

Per image and object (a *group*): the estimates, ordered by descending score (ties keep the order of
the results file), each take in turn the valid, not yet matched GT instance with the smallest error,
provided that error is strictly below the threshold (ties go to the lower gt_id). A GT instance is
matched by at most one estimate and vice versa.

All thresholds ("conditions": e.g. 10 thresholds x 10 VSD taus) are matched at once, and groups of
the same size are matched together, so the only Python loop is over the estimates of a group.
"""

from __future__ import annotations

from collections import defaultdict

import numpy as np

from bopnp.checks import check_shape


def greedy_match(errors: np.ndarray, thresholds: np.ndarray, gt_valid: np.ndarray) -> np.ndarray:
    """Match a batch of equally sized groups under every condition.

    Args:
        errors: (G, C, E, N) error of estimate e (in score order) w.r.t. GT instance n (in gt_id
            order) under condition c; NaN counts as infinite.
        thresholds: (C,) a match needs ``error < threshold``.
        gt_valid: (G, N) bool, GT instances that may be matched.
    Returns:
        (G, C, N) int64: the index of the estimate matched to each GT instance, -1 if none.
    """
    dims = check_shape(errors, "G C E N", "errors")
    check_shape(thresholds, "C", "thresholds", dims)
    check_shape(gt_valid, "G N", "gt_valid", dims)
    G, C, E, N = errors.shape
    errors = np.where(np.isnan(errors), np.inf, errors)
    matched_est = np.full((G, C, N), -1, dtype=np.int64)
    if N == 0:
        return matched_est
    thresholds = np.asarray(thresholds, dtype=np.float64)
    free = np.broadcast_to(gt_valid[:, None, :], (G, C, N)).copy()
    g_idx, c_idx = np.meshgrid(np.arange(G), np.arange(C), indexing="ij")
    for e in range(E):
        cand = np.where(free, errors[:, :, e, :], np.inf)  # (G, C, N)
        best = cand.argmin(axis=-1)  # first minimum = lowest gt_id among ties
        best_err = np.take_along_axis(cand, best[..., None], axis=-1)[..., 0]
        ok = best_err < thresholds[None, :]
        gi, ci, ni = g_idx[ok], c_idx[ok], best[ok]
        matched_est[gi, ci, ni] = e
        free[gi, ci, ni] = False
    return matched_est


def match_groups(errors: list[np.ndarray], thresholds: np.ndarray, gt_valid: list[np.ndarray]) -> list[np.ndarray]:
    """Match groups of any sizes (batched by size).

    Args:
        errors: per group a (C, E_g, N_g) array (see :func:`greedy_match`).
        thresholds: (C,).
        gt_valid: per group a (N_g,) bool array.
    Returns:
        per group a (C, N_g) int64 array of matched estimate indices (-1 = unmatched).
    """
    if len(errors) != len(gt_valid):
        raise ValueError(f"{len(errors)} error arrays but {len(gt_valid)} validity masks")
    thresholds = np.asarray(thresholds, dtype=np.float64)
    C = len(thresholds)
    by_shape: dict[tuple[int, int], list[int]] = defaultdict(list)
    for i, (err, valid) in enumerate(zip(errors, gt_valid)):
        if err.ndim != 3 or err.shape[0] != C or err.shape[2] != len(valid):
            raise ValueError(
                f"group {i}: errors of shape {err.shape} do not fit {C} conditions and {len(valid)} GT instances"
            )
        by_shape[err.shape[1:]].append(i)
    out: list[np.ndarray] = [np.empty(0)] * len(errors)
    for idx in by_shape.values():
        err = np.stack([errors[i] for i in idx])
        valid = np.stack([np.asarray(gt_valid[i], dtype=bool) for i in idx])
        m = greedy_match(err, thresholds, valid)
        for j, i in enumerate(idx):
            out[i] = m[j]
    return out


def valid_gt_mask(gt_obj_ids: np.ndarray, visib_fract: np.ndarray, inst_count: dict[int, int]) -> np.ndarray:
    """The GT instances of one image that count as targets (BOP19, ``visib_gt_min = -1``): per target
    object, its ``inst_count`` most visible instances (ties keep the gt_id order); instances of other
    objects are not valid.

    Args:
        gt_obj_ids: (N,) object id of every GT instance of the image, in gt_id order.
        visib_fract: (N,) visible fraction of each instance (scene_gt_info).
        inst_count: target object id -> number of instances to find.
    Returns:
        (N,) bool.
    """
    gt_obj_ids = np.asarray(gt_obj_ids)
    visib_fract = np.asarray(visib_fract, dtype=np.float64)
    check_shape(visib_fract, f"{len(gt_obj_ids)}", "visib_fract")
    valid = np.zeros(len(gt_obj_ids), dtype=bool)
    left = dict(inst_count)
    for g in np.argsort(-visib_fract, kind="stable"):
        obj = int(gt_obj_ids[g])
        if left.get(obj, 0) > 0:
            valid[g] = True
            left[obj] -= 1
    return valid


def top_estimates(scores: np.ndarray, n_top: int | None) -> np.ndarray:
    """Indices of the ``n_top`` highest scores, best first; ties keep the original order.

    Args:
        scores: (E,) confidence scores in results-file order.
        n_top: how many to keep (None = all).
    Returns:
        (min(E, n_top),) int64 indices into ``scores``.
    """
    order = np.argsort(-np.asarray(scores, dtype=np.float64), kind="stable")
    return order if n_top is None else order[:n_top]


__all__ = ["greedy_match", "match_groups", "valid_gt_mask", "top_estimates"]

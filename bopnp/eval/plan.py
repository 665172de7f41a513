"""Which errors to compute: targets grouped with their estimates and GT instances, as bop_toolkit's
``eval_calc_errors.py`` (``n_top = -1``) and ``eval_calc_scores.py`` (``visib_gt_min = -1``) do.

- A *group* is one target (scene, image, object, inst_count), in the order of the targets file.
- Its estimates: the ``inst_count`` rows of the CSV for that image and object with the highest
  scores (ties keep the file order), best first. Rows for other images or objects are ignored.
- Its GT instances: every instance of the object in the image (gt_id order). The valid ones
  (targets) are the image's ``inst_count`` most visible instances of the object.
- A *pair* is (estimate, GT instance) of one group; errors are computed per pair, estimate-major.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from bopnp.eval.inputs import EvalInputs
from bopnp.eval.matching import top_estimates, valid_gt_mask

#: (scene_id, im_id) -> (N,) visible fraction of every GT instance of the image, used when
#: scene_gt_info.json is missing and the valid instances are ambiguous
VisibilityFn = Callable[[int, int], np.ndarray]


@dataclass(frozen=True)
class Plan:
    """Groups and pairs of one evaluation (G groups, P pairs).

    Attributes:
        group_scene, group_im, group_obj, group_inst_count: (G,) int64 target of each group.
        group_est: per group, (E_g,) indices into ``EvalInputs.estimates``, best score first.
        group_gt: per group, (N_g,) gt_ids of the object's instances in the image.
        group_valid: per group, (N_g,) bool: the instance is a target.
        group_visib: per group, (N_g,) visible fraction used (NaN where unknown and not needed).
        pair_start: (G + 1,) pairs of group g are ``pair_start[g]:pair_start[g + 1]``, estimate-major.
        pair_group, pair_est, pair_gt: (P,) group index, estimate index, gt_id of each pair.
        ignored_estimates: CSV rows not evaluated (no target for their image and object, or beyond
            the inst_count best).
    """

    group_scene: np.ndarray
    group_im: np.ndarray
    group_obj: np.ndarray
    group_inst_count: np.ndarray
    group_est: list[np.ndarray]
    group_gt: list[np.ndarray]
    group_valid: list[np.ndarray]
    group_visib: list[np.ndarray]
    pair_start: np.ndarray
    pair_group: np.ndarray
    pair_est: np.ndarray
    pair_gt: np.ndarray
    ignored_estimates: int

    @property
    def n_groups(self) -> int:
        return len(self.group_obj)

    @property
    def n_pairs(self) -> int:
        return len(self.pair_est)

    @property
    def n_targets(self) -> int:
        return int(sum(v.sum() for v in self.group_valid))

    def group_errors(self, pair_errors: np.ndarray) -> list[np.ndarray]:
        """Per-pair errors (P, C) -> per group (C, E_g, N_g) arrays for :func:`bopnp.eval.matching.match_groups`."""
        out = []
        C = pair_errors.shape[1]
        for g in range(self.n_groups):
            e, n = len(self.group_est[g]), len(self.group_gt[g])
            block = pair_errors[self.pair_start[g] : self.pair_start[g + 1]]
            out.append(block.reshape(e, n, C).transpose(2, 0, 1))
        return out


def make_plan(inputs: EvalInputs, visibility: VisibilityFn | None = None, notes: list[str] | None = None) -> Plan:
    """Group the targets with their estimates and GT instances.

    Args:
        inputs: the loaded inputs.
        visibility: fallback for the visible fractions of an image's GT instances when scene_gt_info is
            missing and an image holds more instances of a target object than inst_count; without it,
            the first inst_count instances (gt_id order) are taken. Called only for such images.
        notes: gets one line saying how many images needed the fallback.
    """
    by_key: dict[tuple[int, int, int], list[int]] = {}
    for i, est in enumerate(inputs.estimates):
        by_key.setdefault((est.scene_id, est.im_id, est.obj_id), []).append(i)
    scores = np.array([e.score for e in inputs.estimates], dtype=np.float64)

    # the targets of each image, keeping the file order of images and of objects within an image
    images: dict[tuple[int, int], dict[int, int]] = {}
    for t in inputs.targets:
        images.setdefault((t.scene_id, t.im_id), {})[t.obj_id] = t.inst_count

    g_scene, g_im, g_obj, g_cnt = [], [], [], []
    g_est, g_gt, g_valid, g_visib = [], [], [], []
    fallback_images, guessed_images = 0, 0
    used = 0
    for (scene_id, im_id), inst_count in images.items():
        scene = inputs.scenes[scene_id]
        gts = scene.gt[im_id]
        gt_obj = np.array([g.obj_id for g in gts], dtype=np.int64)
        ambiguous = any((gt_obj == obj).sum() > n for obj, n in inst_count.items())
        if scene.gt_info is not None and im_id in scene.gt_info:
            visib = np.array([info.visib_fract for info in scene.gt_info[im_id]], dtype=np.float64)
            if len(visib) != len(gts):
                from bopnp.errors import DatasetError

                raise DatasetError(
                    f"{scene.folder / 'scene_gt_info.json'}: image {im_id} has {len(visib)} entries but "
                    f"scene_gt.json has {len(gts)} instances; regenerate scene_gt_info (bopnp prepare)"
                )
        elif ambiguous and visibility is not None:
            visib = np.asarray(visibility(scene_id, im_id), dtype=np.float64)
            fallback_images += 1
        elif ambiguous:
            visib = np.zeros(len(gts))  # all equal: the first inst_count instances in gt_id order
            guessed_images += 1
        else:
            visib = np.full(len(gts), np.nan)  # not needed: every instance of a target object is valid
        valid_all = valid_gt_mask(gt_obj, np.nan_to_num(visib, nan=0.0), inst_count)
        for obj_id, n in inst_count.items():
            rows = np.asarray(by_key.get((scene_id, im_id, obj_id), []), dtype=np.int64)
            chosen = rows[top_estimates(scores[rows], n)] if len(rows) else rows
            used += len(chosen)
            gt_ids = np.flatnonzero(gt_obj == obj_id)
            g_scene.append(scene_id)
            g_im.append(im_id)
            g_obj.append(obj_id)
            g_cnt.append(n)
            g_est.append(chosen)
            g_gt.append(gt_ids)
            g_valid.append(valid_all[gt_ids])
            g_visib.append(visib[gt_ids])
    if notes is not None:
        if fallback_images:
            notes.append(
                f"{fallback_images} image(s) hold more instances of a target object than inst_count and have no "
                "scene_gt_info: the valid instances are the most visible ones by visible fractions estimated from "
                "renders"
            )
        if guessed_images:
            notes.append(
                f"{guessed_images} image(s) hold more instances of a target object than inst_count and have no "
                "scene_gt_info: the first inst_count instances (gt_id order) were taken as the valid ones"
            )

    sizes = np.array([len(e) * len(g) for e, g in zip(g_est, g_gt)], dtype=np.int64)
    pair_start = np.concatenate([[0], np.cumsum(sizes)]).astype(np.int64)
    pair_group = np.repeat(np.arange(len(sizes)), sizes)
    pair_est = np.concatenate([np.repeat(e, len(g)) for e, g in zip(g_est, g_gt)] or [np.zeros(0, np.int64)]).astype(
        np.int64
    )
    pair_gt = np.concatenate([np.tile(g, len(e)) for e, g in zip(g_est, g_gt)] or [np.zeros(0, np.int64)]).astype(
        np.int64
    )
    return Plan(
        group_scene=np.array(g_scene, dtype=np.int64),
        group_im=np.array(g_im, dtype=np.int64),
        group_obj=np.array(g_obj, dtype=np.int64),
        group_inst_count=np.array(g_cnt, dtype=np.int64),
        group_est=g_est,
        group_gt=g_gt,
        group_valid=g_valid,
        group_visib=g_visib,
        pair_start=pair_start,
        pair_group=pair_group,
        pair_est=pair_est,
        pair_gt=pair_gt,
        ignored_estimates=len(inputs.estimates) - used,
    )


__all__ = ["Plan", "make_plan", "VisibilityFn"]

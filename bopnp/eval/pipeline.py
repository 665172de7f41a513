"""The BOP19 evaluation of one results CSV: inputs -> plan -> errors -> matching -> scores -> report.

>>> cfg = EvalConfig(Path("results/mymethod_lmo-test.csv"), bop_path=Path("datasets"))  # doctest: +SKIP
>>> result = evaluate(cfg)                                                                 # doctest: +SKIP
>>> result.scores["bop19_average_recall"]                                                  # doctest: +SKIP
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import numpy as np

from bopnp.errors import ConfigError
from bopnp.eval.compute import PairErrors, compute_errors
from bopnp.eval.inputs import RESULTS_ROT_TOL, EvalInputs, load_inputs
from bopnp.eval.matching import match_groups
from bopnp.eval.plan import Plan, make_plan
from bopnp.eval.scores import (
    ADD_THRESHOLD,
    MSPD_THRESHOLDS,
    MSSD_THRESHOLDS,
    VSD_TAUS,
    VSD_THRESHOLDS,
    Recalls,
    add_auc_thresholds_mm,
    auc,
    count_recalls,
)

log = logging.getLogger(__name__)

#: reference image width of the MSPD thresholds (bop_toolkit scales MSPD by 640 / width)
MSPD_REFERENCE_WIDTH = 640.0


@dataclass(frozen=True)
class EvalConfig:
    """Options of one evaluation.

    Attributes:
        results_csv: ``METHOD_DATASET-SPLIT[...].csv``.
        bop_path: folder holding the dataset folder.
        targets: targets file name in the dataset folder, or a path to one.
        out_dir: where to write the report; None = ``results/eval/<csv stem>``.
        device: 'auto' (cuda when present), 'cpu' or 'cuda' for the batched errors and the renders.
        vsd: compute VSD where depth images exist.
        plots: write the PNG recall curves.
        progress: show progress bars.
        rot_tol: tolerance on |R^T R - I| and |det R - 1| of the CSV's rotations.
        workers: processes rendering VSD; None = one per core (at most 4) on CPU, 1 with CUDA.
        overwrite: replace a finished evaluation of another results file in ``out_dir`` (a re-run on
            the same file, or an unfinished evaluation, is always replaced).
    """

    results_csv: Path
    bop_path: Path = Path("datasets")
    targets: str = "test_targets_bop19.json"
    out_dir: Path | None = None
    device: Literal["auto", "cpu", "cuda"] = "auto"
    vsd: bool = True
    plots: bool = True
    progress: bool = True
    rot_tol: float = RESULTS_ROT_TOL
    workers: int | None = None
    overwrite: bool = False

    def validate(self) -> None:
        if self.device not in ("auto", "cpu", "cuda"):
            raise ConfigError(f"device must be 'auto', 'cpu' or 'cuda', got {self.device!r}")
        if self.device == "cuda":
            import torch

            if not torch.cuda.is_available():
                raise ConfigError("device 'cuda' asked for but no CUDA device is available; use --device cpu or auto")
        if self.workers is not None and self.workers < 1:
            raise ConfigError(f"workers must be >= 1, got {self.workers}")
        if not (0 < self.rot_tol < 1):
            raise ConfigError(f"rot_tol must be in (0, 1), got {self.rot_tol}")
        if not Path(self.results_csv).is_file():
            raise ConfigError(f"{self.results_csv} not found: pass the path of a BOP19 results CSV")

    @property
    def resolved_out_dir(self) -> Path:
        return (
            Path(self.out_dir) if self.out_dir is not None else Path("results") / "eval" / Path(self.results_csv).stem
        )


@dataclass
class EvalResult:
    """What one evaluation produced.

    Attributes:
        scores: the content of ``scores_bop19.json`` (bop_toolkit's keys plus bopnp's extras).
        table: the printed report.
        out_dir: the folder with scores_bop19.json, errors.csv, report.txt and the plots.
        inputs, plan, errors: the intermediate results (for tests and notebooks).
        recalls: metric -> :class:`Recalls`.
    """

    scores: dict
    table: str
    out_dir: Path
    inputs: EvalInputs
    plan: Plan
    errors: PairErrors
    recalls: dict[str, Recalls] = field(default_factory=dict)


def _per_pair_diameter(inputs: EvalInputs, plan: Plan) -> np.ndarray:
    objs = plan.group_obj[plan.pair_group] if plan.n_pairs else np.zeros(0, np.int64)
    return np.array([float(inputs.models_info[int(o)].diameter_mm) for o in objs], dtype=np.float64)


def _recalls(plan: Plan, pair_err: np.ndarray, thresholds: np.ndarray, groups: np.ndarray | None = None) -> Recalls:
    """Match and count for the groups selected by ``groups`` (bool mask, None = all)."""
    per_group = plan.group_errors(pair_err)
    sel = np.arange(plan.n_groups) if groups is None else np.flatnonzero(groups)
    matched = match_groups([per_group[g] for g in sel], thresholds, [plan.group_valid[g] for g in sel])
    return count_recalls(
        matched, [plan.group_valid[g] for g in sel], [int(plan.group_obj[g]) for g in sel], len(thresholds)
    )


def score_errors(inputs: EvalInputs, plan: Plan, errs: PairErrors) -> dict[str, Recalls]:
    """Recalls of every metric: 'vsd' (100 conditions: 10 taus x 10 thresholds, tau-major), 'mssd',
    'mspd' (10 each), 'add_s' (1: 0.1 x diameter) and 'add_s_auc' (thresholds 1..100 mm). VSD covers
    only the groups whose image has a usable depth image."""
    diam = _per_pair_diameter(inputs, plan)
    width = inputs.image_size[0]
    out: dict[str, Recalls] = {}
    out["mssd"] = _recalls(plan, np.repeat((errs.mssd_mm / diam)[:, None], len(MSSD_THRESHOLDS), 1), MSSD_THRESHOLDS)
    factor = MSPD_REFERENCE_WIDTH / width
    out["mspd"] = _recalls(plan, np.repeat((factor * errs.mspd_px)[:, None], len(MSPD_THRESHOLDS), 1), MSPD_THRESHOLDS)
    out["add_s"] = _recalls(plan, (errs.add_s_mm / diam)[:, None], np.array([ADD_THRESHOLD]))
    th_mm = add_auc_thresholds_mm()
    out["add_s_auc"] = _recalls(plan, np.repeat(errs.add_s_mm[:, None], len(th_mm), 1), th_mm)
    missing = errs.vsd_missing
    has_depth = np.array([(int(s), int(i)) not in missing for s, i in zip(plan.group_scene, plan.group_im)], dtype=bool)
    # conditions tau-major: condition c = (tau c // 10, threshold c % 10)
    vsd_err = np.repeat(errs.vsd, len(VSD_THRESHOLDS), axis=1)
    vsd_th = np.tile(VSD_THRESHOLDS, len(VSD_TAUS))
    out["vsd"] = _recalls(plan, np.nan_to_num(vsd_err, nan=np.inf), vsd_th, has_depth)
    return out


def average_time_per_image(inputs: EvalInputs) -> float:
    """bop_toolkit's ``bop19_average_time_per_image``: the mean over the CSV's images of their time, or
    -1 when any row has no time (negative)."""
    times: dict[tuple[int, int], float] = {}
    for e in inputs.estimates:
        if e.time_s < 0:
            return -1.0
        times.setdefault((e.scene_id, e.im_id), e.time_s)
    return float(np.mean(list(times.values()))) if times else -1.0


def build_scores(inputs: EvalInputs, plan: Plan, errs: PairErrors, recalls: dict[str, Recalls], seconds: float) -> dict:
    """The content of scores_bop19.json."""
    n_targets = plan.n_targets
    vsd_targets = recalls["vsd"].n_targets
    vsd_complete = not errs.vsd_missing
    ar = {m: recalls[m].average_recall for m in ("vsd", "mssd", "mspd")}
    scores: dict = {
        "bop19_average_recall_vsd": ar["vsd"] if vsd_complete else None,
        "bop19_average_recall_mssd": ar["mssd"],
        "bop19_average_recall_mspd": ar["mspd"],
        "bop19_average_recall": float(np.mean([ar["vsd"], ar["mssd"], ar["mspd"]])) if vsd_complete else None,
        "bop19_average_time_per_image": average_time_per_image(inputs),
    }
    images = {(t.scene_id, t.im_id) for t in inputs.targets}
    per_object = {}
    obj_ar = {m: recalls[m].object_average_recalls() for m in ("vsd", "mssd", "mspd", "add_s")}
    for obj in sorted(recalls["mssd"].obj_targets):
        entry = {
            "targets": recalls["mssd"].obj_targets[obj],
            "average_recall_vsd": obj_ar["vsd"].get(obj) if vsd_complete else None,
            "average_recall_mssd": obj_ar["mssd"][obj],
            "average_recall_mspd": obj_ar["mspd"][obj],
            "add_s_recall": obj_ar["add_s"][obj],
            "add_s_auc": float(np.mean(recalls["add_s_auc"].object_recall(obj))),
        }
        if not vsd_complete:
            entry["vsd_subset_targets"] = recalls["vsd"].obj_targets.get(obj, 0)
            entry["vsd_subset_average_recall"] = obj_ar["vsd"].get(obj)
        per_object[str(obj)] = entry
    scores.update(
        {
            "method": inputs.name.method,
            "dataset": inputs.name.dataset,
            "split": inputs.name.split,
            "split_type": inputs.name.split_type,
            "targets": n_targets,
            "images": len(images),
            "estimates": len(inputs.estimates),
            "estimates_ignored": plan.ignored_estimates,
            "recalls_vsd": recalls["vsd"].recall.tolist(),
            "recalls_mssd": recalls["mssd"].recall.tolist(),
            "recalls_mspd": recalls["mspd"].recall.tolist(),
            "vsd_taus": VSD_TAUS.tolist(),
            "vsd_thresholds": VSD_THRESHOLDS.tolist(),
            "mssd_thresholds": MSSD_THRESHOLDS.tolist(),
            "mspd_thresholds": MSPD_THRESHOLDS.tolist(),
            "vsd_delta_mm": inputs.vsd_delta_mm,
            "vsd_targets": vsd_targets,
            "vsd_images_without_depth": len(errs.vsd_missing),
            "vsd_subset_average_recall": ar["vsd"] if vsd_targets else None,
            "add_s_recall": recalls["add_s"].average_recall,
            "add_s_threshold": f"{ADD_THRESHOLD} x diameter",
            "add_s_auc": auc(recalls["add_s_auc"].recall),
            "add_s_auc_max_mm": float(add_auc_thresholds_mm()[-1]),
            "per_object": per_object,
            "notes": list(inputs.notes),
            "evaluation_seconds": round(seconds, 3),
        }
    )
    return scores


def evaluate(config: EvalConfig, write: bool = True) -> EvalResult:
    """Evaluate one results CSV and (when ``write``) write its report to ``config.resolved_out_dir``.

    Raises:
        ConfigError: bad options, or the output folder holds a finished evaluation of another results
            file (and not ``overwrite``).
        ResultsFormatError: bad results file (name or content; every problem listed).
        DatasetError: missing or inconsistent dataset files.
        OSError: the outputs could not be written (see :func:`bopnp.eval.report.write_outputs`).
    """
    from bopnp.eval import report

    config.validate()
    t0 = time.perf_counter()
    digest = report.results_digest(config.results_csv)
    # before any work: refuse an output folder that holds another file's finished evaluation
    replaced = report.check_out_dir(config.resolved_out_dir, digest, config.overwrite) if write else None
    inputs = load_inputs(Path(config.results_csv), Path(config.bop_path), config.targets, rot_tol=config.rot_tol)
    if replaced:
        inputs.notes.append(replaced)
    plan = make_plan(inputs, visibility=_render_visibility(inputs), notes=inputs.notes)
    errs = compute_errors(
        inputs, plan, device=config.device, with_vsd=config.vsd, progress=config.progress, workers=config.workers
    )
    recalls = score_errors(inputs, plan, errs)
    if errs.vsd_missing:
        inputs.notes.append(report.describe_missing_vsd(errs.vsd_missing, plan))
    elif not config.vsd:
        inputs.notes.append("VSD not computed (--no-vsd)")
    scores = build_scores(inputs, plan, errs, recalls, time.perf_counter() - t0)
    scores["results_csv"] = str(config.results_csv)
    scores["results_sha256"] = digest
    table = report.format_report(scores)
    out_dir = config.resolved_out_dir
    result = EvalResult(
        scores=scores, table=table, out_dir=out_dir, inputs=inputs, plan=plan, errors=errs, recalls=recalls
    )
    if write:
        report.write_outputs(result, plots=config.plots)
    return result


def _render_visibility(inputs: EvalInputs):
    """Visible fractions of an image's GT instances from a render of its GT scene (used only when
    scene_gt_info.json is missing and the valid instances are ambiguous)."""

    def visibility(scene_id: int, im_id: int) -> np.ndarray:
        from bopnp.render import get_renderer

        scene = inputs.scenes[scene_id]
        gts = scene.gt[im_id]
        width, height = inputs.image_size
        r = get_renderer(width, height)
        for g in gts:
            r.add_model(g.obj_id, inputs.mesh(g.obj_id))
        out = r.render(scene.camera[im_id].K, [(g.obj_id, g.R_m2c, g.t_m2c) for g in gts])
        full = out.mask_full.reshape(len(gts), -1).sum(1)
        visib = out.mask_visib.reshape(len(gts), -1).sum(1)
        return np.where(full > 0, visib / np.maximum(full, 1), 0.0)

    return visibility


__all__ = [
    "EvalConfig",
    "EvalResult",
    "evaluate",
    "score_errors",
    "build_scores",
    "average_time_per_image",
    "MSPD_REFERENCE_WIDTH",
]

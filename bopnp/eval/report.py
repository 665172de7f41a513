"""Outputs of an evaluation: the printed table, ``scores_bop19.json``, the per-pair errors
(``errors.csv``), ``report.txt`` and PNG recall curves; and the leaderboard table of several results.

The files are first written into a staging folder inside the output folder, then renamed into place
with ``scores_bop19.json`` last: a folder without it is an unfinished evaluation (a full disk or a
killed run leaves the earlier result, or a visibly incomplete folder, never a mix that looks finished).
Re-running an evaluation replaces the files it wrote before and nothing else; a finished evaluation of
another results file is replaced only when asked (:func:`check_out_dir`).
"""

from __future__ import annotations

import hashlib
import io as _io
import json
import math
import os
import shutil
import tempfile
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from bopnp.bop.atomic import write_bytes_atomic, write_text_atomic
from bopnp.errors import ConfigError
from bopnp.eval.plan import Plan
from bopnp.eval.scores import MSPD_THRESHOLDS, MSSD_THRESHOLDS, VSD_TAUS, VSD_THRESHOLDS, add_auc_thresholds_mm

SCORES_FILE = "scores_bop19.json"
ERRORS_FILE = "errors.csv"
REPORT_FILE = "report.txt"


def _fmt(v, digits: int = 4) -> str:
    if v is None:
        return "n/a"
    if isinstance(v, float) and not math.isfinite(v):
        return str(v)
    return f"{v:.{digits}f}"


def describe_missing_vsd(missing: dict[tuple[int, int], str], plan: Plan) -> str:
    """One line: how many images and targets VSD could not be computed for, and why."""
    images = {(int(s), int(i)) for s, i in zip(plan.group_scene, plan.group_im)}
    lost = sum(
        int(v.sum())
        for v, s, i in zip(plan.group_valid, plan.group_scene, plan.group_im)
        if (int(s), int(i)) in missing
    )
    reasons: dict[str, int] = {}
    for why in missing.values():
        key = why.split(" (")[0]
        reasons[key] = reasons.get(key, 0) + 1
    why = ", ".join(f"{n} {r}" for r, n in sorted(reasons.items(), key=lambda x: -x[1]))
    example = ", ".join(f"scene {s} image {i}" for s, i in sorted(missing)[:3])
    return (
        f"VSD unavailable for {len(missing)} of {len(images)} images ({lost} of {plan.n_targets} targets): {why} "
        f"(e.g. {example}); MSSD and MSPD cover every target, VSD and the overall AR are reported as n/a, "
        "and 'vsd_subset_*' give VSD over the images with depth"
    )


def format_report(scores: dict) -> str:
    """The table printed after an evaluation."""
    title = f"{scores['method']} on {scores['dataset']}-{scores['split']}" + (
        f"-{scores['split_type']}" if scores.get("split_type") else ""
    )
    lines = [
        f"BOP19 evaluation: {title}",
        f"  {scores['targets']} targets in {scores['images']} images; {scores['estimates']} estimates "
        f"({scores['estimates_ignored']} not evaluated: no target for their image and object, or beyond inst_count)",
        "",
        f"  {'metric':<24}{'score':>8}",
        f"  {'AR (BOP19)':<24}{_fmt(scores['bop19_average_recall']):>8}",
        f"  {'AR_VSD':<24}{_fmt(scores['bop19_average_recall_vsd']):>8}",
        f"  {'AR_MSSD':<24}{_fmt(scores['bop19_average_recall_mssd']):>8}",
        f"  {'AR_MSPD':<24}{_fmt(scores['bop19_average_recall_mspd']):>8}",
    ]
    if scores["bop19_average_recall_vsd"] is None and scores.get("vsd_subset_average_recall") is not None:
        lines.append(
            f"  {'AR_VSD (images w/ depth)':<24}{_fmt(scores['vsd_subset_average_recall']):>8}   "
            f"({scores['vsd_targets']} targets)"
        )
    lines += [
        f"  {'ADD(-S) < 0.1 d':<24}{_fmt(scores['add_s_recall']):>8}",
        f"  {'ADD(-S) AUC < 10 cm':<24}{_fmt(scores['add_s_auc']):>8}",
        f"  {'time per image (s)':<24}{_fmt(scores['bop19_average_time_per_image'], 3):>8}",
        "",
        f"  {'object':>6} {'targets':>8} {'AR_VSD':>8} {'AR_MSSD':>8} {'AR_MSPD':>8} {'ADD(-S)':>8} {'AUC':>8}",
    ]
    for obj, e in scores["per_object"].items():
        vsd = e["average_recall_vsd"] if e["average_recall_vsd"] is not None else e.get("vsd_subset_average_recall")
        mark = "" if e["average_recall_vsd"] is not None or vsd is None else "*"
        lines.append(
            f"  {obj:>6} {e['targets']:>8} {_fmt(vsd) + mark:>8} {_fmt(e['average_recall_mssd']):>8} "
            f"{_fmt(e['average_recall_mspd']):>8} {_fmt(e['add_s_recall']):>8} {_fmt(e['add_s_auc']):>8}"
        )
    if any(
        e["average_recall_vsd"] is None and e.get("vsd_subset_average_recall") is not None
        for e in scores["per_object"].values()
    ):
        lines.append("  * VSD over the images with depth only")
    if scores["notes"]:
        lines += ["", "Notes:"] + [f"  - {n}" for n in scores["notes"]]
    return "\n".join(lines)


def format_leaderboard(rows: Sequence[dict]) -> str:
    """A leaderboard-style table of several evaluations (best AR first; n/a last).

    Args:
        rows: ``scores_bop19.json`` contents, or dicts with 'file' and 'error' for failed ones.
    """
    ok = [r for r in rows if "error" not in r]
    bad = [r for r in rows if "error" in r]

    def key(r):
        ar = r.get("bop19_average_recall")
        return (ar is None, -(ar or 0.0), -(r.get("bop19_average_recall_mssd") or 0.0))

    lines = [
        f"{'#':>3}  {'method':<28}{'dataset':<14}{'AR':>7}{'AR_VSD':>8}"
        f"{'AR_MSSD':>8}{'AR_MSPD':>8}{'ADD(-S)':>8}{'time/im':>9}"
    ]
    for rank, r in enumerate(sorted(ok, key=key), start=1):
        ds = f"{r['dataset']}-{r['split']}" + (f"-{r['split_type']}" if r.get("split_type") else "")
        lines.append(
            f"{rank:>3}  {r['method'][:27]:<28}{ds[:13]:<14}{_fmt(r.get('bop19_average_recall'), 3):>7}"
            f"{_fmt(r.get('bop19_average_recall_vsd'), 3):>8}{_fmt(r.get('bop19_average_recall_mssd'), 3):>8}"
            f"{_fmt(r.get('bop19_average_recall_mspd'), 3):>8}{_fmt(r.get('add_s_recall'), 3):>8}"
            f"{_fmt(r.get('bop19_average_time_per_image'), 3):>9}"
        )
    if any(r.get("bop19_average_recall") is None for r in ok):
        lines.append("n/a: VSD needs depth images that some target images lack (see each report)")
    for r in bad:
        lines.append(f"  failed: {r['file']}: {r['error'].splitlines()[0]}")
    return "\n".join(lines)


def errors_csv(result) -> str:
    """One row per evaluated (estimate, GT instance) pair."""
    plan, errs, inputs = result.plan, result.errors, result.inputs
    head = ["scene_id", "im_id", "obj_id", "csv_line", "score", "gt_id", "gt_valid", "mssd_mm", "mspd_px", "add_s_mm"]
    head += [f"vsd_tau_{t:.2f}" for t in VSD_TAUS]
    out = _io.StringIO()
    out.write(",".join(head) + "\n")
    for p in range(plan.n_pairs):
        g = int(plan.pair_group[p])
        est_i = int(plan.pair_est[p])
        gt_id = int(plan.pair_gt[p])
        n = int(np.flatnonzero(plan.group_gt[g] == gt_id)[0])
        row = [
            int(plan.group_scene[g]),
            int(plan.group_im[g]),
            int(plan.group_obj[g]),
            est_i + 2,  # line number in the CSV (line 1 is the header)
            repr(float(inputs.estimates[est_i].score)),
            gt_id,
            int(bool(plan.group_valid[g][n])),
            repr(float(errs.mssd_mm[p])),
            repr(float(errs.mspd_px[p])),
            repr(float(errs.add_s_mm[p])),
        ]
        row += ["" if np.isnan(v) else repr(float(v)) for v in errs.vsd[p]]
        out.write(",".join(map(str, row)) + "\n")
    return out.getvalue()


PLOT_FILE = "recall_curves.png"


def write_plots(result, out_dir: Path) -> list[Path]:
    """recall_curves.png: recall against threshold for each metric (VSD averaged over tau, MSSD, MSPD,
    ADD(-S)), overall (thick black) and per object."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rec = result.recalls
    T = len(VSD_TAUS)

    def vsd_curve(r):  # mean over taus, per threshold (conditions are tau-major)
        return np.asarray(r).reshape(T, len(VSD_THRESHOLDS)).mean(0)

    vsd_title = "VSD (mean over tau)" + (", images with depth" if result.errors.vsd_missing else "")
    specs = [
        ("vsd", vsd_title, "threshold on VSD", VSD_THRESHOLDS, vsd_curve),
        ("mssd", "MSSD", "threshold (fraction of the diameter)", MSSD_THRESHOLDS, lambda r: r),
        ("mspd", "MSPD", "threshold (px at 640 px width)", MSPD_THRESHOLDS, lambda r: r),
        (
            "add_s_auc",
            f"ADD(-S) (AUC {result.scores['add_s_auc']:.3f})",
            "threshold (mm)",
            add_auc_thresholds_mm(),
            lambda r: r,
        ),
    ]
    fig, axes = plt.subplots(2, 2, figsize=(11, 8), dpi=90)
    for ax, (key, title, xlabel, x, reduce) in zip(axes.flat, specs):
        r = rec[key]
        ax.set_title(title)
        ax.set_xlabel(xlabel)
        ax.set_ylabel("recall")
        ax.set_ylim(-0.02, 1.02)
        ax.grid(alpha=0.3)
        if r.n_targets == 0:
            ax.text(0.5, 0.5, "not available", ha="center", va="center", transform=ax.transAxes)
            continue
        for obj in sorted(r.obj_targets):
            if r.obj_targets[obj] > 0:
                ax.plot(x, reduce(r.object_recall(obj)), lw=1, alpha=0.75, label=f"obj {obj}")
        ax.plot(x, reduce(r.recall), color="black", lw=2.5, label="all")
        ax.legend(fontsize=7, ncol=2, loc="lower right")
    s = result.scores
    fig.suptitle(f"{s['method']} on {s['dataset']}-{s['split']}: recall against threshold")
    fig.tight_layout()
    buf = _io.BytesIO()
    fig.savefig(buf, format="png")
    plt.close(fig)
    path = out_dir / PLOT_FILE
    write_bytes_atomic(path, buf.getvalue())
    return [path]


#: every file an evaluation writes, in the order they are put in place: the scores (the marker of a
#: finished evaluation) last
OUTPUT_FILES = (ERRORS_FILE, REPORT_FILE, PLOT_FILE, SCORES_FILE)
#: the full problem list the CLI writes when an evaluation fails (bopnp.cli.main.PROBLEMS_FILE): stale
#: once an evaluation of the folder succeeds
STALE_FILES = ("problems.txt",)
STAGING_PREFIX = ".staging-"


def results_digest(path: str | os.PathLike) -> str:
    """SHA-256 of a results file, recorded in scores_bop19.json to recognise a re-run of the same file."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def check_out_dir(out_dir: str | os.PathLike, results_digest_: str, overwrite: bool = False) -> str | None:
    """Whether an evaluation may write into ``out_dir``, before any work is done.

    A missing or empty folder, an unfinished evaluation (no scores_bop19.json) and a finished evaluation
    of the same results file (same SHA-256) are replaced; a finished evaluation of another file only with
    ``overwrite``. Files of other programs in the folder are left alone.

    Returns:
        a note for the report when an earlier evaluation will be replaced, else None.
    Raises:
        ConfigError: ``out_dir`` is a file, or holds the finished evaluation of another results file.
    """
    out_dir = Path(out_dir)
    if not out_dir.exists():
        return None
    if not out_dir.is_dir():
        raise ConfigError(f"{out_dir} is a file, not a folder: pass another --out, or move the file away")
    scores_path = out_dir / SCORES_FILE
    if scores_path.is_file():
        try:
            old = json.loads(scores_path.read_text(encoding="utf-8"))
            old_digest, old_csv = old.get("results_sha256"), old.get("results_csv", "an unnamed results file")
        except (ValueError, UnicodeDecodeError, AttributeError):
            return f"{out_dir} held an unreadable {SCORES_FILE}; it is replaced"
        if old_digest == results_digest_:
            return None  # a re-run on the same results file: same inputs, the files are replaced
        if overwrite:
            return f"replaced the evaluation of {old_csv} that was in {out_dir} (--overwrite)"
        raise ConfigError(
            f"{out_dir} holds a finished evaluation of another results file ({old_csv}); pass --overwrite to "
            "replace it, or choose another output folder with --out"
        )
    ours = [
        p.name for p in out_dir.iterdir() if p.name in OUTPUT_FILES + STALE_FILES or p.name.startswith(STAGING_PREFIX)
    ]
    if ours:
        for p in out_dir.glob(f"{STAGING_PREFIX}*"):
            shutil.rmtree(p, ignore_errors=True)
        return f"{out_dir} held an unfinished evaluation (no {SCORES_FILE}); it is replaced"
    return None


def write_outputs(result, plots: bool = True) -> None:
    """errors.csv, report.txt, (optionally) the plots, and scores_bop19.json last, into ``result.out_dir``.

    Everything is written into a staging folder first and renamed into place only when complete.

    Raises:
        OSError: the folder is not writable, the disk is full, ...; ``filename`` names the path. The
            earlier files of the folder are then left as they were (or, when the rename into place
            failed, the folder has no scores_bop19.json and so reads as unfinished).
    """
    out_dir = Path(result.out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    stage = Path(tempfile.mkdtemp(prefix=STAGING_PREFIX, dir=out_dir))
    path = stage
    try:
        path = stage / ERRORS_FILE
        write_text_atomic(path, errors_csv(result))
        path = stage / REPORT_FILE
        write_text_atomic(path, result.table + "\n")
        if plots:
            path = stage / PLOT_FILE
            write_plots(result, stage)
        path = stage / SCORES_FILE
        write_text_atomic(path, json.dumps(result.scores, indent=2, allow_nan=True) + "\n")
        # into place: the old marker goes first, the new one comes last
        for name in (SCORES_FILE,) + STALE_FILES:
            path = out_dir / name
            path.unlink(missing_ok=True)
        for name in OUTPUT_FILES:
            path = out_dir / name
            if (stage / name).is_file():
                os.replace(stage / name, path)
            else:
                path.unlink(missing_ok=True)  # e.g. the plot of an earlier run made without --no-plots
    except OSError as exc:
        if exc.filename is None:  # name the path when the writer did not
            raise OSError(exc.errno, exc.strerror or str(exc), str(path)) from exc
        raise
    finally:
        shutil.rmtree(stage, ignore_errors=True)


__all__ = [
    "check_out_dir",
    "results_digest",
    "OUTPUT_FILES",
    "PLOT_FILE",
    "format_report",
    "format_leaderboard",
    "write_outputs",
    "errors_csv",
    "describe_missing_vsd",
    "SCORES_FILE",
    "ERRORS_FILE",
    "REPORT_FILE",
]

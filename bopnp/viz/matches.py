"""Which estimates of a results CSV the BOP19 evaluator matched, from the ``errors.csv`` that ``bopnp eval`` writes.

The evaluator matches per image and object, under each threshold, the estimates (best score first) to the GT
instances greedily (:mod:`bopnp.eval.matching`). Replaying that on the per-pair errors of ``errors.csv`` gives, for
every evaluated estimate, under how many of the 20 MSSD and MSPD thresholds (10 each, loose to strict) it was
matched to a GT instance. A picture colours it by that count (:func:`match_color`):

- matched: at half the thresholds or more (its error is within about a quarter of the loosest);
- partly: at some, but under fewer than half;
- missed: at none;
- not evaluated: no row in ``errors.csv`` (no target for its image and object, or beyond the ``inst_count`` best).

An evaluation is used only if its ``scores_bop19.json`` records the digest of the very CSV drawn
(:func:`find_evaluation`), so a stale one never colours newer estimates.
"""

from __future__ import annotations

import csv
import json
import os
from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from bopnp.bop.records import ModelInfo
from bopnp.errors import ResultsFormatError
from bopnp.eval.matching import match_groups
from bopnp.eval.pipeline import MSPD_REFERENCE_WIDTH
from bopnp.eval.report import ERRORS_FILE, SCORES_FILE, results_digest
from bopnp.eval.scores import MSPD_THRESHOLDS, MSSD_THRESHOLDS
from bopnp.viz.colors import RGB

MATCHED_COLOR: RGB = (20, 200, 90)
PARTLY_COLOR: RGB = (250, 180, 0)
MISSED_COLOR: RGB = (235, 40, 40)
UNEVALUATED_COLOR: RGB = (170, 170, 170)

#: (colour, meaning) of the legend
MATCH_LEGEND: tuple[tuple[RGB, str], ...] = (
    (MATCHED_COLOR, "matched (>= half of the MSSD + MSPD thresholds)"),
    (PARTLY_COLOR, "matched at some thresholds"),
    (MISSED_COLOR, "matched at none"),
    (UNEVALUATED_COLOR, "not evaluated"),
)


@dataclass(frozen=True)
class EstimateMatch:
    """How one estimate fared: matched under ``matched`` of ``conditions`` thresholds (MSSD and MSPD)."""

    matched: int
    conditions: int

    @property
    def fraction(self) -> float:
        return self.matched / self.conditions if self.conditions else 0.0


def match_color(match: EstimateMatch | None) -> RGB:
    """The colour of an estimate (see the module docstring); None: not evaluated."""
    if match is None:
        return UNEVALUATED_COLOR
    if match.matched == 0:
        return MISSED_COLOR
    return MATCHED_COLOR if 2 * match.matched >= match.conditions else PARTLY_COLOR


def find_evaluation(results_csv: str | os.PathLike, folders: Sequence[str | os.PathLike] = ()) -> Path | None:
    """The folder of a finished evaluation of exactly this CSV: the given ``folders`` first, then
    ``CSV_DIR/eval/STEM`` (where ``bopnp predict --eval`` writes) and ``results/eval/STEM`` (``bopnp eval``'s
    default). None when none of them holds one (or only evaluations of other contents of the file)."""
    csv_path = Path(results_csv)
    digest = None
    candidates = [Path(f) for f in folders] + [
        csv_path.parent / "eval" / csv_path.stem,
        Path("results/eval") / csv_path.stem,
    ]
    for folder in candidates:
        if not ((folder / ERRORS_FILE).is_file() and (folder / SCORES_FILE).is_file()):
            continue
        try:
            saved = json.loads((folder / SCORES_FILE).read_text(encoding="utf-8")).get("results_sha256")
        except (ValueError, OSError, AttributeError):
            continue
        digest = digest or results_digest(csv_path)
        if saved == digest:
            return folder
    return None


def estimate_matches(
    errors_csv: str | os.PathLike, models_info: Mapping[int, ModelInfo], image_width: int
) -> dict[int, EstimateMatch]:
    """Replay the evaluator's matching on ``errors.csv``.

    Args:
        errors_csv: the file ``bopnp eval`` wrote.
        models_info: the dataset's objects (diameters for the MSSD thresholds).
        image_width: pixels (MSPD is scaled by 640 / width, as bop_toolkit does).
    Returns:
        {estimate index (its row in the results CSV, 0 = the first after the header): EstimateMatch}.
    Raises:
        ResultsFormatError: the file lacks a needed column or has a malformed row.
    """
    path = Path(errors_csv)
    groups: dict[tuple[int, int, int], list[dict]] = defaultdict(list)
    with open(path, newline="", encoding="utf-8") as f:
        reader = csv.DictReader(f)
        need = {"scene_id", "im_id", "obj_id", "csv_line", "score", "gt_id", "gt_valid", "mssd_mm", "mspd_px"}
        missing = need - set(reader.fieldnames or [])
        if missing:
            raise ResultsFormatError(f"{path}: no column {sorted(missing)}; rerun `bopnp eval` on the CSV")
        for n, row in enumerate(reader, start=2):
            try:
                key = (int(row["scene_id"]), int(row["im_id"]), int(row["obj_id"]))
                groups[key].append(
                    {
                        "est": int(row["csv_line"]) - 2,
                        "score": float(row["score"]),
                        "gt": int(row["gt_id"]),
                        "valid": bool(int(row["gt_valid"])),
                        "mssd": float(row["mssd_mm"]),
                        "mspd": float(row["mspd_px"]),
                    }
                )
            except (TypeError, ValueError) as exc:
                raise ResultsFormatError(f"{path} line {n}: {exc}; rerun `bopnp eval` on the CSV") from None
    factor = MSPD_REFERENCE_WIDTH / float(image_width)
    mssd_err, mspd_err, valid, order = [], [], [], []
    for (_, _, obj_id), rows in groups.items():
        ests = sorted({r["est"]: r["score"] for r in rows}.items(), key=lambda es: (-es[1], es[0]))
        est_pos = {e: k for k, (e, _) in enumerate(ests)}
        gts = sorted({r["gt"] for r in rows})
        gt_pos = {g: k for k, g in enumerate(gts)}
        a = np.full((len(ests), len(gts), 2), np.inf)
        v = np.zeros(len(gts), bool)
        diameter = float(models_info[obj_id].diameter_mm) if obj_id in models_info else np.nan
        for r in rows:
            a[est_pos[r["est"]], gt_pos[r["gt"]]] = (r["mssd"] / diameter, factor * r["mspd"])
            v[gt_pos[r["gt"]]] |= r["valid"]
        mssd_err.append(np.broadcast_to(a[None, :, :, 0], (len(MSSD_THRESHOLDS),) + a.shape[:2]))
        mspd_err.append(np.broadcast_to(a[None, :, :, 1], (len(MSPD_THRESHOLDS),) + a.shape[:2]))
        valid.append(v)
        order.append([e for e, _ in ests])
    out: dict[int, EstimateMatch] = {}
    counts: dict[int, int] = defaultdict(int)
    for errs, th in ((mssd_err, MSSD_THRESHOLDS), (mspd_err, MSPD_THRESHOLDS)):
        for matched, ests in zip(match_groups(errs, th, valid), order):
            for k, e in enumerate(ests):
                counts[e] += int((matched == k).any(axis=1).sum())
    total = len(MSSD_THRESHOLDS) + len(MSPD_THRESHOLDS)
    for ests in order:
        for e in ests:
            out[e] = EstimateMatch(counts[e], total)
    return out


__all__ = [
    "EstimateMatch",
    "MATCHED_COLOR",
    "MATCH_LEGEND",
    "MISSED_COLOR",
    "PARTLY_COLOR",
    "UNEVALUATED_COLOR",
    "estimate_matches",
    "find_evaluation",
    "match_color",
]

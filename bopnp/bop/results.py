"""BOP19 pose results: the CSV ``scene_id,im_id,obj_id,score,R,t,time`` and its file name.

One row per estimate: ``R`` is 9 space-separated numbers (row-major model-to-camera rotation), ``t``
3 numbers (mm), ``time`` the seconds spent on the whole image (-1 when unknown; every row of one
image carries the same time). The reader checks the whole file and reports every bad row at once.
"""

from __future__ import annotations

import math
import os
import re
from collections.abc import Sequence
from pathlib import Path
from typing import NamedTuple

import numpy as np

from bopnp.bop.atomic import write_text_atomic
from bopnp.bop.records import ResultRow
from bopnp.bop.validate import ROT_TOL, not_rotation, rotation_errors
from bopnp.errors import ResultsFormatError

HEADER = "scene_id,im_id,obj_id,score,R,t,time"
#: two times of one image that differ by more than this (seconds) are inconsistent (as bop_toolkit)
TIME_TOL_S = 1e-3


def _float(tok: str) -> float | None:
    try:
        v = float(tok)
    except ValueError:
        return None
    return v if math.isfinite(v) else None


def _int(tok: str) -> int | None:
    tok = tok.strip()
    return int(tok) if re.fullmatch(r"\+?\d+", tok) else None


def parse_results_lines(
    lines: Sequence[str], source: str, rot_tol: float = ROT_TOL
) -> tuple[list[ResultRow], list[str]]:
    """Parse and validate the lines of a results CSV (header included).

    Returns:
        (the valid rows, one problem line per defect: ``"line N: field: what"``).
    """
    problems: list[tuple[int, str]] = []  # (line number, problem line)

    def add(lineno: int, message: str) -> None:
        problems.append((lineno, f"line {lineno}: {message}"))

    rows: list[ResultRow] = []
    lines = list(lines)
    while lines and not lines[-1].strip():
        lines.pop()
    if not lines:
        return [], [f"{source}: empty file; the first line must be the header '{HEADER}'"]
    header = lines[0].rstrip("\r\n")
    if header.strip() != HEADER:
        add(1, f"header must be exactly '{HEADER}', got {header[:80]!r}")
    times: dict[tuple[int, int], list[tuple[int, float]]] = {}
    pending: list[tuple[int, dict]] = []  # rows whose fields parsed; rotations are checked in one batch below
    for lineno, raw in enumerate(lines[1:], start=2):
        line = raw.rstrip("\r\n")
        if not line.strip():
            add(lineno, "empty line; remove it")
            continue
        f = line.split(",")
        if len(f) != 7:
            add(lineno, f"expected 7 comma-separated fields (scene_id,im_id,obj_id,score,R,t,time), got {len(f)}")
            continue
        n0 = len(problems)
        ids = []
        for name, tok in zip(("scene_id", "im_id", "obj_id"), f[:3]):
            v = _int(tok)
            if v is None:
                add(lineno, f"{name}: must be a non-negative integer, got {tok!r}")
            ids.append(v)
        score = _float(f[3])
        if score is None:
            add(lineno, f"score: must be a finite number, got {f[3]!r}")
        R_tok, t_tok = f[4].split(), f[5].split()
        R_vals = [_float(x) for x in R_tok]
        t_vals = [_float(x) for x in t_tok]
        R = t = None
        if len(R_vals) != 9 or any(v is None for v in R_vals):
            add(lineno, f"R: expected 9 space-separated finite numbers (row-major), got {f[4].strip()[:60]!r}")
        else:
            R = R_vals
        if len(t_vals) != 3 or any(v is None for v in t_vals):
            add(lineno, f"t: expected 3 space-separated finite numbers (mm), got {f[5].strip()[:60]!r}")
        else:
            t = np.asarray(t_vals, np.float64)
        time_s = _float(f[6])
        if time_s is None or (time_s < 0 and time_s != -1):
            add(lineno, f"time: must be a finite number of seconds >= 0, or -1 when unknown, got {f[6].strip()!r}")
        if ids[0] is not None and ids[1] is not None and time_s is not None:
            times.setdefault((ids[0], ids[1]), []).append((lineno, time_s))
        if len(problems) > n0:
            continue
        pending.append(
            (lineno, dict(scene_id=ids[0], im_id=ids[1], obj_id=ids[2], score=score, R_m2c=R, t_m2c=t, time_s=time_s))
        )
    if pending:
        Rs = np.asarray([row["R_m2c"] for _, row in pending], np.float64).reshape(-1, 3, 3)
        ortho, det = rotation_errors(Rs)
        for k, (lineno, row) in enumerate(pending):
            if ortho[k] < rot_tol and det[k] < rot_tol:
                rows.append(ResultRow(**{**row, "R_m2c": Rs[k]}))
            else:
                add(lineno, f"R: {not_rotation(ortho[k], det[k], rot_tol)}")
    for (scene_id, im_id), ts in times.items():
        values = [t for _, t in ts]
        if max(values) - min(values) > TIME_TOL_S:
            shown = ", ".join(f"line {ln}: {t:g}" for ln, t in ts[:6]) + (" ..." if len(ts) > 6 else "")
            add(
                ts[0][0],
                f"time: scene {scene_id} image {im_id} has different times ({shown}); "
                "BOP needs one time per image: the total time for the image on every row",
            )
    problems.sort(key=lambda p: p[0])  # in file order (stable: one line's problems keep their order)
    return rows, [msg for _, msg in problems]


#: a time per image above this (seconds) is reported as implausible: BOP methods take well below a minute
PLAUSIBLE_TIME_S = 3600.0
#: rows shown by :func:`results_remarks` per kind of remark
SHOWN_ROWS = 3


def results_remarks(rows: Sequence[ResultRow]) -> list[str]:
    """Things about valid rows that bop_toolkit accepts silently but that a user wants to know: rows that
    repeat an earlier row exactly, and times above :data:`PLAUSIBLE_TIME_S` (the average time per image
    then means nothing). One line per kind; rows are named by their line in the file (row k = line k + 2).

    >>> e = ResultRow(1, 2, 3, 0.5, np.eye(3), np.ones(3), 1e300)
    >>> results_remarks([e, e])[0][:48]
    '1 row(s) repeat an earlier row exactly (line 3 ='
    """
    out = []
    first_line: dict[tuple, int] = {}
    repeats: list[tuple[int, int]] = []
    for k, e in enumerate(rows):
        key = (
            int(e.scene_id),
            int(e.im_id),
            int(e.obj_id),
            float(e.score),
            np.asarray(e.R_m2c, np.float64).tobytes(),
            np.asarray(e.t_m2c, np.float64).tobytes(),
            float(e.time_s),
        )
        if key in first_line:
            repeats.append((k + 2, first_line[key]))
        else:
            first_line[key] = k + 2
    if repeats:
        shown = ", ".join(f"line {a} = line {b}" for a, b in repeats[:SHOWN_ROWS])
        shown += " ..." if len(repeats) > SHOWN_ROWS else ""
        out.append(
            f"{len(repeats)} row(s) repeat an earlier row exactly ({shown}); "
            "they are kept, as bop_toolkit keeps them, and compete for the targets' inst_count: remove the copies"
        )
    slow = [(k + 2, e) for k, e in enumerate(rows) if e.time_s > PLAUSIBLE_TIME_S]
    if slow:
        images = {(e.scene_id, e.im_id) for _, e in slow}
        line, worst = max(slow, key=lambda le: le[1].time_s)
        out.append(
            f"time: {len(images)} image(s) have a time above {PLAUSIBLE_TIME_S:g} s (largest {worst.time_s:.3g} s, "
            f"line {line}: scene {worst.scene_id} image {worst.im_id}): the average time per image includes them; "
            "the time column is seconds per image (-1 when unknown)"
        )
    return out


def load_results_csv(path: str | os.PathLike, rot_tol: float = ROT_TOL) -> list[ResultRow]:
    """Read and validate a BOP19 results CSV.

    Args:
        path: the CSV.
        rot_tol: tolerance on |R^T R - I| (max entry) and |det R - 1| for each R.
    Returns:
        One :class:`ResultRow` per row, in file order.
    Raises:
        ResultsFormatError: missing file, or every problem of the file, each with its line number.
    """
    path = Path(path)
    try:
        # utf-8-sig: a leading byte order mark (Excel and Windows editors write one) is dropped, as
        # bop_toolkit's reader does; otherwise the header would read '\ufeffscene_id,...'
        text = path.read_text(encoding="utf-8-sig")
    except FileNotFoundError:
        raise ResultsFormatError(f"{path} not found: check the path (results are written by `bopnp predict`)") from None
    except UnicodeDecodeError:
        raise ResultsFormatError(f"{path}: not a UTF-8 text file; is this a BOP19 results CSV?") from None
    rows, problems = parse_results_lines(text.split("\n"), str(path), rot_tol)
    if problems:
        raise ResultsFormatError(
            f"{path}: {len(problems)} problem(s) in the BOP19 results CSV; fix every listed line", problems
        )
    return rows


def format_results_csv(estimates: Sequence[ResultRow]) -> str:
    """The CSV text for ``estimates`` (numbers written with full precision)."""
    lines = [HEADER]
    for e in estimates:
        R = " ".join(repr(float(x)) for x in np.asarray(e.R_m2c, np.float64).reshape(9))
        t = " ".join(repr(float(x)) for x in np.asarray(e.t_m2c, np.float64).reshape(3))
        lines.append(f"{int(e.scene_id)},{int(e.im_id)},{int(e.obj_id)},{float(e.score)!r},{R},{t},{float(e.time_s)!r}")
    return "\n".join(lines) + "\n"


def save_results_csv(path: str | os.PathLike, estimates: Sequence[ResultRow], rot_tol: float = ROT_TOL) -> None:
    """Write a BOP19 results CSV atomically, after the same checks the reader makes.

    Raises:
        ResultsFormatError: when the estimates would make an invalid file (nothing is written).
    """
    text = format_results_csv(estimates)
    _, problems = parse_results_lines(text.split("\n"), str(path), rot_tol)
    if problems:
        raise ResultsFormatError(
            f"refusing to write {path}: {len(problems)} problem(s) (line N = estimate N - 1)", problems
        )
    write_text_atomic(path, text)


class ResultFileName(NamedTuple):
    """The parts of a BOP result file name ``METHOD_DATASET-SPLIT[-SPLITTYPE][_ID].csv``."""

    method: str
    dataset: str
    split: str
    split_type: str | None


#: split type bop_toolkit assumes when the file name gives none (folder ``test_primesense``)
DEFAULT_SPLIT_TYPE = {"tless": "primesense", "hb": "primesense", "hbs": "primesense"}


def split_folder(name: ResultFileName) -> str:
    """The split folder of the dataset that a result file names: ``SPLIT`` or ``SPLIT_SPLITTYPE``.

    Without a split type in the name, bop_toolkit's default for the dataset applies (:data:`DEFAULT_SPLIT_TYPE`).

    >>> split_folder(parse_result_filename("m_lmo-test.csv"))
    'test'
    >>> split_folder(parse_result_filename("m_tless-test.csv"))
    'test_primesense'
    >>> split_folder(parse_result_filename("m_tless-test-kinect.csv"))
    'test_kinect'
    """
    split_type = name.split_type or DEFAULT_SPLIT_TYPE.get(name.dataset)
    return name.split if split_type is None else f"{name.split}_{split_type}"


_NAME_RE = re.compile(
    r"^(?P<method>[^_]+)_(?P<dataset>[^_\-]+)-(?P<split>[^_\-]+)(?:-(?P<split_type>[^_\-]+))?(?:_(?P<id>[^.]+))?$"
)


def parse_result_filename(name: str | os.PathLike) -> ResultFileName:
    """Split a BOP result file name into method, dataset, split and split type.

    Follows bop_toolkit: ``METHOD_DATASET-SPLIT[-SPLITTYPE][_ID].(csv|json|json.gz)`` where METHOD has no
    ``_`` (use ``-`` inside it), and the optional ``_ID`` suffix (e.g. a submission id) is ignored.

    >>> parse_result_filename("results/pix2pose-bpnp_lmo-test.csv")
    ResultFileName(method='pix2pose-bpnp', dataset='lmo', split='test', split_type=None)
    >>> parse_result_filename("m_tless-test-primesense.csv").split_type
    'primesense'

    Raises:
        ResultsFormatError: the name does not follow the pattern; the message shows an example.
    """
    base = Path(name).name
    stem = base
    for ext in (".csv", ".json.gz", ".json"):
        if stem.endswith(ext):
            stem = stem[: -len(ext)]
            break
    else:
        raise ResultsFormatError(
            f"result file name {base!r} must end in .csv (or .json for detections), e.g. 'mymethod_lmo-test.csv'"
        )
    m = _NAME_RE.match(stem)
    if not m:
        raise ResultsFormatError(
            f"result file name {base!r} does not follow METHOD_DATASET-SPLIT[-SPLITTYPE][_ID].csv, "
            "e.g. 'mymethod_lmo-test.csv'; METHOD must not contain '_' (use '-')"
        )
    return ResultFileName(m["method"], m["dataset"], m["split"], m["split_type"])

"""COCO-style 2D detections as BOP distributes them (the "default detections" of BOP'22 and later):
a json list of ``{scene_id, image_id, category_id, score, bbox: [x, y, w, h], segmentation: {counts,
size}, time}``; ``category_id`` is the object id, ``segmentation`` an RLE mask (see :mod:`bopnp.bop.rle`).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from bopnp.bop.annotations import read_json, write_json
from bopnp.bop.rle import Rle, RleError
from bopnp.bop.validate import is_int, is_number
from bopnp.errors import DatasetError, ResultsFormatError


@dataclass(frozen=True, eq=False)
class Detection:
    """One 2D detection.

    Attributes:
        scene_id, im_id, obj_id: the image and object (``image_id`` and ``category_id`` in the file).
        score: confidence.
        bbox_xywh: (4,) float64 box ``(x, y, width, height)``, pixels.
        rle: the instance mask, or None when the file has no segmentation.
        time_s: seconds spent on the image, -1 when unknown.
    """

    scene_id: int
    im_id: int
    obj_id: int
    score: float
    bbox_xywh: np.ndarray
    rle: Rle | None = None
    time_s: float = -1.0

    def mask(self) -> np.ndarray:
        """(H, W) bool instance mask.

        Raises:
            DatasetError: when the detection has no segmentation.
        """
        if self.rle is None:
            raise DatasetError(
                f"detection of object {self.obj_id} in scene {self.scene_id} image {self.im_id} has no segmentation "
                "mask"
            )
        return self.rle.decode()


def parse_detections(content: Any, source: str) -> tuple[list[Detection], list[str]]:
    """Decoded detections json -> (the valid detections, one problem line per defect ``"[i].field: what"``)."""
    if not isinstance(content, list):
        return [], [f"{source}: expected a json list of detections, got {type(content).__name__}"]
    out, problems = [], []
    for i, d in enumerate(content):
        field = f"[{i}]"
        if not isinstance(d, dict):
            problems.append(f"{field}: expected a json object, got {type(d).__name__}")
            continue
        n0 = len(problems)
        for key in ("scene_id", "image_id", "category_id"):
            if key not in d:
                problems.append(f"{field}.{key}: missing")
            elif not (is_int(d[key]) and d[key] >= 0):
                problems.append(f"{field}.{key}: must be a non-negative integer, got {d[key]!r}")
        if "score" not in d:
            problems.append(f"{field}.score: missing")
        elif not is_number(d["score"]):
            problems.append(f"{field}.score: must be a finite number, got {d['score']!r}")
        bbox = d.get("bbox")
        if not (isinstance(bbox, list) and len(bbox) == 4 and all(is_number(v) for v in bbox)):
            problems.append(f"{field}.bbox: expected [x, y, width, height] (4 numbers, pixels), got {bbox!r}")
        t = d.get("time", -1)
        if not is_number(t):
            problems.append(f"{field}.time: must be a number of seconds (or -1), got {t!r}")
        rle = None
        seg = d.get("segmentation")
        if seg:  # bop_toolkit writes {} for box-only detections
            try:
                rle = Rle.from_json(seg)
            except RleError as exc:
                problems.append(f"{field}.segmentation: {exc}")
        if len(problems) > n0:
            continue
        out.append(
            Detection(
                scene_id=int(d["scene_id"]),
                im_id=int(d["image_id"]),
                obj_id=int(d["category_id"]),
                score=float(d["score"]),
                bbox_xywh=np.asarray(bbox, np.float64),
                rle=rle,
                time_s=float(t),
            )
        )
    return out, problems


def load_detections(path: str | os.PathLike) -> list[Detection]:
    """Read a BOP COCO-style detections json (``.json`` or ``.json.gz``).

    Raises:
        ResultsFormatError: missing file, invalid json, or every malformed entry with its index.
    """
    path = Path(path)
    try:
        content = read_json(path, "2D detections, e.g. the BOP default detections")
    except DatasetError as exc:
        raise ResultsFormatError(str(exc)) from None
    dets, problems = parse_detections(content, str(path))
    if problems:
        raise ResultsFormatError(
            f"{path}: {len(problems)} problem(s) in the detections file; fix every listed entry", problems
        )
    return dets


def detections_to_json(detections: Sequence[Detection], compressed_rle: bool = True) -> list[dict]:
    """The json content for ``detections`` (new objects; the detections are not modified)."""
    out = []
    for d in detections:
        e = {
            "scene_id": int(d.scene_id),
            "image_id": int(d.im_id),
            "category_id": int(d.obj_id),
            "score": float(d.score),
            "bbox": [float(v) for v in np.asarray(d.bbox_xywh).reshape(4)],
            "time": float(d.time_s),
        }
        if d.rle is not None:
            e["segmentation"] = d.rle.to_json(compressed=compressed_rle)
        out.append(e)
    return out


def save_detections(path: str | os.PathLike, detections: Sequence[Detection], compressed_rle: bool = True) -> None:
    """Write detections as BOP COCO-style json (atomic; ``.json.gz`` is compressed).

    Args:
        compressed_rle: COCO compressed ``counts`` strings (smaller) instead of lists of ints.
    """
    write_json(path, detections_to_json(detections, compressed_rle))

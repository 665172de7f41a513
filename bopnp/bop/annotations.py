"""The BOP json files: ``models_info.json``, ``camera.json``, ``scene_camera.json``, ``scene_gt.json``,
``scene_gt_info.json`` and ``test_targets_bop19.json``.

Each format has a ``parse_*`` that turns decoded json into typed records and appends one line per
problem to a list (used by ``bopnp check``), a ``load_*`` that raises :class:`DatasetError` with all
those lines, and a ``save_*`` that writes atomically and never modifies its argument. Image-keyed
files are ``dict[int, ...]`` keyed by image id, as in the files.
"""

from __future__ import annotations

import gzip
import json
import os
import sys
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, TypeVar

import numpy as np

from bopnp.bop.atomic import write_bytes_atomic
from bopnp.bop.records import Camera, ContinuousSymmetry, GtInfo, GtPose, ImageCamera, ModelInfo, Target
from bopnp.bop.validate import GT_ROT_TOL, brief, check_diameter, check_rotation, is_int, is_number, numbers, problem
from bopnp.errors import DatasetError

T = TypeVar("T")
#: the longest id (scene, image, object) accepted as a json key; BOP's ids have at most 6 digits
MAX_ID_DIGITS = 9


# ----------------------------------------------------------------------------- json files


def read_json(path: str | os.PathLike, what: str = "", fix: str | None = None) -> Any:
    """Decode a ``.json`` (or ``.json.gz``) file.

    Args:
        path: the file.
        what: what the file holds, named in brackets when it is missing.
        fix: what to do when the file is missing or unreadable; by default, re-download it (a BOP file).

    Raises:
        DatasetError: the file is missing (the message says what it is, via ``what``) or is not valid
            json (the message gives line and column).
    """
    path = Path(path)
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        hint = f" ({what})" if what else ""
        raise DatasetError(
            f"{path} not found{hint}: {fix or 'check the path, or download the file from the BOP website'}"
        ) from None
    except IsADirectoryError:
        raise DatasetError(f"{path} is a folder, expected a json file") from None
    if path.name.endswith(".gz"):
        try:
            raw = gzip.decompress(raw)
        except (OSError, EOFError) as exc:
            raise DatasetError(f"{path}: not a valid gzip file ({exc}); {fix or 're-download it'}") from None
    try:
        return json.loads(raw.decode("utf-8"))
    except UnicodeDecodeError as exc:
        raise DatasetError(f"{path}: not UTF-8 text ({exc}); the file is corrupt, {fix or 're-download it'}") from None
    except json.JSONDecodeError as exc:
        raise DatasetError(
            f"{path}: invalid json at line {exc.lineno}, column {exc.colno}: {exc.msg}; "
            f"{fix or 'fix the file or re-download it'}"
        ) from None
    except RecursionError:
        raise DatasetError(
            f"{path}: the json is nested too deeply to read (more than about {sys.getrecursionlimit()} levels); "
            f"no BOP file nests more than a few levels: the file is corrupt, {fix or 'fix it or re-download it'}"
        ) from None
    except (ValueError, OverflowError, MemoryError) as exc:  # e.g. an integer beyond Python's digit limit
        raise DatasetError(
            f"{path}: cannot decode the json ({brief(str(exc), 120)}); {fix or 'fix the file or re-download it'}"
        ) from None


def _dumps(v: Any) -> str:
    return json.dumps(v, sort_keys=True, allow_nan=False)


def write_json(path: str | os.PathLike, content: Any) -> None:
    """Write ``content`` as json, atomically, in bop_toolkit's layout: one top-level key (sorted
    numerically when the keys are ids) or one list element per line. ``.json.gz`` is gzip-compressed."""
    if isinstance(content, Mapping):
        keys = sorted(
            content,
            key=lambda k: (
                (0, int(k), "") if is_int(k) or (isinstance(k, str) and k.lstrip("-").isdigit()) else (1, 0, str(k))
            ),
        )
        body = ",\n".join(f"  {json.dumps(str(k))}: {_dumps(content[k])}" for k in keys)
        text = "{\n" + body + ("\n" if keys else "") + "}\n"
    elif isinstance(content, (list, tuple)):
        body = ",\n".join(f"  {_dumps(e)}" for e in content)
        text = "[\n" + body + ("\n" if content else "") + "]\n"
    else:
        text = _dumps(content) + "\n"
    _write_text(path, text)


def _write_text(path: str | os.PathLike, text: str) -> None:
    data = text.encode("utf-8")
    if str(path).endswith(".gz"):
        data = gzip.compress(data, mtime=0)
    write_bytes_atomic(path, data)


def _is_id(v: Any) -> bool:
    """A non-negative integer id (or count) of at most MAX_ID_DIGITS digits."""
    return is_int(v) and 0 <= v < 10**MAX_ID_DIGITS


def _raise(problems: list[str], path: Path, fix: str) -> None:
    if problems:
        raise DatasetError(f"{path}: {len(problems)} problem(s); {fix}", problems)


def _id_keyed(
    content: Any,
    source: str,
    problems: list[str],
    parse_value: Callable[[Any, str, int], T | None],
    bad_ids: set[int] | None = None,
) -> dict[int, T]:
    """Parse a json object keyed by integer ids (``"3": ...``); ``parse_value(value, field, id)``.
    Ids whose value is malformed are left out of the result and added to ``bad_ids``."""
    if not isinstance(content, Mapping):
        problems.append(problem(source, "", f"expected a json object keyed by ids, got {type(content).__name__}"))
        return {}
    out: dict[int, T] = {}
    for key, value in content.items():
        if not (isinstance(key, str) and key.isascii() and key.isdigit()):
            problems.append(problem(source, f"[{brief(key)}]", "key is not a non-negative integer id"))
            continue
        if len(key.lstrip("0")) > MAX_ID_DIGITS:
            problems.append(
                problem(
                    source,
                    f"[{brief(key)}]",
                    f"id has more than {MAX_ID_DIGITS} digits; BOP ids are small integers: fix the key",
                )
            )
            continue
        parsed = parse_value(value, f"[{brief(key)}]", int(key))
        if parsed is not None:
            out[int(key)] = parsed
        elif bad_ids is not None:
            bad_ids.add(int(key))
    return dict(sorted(out.items()))


def _list_of(
    value: Any, field: str, source: str, problems: list[str], parse_item: Callable[[Any, str], T | None]
) -> list[T] | None:
    if not isinstance(value, list):
        problems.append(problem(source, field, f"expected a list, got {type(value).__name__}"))
        return None
    items = [parse_item(v, f"{field}[{i}]") for i, v in enumerate(value)]
    # an image with a bad instance is dropped whole: gt_id must keep indexing masks and gt_info
    return None if any(it is None for it in items) else items


def _get(entry: Mapping, key: str, field: str, source: str, problems: list[str]) -> Any:
    if key not in entry:
        problems.append(problem(source, f"{field}.{key}", "missing"))
        return None
    return entry[key]


def _as_object(v: Any, field: str, source: str, problems: list[str]) -> bool:
    if isinstance(v, Mapping):
        return True
    problems.append(problem(source, field, f"expected a json object, got {type(v).__name__}"))
    return False


# ----------------------------------------------------------------------------- models_info.json


def parse_models_info(
    content: Any, source: str, problems: list[str], rot_tol: float = GT_ROT_TOL
) -> dict[int, ModelInfo]:
    """``models_info.json`` content -> {obj_id: ModelInfo}; appends a line per problem."""

    def one(entry: Any, field: str, obj_id: int) -> ModelInfo | None:
        if not _as_object(entry, field, source, problems):
            return None
        n0 = len(problems)
        diameter = _get(entry, "diameter", field, source, problems)
        if diameter is not None and not (is_number(diameter) and diameter > 0):
            problems.append(
                problem(source, f"{field}.diameter", f"must be a positive number (mm), got {brief(diameter)}")
            )
        mins, sizes = [], []
        for axis in "xyz":
            for key, dest in ((f"min_{axis}", mins), (f"size_{axis}", sizes)):
                v = _get(entry, key, field, source, problems)
                if v is not None and not is_number(v):
                    problems.append(problem(source, f"{field}.{key}", f"must be a number (mm), got {brief(v)}"))
                dest.append(v)
        if any(s is not None and is_number(s) and s < 0 for s in sizes):
            problems.append(problem(source, f"{field}.size_*", f"sizes must be >= 0, got {sizes}"))
        disc = []
        sd = entry.get("symmetries_discrete", [])
        if not isinstance(sd, list):
            problems.append(
                problem(source, f"{field}.symmetries_discrete", "expected a list of flattened 4x4 matrices")
            )
            sd = []
        for i, m in enumerate(sd):
            f = f"{field}.symmetries_discrete[{i}]"
            arr = numbers(m, 16, source, f, problems)
            if arr is None:
                continue
            T4 = arr.reshape(4, 4)
            if not np.allclose(T4[3], [0, 0, 0, 1]):
                problems.append(problem(source, f, f"last row must be [0, 0, 0, 1], got {T4[3].tolist()}"))
            check_rotation(T4[:3, :3], source, f + " (rotation part)", problems, rot_tol)
            disc.append(T4)
        cont = []
        sc = entry.get("symmetries_continuous", [])
        if not isinstance(sc, list):
            problems.append(
                problem(source, f"{field}.symmetries_continuous", "expected a list of {axis, offset} objects")
            )
            sc = []
        for i, s in enumerate(sc):
            f = f"{field}.symmetries_continuous[{i}]"
            if not _as_object(s, f, source, problems):
                continue
            axis = numbers(s.get("axis"), 3, source, f + ".axis", problems)
            offset = numbers(s.get("offset", [0, 0, 0]), 3, source, f + ".offset", problems)
            if axis is not None and np.linalg.norm(axis) < 1e-9:
                problems.append(problem(source, f + ".axis", "must be a nonzero vector"))
                axis = None
            if axis is not None and offset is not None:
                cont.append(ContinuousSymmetry(axis=axis, offset_mm=offset))
        if len(problems) > n0:
            return None
        # a diameter that does not fit the box is a problem, but the entry is kept: `bopnp check` still
        # compares it with the mesh, which tells which of the two is wrong
        check_diameter(float(diameter), sizes, source, f"{field}.diameter", problems)
        known = {"diameter", "symmetries_discrete", "symmetries_continuous"} | {
            f"{k}_{a}" for k in ("min", "size") for a in "xyz"
        }
        return ModelInfo(
            obj_id=obj_id,
            diameter_mm=float(diameter),
            min_mm=np.asarray(mins, np.float64),
            size_mm=np.asarray(sizes, np.float64),
            symmetries_discrete=np.asarray(disc, np.float64).reshape(-1, 4, 4),
            symmetries_continuous=tuple(cont),
            extra={k: v for k, v in entry.items() if k not in known},
        )

    return _id_keyed(content, source, problems, one)


def load_models_info(path: str | os.PathLike, rot_tol: float = GT_ROT_TOL) -> dict[int, ModelInfo]:
    """Read ``models_info.json`` -> {obj_id: ModelInfo} (diameters and boxes in mm).

    Raises:
        DatasetError: missing file, invalid json, or a list of every malformed field.
    """
    path = Path(path)
    problems: list[str] = []
    out = parse_models_info(read_json(path, "the models' diameters and symmetries"), str(path), problems, rot_tol)
    _raise(problems, path, "fix these entries or re-download the models archive")
    return out


def models_info_to_json(infos: Mapping[int, ModelInfo]) -> dict[str, dict]:
    """The json content of ``models_info.json`` for ``infos`` (new objects; the records are not modified)."""
    out = {}
    for obj_id, info in infos.items():
        e: dict[str, Any] = {"diameter": float(info.diameter_mm)}
        for i, a in enumerate("xyz"):
            e[f"min_{a}"] = float(info.min_mm[i])
            e[f"size_{a}"] = float(info.size_mm[i])
        if len(info.symmetries_discrete):
            e["symmetries_discrete"] = [
                np.asarray(m, np.float64).reshape(16).tolist() for m in info.symmetries_discrete
            ]
        if info.symmetries_continuous:
            e["symmetries_continuous"] = [
                {
                    "axis": np.asarray(s.axis, np.float64).tolist(),
                    "offset": np.asarray(s.offset_mm, np.float64).tolist(),
                }
                for s in info.symmetries_continuous
            ]
        for k, v in info.extra.items():
            e.setdefault(k, v)
        out[str(int(obj_id))] = e
    return out


def save_models_info(path: str | os.PathLike, infos: Mapping[int, ModelInfo]) -> None:
    """Write ``models_info.json`` (atomic)."""
    write_json(path, models_info_to_json(infos))


# ----------------------------------------------------------------------------- camera.json


def _K(fx: float, fy: float, cx: float, cy: float) -> np.ndarray:
    return np.array([[fx, 0.0, cx], [0.0, fy, cy], [0.0, 0.0, 1.0]], np.float64)


def parse_camera(content: Any, source: str, problems: list[str]) -> Camera | None:
    """``camera.json`` content -> Camera; appends a line per problem."""
    if not _as_object(content, "", source, problems):
        return None
    n0 = len(problems)
    vals = {}
    for key in ("fx", "fy", "cx", "cy", "width", "height"):
        v = content.get(key)
        if v is None:
            problems.append(problem(source, key, "missing"))
        elif key in ("width", "height") and not (is_int(v) and v > 0):
            problems.append(problem(source, key, f"must be a positive integer (pixels), got {brief(v)}"))
        elif not is_number(v) or (key in ("fx", "fy") and v <= 0):
            problems.append(
                problem(
                    source,
                    key,
                    f"must be a {'positive ' if key in ('fx', 'fy') else ''}number (pixels), got {brief(v)}",
                )
            )
        vals[key] = v
    depth_scale = content.get("depth_scale")
    if depth_scale is not None and not (is_number(depth_scale) and depth_scale > 0):
        problems.append(
            problem(source, "depth_scale", f"must be a positive number (mm per depth unit), got {brief(depth_scale)}")
        )
    if len(problems) > n0:
        return None
    known = {"fx", "fy", "cx", "cy", "width", "height", "depth_scale"}
    return Camera(
        K=_K(vals["fx"], vals["fy"], vals["cx"], vals["cy"]),
        width=int(vals["width"]),
        height=int(vals["height"]),
        depth_scale=None if depth_scale is None else float(depth_scale),
        extra={k: v for k, v in content.items() if k not in known},
    )


def load_camera(path: str | os.PathLike) -> Camera:
    """Read ``camera.json`` -> Camera (K in pixels, image size, depth scale).

    Raises:
        DatasetError: missing file, invalid json, or every malformed field.
    """
    path = Path(path)
    problems: list[str] = []
    cam = parse_camera(read_json(path, "the dataset camera; it is in the dataset's base archive"), str(path), problems)
    _raise(problems, path, "fix these fields or re-download the dataset's base archive")
    assert cam is not None
    return cam


def save_camera(path: str | os.PathLike, camera: Camera) -> None:
    """Write ``camera.json`` (atomic)."""
    K = np.asarray(camera.K, np.float64)
    if abs(K[0, 1]) > 0 or np.any(K[2] != [0, 0, 1]) or np.any(K[1, :1] != 0):
        raise DatasetError(
            f"cannot write {path}: camera.json holds fx, fy, cx, cy only but K has skew or is not upper-triangular: "
            f"{K.tolist()}"
        )
    out: dict[str, Any] = {
        "cx": float(K[0, 2]),
        "cy": float(K[1, 2]),
        "fx": float(K[0, 0]),
        "fy": float(K[1, 1]),
        "height": int(camera.height),
        "width": int(camera.width),
    }
    if camera.depth_scale is not None:
        out["depth_scale"] = float(camera.depth_scale)
    for k, v in camera.extra.items():
        out.setdefault(k, v)
    _write_text(path, json.dumps(out, indent=2, sort_keys=True) + "\n")


# ----------------------------------------------------------------------------- scene_camera.json


def parse_scene_camera(
    content: Any, source: str, problems: list[str], rot_tol: float = GT_ROT_TOL, bad_ids: set[int] | None = None
) -> dict[int, ImageCamera]:
    """``scene_camera.json`` content -> {im_id: ImageCamera}; appends a line per problem (and the ids of
    malformed entries to ``bad_ids``)."""

    def one(entry: Any, field: str, im_id: int) -> ImageCamera | None:
        if not _as_object(entry, field, source, problems):
            return None
        n0 = len(problems)
        if "cam_model" in entry:
            problems.append(
                problem(
                    source,
                    f"{field}.cam_model",
                    "BOP24 camera models are not supported; use a dataset with pinhole cam_K",
                )
            )
            return None
        K = _get(entry, "cam_K", field, source, problems)
        K = None if K is None else numbers(K, 9, source, f"{field}.cam_K", problems)
        if K is not None:
            K = K.reshape(3, 3)
            if K[0, 0] <= 0 or K[1, 1] <= 0 or not np.allclose(K[2], [0, 0, 1]):
                problems.append(
                    problem(
                        source,
                        f"{field}.cam_K",
                        f"not an intrinsics matrix (fx, fy > 0, last row [0, 0, 1]): {K.reshape(-1).tolist()}",
                    )
                )
        ds = entry.get("depth_scale")
        if ds is not None and not (is_number(ds) and ds > 0):
            problems.append(problem(source, f"{field}.depth_scale", f"must be a positive number, got {brief(ds)}"))
        R = t = None
        if "cam_R_w2c" in entry or "cam_t_w2c" in entry:
            R = numbers(entry.get("cam_R_w2c"), 9, source, f"{field}.cam_R_w2c", problems)
            t = numbers(entry.get("cam_t_w2c"), 3, source, f"{field}.cam_t_w2c", problems)
            if R is not None:
                R = R.reshape(3, 3)
                check_rotation(R, source, f"{field}.cam_R_w2c", problems, rot_tol)
        if len(problems) > n0:
            return None
        known = {"cam_K", "depth_scale", "cam_R_w2c", "cam_t_w2c"}
        return ImageCamera(
            K=K,
            depth_scale=None if ds is None else float(ds),
            R_w2c=R,
            t_w2c=t,
            extra={k: v for k, v in entry.items() if k not in known},
        )

    return _id_keyed(content, source, problems, one, bad_ids)


def load_scene_camera(path: str | os.PathLike, rot_tol: float = GT_ROT_TOL) -> dict[int, ImageCamera]:
    """Read ``scene_camera.json`` -> {im_id: ImageCamera} (K in pixels, depth scale, optional w2c pose in mm).

    Raises:
        DatasetError: missing file, invalid json, or every malformed field.
    """
    path = Path(path)
    problems: list[str] = []
    out = parse_scene_camera(read_json(path, "per-image intrinsics of the scene"), str(path), problems, rot_tol)
    _raise(problems, path, "fix these entries or re-download the split")
    return out


def scene_camera_to_json(cameras: Mapping[int, ImageCamera]) -> dict[str, dict]:
    """The json content of ``scene_camera.json`` (new objects; the records are not modified)."""
    out = {}
    for im_id, c in cameras.items():
        e: dict[str, Any] = {}
        if c.K is not None:
            e["cam_K"] = np.asarray(c.K, np.float64).reshape(9).tolist()
        if c.depth_scale is not None:
            e["depth_scale"] = float(c.depth_scale)
        if c.R_w2c is not None:
            e["cam_R_w2c"] = np.asarray(c.R_w2c, np.float64).reshape(9).tolist()
        if c.t_w2c is not None:
            e["cam_t_w2c"] = np.asarray(c.t_w2c, np.float64).reshape(3).tolist()
        for k, v in c.extra.items():
            e.setdefault(k, v)
        out[str(int(im_id))] = e
    return out


def save_scene_camera(path: str | os.PathLike, cameras: Mapping[int, ImageCamera]) -> None:
    """Write ``scene_camera.json`` (atomic)."""
    write_json(path, scene_camera_to_json(cameras))


# ----------------------------------------------------------------------------- scene_gt.json


def parse_scene_gt(
    content: Any, source: str, problems: list[str], rot_tol: float = GT_ROT_TOL, bad_ids: set[int] | None = None
) -> dict[int, list[GtPose]]:
    """``scene_gt.json`` content -> {im_id: [GtPose per gt_id]}; appends a line per problem. An image
    with a malformed instance is left out whole (gt_id must keep indexing masks) and its id added to
    ``bad_ids``."""

    def inst(entry: Any, field: str) -> GtPose | None:
        if not _as_object(entry, field, source, problems):
            return None
        n0 = len(problems)
        obj_id = _get(entry, "obj_id", field, source, problems)
        if obj_id is not None and not _is_id(obj_id):
            problems.append(
                problem(
                    source,
                    f"{field}.obj_id",
                    f"must be a non-negative integer id of at most {MAX_ID_DIGITS} digits, got {brief(obj_id)}",
                )
            )
        R = _get(entry, "cam_R_m2c", field, source, problems)
        R = None if R is None else numbers(R, 9, source, f"{field}.cam_R_m2c", problems)
        t = _get(entry, "cam_t_m2c", field, source, problems)
        t = None if t is None else numbers(t, 3, source, f"{field}.cam_t_m2c", problems)
        if R is not None:
            R = R.reshape(3, 3)
            check_rotation(R, source, f"{field}.cam_R_m2c", problems, rot_tol)
        if t is not None and not t[2] > 0:
            problems.append(
                problem(
                    source,
                    f"{field}.cam_t_m2c",
                    f"t_z = {t[2]:.6g} mm puts the object's origin at or "
                    "behind the camera (t_z must be > 0, in mm); fix the pose or drop the instance",
                )
            )
        if len(problems) > n0:
            return None
        return GtPose(obj_id=int(obj_id), R_m2c=R, t_m2c=t)

    return _id_keyed(content, source, problems, lambda v, f, _: _list_of(v, f, source, problems, inst), bad_ids)


def load_scene_gt(path: str | os.PathLike, rot_tol: float = GT_ROT_TOL) -> dict[int, list[GtPose]]:
    """Read ``scene_gt.json`` -> {im_id: [GtPose, ...]} (list index = gt_id; R (3, 3), t (3,) mm).

    Raises:
        DatasetError: missing file, invalid json, or every malformed field (e.g. a non-orthonormal R).
    """
    path = Path(path)
    problems: list[str] = []
    out = parse_scene_gt(read_json(path, "ground-truth poses of the scene"), str(path), problems, rot_tol)
    _raise(problems, path, "fix these entries or re-download the split")
    return out


def scene_gt_to_json(scene_gt: Mapping[int, Sequence[GtPose]]) -> dict[str, list]:
    """The json content of ``scene_gt.json`` (new objects; the records are not modified)."""
    return {
        str(int(im_id)): [
            {
                "cam_R_m2c": np.asarray(g.R_m2c, np.float64).reshape(9).tolist(),
                "cam_t_m2c": np.asarray(g.t_m2c, np.float64).reshape(3).tolist(),
                "obj_id": int(g.obj_id),
            }
            for g in gts
        ]
        for im_id, gts in scene_gt.items()
    }


def save_scene_gt(path: str | os.PathLike, scene_gt: Mapping[int, Sequence[GtPose]]) -> None:
    """Write ``scene_gt.json`` (atomic)."""
    write_json(path, scene_gt_to_json(scene_gt))


# ----------------------------------------------------------------------------- scene_gt_info.json

_GT_INFO_INTS = ("px_count_all", "px_count_valid", "px_count_visib")


def parse_scene_gt_info(
    content: Any, source: str, problems: list[str], bad_ids: set[int] | None = None
) -> dict[int, list[GtInfo]]:
    """``scene_gt_info.json`` content -> {im_id: [GtInfo per gt_id]}; appends a line per problem (and the
    ids of malformed images to ``bad_ids``)."""

    def inst(entry: Any, field: str) -> GtInfo | None:
        if not _as_object(entry, field, source, problems):
            return None
        n0 = len(problems)
        boxes = {}
        for key in ("bbox_obj", "bbox_visib"):
            v = _get(entry, key, field, source, problems)
            if v is None:
                continue
            if not (isinstance(v, list) and len(v) == 4 and all(is_int(x) for x in v)):
                problems.append(
                    problem(source, f"{field}.{key}", f"expected 4 integers (x, y, width, height), got {brief(v)}")
                )
            else:
                boxes[key] = np.asarray(v, np.int64)
        counts = {}
        for key in _GT_INFO_INTS:
            v = _get(entry, key, field, source, problems)
            if v is not None and not (is_int(v) and v >= 0):
                problems.append(problem(source, f"{field}.{key}", f"must be a non-negative integer, got {brief(v)}"))
            counts[key] = v
        vf = _get(entry, "visib_fract", field, source, problems)
        if vf is not None and not (is_number(vf) and -1e-6 <= vf <= 1 + 1e-6):
            problems.append(problem(source, f"{field}.visib_fract", f"must be a number in [0, 1], got {brief(vf)}"))
        if len(problems) > n0:
            return None
        return GtInfo(
            bbox_obj=boxes["bbox_obj"],
            bbox_visib=boxes["bbox_visib"],
            px_count_all=int(counts["px_count_all"]),
            px_count_valid=int(counts["px_count_valid"]),
            px_count_visib=int(counts["px_count_visib"]),
            visib_fract=float(vf),
        )

    return _id_keyed(content, source, problems, lambda v, f, _: _list_of(v, f, source, problems, inst), bad_ids)


def load_scene_gt_info(path: str | os.PathLike) -> dict[int, list[GtInfo]]:
    """Read ``scene_gt_info.json`` -> {im_id: [GtInfo, ...]} (list index = gt_id).

    Raises:
        DatasetError: missing file (compute it with ``bopnp prepare``), invalid json, or every malformed field.
    """
    path = Path(path)
    problems: list[str] = []
    out = parse_scene_gt_info(
        read_json(path, "visibility of the instances; compute it with `bopnp prepare`"), str(path), problems
    )
    _raise(problems, path, "fix these entries or recompute the file with `bopnp prepare`")
    return out


def scene_gt_info_to_json(scene_gt_info: Mapping[int, Sequence[GtInfo]]) -> dict[str, list]:
    """The json content of ``scene_gt_info.json`` (new objects; the records are not modified)."""
    return {
        str(int(im_id)): [
            {
                "bbox_obj": [int(x) for x in g.bbox_obj],
                "bbox_visib": [int(x) for x in g.bbox_visib],
                "px_count_all": int(g.px_count_all),
                "px_count_valid": int(g.px_count_valid),
                "px_count_visib": int(g.px_count_visib),
                "visib_fract": float(g.visib_fract),
            }
            for g in infos
        ]
        for im_id, infos in scene_gt_info.items()
    }


def save_scene_gt_info(path: str | os.PathLike, scene_gt_info: Mapping[int, Sequence[GtInfo]]) -> None:
    """Write ``scene_gt_info.json`` (atomic)."""
    write_json(path, scene_gt_info_to_json(scene_gt_info))


# ----------------------------------------------------------------------------- test_targets_bop19.json


def parse_targets(content: Any, source: str, problems: list[str], indices: list[int] | None = None) -> list[Target]:
    """``test_targets_bop19.json`` content -> [Target]; appends a line per problem (fields name the
    entry's index in the file) and, to ``indices``, the file index of each returned target."""
    if not isinstance(content, list):
        problems.append(problem(source, "", f"expected a json list of targets, got {type(content).__name__}"))
        return []
    out = []
    seen: dict[tuple[int, int, int], int] = {}
    for i, entry in enumerate(content):
        field = f"[{i}]"
        if not _as_object(entry, field, source, problems):
            continue
        vals, ok = {}, True
        for key in ("scene_id", "im_id", "obj_id", "inst_count"):
            v = _get(entry, key, field, source, problems)
            if v is None:
                ok = False
            elif not (_is_id(v) and v >= (1 if key == "inst_count" else 0)):
                problems.append(
                    problem(
                        source,
                        f"{field}.{key}",
                        f"must be a {'positive' if key == 'inst_count' else 'non-negative'} integer, got {brief(v)}",
                    )
                )
                ok = False
            vals[key] = v
        if not ok:
            continue
        t = Target(**{k: int(v) for k, v in vals.items()})
        key = (t.scene_id, t.im_id, t.obj_id)
        if key in seen:
            problems.append(
                problem(
                    source,
                    field,
                    f"duplicate target scene {t.scene_id} image {t.im_id} object {t.obj_id} (also entry "
                    f"{seen[key]}); merge them into one inst_count",
                )
            )
        seen.setdefault(key, i)
        out.append(t)
        if indices is not None:
            indices.append(i)
    return out


def load_targets(path: str | os.PathLike) -> list[Target]:
    """Read ``test_targets_bop19.json`` -> [Target(scene_id, im_id, obj_id, inst_count)].

    Raises:
        DatasetError: missing file, invalid json, or every malformed entry.
    """
    path = Path(path)
    problems: list[str] = []
    out = parse_targets(read_json(path, "BOP19 test targets; it is in the dataset's base archive"), str(path), problems)
    _raise(problems, path, "fix these entries or re-download the dataset's base archive")
    return out


def save_targets(path: str | os.PathLike, targets: Sequence[Target]) -> None:
    """Write ``test_targets_bop19.json`` (atomic)."""
    write_json(
        path,
        [
            {
                "im_id": int(t.im_id),
                "inst_count": int(t.inst_count),
                "obj_id": int(t.obj_id),
                "scene_id": int(t.scene_id),
            }
            for t in targets
        ],
    )

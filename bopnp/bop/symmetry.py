"""Object symmetries from ``models_info.json``: the transforms the BOP errors minimise over, the discrete
pool for symmetry-aware training losses, and a canonical pose for continuous symmetries (Pix2Pose).

All transforms are model-to-model 4x4 matrices ``T`` with the translation in mm: a symmetric object
looks the same under pose ``(R, t)`` and pose ``(R T_R, R T_t + t)``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import numpy as np

from bopnp.bop.records import ModelInfo
from bopnp.checks import check_shape
from bopnp.errors import DatasetError

_EPS = 1e-6


def _discrete(info: ModelInfo | Mapping[str, Any]) -> list[np.ndarray]:
    if isinstance(info, ModelInfo):
        return [np.asarray(m, np.float64).reshape(4, 4) for m in info.symmetries_discrete]
    return [np.reshape(np.asarray(m, np.float64), (4, 4)) for m in info.get("symmetries_discrete", [])]


def _continuous(info: ModelInfo | Mapping[str, Any]) -> list[tuple[np.ndarray, np.ndarray]]:
    if isinstance(info, ModelInfo):
        return [
            (np.asarray(s.axis, np.float64), np.asarray(s.offset_mm, np.float64)) for s in info.symmetries_continuous
        ]
    return [
        (np.asarray(s["axis"], np.float64), np.asarray(s.get("offset", [0, 0, 0]), np.float64))
        for s in info.get("symmetries_continuous", [])
    ]


def axis_angle_matrix(angle: float, axis: np.ndarray) -> np.ndarray:
    """(3, 3) rotation by ``angle`` (radians) about ``axis`` (any nonzero length), right-handed.

    The arithmetic follows bop_toolkit's ``transform.rotation_matrix`` term by term, so that
    :func:`symmetry_transforms` reproduces its numbers to the last bits.

    >>> np.round(axis_angle_matrix(np.pi / 2, np.array([0.0, 0.0, 2.0])) @ [1.0, 0.0, 0.0], 12).tolist()
    [0.0, 1.0, 0.0]
    """
    s, c = math.sin(angle), math.cos(angle)
    d = np.array(axis[:3], dtype=np.float64, copy=True)
    d /= math.sqrt(np.dot(d, d))
    R = np.diag([c, c, c])
    R += np.outer(d, d) * (1.0 - c)
    d *= s
    R += np.array([[0.0, -d[2], d[1]], [d[2], 0.0, -d[0]], [-d[1], d[0], 0.0]])
    return R


def symmetry_transforms(info: ModelInfo | Mapping[str, Any], max_sym_disc_step: float = 0.01) -> np.ndarray:
    """All symmetry transforms of an object, as bop_toolkit's ``misc.get_symmetry_transformations``.

    The identity and the discrete symmetries, each combined with every step of each discretised
    continuous symmetry (same order and numbers as bop_toolkit). A continuous symmetry is sampled in
    ``ceil(pi / max_sym_disc_step)`` equal steps of a full turn, so that a vertex at distance
    diameter / 2 from the axis moves at most ``max_sym_disc_step`` x diameter between steps.

    Args:
        info: a :class:`ModelInfo`, or one raw ``models_info.json`` entry (a dict).
        max_sym_disc_step: the largest step, as a fraction of the diameter.
    Returns:
        (S, 4, 4) float64 model-to-model transforms, translation in mm; ``[0]`` is the identity.

    >>> symmetry_transforms({"diameter": 10.0}).shape
    (1, 4, 4)
    >>> symmetry_transforms({"symmetries_continuous": [{"axis": [0, 0, 1], "offset": [0, 0, 0]}]}).shape
    (315, 4, 4)
    """
    disc = [(np.eye(3), np.zeros((3, 1)))]
    disc += [(m[:3, :3], m[:3, 3].reshape(3, 1)) for m in _discrete(info)]
    cont = []
    for axis, offset in _continuous(info):
        offset = offset.reshape(3, 1)
        steps = int(np.ceil(np.pi / max_sym_disc_step))
        step = 2.0 * np.pi / steps
        for i in range(steps):
            R = axis_angle_matrix(i * step, axis)
            cont.append((R, -R.dot(offset) + offset))
    pairs = []
    for R_d, t_d in disc:
        if cont:
            pairs += [(R_c.dot(R_d), R_c.dot(t_d) + t_c) for R_c, t_c in cont]
        else:
            pairs.append((R_d, t_d))
    out = np.zeros((len(pairs), 4, 4))
    for k, (R, t) in enumerate(pairs):
        out[k, :3, :3] = R
        out[k, :3, 3] = t[:, 0]
        out[k, 3, 3] = 1.0
    return out


def discrete_symmetry_pool(info: ModelInfo | Mapping[str, Any]) -> np.ndarray:
    """The identity followed by the discrete symmetries (continuous ones are not sampled): the pool a
    symmetry-aware training loss minimises over (Pix2Pose's transformer loss).

    Returns:
        (K + 1, 4, 4) float64 model-to-model transforms, translation in mm; ``[0]`` is the identity.
    """
    return np.stack([np.eye(4)] + _discrete(info))


def _perpendicular_unit(a: np.ndarray) -> np.ndarray:
    """A fixed unit vector perpendicular to unit ``a``: the basis vector least aligned with ``a``,
    made perpendicular (ties go to the lower axis: x before y before z)."""
    e = np.zeros(3)
    e[int(np.argmin(np.abs(a)))] = 1.0
    u = e - e.dot(a) * a
    return u / np.linalg.norm(u)


def canonicalize_pose(
    R_m2c: np.ndarray, t_m2c: np.ndarray, info: ModelInfo | Mapping[str, Any]
) -> tuple[np.ndarray, np.ndarray]:
    """The canonical pose of an object with a continuous symmetry: the rotation about the symmetry axis,
    which does not change the object's appearance, is fixed so that all such views share one target.

    Definition. Let ``a`` be the unit symmetry axis and ``o`` its offset (a point of the axis, mm) in
    the model frame, ``u`` a fixed model vector perpendicular to ``a`` (:func:`_perpendicular_unit`).
    In the camera frame the axis is ``a_c = R a`` and passes through ``p = R o + t``. The reference is
    the viewing ray ``d = p / |p|``, or the camera x axis where ``d`` is parallel to ``a_c`` (then the y
    axis). ``v`` is the unit vector perpendicular to ``a_c`` closest to the reference. The canonical
    pose is the one symmetric pose ``R' = R Rot(a, phi)``, ``t' = t + (R - R') o`` with ``R' u = v``,
    i.e. ``R' = [a_c, v, a_c x v] [a, u, a x u]^T``. Then ``R' x + t'`` is ``R x + t`` after a
    rotation of the model about its axis, so the rendered object is unchanged; ``a_c`` and ``p`` are
    unchanged too, hence canonicalising twice gives the same pose (idempotent). Objects without a
    continuous symmetry are returned unchanged (copies). Discrete symmetries are not touched: use
    :func:`discrete_symmetry_pool` for them. The output rotation is orthonormal even if the input
    deviates slightly (as some annotations do).

    Args:
        R_m2c: (B, 3, 3) or (3, 3) model-to-camera rotations.
        t_m2c: (B, 3) or (3,) translations, mm.
        info: the object's :class:`ModelInfo` or raw ``models_info.json`` entry.
    Returns:
        (R', t') with the shapes of the inputs (float64).
    Raises:
        ShapeError: mismatched shapes.
        DatasetError: the object has more than one continuous symmetry axis.

    >>> info = {"symmetries_continuous": [{"axis": [0, 0, 1], "offset": [0, 0, 0]}]}
    >>> R = axis_angle_matrix(0.3, np.array([0.0, 0.0, 1.0]))
    >>> R1, t1 = canonicalize_pose(R, np.array([0.0, 0.0, 500.0]), info)
    >>> R2, _ = canonicalize_pose(np.eye(3), np.array([0.0, 0.0, 500.0]), info)
    >>> bool(np.allclose(R1, R2))
    True
    """
    R = np.asarray(R_m2c, np.float64)
    t = np.asarray(t_m2c, np.float64)
    single = R.ndim == 2
    if single:
        check_shape(R, "3 3", "R_m2c")
        check_shape(t, "3", "t_m2c")
        R, t = R[None], t[None]
    else:
        dims = check_shape(R, "B 3 3", "R_m2c")
        check_shape(t, "B 3", "t_m2c", dims)
    cont = _continuous(info)
    if not cont:
        R_out, t_out = R.copy(), t.copy()
        return (R_out[0], t_out[0]) if single else (R_out, t_out)
    if len(cont) > 1:
        obj = getattr(info, "obj_id", "?")
        raise DatasetError(
            f"object {obj}: canonicalize_pose handles one continuous symmetry axis, this object declares {len(cont)}"
        )
    axis, o = cont[0]
    a = axis / np.linalg.norm(axis)
    u = _perpendicular_unit(a)
    M = np.stack([a, u, np.cross(a, u)], axis=1)  # (3, 3) model-frame basis, columns

    a_c = R @ a  # (B, 3)
    a_c = a_c / np.linalg.norm(a_c, axis=1, keepdims=True)
    p = R @ o + t  # (B, 3) axis point in the camera frame, mm
    ref = p / np.maximum(np.linalg.norm(p, axis=1, keepdims=True), _EPS)
    v = ref - np.sum(ref * a_c, axis=1, keepdims=True) * a_c
    for fallback in (np.array([1.0, 0.0, 0.0]), np.array([0.0, 1.0, 0.0])):
        bad = np.linalg.norm(v, axis=1) < _EPS
        if not bad.any():
            break
        v[bad] = fallback - (a_c[bad] @ fallback)[:, None] * a_c[bad]
    v = v / np.linalg.norm(v, axis=1, keepdims=True)
    C = np.stack([a_c, v, np.cross(a_c, v)], axis=2)  # (B, 3, 3) camera-frame basis, columns
    R_out = C @ M.T
    t_out = t + (R - R_out) @ o
    return (R_out[0], t_out[0]) if single else (R_out, t_out)

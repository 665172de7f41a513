"""Small checks shared by the loaders and ``bopnp check``: each appends a problem line
``"<file>: <field>: <what is wrong>"`` instead of raising, so that a file reports all its problems at once."""

from __future__ import annotations

import math
from typing import Any

import numpy as np

#: tolerance on |R^T R - I| (max abs entry) and |det R - 1| for an estimated rotation (results CSV)
ROT_TOL = 1e-3
#: the same tolerance for annotated rotations in dataset files: some official BOP annotations are less
#: exact (LM-O ``scene_gt.json`` deviates by up to ~0.01 in |R^T R - I|), so 1e-3 would reject real data
GT_ROT_TOL = 0.05
#: relative tolerance of the diameter against the model's extent: a diameter (the largest distance between
#: two vertices) lies between the longest side of the bounding box and its diagonal; bop_toolkit computes
#: both from the same vertices, so 1 % (plus 0.01 mm) only absorbs rounding and resampled eval models
DIAMETER_TOL = 0.01
#: values longer than this many characters are shortened in messages (see :func:`brief`)
BRIEF_CHARS = 40


def problem(source: str, field: str, message: str) -> str:
    """One problem line: ``"<source>: <field>: <message>"`` (no field part when ``field`` is empty)."""
    return f"{source}: {field}: {message}" if field else f"{source}: {message}"


def brief(v: Any, limit: int = BRIEF_CHARS) -> str:
    """``repr(v)`` for a message, shortened to about ``limit`` characters (a 300-digit id or a long list
    would otherwise fill the screen).

    >>> brief(10 ** 60)
    '10000000000000000...00000000000000 (61 characters)'
    >>> brief("abc")
    "'abc'"
    """
    try:
        text = repr(v)
    except ValueError:  # an int too long for str() (Python's digit limit)
        return f"<an integer of about {int(v).bit_length() * 0.30103:.0f} digits>"
    if len(text) <= limit:
        return text
    half = max(1, (limit - 5) // 2)
    return f"{text[:half]}...{text[-half + 3 :]} ({len(text)} characters)"


def check_diameter(
    diameter: float,
    sizes_mm: Any,
    source: str,
    field: str,
    problems: list[str],
    what: str = "the size_x/y/z entries",
    tol: float = DIAMETER_TOL,
) -> bool:
    """Append a problem unless ``diameter`` (mm) fits the extent ``sizes_mm`` (3,) of the same model:
    ``max(sizes) <= diameter <= |sizes|`` within ``tol`` (relative) + 0.01 mm; return whether it fits.

    >>> msgs = []; check_diameter(1.0, [60, 40, 30], "models_info.json", "['1'].diameter", msgs), len(msgs)
    (False, 1)
    """
    sizes = np.asarray(sizes_mm, np.float64).reshape(3)
    lo, hi = float(sizes.max()), float(np.linalg.norm(sizes))
    if (1 - tol) * lo - 0.01 <= diameter <= (1 + tol) * hi + 0.01:
        return True
    side = "below the longest side" if diameter < lo else "above the diagonal"
    problems.append(
        problem(
            source,
            field,
            f"{diameter:.6g} mm is {side} of the model's bounding box ({what}: longest side {lo:.6g} mm, diagonal "
            f"{hi:.6g} mm; a diameter lies between the two, tolerance {tol:.0%}); recompute it as the largest "
            "distance between two vertices of the model, in mm",
        )
    )
    return False


#: how far the principal point may lie outside the image, as a fraction of the image's width/height (BOP
#: cameras have it near the centre; a crop of a larger image may move it off-centre, never this far)
PRINCIPAL_POINT_MARGIN = 0.5
#: largest shift, pixels, that the skew of an intrinsics matrix may cause across the image: bop_toolkit's
#: renderer and the crop geometry use fx, fy, cx, cy only and ignore the skew
SKEW_TOL_PX = 0.5


def intrinsics_problems(K: Any, width: int, height: int) -> list[tuple[str, str]]:
    """What is wrong with pinhole intrinsics for a ``width`` x ``height`` image: ``(field, message)`` pairs
    (field ``fx``, ``fy``, ``cx``, ``cy`` or ``skew``), empty when nothing is.

    Flags non-positive focal lengths, a principal point more than :data:`PRINCIPAL_POINT_MARGIN` of the
    image size outside it, and a skew that shifts points by more than :data:`SKEW_TOL_PX` pixels across
    the image (the renderers ignore it: renders would not line up with the image).

    >>> intrinsics_problems([[500, 0, 5000], [0, 500, 240], [0, 0, 1]], 640, 480)[0][0]
    'cx'
    >>> intrinsics_problems([[500, 0, 320], [0, 500, 240], [0, 0, 1]], 640, 480)
    []
    """
    K = np.asarray(K, np.float64).reshape(3, 3)
    out = []
    for name, v in (("fx", K[0, 0]), ("fy", K[1, 1])):
        if not v > 0:
            out.append((name, f"focal length {v:.6g} px must be positive"))
    for name, v, size in (("cx", K[0, 2], width), ("cy", K[1, 2], height)):
        margin = PRINCIPAL_POINT_MARGIN * size
        if not -margin <= v <= size + margin:
            out.append(
                (
                    name,
                    f"principal point {v:.6g} px is far outside the image (0 .. {size} px, allowed "
                    f"{-margin:.6g} .. {size + margin:.6g}): are the intrinsics for this image size, in pixels?",
                )
            )
    skew = K[0, 1]
    if K[1, 1] > 0 and skew != 0:
        shift = abs(skew) * max(abs(K[1, 2]), abs(height - K[1, 2])) / K[1, 1]
        if shift > SKEW_TOL_PX:
            out.append(
                (
                    "skew",
                    f"skew K[0][1] = {skew:.6g} shifts points by up to {shift:.3g} px across the image (tolerance "
                    f"{SKEW_TOL_PX} px); the renderers ignore skew, so renders would not line up with the image: "
                    "BOP intrinsics have zero skew",
                )
            )
    return out


def gt_box_problems(
    bbox_obj: Any, bbox_visib: Any, px_count_visib: int, width: int, height: int, tol_px: int = 2
) -> list[tuple[str, str]]:
    """What is wrong with the boxes of one ``scene_gt_info.json`` instance of a ``width`` x ``height`` image:
    ``(field, message)`` pairs (field ``bbox_obj`` or ``bbox_visib``), empty when nothing is.

    As bop_toolkit computes them, a visible instance's ``bbox_visib`` (x, y, w, h) lies inside the image and
    its ``bbox_obj`` inside the 3x canvas around it (x from -width to 2 width); an instance with no visible
    pixel may have ``[-1, -1, -1, -1]``. Width and height are never negative. ``tol_px`` pixels of slack.

    >>> gt_box_problems([10, 10, 50, 40], [-30, 10, 50, 40], 100, 640, 480)[0][0]
    'bbox_visib'
    """
    out = []
    for key, box, (lo_x, lo_y, hi_x, hi_y), where in (
        ("bbox_obj", bbox_obj, (-width, -height, 2 * width, 2 * height), "the 3x canvas around the image"),
        ("bbox_visib", bbox_visib, (0, 0, width, height), "the image"),
    ):
        x, y, w, h = (int(v) for v in np.asarray(box).reshape(4))
        if (x, y, w, h) == (-1, -1, -1, -1):
            if px_count_visib > 0:
                out.append((key, f"[-1, -1, -1, -1] (no box) but px_count_visib is {px_count_visib}"))
            continue
        if w < 0 or h < 0:
            out.append((key, f"{[x, y, w, h]} has a negative width or height (x, y, width, height)"))
        elif x < lo_x - tol_px or y < lo_y - tol_px or x + w > hi_x + tol_px or y + h > hi_y + tol_px:
            out.append(
                (
                    key,
                    f"{[x, y, w, h]} (x, y, width, height) does not fit {where} ({width}x{height} image: x from "
                    f"{lo_x} to {hi_x}, y from {lo_y} to {hi_y}); recompute scene_gt_info.json (delete it and run "
                    "`bopnp prepare`)",
                )
            )
    return out


def is_int(v: Any) -> bool:
    """True for an int (also a float with an integral value, as some writers emit), never for a bool."""
    if isinstance(v, bool):
        return False
    if isinstance(v, (int, np.integer)):
        return True
    return isinstance(v, float) and math.isfinite(v) and v.is_integer()


def is_number(v: Any) -> bool:
    """True for a finite int or float, never for a bool."""
    if isinstance(v, bool):
        return False
    return isinstance(v, (int, float, np.integer, np.floating)) and math.isfinite(float(v))


def numbers(v: Any, n: int, source: str, field: str, problems: list[str]) -> np.ndarray | None:
    """``v`` as an (n,) float64 array of finite numbers, or None after appending a problem."""
    if not isinstance(v, (list, tuple)) or len(v) != n:
        got = f"{len(v)} values" if isinstance(v, (list, tuple)) else type(v).__name__
        problems.append(problem(source, field, f"expected a list of {n} numbers, got {got}"))
        return None
    bad = [i for i, x in enumerate(v) if not is_number(x)]
    if bad:
        problems.append(problem(source, field, f"entries {bad} are not finite numbers"))
        return None
    return np.asarray(v, np.float64)


def rotation_errors(Rs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(max |R^T R - I|, |det R - 1|) of each matrix of an (N, 3, 3) stack (or of one (3, 3) matrix: 0-d arrays)."""
    Rs = np.asarray(Rs, np.float64)
    ortho = np.abs(np.swapaxes(Rs, -1, -2) @ Rs - np.eye(3)).max(axis=(-2, -1))
    return ortho, np.abs(np.linalg.det(Rs) - 1.0)


def not_rotation(ortho: float, det: float, tol: float) -> str:
    """The message for a matrix whose errors (from :func:`rotation_errors`) reach ``tol``."""
    return f"not a rotation: |R^T R - I| = {ortho:.2g}, |det R - 1| = {det:.2g} (both must be < {tol:g})"


def check_rotation(R: np.ndarray, source: str, field: str, problems: list[str], tol: float = ROT_TOL) -> bool:
    """Append a problem unless R is orthonormal with det +1 within ``tol``; return whether it is."""
    ortho, det = rotation_errors(R)
    if ortho < tol and det < tol:
        return True
    problems.append(problem(source, field, f"{not_rotation(ortho, det, tol)}; store an orthonormal matrix, row-major"))
    return False

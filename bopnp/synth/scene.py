"""Random scene layouts for synthetic images: which objects, where, in which orientation.

Objects are placed in front of the camera at varied distances with their centre inside the image (so most
of each object is in view) and without their bounding spheres overlapping much in 3D (no object passes
through another); occlusion comes from objects at different distances overlapping in the image.

>>> import numpy as np
>>> K = np.array([[572.4, 0, 325.3], [0, 573.6, 242.0], [0, 0, 1]])
>>> layout = sample_layout(np.random.default_rng(0), K, (640, 480), [(1, 60.0), (2, 50.0)], (500.0, 1300.0))
>>> [p.obj_id for p in layout]
[1, 2]
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from bopnp.checks import check_shape
from bopnp.render.renderer import Placement  # the renderer's instance type: layouts render as they are


def random_rotation_np(rng: np.random.Generator) -> np.ndarray:
    """A rotation drawn uniformly from SO(3) (normalised Gaussian quaternion).

    Returns:
        (3, 3) float64.
    """
    w, x, y, z = (q := rng.normal(size=4)) / np.linalg.norm(q)
    return np.array(
        [
            [1 - 2 * (y * y + z * z), 2 * (x * y - w * z), 2 * (x * z + w * y)],
            [2 * (x * y + w * z), 1 - 2 * (x * x + z * z), 2 * (y * z - w * x)],
            [2 * (x * z - w * y), 2 * (y * z + w * x), 1 - 2 * (x * x + y * y)],
        ]
    )


def tabletop_rotation_np(
    rng: np.random.Generator,
    elevation_deg: tuple[float, float] = (10.0, 75.0),
    roll_std_deg: float = 10.0,
) -> np.ndarray:
    """A rotation of an object standing on a table (model +z up), seen by a camera looking down at it.

    The object turns freely about its vertical axis (yaw uniform in [0, 360)), the camera looks down at an
    elevation drawn uniformly from ``elevation_deg`` above the table, and rolls about its optical axis by a
    Gaussian angle (``roll_std_deg``, clipped to 3 sigma). On the 200 BOP'19 test images of LM-O the model z axis
    appears at elevations of 8..74 degrees and rolls within -61..22 degrees (5th..95th percentiles), the
    distribution real BOP test images have; uniform SO(3) rotations also show objects from below, which no test
    image does, and make the pose network learn a three times larger space from the same images.

    Returns:
        (3, 3) float64 ``R_m2c``: the model's +z axis maps to the table's up direction in the camera frame,
        ``(sin r cos e, -cos r cos e, -sin e)`` for elevation e and roll r.
    """
    yaw = rng.uniform(0.0, 2.0 * np.pi)
    elev = np.radians(rng.uniform(*elevation_deg))
    roll = np.radians(np.clip(rng.normal(0.0, roll_std_deg), -3 * roll_std_deg, 3 * roll_std_deg))
    cy, sy = np.cos(yaw), np.sin(yaw)
    R_yaw = np.array([[cy, -sy, 0.0], [sy, cy, 0.0], [0.0, 0.0, 1.0]])
    a = 0.5 * np.pi + elev  # tilt about the camera x axis: +z goes to (0, -cos e, -sin e)
    R_tilt = np.array([[1.0, 0.0, 0.0], [0.0, np.cos(a), -np.sin(a)], [0.0, np.sin(a), np.cos(a)]])
    cr, sr = np.cos(roll), np.sin(roll)
    R_roll = np.array([[cr, -sr, 0.0], [sr, cr, 0.0], [0.0, 0.0, 1.0]])
    return R_roll @ R_tilt @ R_yaw


#: how ``sample_layout`` draws rotations, by name
ROTATIONS = {"uniform": random_rotation_np, "tabletop": tabletop_rotation_np}


def sample_layout(
    rng: np.random.Generator,
    K: np.ndarray,
    size_wh: tuple[int, int],
    objects: Sequence[tuple[int, float]],
    depth_range_mm: tuple[float, float],
    *,
    placed: Sequence[Placement] = (),
    radii_placed_mm: Sequence[float] = (),
    min_gap: float = 0.8,
    in_view_margin: float = 0.3,
    cluster_px: tuple[float, float, float] | None = None,
    max_tries: int = 50,
    poses: str = "uniform",
) -> list[Placement]:
    """Place objects one after the other at random poses; an object that finds no free spot is left out.

    Args:
        rng: source of randomness.
        K: (3, 3) camera intrinsics.
        size_wh: image (width, height), pixels.
        objects: (obj_id, bounding-sphere radius mm) of each object to place, in order.
        depth_range_mm: (near, far) range of the objects' centre depth z, mm, sampled uniformly.
        placed: instances already in the scene (avoided by the new ones).
        radii_placed_mm: bounding-sphere radii of ``placed``, mm.
        min_gap: centres stay at least ``min_gap * (r_a + r_b)`` apart (1 = spheres never overlap).
        in_view_margin: the projected centre stays this fraction of the object's projected radius inside
            the image border.
        cluster_px: (u, v, sigma) in pixels to draw the projected centres from a Gaussian around (u, v)
            (clutter: more occlusion), or None for uniform positions.
        max_tries: attempts per object.
        poses: rotation distribution, a key of :data:`ROTATIONS` (``uniform`` over SO(3), or ``tabletop``).
    Returns:
        the new placements (not including ``placed``), in the order of ``objects``.
    """
    check_shape(np.asarray(K), "3 3", "K")
    if poses not in ROTATIONS:
        raise ValueError(f"poses must be one of {sorted(ROTATIONS)}, got {poses!r}")
    draw_rotation = ROTATIONS[poses]
    width, height = size_wh
    K_inv = np.linalg.inv(np.asarray(K, np.float64))
    f = 0.5 * (K[0, 0] + K[1, 1])
    centres = [np.asarray(p.t_m2c, np.float64) for p in placed]
    radii = list(radii_placed_mm)
    new: list[Placement] = []
    for obj_id, radius in objects:
        for _ in range(max_tries):
            z = rng.uniform(*depth_range_mm)
            margin = min(in_view_margin * f * radius / z, 0.45 * min(width, height))
            if cluster_px is None:
                u = rng.uniform(margin, width - margin)
                v = rng.uniform(margin, height - margin)
            else:
                cu, cv, sigma = cluster_px
                u = float(np.clip(rng.normal(cu, sigma), margin, width - margin))
                v = float(np.clip(rng.normal(cv, sigma), margin, height - margin))
            t = z * (K_inv @ np.array([u, v, 1.0]))
            if all(np.linalg.norm(t - c) >= min_gap * (radius + r) for c, r in zip(centres, radii)):
                break
        else:
            continue
        R = draw_rotation(rng)
        centres.append(t)
        radii.append(radius)
        new.append(Placement(int(obj_id), R, t))
    return new

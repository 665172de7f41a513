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
    Returns:
        the new placements (not including ``placed``), in the order of ``objects``.
    """
    check_shape(np.asarray(K), "3 3", "K")
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
        R = random_rotation_np(rng)
        centres.append(t)
        radii.append(radius)
        new.append(Placement(int(obj_id), R, t))
    return new

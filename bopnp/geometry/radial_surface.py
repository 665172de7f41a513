"""An object's outer surface as seen from its centre, and predicted model points moved out onto it.

A coordinate network early in training regresses its model points towards the object's centre (the mean of what
it cannot yet tell apart): the points keep their directions but shrink, and PnP, which fits that smaller object to
the same image pixels, puts it too close to the camera. Every true model point lies on the surface, so a point
predicted inside the object can be moved out along its direction from the centre until it reaches the surface.

The surface is tabulated as its *radial profile*: the largest distance from the centre of a surface point in each
direction bin of an equirectangular grid over the sphere (polar angle from +z, azimuth from +x; a bin that no
sample reached takes its neighbours' radius). A point already at or beyond that distance is left alone (never
pulled in), so a perfect prediction is unchanged.
"""

from __future__ import annotations

import math

import numpy as np
import torch
from torch import Tensor

from bopnp.checks import check_shape
from bopnp.geometry.mesh_symmetry import sample_surface

#: polar x azimuth bins of the radial profile: 2.8 degrees each
PROFILE_BINS = (64, 128)


def direction_bins(d: Tensor, bins: tuple[int, int] = PROFILE_BINS) -> Tensor:
    """The flat bin index of each direction.

    Args:
        d: (..., 3) vectors (any length > 0; a zero vector falls in the first polar row).
    Returns:
        (...) int64 in ``[0, n_polar * n_azimuth)``.
    """
    n_t, n_p = bins
    r = d.norm(dim=-1).clamp(min=torch.finfo(d.dtype).tiny)
    theta = torch.arccos((d[..., 2] / r).clamp(-1.0, 1.0))
    phi = torch.atan2(d[..., 1], d[..., 0])
    it = (theta * (n_t / math.pi)).long().clamp(0, n_t - 1)
    ip = ((phi + math.pi) * (n_p / (2 * math.pi))).long().clamp(0, n_p - 1)
    return it * n_p + ip


def box_centre_mm(vertices_mm: np.ndarray) -> np.ndarray:
    """(3,) float64 centre of the vertices' axis-aligned bounding box, from float32 vertices (the renderer's and
    the crop cache's coordinate normalisation)."""
    v = np.asarray(vertices_mm, dtype=np.float32).reshape(-1, 3)
    return (v.min(0).astype(np.float64) + v.max(0).astype(np.float64)) / 2


def radial_profile(
    vertices_mm: np.ndarray,
    faces: np.ndarray,
    centre_mm: np.ndarray | None = None,
    *,
    bins: tuple[int, int] = PROFILE_BINS,
    samples: int = 200_000,
    seed: int = 0,
) -> np.ndarray:
    """The largest distance from ``centre_mm`` of a surface point in each direction bin.

    Args:
        vertices_mm: (V, 3) mesh vertices, mm. faces: (F, 3) vertex indices.
        centre_mm: (3,) the centre the directions are taken from; None: :func:`box_centre_mm`, the coordinate
            normalisation's centre.
        bins: (polar, azimuth) bin counts. samples: surface points drawn (by area) to fill the bins.
    Returns:
        (polar * azimuth,) float32 radii, mm (all 0 for a mesh without faces: nothing is moved).
    """
    faces = np.asarray(faces)
    out = np.zeros(bins[0] * bins[1], np.float64)
    if len(faces) == 0 or len(vertices_mm) == 0:
        return out.astype(np.float32)
    pts, _, _ = sample_surface(np.asarray(vertices_mm, np.float64), faces, samples, np.random.default_rng(seed))
    pts = np.concatenate([pts, np.asarray(vertices_mm, np.float64)])  # the corners too: the farthest points
    centre = box_centre_mm(vertices_mm) if centre_mm is None else np.asarray(centre_mm, np.float64).reshape(3)
    rel = pts - centre[None]
    k = direction_bins(torch.from_numpy(rel), bins).numpy()
    np.maximum.at(out, k, np.linalg.norm(rel, axis=1))
    return _fill_empty(out.reshape(bins)).reshape(-1).astype(np.float32)


def _fill_empty(grid: np.ndarray, rounds: int = 8) -> np.ndarray:
    """Bins no sample reached (the small ones near the poles) take the largest radius of their filled neighbours
    (azimuth wraps round), for up to ``rounds`` rings; what is still empty stays 0 (points there are not moved)."""
    grid = grid.copy()
    for _ in range(rounds):
        empty = grid <= 0
        if not empty.any():
            break
        up = np.concatenate([grid[:1], grid[:-1]])
        down = np.concatenate([grid[1:], grid[-1:]])
        near = np.maximum.reduce([up, down, np.roll(grid, 1, axis=1), np.roll(grid, -1, axis=1)])
        grid = np.where(empty, near, grid)
    return grid


def expand_to_surface(points_mm: Tensor, centre_mm: Tensor, profile_mm: Tensor) -> Tensor:
    """Points moved out along their direction from the centre to the surface, where they lie inside it.

    Args:
        points_mm: (B, N, 3). centre_mm: (B, 3). profile_mm: (B, D) each item's :func:`radial_profile`
            (``D = polar * azimuth`` of :data:`PROFILE_BINS`).
    Returns:
        (B, N, 3) mm: ``c + (p - c) * max(r_bin, |p - c|) / |p - c|``. Differentiable in ``points_mm`` (the bin is
        piecewise constant); a point at the centre stays there.
    """
    dims = check_shape(points_mm, "B N 3", "points_mm")
    check_shape(centre_mm, "B 3", "centre_mm", dims)
    check_shape(profile_mm, "B D", "profile_mm", dims)
    if profile_mm.shape[1] != PROFILE_BINS[0] * PROFILE_BINS[1]:
        raise ValueError(f"profile_mm: expected {PROFILE_BINS[0] * PROFILE_BINS[1]} bins, got {profile_mm.shape[1]}")
    rel = points_mm - centre_mm[:, None].to(points_mm.dtype)
    r = rel.norm(dim=-1)
    r_surface = profile_mm.to(points_mm.dtype).gather(1, direction_bins(rel.detach()))
    gain = torch.where(r < r_surface, r_surface / r.clamp(min=1e-9), torch.ones_like(r))
    gain = torch.where(r > 0, gain, torch.ones_like(r))
    return points_mm + rel * (gain - 1.0)[..., None]


def expand_coordinates(
    xyz: Tensor, centre_mm: Tensor, half_extent_mm: Tensor, profile_mm: Tensor, min_coord: float = 0.1
) -> Tensor:
    """:func:`expand_to_surface` on a coordinate network's normalised maps, object pixels only.

    Args:
        xyz: (B, 3, S, S) normalised coordinates, ``x_mm = centre_mm + xyz * half_extent_mm``.
        centre_mm, half_extent_mm: (B, 3). profile_mm: (B, D) radial profiles about ``centre_mm``.
        min_coord: pixels whose largest |coordinate| is at most this are background and stay as they are (as
            :func:`bopnp.models.correspondences.crop_correspondences` tells them apart).
    Returns:
        (B, 3, S, S) normalised coordinates.
    """
    check_shape(xyz, "B 3 S S", "xyz")
    B, _, S, _ = xyz.shape
    c = centre_mm.to(xyz.dtype)
    h = half_extent_mm.to(xyz.dtype)
    pts = c[:, None] + xyz.flatten(2).transpose(1, 2) * h[:, None]
    moved = expand_to_surface(pts, c, profile_mm)
    moved = ((moved - c[:, None]) / h[:, None]).transpose(1, 2).reshape(B, 3, S, S)
    on_object = xyz.detach().abs().amax(1, keepdim=True) > min_coord
    return torch.where(on_object, moved, xyz)


__all__ = [
    "PROFILE_BINS",
    "box_centre_mm",
    "direction_bins",
    "expand_coordinates",
    "expand_to_surface",
    "radial_profile",
]

"""Procedural test meshes with known rotation groups, shared by the geometry tests (not a test module)."""

from __future__ import annotations

import math

import numpy as np

from bopnp.bop.mesh import Mesh
from bopnp.synth.procedural import assemble, box_parts, prism_parts, revolution_part


def _plain(v, n):
    return np.full((len(v), 3), 0.5)


def box(size_mm=(100.0, 64.0, 48.0)) -> Mesh:
    """An axis-aligned box centred at the origin."""
    return assemble(box_parts(size_mm), _plain)


def cylinder(radius_mm=30.0, height_mm=120.0, segments=64) -> Mesh:
    """A closed cylinder about z, centred at the origin."""
    r, h = radius_mm, height_mm / 2
    parts = [
        revolution_part([(0, -h), (r, -h)], segments),
        revolution_part([(r, -h), (r, h)], segments),
        revolution_part([(r, h), (0, h)], segments),
    ]
    return assemble(parts, _plain)


def cone(radius_mm=40.0, height_mm=80.0, segments=64) -> Mesh:
    """A closed cone about z, base at z = 0, apex at z = height."""
    parts = [
        revolution_part([(0, 0), (radius_mm, 0)], segments),
        revolution_part([(radius_mm, 0), (0, height_mm)], segments),
    ]
    return assemble(parts, _plain)


def icosphere(radius_mm=50.0, subdivisions=3) -> Mesh:
    """A subdivided icosahedron on a sphere of ``radius_mm`` about the origin."""
    t = (1 + math.sqrt(5)) / 2
    v = [(-1, t, 0), (1, t, 0), (-1, -t, 0), (1, -t, 0), (0, -1, t), (0, 1, t), (0, -1, -t), (0, 1, -t),
         (t, 0, -1), (t, 0, 1), (-t, 0, -1), (-t, 0, 1)]  # fmt: skip
    f = [(0, 11, 5), (0, 5, 1), (0, 1, 7), (0, 7, 10), (0, 10, 11), (1, 5, 9), (5, 11, 4), (11, 10, 2), (10, 7, 6),
         (7, 1, 8), (3, 9, 4), (3, 4, 2), (3, 2, 6), (3, 6, 8), (3, 8, 9), (4, 9, 5), (2, 4, 11), (6, 2, 10),
         (8, 6, 7), (9, 8, 1)]  # fmt: skip
    verts = [np.asarray(p, np.float64) / np.linalg.norm(p) for p in v]
    faces = list(f)

    def mid(a, b, cache):
        key = (min(a, b), max(a, b))
        if key not in cache:
            m = verts[a] + verts[b]
            verts.append(m / np.linalg.norm(m))
            cache[key] = len(verts) - 1
        return cache[key]

    for _ in range(subdivisions):
        cache: dict[tuple[int, int], int] = {}
        new = []
        for a, b, c in faces:
            ab, bc, ca = mid(a, b, cache), mid(b, c, cache), mid(c, a, cache)
            new += [(a, ab, ca), (b, bc, ab), (c, ca, bc), (ab, bc, ca)]
        faces = new
    vertices = np.asarray(verts) * radius_mm
    return Mesh(vertices.astype(np.float32), np.asarray(faces, np.int64))


def wedge() -> Mesh:
    """An irregular pentagonal prism with a sloped top: no symmetry."""
    poly = [(-48.0, -30.0), (40.0, -36.0), (52.0, 10.0), (5.0, 42.0), (-40.0, 28.0)]
    return assemble(prism_parts(poly, -30.0, (0.18, -0.1, 28.0)), _plain)


def turn(axis, deg) -> np.ndarray:
    """(4, 4) rotation by ``deg`` about ``axis`` through the origin."""
    from bopnp.geometry.mesh_symmetry import rotation_about

    T = np.eye(4)
    T[:3, :3] = rotation_about(np.asarray(axis, np.float64), math.radians(deg))
    return T

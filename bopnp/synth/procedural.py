"""Procedural meshes with known symmetries: the objects of the synthetic datasets and random distractors.

Every mesh is built from *parts* whose vertices sit on regular grids (flat quads and triangles, surfaces of
revolution), so that each declared symmetry maps the vertex set exactly onto itself. Colours are smooth functions
of the vertex position and normal chosen to be invariant under the declared symmetries and under nothing more:
BOP symmetries are symmetries of shape AND texture.

Units: millimetres, model frame; normals are unit vectors; colours uint8 RGB.

>>> objs = dataset_objects()
>>> [o.name for o in objs][:3]
['mug', 'wedge', 'box']
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from bopnp.bop.mesh import Mesh
from bopnp.bop.records import ContinuousSymmetry, ModelInfo
from bopnp.bop.symmetry import axis_angle_matrix

#: target edge length of the vertex grids, mm (fine enough for smooth colour patterns)
GRID_STEP_MM = 6.0


# ----------------------------------------------------------------------------------------------- mesh parts
@dataclass
class _Part:
    """A piece of a mesh under construction: (V, 3) vertices mm, (V, 3) unit normals, (F, 3) faces."""

    vertices: np.ndarray
    normals: np.ndarray
    faces: np.ndarray


def _unit(v: np.ndarray) -> np.ndarray:
    n = np.linalg.norm(v, axis=-1, keepdims=True)
    return v / np.where(n > 0, n, 1.0)


def _orient_faces(vertices: np.ndarray, normals: np.ndarray, faces: np.ndarray) -> np.ndarray:
    """Flip the faces whose winding disagrees with their vertex normals (counter-clockwise seen from outside)."""
    a, b, c = (vertices[faces[:, k]] for k in range(3))
    face_n = np.cross(b - a, c - a)
    vert_n = normals[faces].sum(1)
    flip = (face_n * vert_n).sum(1) < 0
    faces = faces.copy()
    faces[flip] = faces[flip][:, [0, 2, 1]]
    return faces


def _n_steps(length_mm: float, step_mm: float) -> int:
    return max(1, int(math.ceil(length_mm / step_mm - 1e-9)))


def quad_part(a, b, c, d, step_mm: float = GRID_STEP_MM) -> _Part:
    """A flat quad ``a b c d`` (corners in order, (3,) mm each, coplanar) as a bilinear grid of triangles.

    The normal is ``(b - a) x (d - a)`` normalised: list the corners counter-clockwise seen from outside.
    """
    a, b, c, d = (np.asarray(p, np.float64) for p in (a, b, c, d))
    nu = _n_steps(max(np.linalg.norm(b - a), np.linalg.norm(c - d)), step_mm)
    nv = _n_steps(max(np.linalg.norm(d - a), np.linalg.norm(c - b)), step_mm)
    s = np.linspace(0.0, 1.0, nu + 1)[None, :, None]  # along a->b
    t = np.linspace(0.0, 1.0, nv + 1)[:, None, None]  # along a->d
    grid = (1 - s) * (1 - t) * a + s * (1 - t) * b + s * t * c + (1 - s) * t * d  # (nv+1, nu+1, 3)
    vertices = grid.reshape(-1, 3)
    normal = _unit(np.cross(b - a, d - a))
    normals = np.broadcast_to(normal, vertices.shape).copy()
    idx = np.arange((nv + 1) * (nu + 1)).reshape(nv + 1, nu + 1)
    v00, v01, v11, v10 = idx[:-1, :-1], idx[:-1, 1:], idx[1:, 1:], idx[1:, :-1]
    faces = np.concatenate([np.stack([v00, v01, v11], -1).reshape(-1, 3), np.stack([v00, v11, v10], -1).reshape(-1, 3)])
    return _Part(vertices, normals, _orient_faces(vertices, normals, faces))


def triangle_part(a, b, c, step_mm: float = GRID_STEP_MM) -> _Part:
    """A flat triangle ``a b c`` ((3,) mm each, counter-clockwise seen from outside) subdivided regularly."""
    a, b, c = (np.asarray(p, np.float64) for p in (a, b, c))
    m = _n_steps(max(np.linalg.norm(b - a), np.linalg.norm(c - a), np.linalg.norm(c - b)), step_mm)
    index: dict[tuple[int, int], int] = {}
    vertices = []
    for i in range(m + 1):
        for j in range(m + 1 - i):
            index[(i, j)] = len(vertices)
            vertices.append(a + (b - a) * (i / m) + (c - a) * (j / m))
    faces = []
    for i in range(m):
        for j in range(m - i):
            faces.append((index[(i, j)], index[(i + 1, j)], index[(i, j + 1)]))
            if i + j + 1 < m:
                faces.append((index[(i + 1, j)], index[(i + 1, j + 1)], index[(i, j + 1)]))
    vertices = np.asarray(vertices)
    normal = _unit(np.cross(b - a, c - a))
    normals = np.broadcast_to(normal, vertices.shape).copy()
    return _Part(vertices, normals, _orient_faces(vertices, normals, np.asarray(faces, np.int64)))


def revolution_part(profile, segments: int, step_mm: float = GRID_STEP_MM) -> _Part:
    """A smooth surface of revolution about the z axis.

    Args:
        profile: (P, 2) polyline of (radius, z) points in mm, traversed so that the outside is on its right
            (e.g. from the bottom axis outwards, up the side, back to the top axis). Its normals are smooth;
            make a sharp edge by starting a new part. Points with radius 0 become a single pole vertex.
        segments: number of segments around the axis; the vertex set is invariant under rotations by
            ``2 pi / segments``.
    """
    profile = np.asarray(profile, np.float64)
    # resample each profile segment to the grid step
    pts = []
    for (r0, z0), (r1, z1) in zip(profile[:-1], profile[1:]):
        k = _n_steps(math.hypot(r1 - r0, z1 - z0), step_mm)
        for i in range(k):
            pts.append((r0 + (r1 - r0) * i / k, z0 + (z1 - z0) * i / k))
    pts.append(tuple(profile[-1]))
    pts = np.asarray(pts)
    # per-point outward normal in the (r, z) half plane: average of the adjacent segments' normals
    seg = np.diff(pts, axis=0)
    seg_n = _unit(np.stack([seg[:, 1], -seg[:, 0]], -1))
    pt_n = np.zeros_like(pts)
    pt_n[:-1] += seg_n
    pt_n[1:] += seg_n
    pt_n = _unit(pt_n)
    theta = 2 * np.pi * np.arange(segments) / segments
    cos, sin = np.cos(theta), np.sin(theta)
    vertices, normals, rings = [], [], []
    for (r, z), (nr, nz) in zip(pts, pt_n):
        start = len(vertices)
        if r <= 1e-9:
            vertices.append((0.0, 0.0, z))
            normals.append((0.0, 0.0, math.copysign(1.0, nz)))
            rings.append(np.full(segments, start))
        else:
            vertices.extend(np.stack([r * cos, r * sin, np.full(segments, z)], -1))
            normals.extend(np.stack([nr * cos, nr * sin, np.full(segments, nz)], -1))
            rings.append(start + np.arange(segments))
    faces = []
    nxt = np.roll(np.arange(segments), -1)
    for ring0, ring1 in zip(rings[:-1], rings[1:]):
        a, b, c, d = ring0, ring0[nxt], ring1[nxt], ring1
        tri = np.concatenate([np.stack([a, b, c], -1), np.stack([a, c, d], -1)])
        faces.append(tri[(tri[:, 0] != tri[:, 1]) & (tri[:, 1] != tri[:, 2]) & (tri[:, 0] != tri[:, 2])])
    vertices, normals = np.asarray(vertices), _unit(np.asarray(normals))
    return _Part(vertices, normals, _orient_faces(vertices, normals, np.concatenate(faces)))


def box_parts(size_mm, centre_mm=(0.0, 0.0, 0.0), step_mm: float = GRID_STEP_MM) -> list[_Part]:
    """The six faces of an axis-aligned box of ``size_mm`` (3,) centred at ``centre_mm`` (3,)."""
    hx, hy, hz = np.asarray(size_mm, np.float64) / 2
    c = np.asarray(centre_mm, np.float64)
    p = lambda x, y, z: c + np.array([x, y, z])  # noqa: E731
    return [
        quad_part(p(hx, -hy, -hz), p(hx, hy, -hz), p(hx, hy, hz), p(hx, -hy, hz), step_mm),
        quad_part(p(-hx, hy, -hz), p(-hx, -hy, -hz), p(-hx, -hy, hz), p(-hx, hy, hz), step_mm),
        quad_part(p(hx, hy, -hz), p(-hx, hy, -hz), p(-hx, hy, hz), p(hx, hy, hz), step_mm),
        quad_part(p(-hx, -hy, -hz), p(hx, -hy, -hz), p(hx, -hy, hz), p(-hx, -hy, hz), step_mm),
        quad_part(p(-hx, -hy, hz), p(hx, -hy, hz), p(hx, hy, hz), p(-hx, hy, hz), step_mm),
        quad_part(p(-hx, hy, -hz), p(hx, hy, -hz), p(hx, -hy, -hz), p(-hx, -hy, -hz), step_mm),
    ]


def prism_parts(polygon_xy, z_bottom: float, z_top, step_mm: float = GRID_STEP_MM) -> list[_Part]:
    """A prism over a convex polygon.

    Args:
        polygon_xy: (P, 2) convex polygon, counter-clockwise seen from +z, mm.
        z_bottom: height of the flat bottom, mm.
        z_top: height of the top, mm: a number, or (3,) plane coefficients (a, b, c) for ``z = a x + b y + c``.
    The caps are fans of triangles around the polygon's vertex mean, so a regular polygon keeps its
    rotational symmetry.
    """
    poly = np.asarray(polygon_xy, np.float64)
    plane = np.array([0.0, 0.0, float(z_top)]) if np.isscalar(z_top) else np.asarray(z_top, np.float64)
    top_z = lambda xy: plane[0] * xy[0] + plane[1] * xy[1] + plane[2]  # noqa: E731
    centre = poly.mean(0)
    parts = []
    for p0, p1 in zip(poly, np.roll(poly, -1, axis=0)):
        parts.append(quad_part([*p0, z_bottom], [*p1, z_bottom], [*p1, top_z(p1)], [*p0, top_z(p0)], step_mm))
        parts.append(triangle_part([*centre, top_z(centre)], [*p0, top_z(p0)], [*p1, top_z(p1)], step_mm))
        parts.append(triangle_part([*centre, z_bottom], [*p1, z_bottom], [*p0, z_bottom], step_mm))
    return parts


def assemble(parts: list[_Part], color_fn) -> Mesh:
    """Concatenate parts into one :class:`Mesh` and colour it.

    Args:
        parts: the mesh parts.
        color_fn: ``(vertices (V, 3) mm, normals (V, 3)) -> (V, 3)`` float RGB in [0, 1].
    """
    offsets = np.cumsum([0] + [len(p.vertices) for p in parts[:-1]])
    vertices = np.concatenate([p.vertices for p in parts])
    normals = _unit(np.concatenate([p.normals for p in parts]))
    faces = np.concatenate([p.faces + o for p, o in zip(parts, offsets)])
    rgb = np.clip(np.asarray(color_fn(vertices, normals), np.float64), 0.0, 1.0)
    colors = np.round(rgb * 255).astype(np.uint8)
    return Mesh(vertices.astype(np.float32), faces.astype(np.int64), normals.astype(np.float32), colors)


# ------------------------------------------------------------------------------------------ symmetry helpers
def rigid(R: np.ndarray, t_mm=(0.0, 0.0, 0.0)) -> np.ndarray:
    """(4, 4) transform from (3, 3) rotation and (3,) translation in mm."""
    T = np.eye(4)
    T[:3, :3] = R
    T[:3, 3] = t_mm
    return T


def _z_turns(n: int) -> tuple[np.ndarray, ...]:
    """The n - 1 non-identity rotations about z by multiples of 2 pi / n, as (4, 4)."""
    return tuple(rigid(axis_angle_matrix(2 * np.pi * k / n, (0, 0, 1))) for k in range(1, n))


def _wave(x: np.ndarray, period_mm: float, phase: float = 0.0) -> np.ndarray:
    return 0.5 + 0.5 * np.cos(2 * np.pi * x / period_mm + phase)


def _mix(weight: np.ndarray, c0, c1) -> np.ndarray:
    w = np.asarray(weight)[:, None]
    return (1 - w) * np.asarray(c0, np.float64) + w * np.asarray(c1, np.float64)


def _z_invariants(v: np.ndarray, n: np.ndarray) -> dict[str, np.ndarray]:
    """Functions of (position, normal) invariant under every rotation about the z axis."""
    return {
        "z": v[:, 2],
        "rho": np.hypot(v[:, 0], v[:, 1]),
        "nz": n[:, 2],
        "s": n[:, 0] * v[:, 1] - n[:, 1] * v[:, 0],  # (n x p)_z: tangential coordinate on a side face
    }


# ----------------------------------------------------------------------------------------- dataset objects
@dataclass(frozen=True, eq=False)
class ProceduralObject:
    """A procedural object: its coloured mesh and its symmetries as BOP declares them.

    Attributes:
        name: a short descriptive name.
        mesh: the coloured mesh, mm, model frame.
        symmetries_discrete: (4, 4) transforms (t in mm) mapping the object onto itself, identity excluded.
        symmetries_continuous: BOP dicts ``{"axis": [x, y, z], "offset": [x, y, z] mm}``.
    """

    name: str
    mesh: Mesh
    symmetries_discrete: tuple[np.ndarray, ...] = ()
    symmetries_continuous: tuple[dict, ...] = field(default_factory=tuple)


def _mug() -> ProceduralObject:
    """A lidded cylinder with a handle: asymmetric in shape (the handle) and texture (a label on one side)."""
    r, h = 38.0, 90.0
    body = [
        revolution_part([(0, -h / 2), (r, -h / 2)], 48),
        revolution_part([(r, -h / 2), (r, h / 2)], 48),
        revolution_part([(r, h / 2), (0, h / 2)], 48),
    ]
    handle = box_parts((26.0, 14.0, 56.0), centre_mm=(r + 10.0, 0.0, 0.0))

    def color(v, n):
        theta = np.arctan2(v[:, 1], v[:, 0])
        label = np.exp(-((((theta - 2.2 + np.pi) % (2 * np.pi) - np.pi) / 0.6) ** 2)) * np.exp(
            -(((v[:, 2] - 5) / 22) ** 2)
        )
        base = _mix(_wave(v[:, 2], 30.0), (0.85, 0.85, 0.8), (0.55, 0.75, 0.95))
        c = _mix(label, (0, 0, 0), (0.95, 0.35, 0.1)) + base * (1 - label[:, None])
        handle = np.clip((v[:, 0] - r + 2) / 4, 0, 1)  # 1 on the handle, 0 on the body
        return _mix(handle, c, (0.2, 0.25, 0.7)) + 0.1 * _wave(v[:, 0] + v[:, 1], 45)[:, None]

    return ProceduralObject("mug", assemble(body + handle, color))


def _wedge() -> ProceduralObject:
    """An irregular pentagonal prism with a sloped top: no symmetry."""
    poly = [(-48.0, -30.0), (40.0, -36.0), (52.0, 10.0), (5.0, 42.0), (-40.0, 28.0)]
    parts = prism_parts(poly, -30.0, (0.18, -0.1, 28.0))

    def color(v, n):
        r = 0.5 + 0.35 * np.sin(v[:, 0] / 14.0) * np.cos(v[:, 2] / 19.0)
        g = 0.45 + 0.4 * _wave(v[:, 1] + 0.5 * v[:, 2], 38.0)
        b = 0.3 + 0.5 * np.clip(n[:, 2], 0, 1) + 0.15 * np.sin((v[:, 0] - v[:, 1]) / 11.0)
        return np.stack([r, g, b], -1)

    return ProceduralObject("wedge", assemble(parts, color))


def _box() -> ProceduralObject:
    """A 100 x 64 x 48 mm box, top and bottom coloured differently: 2-fold symmetric about z."""
    parts = box_parts((100.0, 64.0, 48.0))

    def color(v, n):
        # (x, y) -> (-x, -y) leaves z, normals' z, x*y and even functions of x and y unchanged
        x, y, z = v.T
        top = np.clip(n[:, 2], 0, 1)
        bottom = np.clip(-n[:, 2], 0, 1)
        side_x = np.abs(n[:, 0])
        side = _mix(side_x, (0.15, 0.6, 0.3), (0.85, 0.2, 0.15)) * (0.65 + 0.35 * _wave(z, 16.0))[:, None]
        pattern = 0.5 + 0.5 * np.sin(x / 18.0) * np.sin(y / 11.0)  # odd * odd: even under the turn, not under mirrors
        c = _mix(top, side, (0.95, 0.85, 0.2) * (0.55 + 0.45 * pattern)[:, None])
        return _mix(bottom, c, (0.2, 0.3, 0.8) * (0.6 + 0.4 * _wave(np.hypot(x, y), 20.0))[:, None])

    return ProceduralObject("box", assemble(parts, color), _z_turns(2))


def _tower() -> ProceduralObject:
    """A 56 x 56 x 110 mm square pillar with a chiral pattern: 4-fold symmetric about z."""
    parts = box_parts((56.0, 56.0, 110.0), step_mm=56.0 / 10)

    def color(v, n):
        f = _z_invariants(v, n)
        x, y = v[:, 0], v[:, 1]
        chiral = x * y * (x * x - y * y) / 28.0**4  # invariant under quarter turns, odd under mirrors
        side = _mix(_wave(f["s"] + 0.4 * f["z"], 22.0, phase=1.0), (0.1, 0.45, 0.55), (0.95, 0.75, 0.6))
        side = side * (0.8 + 0.2 * np.tanh(f["z"] / 30.0))[:, None]  # darker at the bottom
        top = _mix(0.5 + 0.5 * np.tanh(3 * chiral), (0.9, 0.2, 0.5), (0.95, 0.95, 0.9))
        bottom = _mix(0.5 + 0.5 * np.tanh(3 * chiral), (0.2, 0.2, 0.25), (0.5, 0.8, 0.9))
        wt, wb = np.clip(f["nz"], 0, 1), np.clip(-f["nz"], 0, 1)
        return side * (1 - wt - wb)[:, None] + top * wt[:, None] + bottom * wb[:, None]

    return ProceduralObject("tower", assemble(parts, color), _z_turns(4))


def _hexnut() -> ProceduralObject:
    """A hexagonal prism with alternating side colours: 3-fold symmetric about z."""
    R = 46.0
    poly = [(R * math.cos(a), R * math.sin(a)) for a in np.arange(6) * np.pi / 3]
    parts = prism_parts(poly, -26.0, 26.0, step_mm=R / 8)

    def color(v, n):
        f = _z_invariants(v, n)
        x, y = v[:, 0], v[:, 1]
        alt = 3 * n[:, 0] ** 2 * n[:, 1] - n[:, 1] ** 3  # sin(3 phi) of the normal: +-1 on alternating sides
        side = _mix(0.5 + 0.5 * alt, (0.9, 0.55, 0.1), (0.25, 0.2, 0.75)) * (0.7 + 0.3 * _wave(f["z"], 18.0))[:, None]
        tri = (3 * x * x * y - y**3) / R**3  # rho^3 sin(3 theta): 3-fold, not 6-fold
        cap_top = _mix(0.5 + 0.5 * np.tanh(2.5 * tri), (0.95, 0.95, 0.9), (0.8, 0.1, 0.2))
        cap_bot = _mix(_wave(f["rho"], 16.0), (0.3, 0.3, 0.3), (0.6, 0.9, 0.6))
        top, bot = np.clip(f["nz"], 0, 1), np.clip(-f["nz"], 0, 1)
        return side * (1 - top - bot)[:, None] + cap_top * top[:, None] + cap_bot * bot[:, None]

    return ProceduralObject("hexnut", assemble(parts, color), _z_turns(3))


def _bottle() -> ProceduralObject:
    """A bottle (surface of revolution) with colour bands: continuous symmetry about z."""
    segs = 56
    parts = [
        revolution_part([(0, -70), (34, -70)], segs),
        revolution_part([(34, -70), (34, 15), (24, 42), (13, 55), (13, 70)], segs),
        revolution_part([(13, 70), (0, 70)], segs),
    ]

    def color(v, n):
        f = _z_invariants(v, n)
        band = _wave(f["z"], 24.0)
        body = _mix(band, (0.1, 0.55, 0.25), (0.9, 0.9, 0.8))
        label = np.exp(-(((f["z"] + 25) / 16) ** 4))
        c = _mix(label, body, (0.85, 0.15, 0.1))
        cap = np.clip((f["z"] - 50) / 6, 0, 1)
        return _mix(cap, c, (0.95, 0.8, 0.1)) * (0.85 + 0.15 * np.abs(f["nz"]))[:, None]

    return ProceduralObject(
        "bottle", assemble(parts, color), symmetries_continuous=({"axis": [0.0, 0.0, 1.0], "offset": [0.0, 0.0, 0.0]},)
    )


def dataset_objects() -> list[ProceduralObject]:
    """The procedural objects of a synthetic dataset, in obj_id order (obj_id = index + 1).

    mug and wedge: no symmetry; box: 2-fold about z; tower: 4-fold about z; hexnut: 3-fold about z;
    bottle: continuous about z. Sizes 90 to 150 mm, like LM-O's objects. The same for every seed.
    """
    return [_mug(), _wedge(), _box(), _tower(), _hexnut(), _bottle()]


# ------------------------------------------------------------------------------------------------ distractors
def random_distractor(rng: np.random.Generator) -> Mesh:
    """A random coloured mesh (box, prism, body of revolution or blob), 40 to 160 mm, unlike the dataset objects.

    Args:
        rng: the source of randomness (the mesh is a function of its state).
    """
    kind = rng.choice(["box", "prism", "revolution", "blob"])
    step = 8.0
    if kind == "box":
        parts = box_parts(rng.uniform(25, 140, 3), step_mm=step)
    elif kind == "prism":
        k = int(rng.integers(3, 9))
        angles = np.sort(rng.uniform(0, 2 * np.pi, k))
        radius = rng.uniform(25, 70)
        poly = np.stack([np.cos(angles), np.sin(angles)], -1) * radius * rng.uniform(0.6, 1.0, (k, 1))
        if _signed_area(poly) <= 1.0 or not _is_convex(poly):
            poly = np.stack([np.cos(angles), np.sin(angles)], -1) * radius  # points on a circle: convex
        h = rng.uniform(20, 120)
        parts = prism_parts(poly, -h / 2, (rng.uniform(-0.3, 0.3), rng.uniform(-0.3, 0.3), h / 2), step_mm=step)
    elif kind == "revolution":
        h = rng.uniform(40, 150)
        zs = np.linspace(-h / 2, h / 2, int(rng.integers(3, 6)))
        rs = rng.uniform(10, 55, len(zs))
        profile = [(0.0, zs[0])] + list(zip(rs, zs)) + [(0.0, zs[-1])]
        parts = [revolution_part(profile, int(rng.integers(5, 40)), step_mm=step)]
    else:
        radii = rng.uniform(20, 70, 3)
        parts = [
            revolution_part(
                [(0.0, -1.0), *[(math.sin(a), -math.cos(a)) for a in np.linspace(0.2, np.pi - 0.2, 8)], (0.0, 1.0)],
                24,
                step_mm=0.1,
            )
        ]
        parts[0].vertices = parts[0].vertices * radii
        parts[0].normals = _unit(parts[0].normals / radii)

    c0, c1 = rng.uniform(0, 1, 3), rng.uniform(0, 1, 3)
    freq = rng.uniform(1 / 60, 1 / 8, 3)
    direction = _unit(rng.normal(size=3))
    sharp = rng.uniform(0.5, 8)

    def color(v, n):
        w = 0.5 + 0.5 * np.tanh(sharp * np.sin(2 * np.pi * (v @ direction) * freq[0]))
        return _mix(w, c0, c1) * (0.8 + 0.2 * np.sin(v[:, 1] * freq[1] + v[:, 2] * freq[2]))[:, None]

    return assemble(parts, color)


def _signed_area(poly: np.ndarray) -> float:
    x, y = poly[:, 0], poly[:, 1]
    return 0.5 * float(np.sum(x * np.roll(y, -1) - np.roll(x, -1) * y))


def _is_convex(poly: np.ndarray) -> bool:
    e = np.roll(poly, -1, axis=0) - poly
    cross = e[:, 0] * np.roll(e[:, 1], -1) - e[:, 1] * np.roll(e[:, 0], -1)
    return bool(np.all(cross > 1e-6))


# -------------------------------------------------------------------------------------------- models_info
def model_info(obj_id: int, mesh: Mesh, symmetries_discrete=(), symmetries_continuous=()) -> ModelInfo:
    """The ``models_info.json`` record of a mesh (write it with :func:`bopnp.bop.io.save_models_info`).

    Args:
        obj_id: the object id.
        mesh: the model, mm.
        symmetries_discrete: (4, 4) transforms (t in mm), identity excluded.
        symmetries_continuous: BOP dicts ``{"axis": [x, y, z], "offset": [x, y, z] mm}``.
    Returns:
        :class:`ModelInfo` with the diameter (largest distance between two vertices, mm) and the
        bounding box of the vertices.
    """
    from scipy.spatial import ConvexHull
    from scipy.spatial.distance import pdist

    v = np.asarray(mesh.vertices_mm, np.float64)
    hull = v[ConvexHull(v).vertices]
    lo, hi = v.min(0), v.max(0)
    return ModelInfo(
        obj_id=int(obj_id),
        diameter_mm=float(pdist(hull).max()),
        min_mm=lo,
        size_mm=hi - lo,
        symmetries_discrete=np.asarray(symmetries_discrete, np.float64).reshape(-1, 4, 4),
        symmetries_continuous=tuple(
            ContinuousSymmetry(np.asarray(s["axis"], np.float64), np.asarray(s["offset"], np.float64))
            for s in symmetries_continuous
        ),
    )

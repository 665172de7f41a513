"""``models_info.json`` computed from the meshes: diameter, bounding box and symmetries.

- ``diameter``: the largest distance between two vertices, exact: it is attained between two vertices of the
  convex hull, so only those are compared (pruned by their distance from the box centre, in bounded chunks).
- ``min_x/y/z``, ``size_x/y/z``: the axis-aligned box of the vertices, mm.
- ``symmetries_discrete`` / ``symmetries_continuous``: found on the surface by
  :func:`bopnp.geometry.mesh_symmetry.find_symmetries` (4x4 row-major transforms in mm; axis and offset), so that
  :func:`bopnp.bop.symmetry.symmetry_transforms`, ``bopnp check``, training and evaluation read them unchanged.

>>> import numpy as np
>>> from bopnp.bop.mesh import Mesh
>>> tri = Mesh(np.array([[0, 0, 0], [30, 0, 0], [0, 40, 0]], np.float32), np.array([[0, 1, 2]]))
>>> diameter_mm(tri.vertices_mm)
50.0
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import numpy as np

from bopnp.bop.mesh import Mesh
from bopnp.bop.records import ContinuousSymmetry, ModelInfo
from bopnp.errors import ConfigError, DatasetError
from bopnp.geometry.mesh_symmetry import (
    AppearanceFn,
    SymmetryConfig,
    SymmetryResult,
    find_symmetries,
    vertex_color_appearance,
)

#: a mesh whose diameter is below this many mm is taken for metres (BOP models are in mm)
METRE_SUSPECT_MM = 2.0
#: the file name BOP objects have in models/
OBJ_FILE = re.compile(r"^obj_(\d{6})\.ply$")
#: distances computed at once by the diameter's pair search (bounds its memory: 8 bytes each)
_PAIR_CHUNK = 4_000_000
_FIX = "repair or re-export the mesh (a triangle mesh in mm), or remove it from the folder"

SymmetryMode = Literal["detect", "keep", "none"]


@dataclass(frozen=True)
class ModelsInfoConfig:
    """How ``models_info.json`` is computed.

    Attributes:
        symmetries: ``detect`` searches the meshes; ``keep`` copies them from the existing file; ``none`` writes
            none.
        appearance: with ``detect``, a symmetry must also map vertex colours (or the texture) onto equal ones,
            as BOP's symmetries are of shape and texture.
        scale: the meshes' vertices are multiplied by it (metres -> mm: 1000); None: they are in mm, and a mesh
            that looks like metres is refused.
        search: the symmetry search's settings.
    """

    symmetries: SymmetryMode = "detect"
    appearance: bool = False
    scale: float | None = None
    search: SymmetryConfig = field(default_factory=SymmetryConfig)

    def validate(self) -> None:
        if self.symmetries not in ("detect", "keep", "none"):
            raise ConfigError(f"symmetries must be detect, keep or none, got {self.symmetries!r}")
        if self.scale is not None and not (math.isfinite(self.scale) and self.scale > 0):
            raise ConfigError(f"scale must be a positive number (1000 turns metres into mm), got {self.scale}")
        self.search.validate()


@dataclass(frozen=True)
class ObjectReport:
    """What was computed for one object.

    Attributes:
        info: the ``models_info.json`` record.
        notes: lines for the user (flat mesh, sphere, symmetry scores, ...).
        seconds: the time it took.
    """

    info: ModelInfo
    notes: tuple[str, ...] = ()
    seconds: float = 0.0


# ---------------------------------------------------------------------------------------- diameter and box
def diameter_mm(vertices_mm: np.ndarray) -> float:
    """The largest distance between two vertices, mm (exact).

    Only vertices of the convex hull can attain it; a flat or collinear set is handled in its plane or line.
    Pairs are compared in chunks of bounded memory, farthest from the box centre first, and a vertex is skipped
    when its distance to the centre plus the largest such distance cannot beat the best pair found.

    Args:
        vertices_mm: (V, 3) finite vertices, mm.
    """
    v = np.unique(np.asarray(vertices_mm, np.float64), axis=0)
    if len(v) < 2:
        return 0.0
    return _max_pair_distance(v[_hull_indices(v)])


def _hull_indices(v: np.ndarray) -> np.ndarray:
    """Indices of the vertices that can be farthest apart: the convex hull's, in 3D, 2D or 1D as the set is."""
    from scipy.spatial import ConvexHull, QhullError

    centred = v - v.mean(0)
    _, sv, Vt = np.linalg.svd(centred, full_matrices=False)
    rank = int((sv > sv[0] * 1e-9).sum()) if sv[0] > 0 else 0
    for dims in range(min(rank, 3), 1, -1):
        try:
            coords = v if dims == 3 else centred @ Vt[:dims].T
            return ConvexHull(coords).vertices
        except (QhullError, ValueError):
            continue
    along = centred @ Vt[0]
    return np.array([int(np.argmin(along)), int(np.argmax(along))])


def _max_pair_distance(p: np.ndarray) -> float:
    from scipy.spatial.distance import cdist

    centre = (p.min(0) + p.max(0)) / 2
    r = np.linalg.norm(p - centre, axis=1)
    order = np.argsort(-r)
    p, r = p[order], r[order]
    best = 0.0
    i = 0
    while i < len(p) and 2 * r[i] > best:
        # pairs (i, j >= i) only: r[j] <= r[i], and j matters only while r[i] + r[j] > best (r sorted descending)
        m = int(np.searchsorted(-r, -(best - r[i]), side="right")) if best > 0 else len(p)
        m = max(m, i + 1)
        rows = max(1, min(len(p) - i, _PAIR_CHUNK // max(1, m - i)))
        d = cdist(p[i : i + rows], p[i:m])
        best = max(best, float(d.max()))
        i += rows
    return best


# -------------------------------------------------------------------------------------------------- checks
def check_mesh(mesh: Mesh, path: Path | str) -> None:
    """Raise :class:`DatasetError` naming ``path`` unless the mesh has finite vertices, at least one triangle
    and a nonzero surface area (models-info samples the surface)."""
    v = np.asarray(mesh.vertices_mm, np.float64)
    if v.ndim != 2 or v.shape[1] != 3 or len(v) == 0:
        raise DatasetError(f"{path}: the mesh has no vertices; {_FIX}")
    bad = ~np.isfinite(v).all(axis=1)
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise DatasetError(
            f"{path}: vertex {i} is {', '.join(f'{x:g}' for x in v[i])} ({int(bad.sum())} of {len(v)} vertices are "
            f"not finite); {_FIX}"
        )
    faces = np.asarray(mesh.faces)
    if faces.ndim != 2 or faces.shape[1] != 3 or len(faces) == 0:
        raise DatasetError(
            f"{path}: the mesh has no triangles (a point cloud?): models-info needs the surface to find "
            f"symmetries and BOP needs it to render; {_FIX}"
        )
    if faces.min() < 0 or faces.max() >= len(v):
        raise DatasetError(f"{path}: a face refers to a vertex that does not exist (of {len(v)}); {_FIX}")
    a, b, c = (v[faces[:, k]] for k in range(3))
    if not float(np.linalg.norm(np.cross(b - a, c - a), axis=1).sum()) > 0:
        extent = np.ptp(v[np.unique(faces)], axis=0)
        raise DatasetError(
            f"{path}: the triangles have zero area (they span {', '.join(f'{e:g}' for e in extent)} mm along x, y, "
            f"z): the mesh is degenerate; {_FIX}"
        )


def _appearance(mesh: Mesh) -> tuple[Mesh, AppearanceFn | None]:
    """The mesh to search on and the colour of its surface points: vertex colours, else the texture."""
    if mesh.colors is not None:
        return mesh, vertex_color_appearance(np.asarray(mesh.faces), mesh.colors)
    if mesh.texture is not None and (mesh.uv is not None or mesh.face_uv is not None):
        split = mesh.with_vertex_uv()
        tex = np.asarray(split.texture, np.float64)[..., :3] / 255.0
        uv = np.asarray(split.uv, np.float64)
        faces = np.asarray(split.faces)
        h, w = tex.shape[:2]

        def fn(face: np.ndarray, bary: np.ndarray) -> np.ndarray:
            st = np.einsum("nk,nkc->nc", bary, uv[faces[face]])
            col = np.clip(np.round(st[:, 0] * (w - 1)), 0, w - 1).astype(int)
            row = np.clip(np.round((1.0 - st[:, 1]) * (h - 1)), 0, h - 1).astype(int)
            return tex[row, col]

        return split, fn
    return mesh, None


# ------------------------------------------------------------------------------------------------- compute
def compute_model_info(
    obj_id: int, mesh: Mesh, path: Path | str, config: ModelsInfoConfig, kept: ModelInfo | None = None
) -> ObjectReport:
    """The ``models_info.json`` record of one mesh.

    Args:
        obj_id: the object id.
        mesh: the mesh as read (scaled by ``config.scale`` here).
        path: its file (for messages).
        config: what to compute.
        kept: the existing record (its symmetries are copied with ``symmetries="keep"``, its other keys kept).
    Raises:
        DatasetError: a mesh that cannot be used, or that looks like metres without ``config.scale``.
    """
    import time

    start = time.perf_counter()
    check_mesh(mesh, path)
    v = np.asarray(mesh.vertices_mm, np.float64)
    if config.scale is not None:
        v = v * config.scale
    notes: list[str] = []
    diameter = diameter_mm(v)
    if diameter < METRE_SUSPECT_MM and config.scale is None:
        raise DatasetError(
            f"{path}: the mesh is only {diameter:.4g} units across: it looks like metres, and BOP models are in "
            f"mm; rerun with --scale 1000 (or --scale 1 if the object really is that small)"
        )
    lo, hi = v.min(0), v.max(0)
    size = hi - lo
    if size.min() <= 1e-6 * diameter:
        notes.append("flat: the mesh has no thickness along one axis")

    discrete = np.zeros((0, 4, 4))
    continuous: tuple[ContinuousSymmetry, ...] = ()
    if config.symmetries == "keep":
        if kept is None:
            raise DatasetError(f"{path}: --symmetries keep, but models_info.json has no entry for object {obj_id}")
        discrete, continuous = kept.symmetries_discrete, kept.symmetries_continuous
    elif config.symmetries == "detect":
        search_mesh, appearance = _appearance(mesh) if config.appearance else (mesh, None)
        if config.appearance and appearance is None:
            notes.append("--appearance: the mesh has no vertex colours or texture, so shape alone decides")
        sv = np.asarray(search_mesh.vertices_mm, np.float64) * (config.scale or 1.0)
        result = find_symmetries(sv, search_mesh.faces, diameter, appearance=appearance, config=config.search)
        discrete, continuous = _bop_symmetries(result)
        notes.extend(result.scores)
        if result.sphere:
            notes.append(
                "the surface looks the same from every direction (a sphere): BOP's format can only say one "
                "continuous axis and a flip, so that is written; the object's rotation cannot be seen in images"
            )
    info = ModelInfo(
        obj_id=int(obj_id),
        diameter_mm=diameter,
        min_mm=lo,
        size_mm=size,
        symmetries_discrete=discrete,
        symmetries_continuous=continuous,
        extra=dict(kept.extra) if kept is not None else {},
    )
    return ObjectReport(info, tuple(notes), time.perf_counter() - start)


def _bop_symmetries(result: SymmetryResult) -> tuple[np.ndarray, tuple[ContinuousSymmetry, ...]]:
    """Round to BOP's precision (1e-6 in the rotation, 1e-4 mm) and clean negative zeros."""
    disc = np.round(np.asarray(result.discrete, np.float64).reshape(-1, 4, 4), 6) + 0.0
    disc[:, :3, 3] = np.round(disc[:, :3, 3], 4) + 0.0
    cont = tuple(
        ContinuousSymmetry(np.round(np.asarray(s["axis"]), 6) + 0.0, np.round(np.asarray(s["offset"]), 4) + 0.0)
        for s in result.continuous
    )
    return disc, cont


def model_files(folder: Path) -> dict[int, Path]:
    """{obj_id: path} of the ``obj_XXXXXX.ply`` files of a models folder.

    Raises:
        DatasetError: the folder does not exist or holds no such file.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise DatasetError(f"{folder}: no such folder; give a dataset name under --bop-path or a models folder")
    files = {int(m.group(1)): p for p in sorted(folder.iterdir()) if (m := OBJ_FILE.match(p.name))}
    if not files:
        others = sorted(p.name for p in folder.glob("*.ply"))[:3]
        hint = f" (found {', '.join(others)}: rename them obj_000001.ply, obj_000002.ply, ...)" if others else ""
        raise DatasetError(f"{folder}: no obj_XXXXXX.ply mesh{hint}")
    return files


# --------------------------------------------------------------------------------------------- comparison
def differences(old: ModelInfo, new: ModelInfo, tol_mm: float = 0.01, tol_deg: float = 3.0) -> list[str]:
    """What differs between an existing record and a computed one, a line each (empty when they agree).

    Numbers count as equal within ``tol_mm``; a discrete symmetry matches when a transform of the other record
    rotates within ``tol_deg`` of it; continuous axes match when parallel within ``tol_deg``.
    """
    out = []
    if abs(old.diameter_mm - new.diameter_mm) > tol_mm:
        out.append(f"diameter {old.diameter_mm:g} -> {new.diameter_mm:.6g}")
    for key, a, b in (("min", old.min_mm, new.min_mm), ("size", old.size_mm, new.size_mm)):
        for i, axis in enumerate("xyz"):
            if abs(float(a[i]) - float(b[i])) > tol_mm:
                out.append(f"{key}_{axis} {float(a[i]):g} -> {float(b[i]):.6g}")

    def unmatched(xs, ys):
        return sum(1 for x in xs if not any(_rot_deg(x[:3, :3], y[:3, :3]) <= tol_deg for y in ys))

    od, nd = (
        np.asarray(old.symmetries_discrete).reshape(-1, 4, 4),
        np.asarray(new.symmetries_discrete).reshape(-1, 4, 4),
    )
    if len(od) != len(nd) or unmatched(od, nd) or unmatched(nd, od):
        out.append(f"symmetries_discrete: {len(od)} in the file, {len(nd)} computed ({unmatched(nd, od)} new)")
    oc = [np.asarray(s.axis, np.float64) / np.linalg.norm(s.axis) for s in old.symmetries_continuous]
    nc = [np.asarray(s.axis, np.float64) / np.linalg.norm(s.axis) for s in new.symmetries_continuous]
    cos = math.cos(math.radians(tol_deg))
    if len(oc) != len(nc) or any(not any(abs(a @ b) >= cos for b in nc) for a in oc):
        out.append(f"symmetries_continuous: {len(oc)} in the file, {len(nc)} computed")
    return out


def _rot_deg(R1: np.ndarray, R2: np.ndarray) -> float:
    c = (np.trace(R1.T @ R2) - 1.0) / 2.0
    return math.degrees(math.acos(min(1.0, max(-1.0, c))))


# ------------------------------------------------------------------------------------------------- rescale
def rescale_meshes(files: dict[int, Path], scale: float) -> None:
    """Rewrite each mesh with its vertices multiplied by ``scale`` (e.g. metres -> mm), keeping the original as
    ``obj_XXXXXX.ply.unscaled`` beside it (the rewrite is atomic).

    Raises:
        DatasetError: an ``.unscaled`` copy exists already (the meshes were rescaled before), before any change.
    """
    import dataclasses
    import shutil

    from bopnp.bop.ply import load_ply, save_ply

    done = [p for p in files.values() if p.with_name(p.name + ".unscaled").exists()]
    if done:
        raise DatasetError(
            f"{done[0].with_name(done[0].name + '.unscaled')} exists: the meshes were rescaled already; drop --scale, "
            f"or put the .unscaled originals back first"
        )
    for path in files.values():
        mesh = load_ply(path)
        shutil.copy2(path, path.with_name(path.name + ".unscaled"))
        v = (np.asarray(mesh.vertices_mm, np.float64) * scale).astype(np.float32)
        save_ply(path, dataclasses.replace(mesh, vertices_mm=v), binary=True)

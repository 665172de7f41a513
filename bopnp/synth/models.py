"""Given object models (``bopnp synth --models DIR``): every mesh is loaded and checked before any output exists.

A mesh with a non-finite vertex, no triangle or a surface of zero area would render as nothing (or as NaN
depth) and leave a half-made dataset; :func:`load_model_meshes` raises a :class:`DatasetError` naming the file
instead, before the caller creates (or replaces) anything.

>>> import numpy as np
>>> from bopnp.bop.mesh import Mesh
>>> tri = Mesh(np.array([[0, 0, 0], [10, 0, 0], [0, 10, 0]], np.float32), np.array([[0, 1, 2]]))
>>> check_model_mesh(tri, Path("obj_000001.ply"))
>>> check_model_mesh(Mesh(tri.vertices_mm * np.nan, tri.faces), Path("obj_000001.ply"))
Traceback (most recent call last):
...
bopnp.errors.DatasetError: obj_000001.ply: vertex 0 is nan, nan, nan ...
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

import numpy as np

from bopnp.bop.mesh import Mesh
from bopnp.errors import DatasetError

_FIX = (
    "repair or re-export the model (BOP models are triangle meshes in mm), or remove the object from models_info.json"
)


def check_model_mesh(mesh: Mesh, path: Path) -> None:
    """Raise :class:`DatasetError` naming ``path`` unless ``mesh`` can be rendered: finite vertices (and normals),
    at least one triangle, and triangles of non-zero total area (the vertices do not collapse to a point or line).

    Args:
        mesh: vertices (V, 3) mm, faces (F, 3).
        path: the file the mesh came from (for the message).
    """
    vertices_mm = np.asarray(mesh.vertices_mm, np.float64)
    bad = ~np.isfinite(vertices_mm).all(axis=1)
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise DatasetError(
            f"{path}: vertex {i} is {', '.join(f'{v:g}' for v in vertices_mm[i])} ({int(bad.sum())} of "
            f"{len(vertices_mm)} vertices are not finite); {_FIX}"
        )
    if mesh.normals is not None and not np.isfinite(np.asarray(mesh.normals, np.float64)).all():
        raise DatasetError(f"{path}: some vertex normals are not finite; remove the normals or {_FIX}")
    faces = np.asarray(mesh.faces)
    if faces.ndim != 2 or faces.shape[1] != 3 or len(faces) == 0:
        raise DatasetError(f"{path}: the mesh has no triangles (faces {faces.shape}); {_FIX}")
    a, b, c = (vertices_mm[faces[:, k]] for k in range(3))
    area_mm2 = 0.5 * float(np.linalg.norm(np.cross(b - a, c - a), axis=1).sum())
    if not area_mm2 > 0:
        extent_mm = np.ptp(vertices_mm[np.unique(faces)], axis=0)
        raise DatasetError(
            f"{path}: the triangles have zero area (they span {', '.join(f'{e:g}' for e in extent_mm)} mm "
            f"along x, y, z): the mesh is degenerate; {_FIX}"
        )


def load_model_meshes(models_dir: Path, obj_ids: Iterable[int]) -> dict[int, Mesh]:
    """Load and check ``models_dir/obj_XXXXXX.ply`` of every id, and check the ``models_eval/`` copies beside it.

    Returns:
        obj_id -> mesh (vertices mm) of ``models_dir``.
    Raises:
        DatasetError: a missing, unreadable or unusable model, naming the file and how to fix it.
    """
    from bopnp.bop.io import load_ply

    def load(path: Path, load_texture: bool) -> Mesh:
        try:
            mesh = load_ply(path, load_texture=load_texture)
        except OSError as exc:
            raise DatasetError(
                f"{path}: cannot read it ({exc.strerror or exc}); check its permissions or copy it again"
            ) from None
        check_model_mesh(mesh, path)
        return mesh

    models_dir = Path(models_dir)
    eval_dir = models_dir.parent / "models_eval"
    meshes = {}
    for obj_id in obj_ids:
        path = models_dir / f"obj_{obj_id:06d}.ply"
        if not path.is_file():
            raise DatasetError(
                f"{path} not found: models_info.json lists object {obj_id}; add its ply or remove the entry"
            )
        meshes[obj_id] = load(path, True)
        if (eval_dir / path.name).is_file():
            load(eval_dir / path.name, False)
    return meshes

"""The in-memory object model shared by the data layer, the renderer and the evaluator."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True, eq=False)
class Mesh:
    """A triangle mesh in the model frame, millimetres (BOP ``models/*.ply``).

    Attributes:
        vertices_mm: (V, 3) float32 vertex positions, mm.
        faces: (F, 3) int64 vertex indices (counter-clockwise seen from outside).
        normals: (V, 3) float32 unit vertex normals, or None.
        colors: (V, 3) uint8 RGB vertex colours, or None.
        uv: (V, 2) float32 texture coordinates in [0, 1] (origin bottom-left, as OpenGL), or None.
        texture: (H, W, 3) uint8 RGB texture image, or None.
        texture_file: the texture file named in the PLY header (``comment TextureFile ...``), or None.
        face_uv: (F, 3, 2) float32 per-corner texture coordinates (PLY face ``texcoord`` lists), or None.
            Renderers that need one uv per vertex call :meth:`with_vertex_uv`.
    """

    vertices_mm: np.ndarray
    faces: np.ndarray
    normals: np.ndarray | None = None
    colors: np.ndarray | None = None
    uv: np.ndarray | None = None
    texture: np.ndarray | None = None
    texture_file: str | None = None
    face_uv: np.ndarray | None = None

    @property
    def bounds_mm(self) -> np.ndarray:
        """(2, 3) per-axis minimum and maximum of the vertices, mm."""
        return np.stack([self.vertices_mm.min(0), self.vertices_mm.max(0)])

    @property
    def extent_mm(self) -> np.ndarray:
        """(3,) size of the axis-aligned bounding box, mm."""
        lo, hi = self.bounds_mm
        return hi - lo

    def with_vertex_uv(self) -> Mesh:
        """This mesh with one uv per vertex: per-corner ``face_uv`` is turned into ``uv`` by splitting
        every vertex whose corners carry different texture coordinates (a vertex on a texture seam
        becomes one vertex per distinct uv). Positions, normals and colours are copied to the split
        vertices, so the surface is unchanged. Returns ``self`` when there is no ``face_uv``.
        """
        if self.face_uv is None:
            return self
        corner_vertex = self.faces.reshape(-1)  # (3F,)
        corner_uv = np.asarray(self.face_uv, np.float32).reshape(-1, 2)  # (3F, 2)
        # one new vertex per distinct (vertex, u, v) triple
        key = np.concatenate([corner_vertex[:, None].astype(np.float64), corner_uv.astype(np.float64)], axis=1)
        _, first, inverse = np.unique(key, axis=0, return_index=True, return_inverse=True)
        inverse = inverse.reshape(-1)
        source = corner_vertex[first]  # (V', ) old vertex of each new vertex

        def take(a: np.ndarray | None) -> np.ndarray | None:
            return None if a is None else np.asarray(a)[source]

        return Mesh(
            vertices_mm=np.asarray(self.vertices_mm)[source],
            faces=inverse.reshape(-1, 3).astype(np.int64),
            normals=take(self.normals),
            colors=take(self.colors),
            uv=corner_uv[first],
            texture=self.texture,
            texture_file=self.texture_file,
            face_uv=None,
        )

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
    """

    vertices_mm: np.ndarray
    faces: np.ndarray
    normals: np.ndarray | None = None
    colors: np.ndarray | None = None
    uv: np.ndarray | None = None
    texture: np.ndarray | None = None
    texture_file: str | None = None

    @property
    def bounds_mm(self) -> np.ndarray:
        """(2, 3) per-axis minimum and maximum of the vertices, mm."""
        return np.stack([self.vertices_mm.min(0), self.vertices_mm.max(0)])

    @property
    def extent_mm(self) -> np.ndarray:
        """(3,) size of the axis-aligned bounding box, mm."""
        lo, hi = self.bounds_mm
        return hi - lo

"""Depth renders of single instances for VSD, in bop_toolkit's pixel convention.

bop_toolkit's VSD renderer maps a camera point projecting to (u, v) (OpenCV, ``K @ x``) to window
coordinates (u, v): the pixel in column i therefore samples the image at u = i + 0.5. bopnp's renderer
samples pixel i at u = i (the OpenCV convention of pixel centres). Rendering with the principal point
moved by -0.5 px gives bop_toolkit's samples exactly, which VSD needs to reproduce its numbers.

Each render is kept only on a box around the instance's projected vertices (a :class:`DepthCrop`),
which bounds the work VSD does per pair.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

from bopnp.bop.mesh import Mesh
from bopnp.eval.vsd import DepthCrop
from bopnp.metrics.pose_errors import hull_points

#: added to bop_toolkit's principal point to get the K that bopnp's renderer needs for its samples
PRINCIPAL_POINT_SHIFT_PX = -0.5


def bop_toolkit_sampling_K(K: np.ndarray) -> np.ndarray:
    """K for bopnp's renderer such that its pixel samples are those of bop_toolkit's renderer with K."""
    K2 = np.array(K, dtype=np.float64, copy=True)
    K2[0, 2] += PRINCIPAL_POINT_SHIFT_PX
    K2[1, 2] += PRINCIPAL_POINT_SHIFT_PX
    return K2


def projected_box(
    vertices_mm: np.ndarray, R: np.ndarray, t: np.ndarray, K: np.ndarray, width: int, height: int
) -> tuple[int, int, int, int] | None:
    """Pixel box (x0, y0, x1, y1), end exclusive and clipped to the image, holding every pixel whose
    bop_toolkit sample (i + 0.5, j + 0.5) can fall inside the projected mesh; None when it is outside
    the image. Vertices at or behind the camera make it the whole image.

    Args:
        vertices_mm: (V, 3) model vertices, mm.
        R: (3, 3), t: (3,) mm: model-to-camera pose.
        K: (3, 3) intrinsics.
        width, height: image size, pixels.
    """
    x = vertices_mm.astype(np.float64) @ R.T + t
    if np.any(x[:, 2] <= 0):
        return 0, 0, width, height
    uv = x[:, :2] / x[:, 2:3] * [K[0, 0], K[1, 1]] + [K[0, 2], K[1, 2]]
    uv[:, 0] += x[:, 1] / x[:, 2] * K[0, 1]
    lo = np.floor(uv.min(0) - 0.5).astype(np.int64) - 1
    hi = np.ceil(uv.max(0) - 0.5).astype(np.int64) + 2
    x0, y0 = max(int(lo[0]), 0), max(int(lo[1]), 0)
    x1, y1 = min(int(hi[0]), width), min(int(hi[1]), height)
    if x0 >= x1 or y0 >= y1:
        return None
    return x0, y0, x1, y1


#: side of the smallest square canvas crops are drawn into; larger crops use 2x, 4x, ... (few canvas
#: sizes: each has its own renderer, which uploads every model once)
_BUCKET_MIN = 192


def _bucket(n: int) -> int:
    b = _BUCKET_MIN
    while b < n:
        b *= 2
    return b


class VsdRenderer:
    """Renders instances alone, as :class:`DepthCrop` s, for one image size.

    Every instance is drawn into a small canvas that covers its projected box (intrinsics moved by
    the box's integer offset, which keeps the pixel samples of the full image), so the cost follows
    the object's size in the image rather than the image size.

    Args:
        width, height: image size, pixels.
        mesh_of: obj_id -> Mesh (called once per object).
        device: EGL device index (see :func:`bopnp.render.get_renderer`).
    """

    def __init__(self, width: int, height: int, mesh_of: Callable[[int], Mesh], device: int | None = None):
        self.width, self.height = int(width), int(height)
        self._mesh_of = mesh_of
        self._device = device
        self._meshes: dict[int, Mesh] = {}
        self._vertices: dict[int, np.ndarray] = {}
        self._renderers: dict[tuple[int, int], object] = {}

    def _ensure(self, obj_id: int) -> np.ndarray:
        """The vertices of the object's convex hull: a perspective projection's extremes over a convex
        body are at its vertices, so :func:`projected_box` of the hull equals that of the whole mesh."""
        if obj_id not in self._vertices:
            mesh = self._mesh_of(obj_id)
            self._meshes[obj_id] = mesh
            self._vertices[obj_id] = hull_points(np.asarray(mesh.vertices_mm, np.float64))
        return self._vertices[obj_id]

    def _renderer(self, w: int, h: int, obj_ids):
        from bopnp.render import get_renderer

        key = (w, h)
        r = self._renderers.get(key)
        if r is None:
            r = self._renderers[key] = get_renderer(w, h, device=self._device)
        for o in obj_ids:
            r.add_model(o, self._meshes[o])  # a no-op once uploaded
        return r

    def render(self, K: np.ndarray, instances: Sequence[tuple[int, np.ndarray, np.ndarray]]) -> list[DepthCrop]:
        """Depth of each instance alone, in bop_toolkit's pixel convention.

        Args:
            K: (3, 3) intrinsics of the image (as in scene_camera.json).
            instances: (obj_id, R_m2c (3, 3), t_m2c (3,) mm) each.
        Returns:
            one :class:`DepthCrop` per instance (empty when it is outside the image).
        """
        K = np.asarray(K, dtype=np.float64)
        K_gl = bop_toolkit_sampling_K(K)
        out = [DepthCrop(np.zeros((0, 0), np.float32), 0, 0)] * len(instances)
        for i, (obj_id, R, t) in enumerate(instances):
            R = np.asarray(R, np.float64)
            t = np.asarray(t, np.float64).reshape(3)
            box = projected_box(self._ensure(int(obj_id)), R, t, K, self.width, self.height)
            if box is None:
                continue
            x0, y0, x1, y1 = box
            w, h = x1 - x0, y1 - y0
            side = _bucket(max(w, h))
            r = self._renderer(side, side, [int(obj_id)])
            K_crop = K_gl.copy()
            K_crop[0, 2] -= x0
            K_crop[1, 2] -= y0
            depth = r.render_depths(K_crop, [(int(obj_id), R, t)])[0]
            out[i] = DepthCrop(np.ascontiguousarray(depth[:h, :w]), x0, y0)
        return out


__all__ = ["VsdRenderer", "bop_toolkit_sampling_K", "projected_box", "PRINCIPAL_POINT_SHIFT_PX"]

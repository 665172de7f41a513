"""bopnp's renderer against two independent references on the same scene and camera.

* A numpy rasteriser of the projected triangles, evaluated at OpenCV pixel centres: the silhouettes
  must be equal pixel for pixel.
* pyrender (depth only, each instance alone and the whole scene), with its multisample offset
  compensated (:mod:`bopnp.render.pyrender_compat`): the same silhouettes and scene depth, and the
  visible instance where two surfaces are not a near-tie.
"""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage

from bopnp.bop.mesh import Mesh
from bopnp.render import get_renderer
from bopnp.render.pyrender_compat import import_pyrender, intrinsics_camera
from bopnp.synth.procedural import dataset_objects

W, H = 320, 240
K = np.array([[300.0, 0.0, 157.3], [0.0, 290.0, 118.6], [0.0, 0.0, 1.0]])
CV_TO_GL = np.diag([1.0, -1.0, -1.0, 1.0])


def _rot(axis_angle) -> np.ndarray:
    import cv2

    return cv2.Rodrigues(np.asarray(axis_angle, np.float64))[0]


@pytest.fixture(scope="module")
def scene():
    objects = dataset_objects()
    meshes = {1: objects[0].mesh, 4: objects[3].mesh, 5: objects[4].mesh}
    instances = [  # overlapping in the image, at different depths
        (1, _rot([0.4, -0.3, 0.2]), np.array([-25.0, 5.0, 520.0])),
        (4, _rot([-1.1, 0.5, 0.9]), np.array([30.0, -10.0, 610.0])),
        (5, _rot([2.0, 0.1, -0.7]), np.array([5.0, 40.0, 450.0])),
    ]
    r = get_renderer(W, H)
    for obj_id, mesh in meshes.items():
        r.add_model(obj_id, mesh)
    return meshes, instances, r.render(K, instances)


def rasterise_silhouette(mesh: Mesh, R_m2c: np.ndarray, t_m2c_mm: np.ndarray) -> np.ndarray:
    """(H, W) bool: pixel centres (u, v) covered by a projected triangle, edges included (float64)."""
    X_c = mesh.vertices_mm.astype(np.float64) @ R_m2c.T + t_m2c_mm
    uv = (X_c @ K.T)[:, :2] / X_c[:, 2:]
    sil = np.zeros((H, W), bool)
    for a, b, c in uv[mesh.faces]:
        lo = np.clip(np.ceil(np.minimum(np.minimum(a, b), c)), 0, [W - 1, H - 1]).astype(int)
        hi = np.clip(np.floor(np.maximum(np.maximum(a, b), c)), 0, [W - 1, H - 1]).astype(int)
        v, u = np.mgrid[lo[1] : hi[1] + 1, lo[0] : hi[0] + 1]

        def side(p, q):
            return (q[0] - p[0]) * (v - p[1]) - (q[1] - p[1]) * (u - p[0])  # noqa: B023 (called in this iteration only)

        s = np.stack([side(a, b), side(b, c), side(c, a)])
        inside = (s >= 0).all(0) | (s <= 0).all(0)
        sil[v[inside], u[inside]] = True
    return sil


def _pyrender_depths(meshes, instances) -> tuple[np.ndarray, np.ndarray]:
    """((N, H, W) depth of each instance alone, (H, W) depth of the whole scene), mm, 0 = background."""
    import trimesh

    pyrender = import_pyrender()
    gl_meshes = {
        o: pyrender.Mesh.from_trimesh(trimesh.Trimesh(m.vertices_mm, m.faces, process=False), smooth=False)
        for o, m in meshes.items()
    }
    renderer = pyrender.OffscreenRenderer(W, H)
    try:

        def render(subset):
            s = pyrender.Scene()
            for obj_id, R, t in subset:
                T = np.eye(4)
                T[:3, :3], T[:3, 3] = R, t
                s.add(gl_meshes[obj_id], pose=CV_TO_GL @ T)
            s.add(intrinsics_camera(K), pose=np.eye(4))
            return renderer.render(s, flags=pyrender.RenderFlags.DEPTH_ONLY)

        alone = np.stack([render([inst]) for inst in instances])
        together = render(instances)
    finally:
        renderer.delete()
    return alone, together


def _on_boundary(mask: np.ndarray) -> np.ndarray:
    """Pixels within one pixel of the mask's boundary."""
    return ndimage.binary_dilation(mask) & ~ndimage.binary_erosion(mask)


def test_silhouettes_equal_a_numpy_rasteriser_at_pixel_centres(scene):
    meshes, instances, out = scene
    for k, (obj_id, R, t) in enumerate(instances):
        ref = rasterise_silhouette(meshes[obj_id], R, t)
        assert ref.sum() > 2000  # the scene is not empty
        # a half-pixel convention error moves a whole boundary ring: hundreds of pixels
        assert (out.mask_full[k] != ref).sum() <= 3, (k, (out.mask_full[k] != ref).sum())


def test_depth_masks_and_instance_map_match_pyrender(scene):
    meshes, instances, out = scene
    alone, together = _pyrender_depths(meshes, instances)

    for k in range(len(instances)):
        ref = alone[k] > 0
        differ = out.mask_full[k] != ref
        assert differ.sum() <= 3, (k, differ.sum())
        assert not (differ & ~_on_boundary(ref)).any()

    ref_fg = together > 0
    assert ((out.depth_mm > 0) != ref_fg).sum() <= 3
    both = (out.depth_mm > 0) & ref_fg
    err_mm = np.abs(out.depth_mm[both] - together[both])
    assert np.median(err_mm) < 0.01  # depth-buffer precision at 450-650 mm
    assert np.mean(err_mm < 0.05) > 0.999

    # the visible instance is the nearest of the per-instance depths
    stacked = np.where(alone > 0, alone, 1e9)
    nearest = np.sort(stacked, 0)
    clear = ref_fg & ((nearest[1] - nearest[0]) > 0.1)  # not a near-tie between two surfaces
    assert (out.instance_map[clear] == stacked.argmin(0)[clear]).all()
    assert all(out.mask_visib[k].sum() > 500 for k in range(len(instances)))  # every instance partly visible

"""VSD renders sample pixels as bop_toolkit's renderer does (pixel column i at u = i + 0.5), and the
crop boxes hold every rendered pixel."""

from pathlib import Path

import numpy as np
import pytest

from bopnp.bop import io
from bopnp.bop.mesh import Mesh
from bopnp.eval.render import VsdRenderer, bop_toolkit_sampling_K, projected_box
from bopnp.metrics.pose_errors import hull_points

FIXTURE = Path(__file__).resolve().parents[1] / "fixtures" / "eval" / "bop" / "tudl" / "models_eval"
K = np.array([[500.0, 0.0, 320.0], [0.0, 500.0, 240.0], [0.0, 0.0, 1.0]])


def _renderer(meshes):
    try:
        r = VsdRenderer(640, 480, meshes.__getitem__)
        r.render(K, [])
        return r
    except Exception as exc:
        from bopnp.errors import RenderError

        if isinstance(exc, RenderError):
            pytest.skip(f"renderer unavailable: {exc}")
        raise


def test_fronto_parallel_square_covers_bop_toolkit_pixels():
    # a square at z = 1000 mm whose image spans u in [100.2, 140.7], v in [50.9, 70.3]
    z = 1000.0
    u0, u1, v0, v1 = 100.2, 140.7, 50.9, 70.3
    X = lambda u: (u - K[0, 2]) / K[0, 0] * z  # noqa: E731
    Y = lambda v: (v - K[1, 2]) / K[1, 1] * z  # noqa: E731
    verts = np.array([[X(u0), Y(v0), 0], [X(u1), Y(v0), 0], [X(u1), Y(v1), 0], [X(u0), Y(v1), 0]], np.float32)
    mesh = Mesh(vertices_mm=verts, faces=np.array([[0, 2, 1], [0, 3, 2]]))
    r = _renderer({7: mesh})
    crop = r.render(K, [(7, np.eye(3), np.array([0.0, 0.0, z]))])[0]
    full = np.zeros((480, 640), np.float32)
    x0, y0, x1, y1 = crop.box
    full[y0:y1, x0:x1] = crop.depth_mm
    cols = np.flatnonzero((full > 0).any(0))
    rows = np.flatnonzero((full > 0).any(1))
    # bop_toolkit: pixel i is covered when i + 0.5 lies inside [u0, u1] (OpenCV's centre convention would be i)
    assert cols.tolist() == [i for i in range(640) if u0 < i + 0.5 < u1]
    assert rows.tolist() == [j for j in range(480) if v0 < j + 0.5 < v1]
    np.testing.assert_allclose(full[full > 0], z, rtol=1e-6)


def test_sampling_K_moves_the_principal_point_half_a_pixel():
    K2 = bop_toolkit_sampling_K(K)
    assert K2[0, 2] == K[0, 2] - 0.5 and K2[1, 2] == K[1, 2] - 0.5 and K[0, 2] == 320.0


def test_crop_boxes_hold_every_rendered_pixel():
    from bopnp.render import get_renderer

    meshes = {o: io.load_ply(FIXTURE / f"obj_{o:06d}.ply") for o in (1, 2, 3)}
    r = _renderer(meshes)
    full_r = get_renderer(640, 480)
    rng = np.random.default_rng(0)
    for _k in range(12):
        o = int(rng.integers(1, 4))
        q = rng.normal(size=4)
        q /= np.linalg.norm(q)
        w, x, y, zq = q
        R = np.array(
            [
                [1 - 2 * (y * y + zq * zq), 2 * (x * y - zq * w), 2 * (x * zq + y * w)],
                [2 * (x * y + zq * w), 1 - 2 * (x * x + zq * zq), 2 * (y * zq - x * w)],
                [2 * (x * zq - y * w), 2 * (y * zq + x * w), 1 - 2 * (x * x + y * y)],
            ]
        )
        t = np.array([rng.uniform(-350, 350), rng.uniform(-250, 250), rng.uniform(400, 1200)])  # some partly outside
        full_r.add_model(o, meshes[o])
        full = full_r.render_depths(bop_toolkit_sampling_K(K), [(o, R, t)])[0]
        crop = r.render(K, [(o, R, t)])[0]
        if crop.empty:
            assert not (full > 0).any()
            continue
        x0, y0, x1, y1 = crop.box
        assert (full > 0).sum() == (full[y0:y1, x0:x1] > 0).sum()
        # the crop's camera is the full image's moved by whole pixels: the same samples, up to float
        # rounding of the clip matrix at pixel centres lying exactly on a triangle edge
        differ = ((crop.depth_mm > 0) != (full[y0:y1, x0:x1] > 0)).sum()
        assert differ <= max(2, 0.002 * (full > 0).sum())
        # the hull gives the same box as all vertices
        v = meshes[o].vertices_mm.astype(np.float64)
        assert projected_box(hull_points(v), R, t, K, 640, 480) == projected_box(v, R, t, K, 640, 480)

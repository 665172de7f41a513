"""The headless renderer against analytic scenes, independent geometry (trimesh) and real LM-O depth."""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pytest

from bopnp.bop.mesh import Mesh
from bopnp.errors import ConfigError, RenderError, ShapeError
from bopnp.render import Lighting, get_renderer

W, H = 320, 240
# off-centre principal point and unequal focal lengths: a convention error cannot cancel out
K = np.array([[410.0, 0.0, 151.37], [0.0, 380.0, 126.96], [0.0, 0.0, 1.0]])


def box_mesh(half: tuple[float, float, float], colour=None) -> Mesh:
    """Axis-aligned box centred at the origin: 6 faces of 4 own vertices (flat normals), outward
    counter-clockwise triangles."""
    corners = np.array([[sx, sy, sz] for sx in (-1, 1) for sy in (-1, 1) for sz in (-1, 1)], np.float32) * np.float32(
        half
    )
    quads = [[0, 1, 3, 2], [4, 6, 7, 5], [0, 4, 5, 1], [2, 3, 7, 6], [0, 2, 6, 4], [1, 5, 7, 3]]
    v = corners[np.array(quads).ravel()]
    faces = np.array(
        [[4 * q, 4 * q + 1, 4 * q + 2] for q in range(6)] + [[4 * q, 4 * q + 2, 4 * q + 3] for q in range(6)], np.int64
    )
    colors = None if colour is None else np.tile(np.asarray(colour, np.uint8), (len(v), 1))
    return Mesh(vertices_mm=v, faces=faces, colors=colors)


def blob_mesh() -> Mesh:
    """A lumpy, asymmetric closed surface (no symmetry can hide a convention error)."""
    import trimesh

    sphere = trimesh.creation.icosphere(subdivisions=4)
    v = np.asarray(sphere.vertices) * np.array([45.0, 28.0, 19.0])
    v = v + np.stack([6 * np.sin(v[:, 1] / 9), 4 * np.cos(v[:, 0] / 7), 3 * np.sin(v[:, 0] / 11 + v[:, 1] / 13)], 1)
    v[:, 0] += 0.004 * v[:, 1] ** 2  # bend
    return Mesh(vertices_mm=v.astype(np.float32), faces=np.asarray(sphere.faces, np.int64))


def rotation(axis_angle) -> np.ndarray:
    import cv2

    return cv2.Rodrigues(np.asarray(axis_angle, np.float64))[0]


@pytest.fixture(scope="module")
def renderer():
    r = get_renderer(W, H)
    r.add_model(1, box_mesh((20.0, 15.0, 10.0), colour=(200, 40, 10)))
    r.add_model(2, blob_mesh())
    r.add_model(3, box_mesh((8.0, 8.0, 8.0)))
    return r


def pixel_grid(h: int, w: int) -> tuple[np.ndarray, np.ndarray]:
    v, u = np.mgrid[0:h, 0:w]
    return u.astype(np.float64), v.astype(np.float64)


# ----------------------------------------------------------------------------------------------- analytic


def test_box_facing_camera_depth_and_silhouette(renderer):
    # box centred on the optical axis: its silhouette is the projection of its front face
    t = np.array([0.0, 0.0, 300.0])
    out = renderer.render(K, [(1, np.eye(3), t)])
    z_front = 300.0 - 10.0
    u_lo, u_hi = K[0, 2] - K[0, 0] * 20 / z_front, K[0, 2] + K[0, 0] * 20 / z_front
    v_lo, v_hi = K[1, 2] - K[1, 1] * 15 / z_front, K[1, 2] + K[1, 1] * 15 / z_front
    u, v = pixel_grid(H, W)
    # pixel centres must be well inside or outside the edges for an exact comparison
    for edge in (u_lo, u_hi, v_lo, v_hi):
        assert abs(edge - round(edge)) > 0.05
    expected = (u > u_lo) & (u < u_hi) & (v > v_lo) & (v < v_hi)
    for s in (-0.5, 0.5):  # a half-pixel convention error would change the expected silhouette
        for du, dv in ((s, 0), (0, s)):
            assert np.any(expected != ((u + du > u_lo) & (u + du < u_hi) & (v + dv > v_lo) & (v + dv < v_hi)))
    np.testing.assert_array_equal(out.mask_visib[0], expected)
    np.testing.assert_array_equal(out.mask_full[0], expected)
    np.testing.assert_array_equal(out.instance_map, np.where(expected, 0, -1))
    np.testing.assert_allclose(out.depth_mm[expected], z_front, rtol=1e-6)
    assert np.all(out.depth_mm[~expected] == 0)
    # model-frame xyz of the front face: z = -10, x and y by back-projection of the pixel centre
    np.testing.assert_allclose(out.xyz_mm[expected][:, 2], -10.0, atol=1e-4)
    np.testing.assert_allclose(out.xyz_mm[expected][:, 0], (u[expected] - K[0, 2]) / K[0, 0] * z_front, atol=1e-3)
    np.testing.assert_allclose(out.xyz_mm[expected][:, 1], (v[expected] - K[1, 2]) / K[1, 1] * z_front, atol=1e-3)
    assert np.all(out.xyz_mm[~expected] == 0) and np.all(out.xyz_norm[~expected] == 0)


def test_box_off_axis_silhouette_is_hull_of_projected_corners(renderer):
    import cv2

    R, t = rotation([0.3, -0.5, 0.2]), np.array([-30.0, 20.0, 350.0])
    out = renderer.render(K, [(1, R, t)])
    corners = renderer.mesh(1).vertices_mm.astype(np.float64)
    x_c = corners @ R.T + t
    uv = (x_c @ K.T)[:, :2] / x_c[:, 2:]
    hull = cv2.convexHull(uv.astype(np.float32)).reshape(-1, 2).astype(np.float64)
    u, v = pixel_grid(H, W)
    pts = np.stack([u.ravel(), v.ravel()], 1)
    # signed distance of every pixel centre to the hull polygon (positive inside)
    dist = np.array(
        [cv2.pointPolygonTest(hull.astype(np.float32), (float(a), float(b)), True) for a, b in pts]
    ).reshape(H, W)
    sure = np.abs(dist) > 0.01
    np.testing.assert_array_equal(out.mask_full[0][sure], (dist > 0)[sure])


# ----------------------------------------------------------------------------------------------- xyz maps


def distance_to_mesh(points: np.ndarray, mesh: Mesh, k: int = 12) -> np.ndarray:
    """(P,) exact distance (mm) of points near the surface to the triangles around their k nearest
    vertices (closest point on a triangle after Ericson, Real-Time Collision Detection 5.1.5)."""
    from scipy.spatial import cKDTree

    v = mesh.vertices_mm.astype(np.float64)
    f = np.asarray(mesh.faces)
    vertex_faces = [[] for _ in range(len(v))]
    for fi, tri in enumerate(f):
        for vi in tri:
            vertex_faces[vi].append(fi)
    _, near = cKDTree(v).query(points, k=k)
    best = np.full(len(points), np.inf)
    for j in range(k):
        width = max(len(vertex_faces[i]) for i in near[:, j])
        cand = np.array([vertex_faces[i] + [vertex_faces[i][0]] * (width - len(vertex_faces[i])) for i in near[:, j]])
        for c in range(width):
            a, b, cc = (v[f[cand[:, c], m]] for m in range(3))
            best = np.minimum(best, np.linalg.norm(points - closest_on_triangle(points, a, b, cc), axis=1))
    return best


def closest_on_triangle(p, a, b, c):
    """(P, 3) closest point of triangles (a, b, c) to p (all (P, 3))."""
    ab, ac, ap = b - a, c - a, p - a
    d1, d2 = (ab * ap).sum(1), (ac * ap).sum(1)
    bp = p - b
    d3, d4 = (ab * bp).sum(1), (ac * bp).sum(1)
    cp = p - c
    d5, d6 = (ab * cp).sum(1), (ac * cp).sum(1)
    va, vb, vc = d3 * d6 - d5 * d4, d5 * d2 - d1 * d6, d1 * d4 - d3 * d2
    denom = va + vb + vc
    with np.errstate(divide="ignore", invalid="ignore"):
        v_ = vb / denom
        w_ = vc / denom
        out = a + ab * v_[:, None] + ac * w_[:, None]  # inside the face
        regions = [
            ((d1 <= 0) & (d2 <= 0), a),
            ((d3 >= 0) & (d4 <= d3), b),
            ((d6 >= 0) & (d5 <= d6), c),
            ((vc <= 0) & (d1 >= 0) & (d3 <= 0), a + ab * (d1 / (d1 - d3))[:, None]),
            ((vb <= 0) & (d2 >= 0) & (d6 <= 0), a + ac * (d2 / (d2 - d6))[:, None]),
            ((va <= 0) & (d4 - d3 >= 0) & (d5 - d6 >= 0), b + (c - b) * ((d4 - d3) / ((d4 - d3) + (d5 - d6)))[:, None]),
        ]
    done = np.zeros(len(p), bool)
    for mask, point in regions:
        take = mask & ~done
        out[take] = point[take]
        done |= take
    return out


def test_distance_to_mesh_reference():
    mesh = box_mesh((10.0, 10.0, 10.0))
    pts = np.array([[0.0, 0.0, 10.0], [3.0, -2.0, 12.5], [13.0, 14.0, 0.0], [0.0, 0.0, 0.0]])
    np.testing.assert_allclose(distance_to_mesh(pts, mesh, k=8), [0.0, 2.5, 5.0, 10.0], atol=1e-12)


def reprojection_errors(out, K_, R, t, mesh: Mesh | None) -> tuple[np.ndarray, np.ndarray | None, np.ndarray]:
    """(pixel error, mm distance to the surface, depth error) at every foreground pixel."""
    fg = out.instance_map >= 0
    u, v = pixel_grid(*fg.shape)
    xyz = out.xyz_mm[fg].astype(np.float64)
    x_c = xyz @ R.T + t
    uv = (x_c @ K_.T)[:, :2] / x_c[:, 2:]
    err_px = np.linalg.norm(uv - np.stack([u[fg], v[fg]], 1), axis=1)
    dist_mm = None if mesh is None else distance_to_mesh(xyz, mesh)
    depth_err = np.abs(out.depth_mm[fg] - x_c[:, 2])
    return err_px, dist_mm, depth_err


def test_xyz_map_lies_on_surface_and_reprojects_onto_its_pixel(renderer):
    R, t = rotation([0.7, -0.4, 1.1]), np.array([12.0, -9.0, 260.0])
    out = renderer.render(K, [(2, R, t)])
    mesh = renderer.mesh(2)
    assert out.mask_visib[0].sum() > 3000
    err_px, dist_mm, depth_err = reprojection_errors(out, K, R, t, mesh)
    assert np.median(err_px) < 0.01 and np.percentile(err_px, 99) < 0.05
    assert np.median(dist_mm) < 0.01 and dist_mm.max() < 0.1
    assert depth_err.max() < 1e-3

    # the same statistics under a wrong convention are far off: the test has the power to fail
    u_shift = K.copy()
    u_shift[:2, 2] += 0.5
    flip = np.diag([1.0, -1.0, 1.0])
    K_centre = K.copy()
    K_centre[:2, 2] = [W / 2, H / 2]
    for K_bad, R_bad, t_bad in [(K, R.T, t), (u_shift, R, t), (K, flip @ R, flip @ t), (K_centre, R, t)]:
        bad_px, _, _ = reprojection_errors(out, K_bad, R_bad, t_bad, None)
        assert np.median(bad_px) > 0.45


def test_xyz_norm_is_per_axis_bounding_box_normalisation(renderer):
    R, t = rotation([-1.2, 0.3, 0.4]), np.array([0.0, 5.0, 240.0])
    out = renderer.render(K, [(2, R, t)])
    centre, half = renderer.xyz_normalisation(2)
    lo, hi = blob_mesh().bounds_mm
    np.testing.assert_allclose(centre, (lo + hi) / 2, rtol=1e-6)
    np.testing.assert_allclose(half, (hi - lo) / 2, rtol=1e-6)
    fg = out.mask_visib[0]
    np.testing.assert_allclose(out.xyz_norm[fg], (out.xyz_mm[fg] - centre) / half, atol=1e-5)
    # each axis spans [-1, 1]: a box seen from near a corner shows three faces that reach every extreme
    box = renderer.render(K, [(1, rotation([0.5, -0.6, 0.2]), np.array([0.0, 0.0, 250.0]))])
    xyz = box.xyz_norm[box.mask_visib[0]]
    np.testing.assert_allclose(xyz.min(0), -1.0, atol=0.01)
    np.testing.assert_allclose(xyz.max(0), 1.0, atol=0.01)


# ----------------------------------------------------------------------------------------------- occlusion


def test_nearer_instance_hides_the_farther(renderer, pass_mode):
    near = (1, np.eye(3), np.array([-10.0, 0.0, 250.0]))
    far = (2, rotation([0.2, 0.1, 0.0]), np.array([15.0, 5.0, 330.0]))
    out = renderer.render(K, [far, near])
    alone = renderer.render_depths(K, [far, near])
    full_far, full_near = alone[0] > 0, alone[1] > 0
    overlap = full_far & full_near
    assert overlap.sum() > 500 and (full_far & ~full_near).sum() > 500
    np.testing.assert_array_equal(out.mask_full[0], full_far)
    np.testing.assert_array_equal(out.mask_full[1], full_near)
    np.testing.assert_array_equal(out.mask_visib[1], full_near)
    np.testing.assert_array_equal(out.mask_visib[0], full_far & ~full_near)
    # scene depth is the per-pixel minimum of the instances rendered alone
    stacked = np.where(alone > 0, alone, np.inf).min(0)
    np.testing.assert_allclose(out.depth_mm, np.where(np.isfinite(stacked), stacked, 0), rtol=1e-6)


@pytest.fixture(params=["single_pass", "two_pass"])
def pass_mode(request, renderer):
    """Run a test with full masks from image atomics (OpenGL >= 4.4) and from the second pass."""
    saved = renderer.single_pass
    if request.param == "single_pass" and not saved:
        pytest.skip("OpenGL < 4.4: no single-pass full masks")
    renderer.single_pass = request.param == "single_pass"
    yield request.param
    renderer.single_pass = saved


def test_full_masks_of_many_instances_use_every_bit(renderer, pass_mode):
    # 150 small overlapping cubes: > 128 exercises two bit-mask passes and > 16 several depth tiles
    rng = np.random.default_rng(0)
    instances = []
    for i in range(150):
        x, y = (i % 15 - 7) * 9.0, (i // 15 - 4.5) * 9.0
        instances.append((3, rotation(rng.normal(size=3)), np.array([x, y, 400.0 + (i % 7) * 10])))
    out = renderer.render(K, instances)
    alone = renderer.render_depths(K, instances)
    np.testing.assert_array_equal(out.mask_full, alone > 0)
    for i in range(150):
        np.testing.assert_array_equal(out.mask_visib[i], out.instance_map == i)
    assert out.mask_visib.sum() == (out.instance_map >= 0).sum()
    assert all(out.mask_visib[i].sum() < out.mask_full[i].sum() for i in range(15, 135))  # occluded interior


def test_full_mask_of_isolated_instance_equals_its_silhouette(renderer):
    a = (1, np.eye(3), np.array([-60.0, 0.0, 300.0]))
    b = (3, np.eye(3), np.array([60.0, 0.0, 300.0]))
    out = renderer.render(K, [a, b])
    alone = renderer.render_depths(K, [a, b])
    np.testing.assert_array_equal(out.mask_full, alone > 0)
    np.testing.assert_array_equal(out.mask_full, out.mask_visib)


def test_render_depths_matches_single_renders(renderer):
    instances = [
        (2, rotation([0.1 * i, 0.3, -0.2 * i]), np.array([8.0 * i - 20, 3.0, 280.0 + 9 * i])) for i in range(5)
    ]
    depths = renderer.render_depths(K, instances)
    for i, inst in enumerate(instances):
        single = renderer.render(K, [inst]).depth_mm
        np.testing.assert_array_equal(depths[i] > 0, single > 0)
        np.testing.assert_allclose(depths[i], single, rtol=1e-6)


def test_empty_scene_and_objects_behind_camera(renderer):
    out = renderer.render(K, [])
    assert out.mask_visib.shape == (0, H, W) and out.mask_full.shape == (0, H, W)
    assert np.all(out.instance_map == -1) and np.all(out.depth_mm == 0)
    behind = renderer.render(K, [(1, np.eye(3), np.array([0.0, 0.0, -200.0]))])
    assert not behind.mask_full.any() and np.all(behind.depth_mm == 0)
    assert renderer.render_depths(K, []).shape == (0, H, W)


# ----------------------------------------------------------------------------------------------- colour


def test_rgb_vertex_colours_with_ambient_only(renderer):
    out = renderer.render(
        K, [(1, np.eye(3), np.array([0.0, 0.0, 300.0]))], rgb=True, lighting=Lighting(ambient=1.0, directional=0.0)
    )
    fg = out.mask_visib[0]
    np.testing.assert_array_equal(out.rgb[fg], np.tile([200, 40, 10], (fg.sum(), 1)))
    assert np.all(out.rgb[~fg] == 0)
    no_rgb = renderer.render(K, [(1, np.eye(3), np.array([0.0, 0.0, 300.0]))])
    assert no_rgb.rgb is None


def test_rgb_directional_light_follows_lambert(renderer):
    # front face normal is -z (towards the camera); light travelling along +z hits it head-on
    R, t = np.eye(3), np.array([0.0, 0.0, 300.0])
    head_on = renderer.render(
        K, [(3, R, t)], rgb=True, lighting=Lighting(ambient=0.0, directional=1.0, direction_c=(0, 0, 1))
    )
    slanted = renderer.render(
        K, [(3, R, t)], rgb=True, lighting=Lighting(ambient=0.0, directional=1.0, direction_c=(0, 1, 1))
    )
    centre = (int(round(K[1, 2])), int(round(K[0, 2])))
    grey = 0.7 * 255
    assert abs(int(head_on.rgb[centre][0]) - grey) <= 1
    assert abs(int(slanted.rgb[centre][0]) - grey * np.cos(np.pi / 4)) <= 1


def test_texture_uses_bottom_left_uv_origin():
    r = get_renderer(64, 64)
    texture = np.zeros((8, 8, 3), np.uint8)
    texture[:4] = (255, 0, 0)  # top rows of the image: red
    texture[4:] = (0, 255, 0)
    # a square facing the camera; model y points down in the image, so model y = -a is the top edge
    a = 10.0
    verts = np.array([[-a, -a, 0], [a, -a, 0], [a, a, 0], [-a, a, 0]], np.float32)
    uv = np.array([[0, 1], [1, 1], [1, 0], [0, 0]], np.float32)  # the top edge takes the top of the texture
    mesh = Mesh(vertices_mm=verts, faces=np.array([[0, 1, 2], [0, 2, 3]]), uv=uv, texture=texture)
    r.add_model(7, mesh)
    Ks = np.array([[100.0, 0, 31.5], [0, 100.0, 31.5], [0, 0, 1]])
    out = r.render(
        Ks, [(7, np.eye(3), np.array([0.0, 0.0, 50.0]))], rgb=True, lighting=Lighting(ambient=1.0, directional=0.0)
    )
    assert out.rgb[20, 32].tolist() == [255, 0, 0]
    assert out.rgb[44, 32].tolist() == [0, 255, 0]


def test_lighting_random_is_seedable_and_validated():
    assert Lighting.random(3) == Lighting.random(np.random.default_rng(3))
    assert Lighting.random(3) != Lighting.random(4)
    with pytest.raises(ConfigError, match="ambient"):
        Lighting(ambient=-1.0).validate()
    with pytest.raises(ConfigError, match="direction_c"):
        Lighting(direction_c=(0.0, 0.0, 0.0)).validate()


# ----------------------------------------------------------------------------------------------- API


def test_get_renderer_reuses_one_renderer_per_size(renderer):
    assert get_renderer(W, H) is renderer
    assert get_renderer(W + 2, H) is not renderer


def test_add_model_is_idempotent_and_replaces_a_different_mesh():
    r = get_renderer(40, 30)
    mesh = box_mesh((5.0, 5.0, 5.0))
    r.add_model(11, mesh)
    vao = r._models[11].vao
    r.add_model(11, mesh)
    r.add_model(11, box_mesh((5.0, 5.0, 5.0)))  # equal content
    assert r._models[11].vao == vao
    Ks = np.array([[40.0, 0, 19.5], [0, 40.0, 14.5], [0, 0, 1]])
    small = r.render(Ks, [(11, np.eye(3), np.array([0.0, 0.0, 100.0]))]).mask_full.sum()
    r.add_model(11, box_mesh((10.0, 10.0, 5.0)))
    big = r.render(Ks, [(11, np.eye(3), np.array([0.0, 0.0, 100.0]))]).mask_full.sum()
    assert big > 2 * small


def test_back_face_culling_is_automatic_for_closed_meshes_and_changes_nothing(renderer):
    assert renderer.culls_back_faces(1) and renderer.culls_back_faces(2)
    open_mesh = blob_mesh()
    open_mesh = Mesh(vertices_mm=open_mesh.vertices_mm, faces=open_mesh.faces[:-3])  # a hole
    inverted = Mesh(vertices_mm=blob_mesh().vertices_mm, faces=blob_mesh().faces[:, ::-1].copy())
    renderer.add_model(31, open_mesh)
    renderer.add_model(32, blob_mesh(), cull_back_faces=False)
    renderer.add_model(33, inverted)
    assert not renderer.culls_back_faces(31) and not renderer.culls_back_faces(32) and renderer.culls_back_faces(33)
    R, t = rotation([0.4, 1.0, -0.3]), np.array([-10.0, 6.0, 250.0])
    box = (1, rotation([0.1, 0.2, 0.3]), np.array([25.0, 0.0, 230.0]))
    culled = renderer.render(K, [(2, R, t), box])
    for other in (32, 33):
        ref = renderer.render(K, [(other, R, t), box])
        for name in ("instance_map", "mask_full", "mask_visib"):
            np.testing.assert_array_equal(getattr(culled, name), getattr(ref, name))
        # reversed triangles (33) interpolate in another order: equal to float rounding
        np.testing.assert_allclose(culled.depth_mm, ref.depth_mm, rtol=2e-5)
        np.testing.assert_allclose(culled.xyz_mm, ref.xyz_mm, atol=5e-3)
        alone, alone_ref = renderer.render_depths(K, [(2, R, t)]), renderer.render_depths(K, [(other, R, t)])
        np.testing.assert_array_equal(alone > 0, alone_ref > 0)
        np.testing.assert_allclose(alone, alone_ref, rtol=2e-5)


def test_torch_tensors_are_accepted(renderer):
    import torch

    R, t = rotation([0.2, 0.1, -0.3]), np.array([0.0, 0.0, 280.0])
    ref = renderer.render(K, [(2, R, t)])
    out = renderer.render(torch.from_numpy(K), [(torch.tensor(2), torch.from_numpy(R), torch.from_numpy(t))])
    np.testing.assert_array_equal(out.mask_full, ref.mask_full)


def test_bad_input_raises_typed_errors(renderer):
    pose = (np.eye(3), np.array([0.0, 0.0, 300.0]))
    with pytest.raises(RenderError, match="add_model"):
        renderer.render(K, [(99, *pose)])
    with pytest.raises(ShapeError, match="K"):
        renderer.render(K[:2], [(1, *pose)])
    with pytest.raises(ShapeError, match=r"instances\[0\] R_m2c"):
        renderer.render(K, [(1, np.eye(4), pose[1])])
    with pytest.raises(ShapeError, match=r"instances\[0\] t_m2c"):
        renderer.render_depths(K, [(1, np.eye(3), np.zeros(4))])
    with pytest.raises(ShapeError, match="faces"):
        renderer.add_model(50, Mesh(vertices_mm=np.zeros((3, 3), np.float32), faces=np.zeros((0, 3), np.int64)))


def test_wrong_egl_device_raises_render_error():
    from bopnp.render.egl import create_context

    with pytest.raises(RenderError, match="EGL device 99"):
        create_context(device=99)


def test_non_egl_platform_gives_install_hint():
    code = (
        "from bopnp.render.egl import create_context\n"
        "from bopnp.errors import RenderError\n"
        "try:\n    create_context()\nexcept RenderError as e:\n    print('RenderError:', e)\n"
    )
    env = dict(os.environ, PYOPENGL_PLATFORM="glx")
    res = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120)
    assert "RenderError" in res.stdout and "PYOPENGL_PLATFORM=egl" in res.stdout and "libegl1" in res.stdout


def test_importing_triton_after_a_software_render_does_not_crash():
    pytest.importorskip("triton")
    code = (
        "import numpy as np\n"
        "from bopnp.bop.mesh import Mesh\n"
        "from bopnp.render import get_renderer\n"
        "r = get_renderer(32, 32)\n"
        "r.add_model(1, Mesh(vertices_mm=np.array([[-5, -5, 0], [5, -5, 0], [0, 5, 0]], np.float32), "
        "faces=np.array([[0, 1, 2]])))\n"
        "K = np.array([[30.0, 0, 15.5], [0, 30.0, 15.5], [0, 0, 1]])\n"
        "assert r.render(K, [(1, np.eye(3), np.array([0.0, 0.0, 20.0]))]).mask_full.any()\n"
        "import triton.runtime.autotuner\n"
        "print('ok')\n"
    )
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert res.returncode == 0 and "ok" in res.stdout, res.stderr[-2000:]


def test_forked_worker_gets_its_own_context(renderer):
    import multiprocessing as mp

    expected = renderer.render(K, [(1, np.eye(3), np.array([0.0, 0.0, 300.0]))]).mask_full.sum()
    ctx = mp.get_context("fork")
    with ctx.Pool(1) as pool:
        got = pool.apply(_render_in_child)
    assert got == expected


def _render_in_child() -> int:
    r = get_renderer(W, H)
    r.add_model(1, box_mesh((20.0, 15.0, 10.0), colour=(200, 40, 10)))
    return int(r.render(K, [(1, np.eye(3), np.array([0.0, 0.0, 300.0]))]).mask_full.sum())


@pytest.mark.gpu
def test_uses_the_nvidia_egl_device_when_cuda_is_present(renderer):
    assert "NVIDIA" in renderer.gl_renderer.upper()
    assert renderer.device_name.startswith("NVIDIA EGL device")


# ----------------------------------------------------------------------------------------------- real data


@pytest.mark.shared_data
def test_rendered_depth_agrees_with_real_lmo_depth(lmo_image3):
    real = lmo_image3.depth_mm
    out = lmo_image3.renderer.render(lmo_image3.K, lmo_image3.instances)
    both = (out.depth_mm > 0) & (real > 0)
    assert both.sum() > 15000
    diff = np.abs(out.depth_mm[both] - real[both])
    median = float(np.median(diff))
    print(f"LM-O scene 2 image 3: median |rendered - real depth| = {median:.2f} mm over {both.sum()} px")
    assert median < 5.0
    # shifting the render by 8 px (a wrong principal point) makes the agreement clearly worse
    shifted = np.roll(out.depth_mm, 8, axis=1)
    both_s = (shifted > 0) & (real > 0)
    assert np.median(np.abs(shifted[both_s] - real[both_s])) > median + 3


def test_placements_and_plain_tuples_render_alike_and_the_aabb_box_holds_the_silhouette(renderer):
    from bopnp.render import Placement

    R, t = rotation([0.4, -0.7, 0.2]), np.array([12.0, -8.0, 330.0])
    as_placement = renderer.render(K, [Placement(obj_id=2, R_m2c=R, t_m2c=t)])
    as_tuple = renderer.render(K, [(2, R, t)])
    np.testing.assert_array_equal(as_placement.depth_mm, as_tuple.depth_mm)
    v, u = np.nonzero(as_tuple.mask_visib[0])
    assert len(u) > 100
    box = renderer.projected_aabb_box_px(K, 2, R, t, min_z_mm=1.0)
    # conservative: every silhouette pixel centre lies inside the projected bounding-box corners (tolerance 1e-6 px)
    assert (
        box[0] - 1e-6 <= u.min() and box[1] - 1e-6 <= v.min() and u.max() <= box[2] + 1e-6 and v.max() <= box[3] + 1e-6
    )
    assert (
        renderer.projected_aabb_box_px(K, 2, R, np.array([0.0, 0.0, 20.0]), min_z_mm=1.0) is None
    )  # behind the camera

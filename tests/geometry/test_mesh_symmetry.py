"""The mesh symmetry search finds exactly the rotation groups of meshes whose groups are known by construction."""

from __future__ import annotations

import importlib.util
import math
import sys
from pathlib import Path

import numpy as np
import pytest

from bopnp.errors import ConfigError
from bopnp.geometry.mesh_symmetry import (
    SymmetryConfig,
    find_symmetries,
    sample_surface,
    snap_rotation,
    surface_moments,
    vertex_color_appearance,
)


def _shapes():
    name = "geometry_mesh_shapes"
    if name not in sys.modules:
        spec = importlib.util.spec_from_file_location(name, Path(__file__).with_name("mesh_shapes.py"))
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        spec.loader.exec_module(module)
    return sys.modules[name]


S = _shapes()

#: found and expected rotations agree within this (the search refines by ICP on sampled points)
ROT_TOL_DEG = 1.0


def _angle_deg(R1, R2) -> float:
    return math.degrees(math.acos(np.clip((np.trace(R1.T @ R2) - 1) / 2, -1, 1)))


def assert_same_group(found: np.ndarray, expected: list[np.ndarray], centre=(0.0, 0.0, 0.0)):
    """Every found transform matches one expected (rotation within ROT_TOL_DEG, the centre kept fixed within
    0.5 mm) and the counts agree, i.e. the same group."""
    assert len(found) == len(expected), f"found {len(found)} symmetries, expected {len(expected)}"
    centre = np.asarray(centre, np.float64)
    for E in expected:
        match = [F for F in found if _angle_deg(F[:3, :3], E[:3, :3]) < ROT_TOL_DEG]
        assert len(match) == 1, f"expected rotation {np.round(E[:3, :3], 3).tolist()} matched {len(match)} times"
        moved = match[0][:3, :3] @ centre + match[0][:3, 3]
        assert np.linalg.norm(moved - centre) < 0.5


def _turns(axis, n):
    return [S.turn(axis, 360.0 * k / n) for k in range(1, n)]


def test_box_with_three_distinct_sides_has_the_three_half_turns():
    res = find_symmetries(S.box().vertices_mm, S.box().faces)
    assert_same_group(res.discrete, [S.turn(a, 180) for a in ((1, 0, 0), (0, 1, 0), (0, 0, 1))])
    assert res.continuous == () and not res.sphere


def test_square_prism_has_the_dihedral_group_of_order_eight():
    mesh = S.box((56.0, 56.0, 110.0))
    res = find_symmetries(mesh.vertices_mm, mesh.faces)
    flips = [S.turn(a, 180) for a in ((1, 0, 0), (0, 1, 0), (1, 1, 0), (1, -1, 0))]
    assert_same_group(res.discrete, _turns((0, 0, 1), 4) + flips)


def test_cylinder_is_continuous_about_its_axis_with_one_flip():
    mesh = S.cylinder()
    res = find_symmetries(mesh.vertices_mm, mesh.faces)
    assert len(res.continuous) == 1 and not res.sphere
    axis = np.asarray(res.continuous[0]["axis"])
    assert abs(abs(axis[2]) - 1) < 1e-3
    assert np.linalg.norm(np.asarray(res.continuous[0]["offset"])[:2]) < 0.1  # the offset is a point of the axis
    assert len(res.discrete) == 1
    flip = res.discrete[0][:3, :3]
    assert abs(np.trace(flip) + 1) < 1e-6  # a half turn...
    assert flip[2, 2] == pytest.approx(-1, abs=1e-6)  # ...about an axis perpendicular to z


def test_cone_is_continuous_about_its_axis_only():
    mesh = S.cone()
    res = find_symmetries(mesh.vertices_mm, mesh.faces)
    assert len(res.continuous) == 1 and len(res.discrete) == 0 and not res.sphere
    axis, offset = np.asarray(res.continuous[0]["axis"]), np.asarray(res.continuous[0]["offset"])
    assert abs(abs(axis[2]) - 1) < 1e-3 and np.linalg.norm(offset[:2]) < 0.1


def test_icosphere_is_reported_as_a_sphere():
    mesh = S.icosphere()
    res = find_symmetries(mesh.vertices_mm, mesh.faces)
    assert res.sphere
    assert len(res.continuous) == 1 and len(res.discrete) == 1
    axis = np.asarray(res.continuous[0]["axis"])
    flip_axis = np.linalg.eigh(res.discrete[0][:3, :3])[1][:, -1]  # eigenvalue 1
    assert abs(axis @ flip_axis) < 0.1


def test_cube_has_the_24_rotations_of_the_octahedral_group():
    # equal moments: the principal axes say nothing, the hemisphere's directions find the axes
    mesh = S.box((60.0, 60.0, 60.0))
    res = find_symmetries(mesh.vertices_mm, mesh.faces)
    faces = [T for a in ((1, 0, 0), (0, 1, 0), (0, 0, 1)) for T in _turns(a, 4)]
    corners = [T for a in ((1, 1, 1), (1, 1, -1), (1, -1, 1), (-1, 1, 1)) for T in _turns(a, 3)]
    edges = [S.turn(a, 180) for a in ((1, 1, 0), (1, -1, 0), (1, 0, 1), (1, 0, -1), (0, 1, 1), (0, 1, -1))]
    assert_same_group(res.discrete, faces + corners + edges)


def test_asymmetric_wedge_has_no_symmetry():
    mesh = S.wedge()
    res = find_symmetries(mesh.vertices_mm, mesh.faces)
    assert len(res.discrete) == 0 and res.continuous == ()


def test_a_mesh_away_from_the_origin_has_translations_that_keep_its_centre():
    mesh = S.box()
    shift = np.array([200.0, -50.0, 30.0])
    res = find_symmetries(mesh.vertices_mm + shift, mesh.faces)
    assert_same_group(res.discrete, [S.turn(a, 180) for a in ((1, 0, 0), (0, 1, 0), (0, 0, 1))], centre=shift)


@pytest.mark.parametrize("index", [0, 2, 3])  # mug, box, tower
def test_appearance_reproduces_the_declared_symmetries_of_the_synthetic_objects(index):
    from bopnp.synth.procedural import dataset_objects

    obj = dataset_objects()[index]
    mesh = obj.mesh
    shape = find_symmetries(mesh.vertices_mm, mesh.faces)
    colour = find_symmetries(mesh.vertices_mm, mesh.faces, appearance=vertex_color_appearance(mesh.faces, mesh.colors))
    assert_same_group(colour.discrete, list(obj.symmetries_discrete))
    # the shapes alone have more: the mug is 2-fold about x without its label, the box and tower are dihedral
    assert len(shape.discrete) == {0: 1, 2: 3, 3: 7}[index]


def test_surface_moments_match_a_dense_sample():
    mesh = S.wedge()
    centroid, cov = surface_moments(mesh.vertices_mm, mesh.faces)
    pts, _, _ = sample_surface(mesh.vertices_mm, mesh.faces, 400_000, np.random.default_rng(1))
    assert np.allclose(centroid, pts.mean(0), atol=0.1)
    assert np.allclose(cov, np.cov(pts.T, bias=True), rtol=0.01, atol=2.0)


def test_samples_are_uniform_by_area():
    # two triangles, one with 4x the area of the other
    v = np.array([[0, 0, 0], [1, 0, 0], [0, 1, 0], [10, 0, 0], [12, 0, 0], [10, 2, 0]], np.float64)
    _, face, bary = sample_surface(v, np.array([[0, 1, 2], [3, 4, 5]]), 20000, np.random.default_rng(0))
    assert (face == 1).mean() == pytest.approx(0.8, abs=0.01)
    assert (bary >= 0).all() and np.allclose(bary.sum(1), 1)


def test_snap_rotation_gives_an_exact_turn_about_a_fixed_point():
    centre = np.array([10.0, 5.0, -3.0])
    T = S.turn((0.02, 0.0, 1.0), 179.3)
    T[:3, 3] = centre - T[:3, :3] @ centre + np.array([0.0, 0.0, 0.4])  # screw along the axis
    snapped = snap_rotation(T, centre)
    R = snapped[:3, :3]
    assert np.allclose(R @ R, np.eye(3), atol=1e-9)  # exactly a half turn
    assert _angle_deg(R, T[:3, :3]) < 1.0
    assert np.allclose(R @ centre + snapped[:3, 3], centre, atol=0.05)


def test_config_validation_names_the_field():
    with pytest.raises(ConfigError, match="samples"):
        SymmetryConfig(samples=10).validate()
    with pytest.raises(ConfigError, match="mean_tol"):
        SymmetryConfig(mean_tol=0.2, max_tol=0.1).validate()
    with pytest.raises(ConfigError, match="max_order"):
        SymmetryConfig(max_order=1).validate()


def test_same_seed_same_result():
    mesh = S.box((56.0, 56.0, 110.0))
    a = find_symmetries(mesh.vertices_mm, mesh.faces)
    b = find_symmetries(mesh.vertices_mm, mesh.faces)
    assert np.array_equal(a.discrete, b.discrete)

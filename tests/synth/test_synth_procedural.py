"""Procedural meshes: the declared symmetries are true (shape, normals AND colour), and only those."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
from scipy.spatial import cKDTree
from scipy.spatial.distance import pdist

from bopnp.bop.annotations import models_info_to_json
from bopnp.bop.symmetry import axis_angle_matrix
from bopnp.synth.procedural import dataset_objects, model_info, random_distractor, rigid

OBJECTS = dataset_objects()
BY_NAME = {o.name: o for o in OBJECTS}


def symmetry_residual(mesh, T: np.ndarray) -> tuple[float, float, int]:
    """Map every vertex (position and normal) by T and find the vertex it lands on.

    Returns (max position distance mm, max normal difference, max colour difference over uint8 channels),
    where the match is the nearest vertex in (position, 100 mm x normal) space.
    """
    v = mesh.vertices_mm.astype(np.float64)
    n = mesh.normals.astype(np.float64)
    R, t = T[:3, :3], T[:3, 3]
    v2, n2 = v @ R.T + t, n @ R.T
    tree = cKDTree(np.concatenate([v, 100.0 * n], 1))
    _, idx = tree.query(np.concatenate([v2, 100.0 * n2], 1))
    dist = float(np.linalg.norm(v[idx] - v2, axis=1).max())
    ndiff = float(np.linalg.norm(n[idx] - n2, axis=1).max())
    cdiff = int(np.abs(mesh.colors[idx].astype(int) - mesh.colors.astype(int)).max())
    return dist, ndiff, cdiff


def signed_volume(mesh) -> float:
    """Volume enclosed by a closed mesh, mm^3 (divergence theorem): positive when its faces point outward."""
    a, b, c = (mesh.vertices_mm[mesh.faces[:, k]].astype(np.float64) for k in range(3))
    return float(np.einsum("ij,ij->i", a, np.cross(b, c)).sum() / 6)


def dense_surface_samples(mesh, k: int = 8) -> np.ndarray:
    """(F * (k+1)(k+2)/2, 3) points on a barycentric grid over every triangle, mm."""
    i, j = np.meshgrid(np.arange(k + 1), np.arange(k + 1), indexing="ij")
    keep = i + j <= k
    w1, w2 = i[keep] / k, j[keep] / k
    a, b, c = (mesh.vertices_mm[mesh.faces[:, q]].astype(np.float64) for q in range(3))
    pts = a[:, None] + (b - a)[:, None] * w1[None, :, None] + (c - a)[:, None] * w2[None, :, None]
    return pts.reshape(-1, 3)


def is_symmetry(mesh, T: np.ndarray) -> bool:
    dist, ndiff, cdiff = symmetry_residual(mesh, T)
    return dist < 1e-3 and ndiff < 1e-4 and cdiff <= 1


def candidate_rotations() -> list[np.ndarray]:
    """The 24 rotations of the cube, plus turns about z by multiples of 60 degrees, plus a few odd angles."""
    cands = []
    for perm in itertools.permutations(range(3)):
        for signs in itertools.product([1, -1], repeat=3):
            R = np.zeros((3, 3))
            R[range(3), perm] = signs
            if np.linalg.det(R) > 0:
                cands.append(R)
    cands += [axis_angle_matrix(k * np.pi / 3, (0, 0, 1)) for k in (1, 2, 4, 5)]
    cands += [
        axis_angle_matrix(0.3, (0, 0, 1)),
        axis_angle_matrix(0.05, (1, 0, 0)),
        axis_angle_matrix(2 * np.pi / 3, (1, 1, 1)),
    ]
    return [rigid(R) for R in cands if not np.allclose(R, np.eye(3))]


def test_at_least_five_objects_with_each_kind_of_symmetry():
    assert len(OBJECTS) >= 5
    kinds = {
        ("discrete" if o.symmetries_discrete else "") + ("continuous" if o.symmetries_continuous else "")
        for o in OBJECTS
    }
    assert {"", "discrete", "continuous"} <= kinds


@pytest.mark.parametrize("obj", OBJECTS, ids=lambda o: o.name)
def test_mesh_is_well_formed_closed_and_outward(obj):
    m = obj.mesh
    assert m.vertices_mm.dtype == np.float32 and m.faces.dtype == np.int64 and m.colors.dtype == np.uint8
    assert m.faces.min() >= 0 and m.faces.max() < len(m.vertices_mm)
    np.testing.assert_allclose(np.linalg.norm(m.normals, axis=1), 1.0, atol=1e-5)
    assert 60 < float(np.linalg.norm(m.extent_mm)) < 300  # LM-O-like sizes
    # outward winding: the divergence theorem gives a positive volume for closed, outward-facing surfaces
    assert signed_volume(m) > 0.2 * np.prod(m.extent_mm)
    # face normals agree with the vertex normals almost everywhere
    a, b, c = (m.vertices_mm[m.faces[:, k]].astype(np.float64) for k in range(3))
    face_n = np.cross(b - a, c - a)
    agree = (face_n * m.normals[m.faces].sum(1)).sum(1) > 0
    assert agree.mean() > 0.99
    # colourful, not a flat colour
    assert m.colors.astype(float).std(0).mean() > 15


def test_box_volume_is_analytic():
    assert signed_volume(BY_NAME["box"].mesh) == pytest.approx(100 * 64 * 48, rel=1e-6)


@pytest.mark.parametrize("obj", [o for o in OBJECTS if o.symmetries_discrete], ids=lambda o: o.name)
def test_declared_discrete_symmetries_map_shape_and_colour_onto_itself(obj):
    for T in obj.symmetries_discrete:
        dist, ndiff, cdiff = symmetry_residual(obj.mesh, np.asarray(T))
        assert dist < 1e-3, f"{obj.name}: vertex moved {dist} mm off the mesh"
        assert ndiff < 1e-4
        assert cdiff <= 1, f"{obj.name}: colour differs by {cdiff}"


@pytest.mark.parametrize("obj", OBJECTS, ids=lambda o: o.name)
def test_no_undeclared_symmetry_among_candidate_rotations(obj):
    """Every candidate rotation that maps the object onto itself is declared (discrete, or about a continuous axis)."""
    declared = [np.asarray(T) for T in obj.symmetries_discrete]
    axes = [np.asarray(s["axis"], float) for s in obj.symmetries_continuous]
    for T in candidate_rotations():
        R = T[:3, :3]
        about_axis = any(np.allclose(R @ a, a, atol=1e-9) for a in axes)
        expected = about_axis or any(np.allclose(T, D, atol=1e-9) for D in declared)
        if about_axis:
            continue  # checked by the continuous-symmetry test (vertex grids are only symmetric at their own step)
        assert is_symmetry(obj.mesh, T) == expected, (
            f"{obj.name}: candidate\n{np.round(R, 3)}\nexpected symmetric={expected}"
        )


def test_the_check_rejects_wrong_symmetries():
    # negative controls: a symmetry of the shape that the texture breaks, and a shape non-symmetry
    hexnut, box = BY_NAME["hexnut"].mesh, BY_NAME["box"].mesh
    assert not is_symmetry(hexnut, rigid(axis_angle_matrix(np.pi / 3, (0, 0, 1))))  # 6-fold shape, 3-fold colour
    assert not is_symmetry(box, rigid(axis_angle_matrix(np.pi, (1, 0, 0))))  # top and bottom coloured differently
    assert not is_symmetry(box, rigid(axis_angle_matrix(np.pi, (0, 0, 1)), (1.0, 0, 0)))  # wrong translation


@pytest.mark.parametrize("obj", [o for o in OBJECTS if o.symmetries_continuous], ids=lambda o: o.name)
def test_declared_continuous_symmetries_hold_at_any_angle(obj):
    m = obj.mesh
    surface = cKDTree(dense_surface_samples(m))
    diameter = model_info(1, m).diameter_mm
    tol = 0.01 * diameter
    for sym in obj.symmetries_continuous:
        axis = np.asarray(sym["axis"], float)
        offset = np.asarray(sym["offset"], float)
        v = m.vertices_mm.astype(np.float64) - offset
        for angle in (0.1234, 1.0, 2.5, math.pi):
            R = axis_angle_matrix(angle, axis)
            moved = v @ R.T + offset
            # shape: the rotated vertices lie on the surface (up to the chord error and the sampling step)
            dist, _ = surface.query(moved)
            assert dist.max() < tol, f"{obj.name}: vertex {dist.max()} mm off the surface at {angle} rad"
        # negative control: a rotation about another axis moves vertices off the surface
        off_axis = np.cross(axis, [1.0, 0.0, 0.0] if abs(axis[0]) < 0.9 else [0.0, 1.0, 0.0])
        dist, _ = surface.query(v @ axis_angle_matrix(0.3, off_axis).T + offset)
        assert dist.max() > 5 * tol
        # colour and normal: functions of (height along the axis, distance from the axis) only
        h = v @ axis
        rho = np.linalg.norm(v - np.outer(h, axis), axis=1)
        n_axial = m.normals.astype(np.float64) @ axis
        keys = np.round(np.stack([h, rho, n_axial * 100], 1), 2)
        _, group = np.unique(keys, axis=0, return_inverse=True)
        group = group.reshape(-1)
        assert group.max() + 1 < len(v) / 10  # the rings really group many vertices
        for channel in range(3):
            c = m.colors[:, channel].astype(int)
            spread = np.zeros(group.max() + 1, int)
            lo = np.full(group.max() + 1, 999)
            np.maximum.at(spread, group, c)
            np.minimum.at(lo, group, c)
            assert (spread - lo).max() <= 1, f"{obj.name}: colour varies around the axis"


def test_asymmetric_objects_have_no_symmetry_of_the_texture_either():
    for name in ("mug", "wedge"):
        assert not BY_NAME[name].symmetries_discrete and not BY_NAME[name].symmetries_continuous
        m = BY_NAME[name].mesh
        assert not any(is_symmetry(m, T) for T in candidate_rotations())


@pytest.mark.parametrize("obj", OBJECTS, ids=lambda o: o.name)
def test_model_info_matches_brute_force(obj):
    record = model_info(3, obj.mesh, obj.symmetries_discrete, obj.symmetries_continuous)
    assert record.obj_id == 3
    info = models_info_to_json({3: record})["3"]  # as models_info.json holds it
    v = obj.mesh.vertices_mm.astype(np.float64)
    assert info["diameter"] == pytest.approx(pdist(v).max(), rel=1e-9)
    for k, axis in enumerate("xyz"):
        assert info[f"min_{axis}"] == pytest.approx(v[:, k].min())
        assert info[f"size_{axis}"] == pytest.approx(np.ptp(v[:, k]))
    assert len(info.get("symmetries_discrete", [])) == len(obj.symmetries_discrete)
    for flat, T in zip(info.get("symmetries_discrete", []), obj.symmetries_discrete):
        assert len(flat) == 16 and flat[-4:] == [0.0, 0.0, 0.0, 1.0]
        np.testing.assert_allclose(np.reshape(flat, (4, 4)), T)
    if obj.symmetries_continuous:
        assert info["symmetries_continuous"] == [{"axis": [0.0, 0.0, 1.0], "offset": [0.0, 0.0, 0.0]}]


def test_dataset_objects_do_not_depend_on_anything_random():
    again = dataset_objects()
    for a, b in zip(OBJECTS, again):
        np.testing.assert_array_equal(a.mesh.vertices_mm, b.mesh.vertices_mm)
        np.testing.assert_array_equal(a.mesh.colors, b.mesh.colors)


def test_random_distractors_are_reproducible_varied_and_well_formed():
    a = [random_distractor(np.random.default_rng(7)) for _ in range(2)]
    np.testing.assert_array_equal(a[0].vertices_mm, a[1].vertices_mm)
    np.testing.assert_array_equal(a[0].colors, a[1].colors)
    rng = np.random.default_rng(0)
    meshes = [random_distractor(rng) for _ in range(12)]
    extents = np.array([m.extent_mm for m in meshes])
    assert len({m.vertices_mm.shape[0] for m in meshes}) > 3
    assert extents.max() < 200 and extents.min() > 10
    for m in meshes:
        assert m.faces.max() < len(m.vertices_mm)
        np.testing.assert_allclose(np.linalg.norm(m.normals, axis=1), 1.0, atol=1e-5)
        assert signed_volume(m) > 0  # outward

"""models_info.json computed from meshes: exact diameters, boxes and symmetries against LM-O's own file, BOP's
readers taking the result unchanged, and bad meshes refused with a message naming the file."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from scipy.spatial.distance import pdist

from bopnp.bop import models_info as mi
from bopnp.bop.annotations import models_info_to_json, parse_models_info
from bopnp.bop.io import load_models_info, load_ply
from bopnp.bop.mesh import Mesh
from bopnp.bop.models_info import ModelsInfoConfig, compute_model_info, diameter_mm, differences
from bopnp.bop.symmetry import symmetry_transforms
from bopnp.errors import ConfigError, DatasetError

LMO_OBJECTS = [1, 5, 6, 8, 9, 10, 11, 12]
#: LM-O's declared symmetries: eggbox (10) and glue (11), one half turn each
LMO_SYMMETRIC = {10, 11}


def _tetra(scale=1.0) -> Mesh:
    v = np.array([[0, 0, 0], [40, 0, 0], [0, 30, 0], [0, 0, 20]], np.float32) * scale
    return Mesh(v, np.array([[0, 2, 1], [0, 1, 3], [0, 3, 2], [1, 2, 3]]))


def _lumpy(rings: int, segs: int, seed: int = 0) -> Mesh:
    """A closed, noisy ellipsoid (60 x 40 x 30 mm semi-axes) of about 2 rings x segs triangles."""
    rng = np.random.default_rng(seed)
    th = np.linspace(0.02, np.pi - 0.02, rings)[:, None]
    ph = np.linspace(0, 2 * np.pi, segs, endpoint=False)[None]
    r = 1 + 0.01 * rng.standard_normal((rings, segs))
    v = np.stack(
        [60 * r * np.sin(th) * np.cos(ph), 40 * r * np.sin(th) * np.sin(ph), 30 * r * np.cos(th) * np.ones_like(ph)], -1
    ).reshape(-1, 3)
    i = np.arange(rings * segs).reshape(rings, segs)
    j = np.roll(i, -1, 1)
    a, b, c, d = i[:-1], j[:-1], j[1:], i[1:]
    f = np.concatenate([np.stack([a, b, c], -1).reshape(-1, 3), np.stack([a, c, d], -1).reshape(-1, 3)])
    return Mesh(v.astype(np.float32), f)


# ----------------------------------------------------------------------------------------------- diameter
@pytest.mark.parametrize("kind", ["cloud", "flat", "line", "sphere"])
def test_diameter_equals_brute_force(kind):
    rng = np.random.default_rng(3)
    p = rng.normal(size=(3000, 3)) * [50, 30, 20]
    if kind == "flat":
        p[:, 2] = 7.0
    elif kind == "line":
        p = np.outer(rng.uniform(-40, 60, 500), [1.0, 2.0, -0.5]) + [1.0, 2.0, 3.0]
    elif kind == "sphere":  # every point on the hull: the pruning cannot skip any
        p = p / np.linalg.norm(p, axis=1, keepdims=True) * 50
    assert diameter_mm(p) == pytest.approx(pdist(p).max(), rel=1e-12)


def test_diameter_in_small_chunks_is_the_same(monkeypatch):
    p = np.random.default_rng(0).normal(size=(2000, 3)) * [50, 30, 20]
    p /= np.linalg.norm(p, axis=1, keepdims=True)
    expected = pdist(p).max()
    monkeypatch.setattr(mi, "_PAIR_CHUNK", 500)
    assert diameter_mm(p) == pytest.approx(expected, rel=1e-12)


def test_single_point_has_zero_diameter():
    assert diameter_mm(np.ones((5, 3))) == 0.0


# -------------------------------------------------------------------------------------------------- LM-O
@pytest.fixture(scope="module")
def lmo_computed(lmo_dir):
    declared = load_models_info(lmo_dir / "models" / "models_info.json")
    out = {}
    for obj_id in LMO_OBJECTS:
        path = lmo_dir / "models" / f"obj_{obj_id:06d}.ply"
        out[obj_id] = compute_model_info(obj_id, load_ply(path), path, ModelsInfoConfig()).info
    return declared, out


@pytest.mark.shared_data
def test_lmo_diameters_and_boxes_equal_the_published_file(lmo_computed):
    declared, computed = lmo_computed
    for obj_id in LMO_OBJECTS:
        d, c = declared[obj_id], computed[obj_id]
        assert c.diameter_mm == pytest.approx(d.diameter_mm, abs=0.01), obj_id
        assert np.allclose(c.min_mm, d.min_mm, atol=0.01), obj_id
        assert np.allclose(c.size_mm, d.size_mm, atol=0.01), obj_id
        assert differences(d, c) == [], obj_id


@pytest.mark.shared_data
def test_lmo_symmetries_are_the_declared_ones(lmo_computed, lmo_dir):
    declared, computed = lmo_computed
    for obj_id in LMO_OBJECTS:
        c = computed[obj_id]
        assert c.symmetries_continuous == (), obj_id
        if obj_id not in LMO_SYMMETRIC:
            assert len(c.symmetries_discrete) == 0, obj_id
            continue
        assert len(c.symmetries_discrete) == 1, obj_id
        T, D = c.symmetries_discrete[0], declared[obj_id].symmetries_discrete[0]
        angle = math.degrees(math.acos(np.clip((np.trace(T[:3, :3].T @ D[:3, :3]) - 1) / 2, -1, 1)))
        assert angle < 3.0, obj_id
        # the two transforms move the model's vertices to nearly the same places (< 2 % of the diameter)
        v = load_ply(lmo_dir / "models" / f"obj_{obj_id:06d}.ply").vertices_mm.astype(np.float64)
        gap = np.linalg.norm(v @ (T[:3, :3] - D[:3, :3]).T + (T[:3, 3] - D[:3, 3]), axis=1).max()
        assert gap < 0.02 * c.diameter_mm, (obj_id, gap)


@pytest.mark.shared_data
def test_lmo_result_is_read_unchanged_by_the_bop_readers(lmo_computed):
    _, computed = lmo_computed
    content = json.loads(json.dumps(models_info_to_json(computed)))  # what the file holds
    problems: list[str] = []
    parsed = parse_models_info(content, "models_info.json", problems)
    assert problems == []
    assert len(symmetry_transforms(parsed[10])) == 2
    assert np.allclose(parsed[10].symmetries_discrete, computed[10].symmetries_discrete)
    assert len(content["10"]["symmetries_discrete"][0]) == 16  # flat row-major 4x4, as BOP


# ------------------------------------------------------------------------------------------------ results
def test_a_continuous_symmetry_is_written_as_bop_reads_it():
    from bopnp.synth.procedural import dataset_objects

    bottle = dataset_objects()[5].mesh
    info = compute_model_info(6, bottle, "obj_000006.ply", ModelsInfoConfig()).info
    entry = models_info_to_json({6: info})["6"]
    assert set(entry["symmetries_continuous"][0]) == {"axis", "offset"}
    transforms = symmetry_transforms(parse_models_info({"6": entry}, "x", [])[6])
    # every sampled rotation keeps the bottle's vertices on the bottle (within 1 mm: its 56-gon cross-section)
    v = bottle.vertices_mm.astype(np.float64)
    from scipy.spatial import cKDTree

    tree = cKDTree(v)
    for T in transforms[:: len(transforms) // 7]:
        assert tree.query(v @ T[:3, :3].T + T[:3, 3])[0].max() < 1.0


def test_symmetries_none_and_keep():
    mesh = _tetra()
    none = compute_model_info(1, mesh, "a.ply", ModelsInfoConfig(symmetries="none")).info
    assert len(none.symmetries_discrete) == 0
    kept_from = compute_model_info(1, mesh, "a.ply", ModelsInfoConfig(symmetries="none")).info
    kept_from = type(kept_from)(**{**kept_from.__dict__, "symmetries_discrete": np.eye(4)[None], "extra": {"k": 1}})
    kept = compute_model_info(1, mesh, "a.ply", ModelsInfoConfig(symmetries="keep"), kept_from).info
    assert np.array_equal(kept.symmetries_discrete, np.eye(4)[None]) and kept.extra == {"k": 1}
    with pytest.raises(DatasetError, match="keep"):
        compute_model_info(1, mesh, "a.ply", ModelsInfoConfig(symmetries="keep"))


def test_differences_name_the_fields():
    mesh = _tetra()
    a = compute_model_info(1, mesh, "a.ply", ModelsInfoConfig(symmetries="none")).info
    b = compute_model_info(1, _tetra(1.01), "a.ply", ModelsInfoConfig(symmetries="none")).info
    lines = differences(a, b)
    assert any(line.startswith("diameter") for line in lines) and any(line.startswith("size_x") for line in lines)
    assert differences(a, a) == []


# ------------------------------------------------------------------------------------------------ bad input
def test_metres_are_refused_with_the_fix_and_scale_fixes_them():
    with pytest.raises(DatasetError, match="--scale 1000"):
        compute_model_info(1, _tetra(0.001), "obj_000001.ply", ModelsInfoConfig(symmetries="none"))
    info = compute_model_info(1, _tetra(0.001), "x", ModelsInfoConfig(symmetries="none", scale=1000.0)).info
    assert info.diameter_mm == pytest.approx(50.0, rel=1e-6)


@pytest.mark.parametrize(
    "mesh, match",
    [
        (Mesh(np.zeros((4, 3), np.float32) + [1, 2, 3], np.zeros((0, 3), np.int64)), "no triangles"),
        (Mesh(np.array([[0, 0, 0], [1, 0, 0], [np.nan, 0, 0]], np.float32), np.array([[0, 1, 2]])), "vertex 2 is nan"),
        (Mesh(np.array([[0, 0, 0], [1, 1, 1], [2, 2, 2]], np.float32), np.array([[0, 1, 2]])), "zero area"),
        (Mesh(np.zeros((0, 3), np.float32), np.zeros((0, 3), np.int64)), "no vertices"),
        (Mesh(np.eye(3, dtype=np.float32), np.array([[0, 1, 7]])), "does not exist"),
    ],
)
def test_unusable_meshes_are_refused_naming_the_file(mesh, match):
    with pytest.raises(DatasetError, match=match) as err:
        compute_model_info(1, mesh, "obj_000001.ply", ModelsInfoConfig())
    assert "obj_000001.ply" in str(err.value)


def test_flat_mesh_gets_a_correct_result():
    # a 60 x 40 mm sheet: its box has no height, its diameter is the diagonal, its symmetries are the sheet's
    v = np.array([[-30, -20, 5], [30, -20, 5], [30, 20, 5], [-30, 20, 5]], np.float32)
    report = compute_model_info(1, Mesh(v, np.array([[0, 1, 2], [0, 2, 3]])), "x", ModelsInfoConfig())
    assert report.info.diameter_mm == pytest.approx(math.hypot(60, 40))
    assert report.info.size_mm[2] == 0 and any("flat" in n for n in report.notes)
    assert len(report.info.symmetries_discrete) == 3  # the half turns about x, y and z


def test_non_manifold_scan_gets_a_result():
    # a box of separate faces (no shared vertices), an edge shared by three faces and a dangling sliver
    base = _lumpy(40, 60)
    v = np.asarray(base.vertices_mm)
    f = np.asarray(base.faces)
    soup_v = v[f].reshape(-1, 3)
    soup_f = np.arange(len(soup_v)).reshape(-1, 3)
    extra_v = np.array([v[f[0, 0]], v[f[0, 1]], [0.0, 0.0, 0.0], [70.0, 0.0, 0.0]], np.float32)
    n = len(soup_v)
    mesh = Mesh(
        np.concatenate([soup_v, extra_v]).astype(np.float32),
        np.concatenate([soup_f, [[n, n + 1, n + 2], [n, n + 1, n + 3]]]),
    )
    info = compute_model_info(1, mesh, "x", ModelsInfoConfig()).info
    assert info.diameter_mm == pytest.approx(pdist(np.unique(mesh.vertices_mm, axis=0)).max(), rel=1e-9)


def test_two_million_faces_finish():
    mesh = _lumpy(707, 1414)
    assert len(mesh.faces) > 1_990_000
    report = compute_model_info(1, mesh, "big.ply", ModelsInfoConfig())
    v = np.asarray(mesh.vertices_mm, np.float64)
    assert report.info.diameter_mm >= np.ptp(v[:, 0]) and report.info.diameter_mm < 125.0


def test_config_validation():
    with pytest.raises(ConfigError, match="scale"):
        ModelsInfoConfig(scale=0.0).validate()
    with pytest.raises(ConfigError, match="symmetries"):
        ModelsInfoConfig(symmetries="guess").validate()

from __future__ import annotations

import numpy as np
import pytest
from bop_helpers import same, snapshot

from bopnp.bop.io import load_models_info
from bopnp.bop.mesh import Mesh
from bopnp.bop.ply import load_ply, save_ply
from bopnp.errors import DatasetError


def _full_mesh(rng) -> Mesh:
    v = rng.normal(0, 50, (30, 3)).astype(np.float32)
    f = rng.integers(0, 30, (40, 3)).astype(np.int64)
    n = rng.normal(size=(30, 3)).astype(np.float32)
    return Mesh(
        vertices_mm=v,
        faces=f,
        normals=n / np.linalg.norm(n, axis=1, keepdims=True),
        colors=rng.integers(0, 256, (30, 3)).astype(np.uint8),
        uv=rng.random((30, 2)).astype(np.float32),
        face_uv=rng.random((40, 3, 2)).astype(np.float32),
        texture=rng.integers(0, 256, (8, 16, 3)).astype(np.uint8),
        texture_file="tex.png",
    )


@pytest.mark.parametrize("binary", [False, True])
def test_round_trip_every_attribute(tmp_path, binary):
    mesh = _full_mesh(np.random.default_rng(0))
    before = snapshot(mesh)
    save_ply(tmp_path / "m.ply", mesh, binary=binary)
    assert same(mesh, before)  # the writer does not touch its input
    back = load_ply(tmp_path / "m.ply")
    assert np.array_equal(back.vertices_mm, mesh.vertices_mm)  # float32 written with 9 significant digits
    assert np.array_equal(back.faces, mesh.faces) and back.faces.dtype == np.int64
    assert np.array_equal(back.normals, mesh.normals)
    assert np.array_equal(back.colors, mesh.colors) and back.colors.dtype == np.uint8
    assert np.array_equal(back.uv, mesh.uv)
    assert np.array_equal(back.face_uv, mesh.face_uv)
    assert np.array_equal(back.texture, mesh.texture)
    assert back.texture_file == "tex.png"


def test_round_trip_minimal_and_no_leftover_temp_files(tmp_path):
    mesh = Mesh(vertices_mm=np.eye(3, dtype=np.float32), faces=np.array([[0, 1, 2]]))
    save_ply(tmp_path / "m.ply", mesh)
    back = load_ply(tmp_path / "m.ply")
    assert (
        back.normals is None
        and back.colors is None
        and back.uv is None
        and back.face_uv is None
        and back.texture is None
    )
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.ply"]


def test_ascii_variants_texcoord_st_quads_and_comments(tmp_path):
    text = """ply
format ascii 1.0
comment made by hand
comment TextureFile skin.png
element vertex 4
property double x
property double y
property double z
property float s
property float t
property uchar red
property uchar green
property uchar blue
property uchar alpha
element face 1
property list uchar int vertex_indices
property list uchar float texcoord
element edge 1
property int vertex1
property int vertex2
end_header
0 0 0 0.0 0.0 1 2 3 255
1 0 0 1.0 0.0 4 5 6 255
1 1 0 1.0 1.0 7 8 9 255
0 1 0 0.0 1.0 10 11 12 255
4 0 1 2 3 8 0 0 1 0 1 1 0 1
0 1
"""
    (tmp_path / "q.ply").write_text(text)
    with pytest.raises(DatasetError, match="skin.png"):
        load_ply(tmp_path / "q.ply")  # the named texture is missing
    m = load_ply(tmp_path / "q.ply", load_texture=False)
    assert m.texture_file == "skin.png" and m.texture is None
    assert m.faces.tolist() == [[0, 1, 2], [0, 2, 3]]  # fan triangulation of the quad
    assert m.uv.tolist() == [[0, 0], [1, 0], [1, 1], [0, 1]]  # s/t read as uv
    assert m.colors.tolist() == [[1, 2, 3], [4, 5, 6], [7, 8, 9], [10, 11, 12]]
    assert m.face_uv.tolist() == [[[0, 0], [1, 0], [1, 1]], [[0, 0], [1, 1], [0, 1]]]


def test_binary_big_endian_and_variable_polygons(tmp_path):
    v = np.array([[0, 0, 0], [1, 0, 0], [1, 1, 0], [0, 1, 0], [2, 0, 0]], ">f4")
    header = (
        b"ply\nformat binary_big_endian 1.0\nelement vertex 5\nproperty float x\nproperty float y\nproperty float z\n"
        b"element face 2\nproperty list uchar int vertex_indices\nend_header\n"
    )
    faces = bytes([3]) + np.array([0, 1, 4], ">i4").tobytes() + bytes([4]) + np.array([0, 1, 2, 3], ">i4").tobytes()
    (tmp_path / "b.ply").write_bytes(header + v.tobytes() + faces)
    m = load_ply(tmp_path / "b.ply")
    assert np.array_equal(m.vertices_mm, v.astype(np.float32))
    assert m.faces.tolist() == [[0, 1, 4], [0, 1, 2], [0, 2, 3]]


@pytest.mark.parametrize(
    "body, match",
    [
        (
            "ply\nformat ascii 1.0\nelement vertex 3\n"
            "property float x\nproperty float y\nproperty float z\nend_header\n0 0 0\n",
            "truncated",
        ),
        (
            "ply\nformat ascii 1.0\nelement vertex 3\nproperty float x\nproperty float y\nproperty float z\n"
            "element face 1\nproperty list uchar int vertex_indices\nend_header\n0 0 0\n1 0 0\n0 1 0\n3 0 1 7\n",
            r"face indices must lie in \[0, 3\)",
        ),
        ("ply\nformat ascii 1.0\nelement vertex 1\nproperty float x\nproperty float y\nend_header\n0 0\n", "x, y, z"),
        ("solid stl\nendsolid\n", "not a readable PLY"),
        ("ply\nformat ascii 1.0\nelement vertex 1\nproperty quaternion x\nend_header\n", "cannot parse property"),
    ],
)
def test_malformed_files_raise_dataset_error_naming_the_file(tmp_path, body, match):
    path = tmp_path / "bad.ply"
    path.write_text(body)
    with pytest.raises(DatasetError, match=match) as info:
        load_ply(path)
    assert str(path) in str(info.value)


def test_missing_file(tmp_path):
    with pytest.raises(DatasetError, match="not found"):
        load_ply(tmp_path / "nope.ply")


def test_with_vertex_uv_splits_seam_vertices_only():
    # two triangles share the edge 0-2; vertex 2 carries two different uvs (a seam), vertex 0 one
    mesh = Mesh(
        vertices_mm=np.array([[0, 0, 0], [1, 0, 0], [1, 1, 0], [0, 1, 0]], np.float32),
        faces=np.array([[0, 1, 2], [0, 2, 3]]),
        face_uv=np.array([[[0, 0], [1, 0], [1, 1]], [[0, 0], [0.5, 0.5], [0, 1]]], np.float32),
    )
    out = mesh.with_vertex_uv()
    assert out.face_uv is None and len(out.vertices_mm) == 5
    # every corner keeps its position and its uv
    corners_before = mesh.vertices_mm[mesh.faces]
    assert np.array_equal(out.vertices_mm[out.faces], corners_before)
    assert np.array_equal(out.uv[out.faces], mesh.face_uv)
    assert mesh.with_vertex_uv().face_uv is None and Mesh(mesh.vertices_mm, mesh.faces).with_vertex_uv().uv is None


@pytest.mark.shared_data
@pytest.mark.parametrize("folder", ["models", "models_eval"])
def test_lmo_models_match_trimesh_and_models_info(lmo_dir, folder):
    trimesh = pytest.importorskip("trimesh")
    info = load_models_info(lmo_dir / "models" / "models_info.json")
    for obj_id in sorted(info):  # LM-O's 8 objects
        path = lmo_dir / folder / f"obj_{obj_id:06d}.ply"
        mesh = load_ply(path)
        ref = trimesh.load(path, process=False)  # an independent PLY reader
        assert np.array_equal(mesh.vertices_mm, np.asarray(ref.vertices, np.float32))
        assert np.array_equal(mesh.faces, np.asarray(ref.faces))
        lo, size = mesh.bounds_mm[0], mesh.extent_mm
        if folder == "models":
            assert mesh.normals is not None and mesh.colors is not None
            # models_info.json is computed from these models (6 significant digits)
            np.testing.assert_allclose(lo, info[obj_id].min_mm, atol=1e-3)
            np.testing.assert_allclose(size, info[obj_id].size_mm, atol=1e-3)
        else:  # resampled: the box agrees to within 1 % of the diameter
            np.testing.assert_allclose(size, info[obj_id].size_mm, atol=0.01 * info[obj_id].diameter_mm)


@pytest.mark.shared_data
def test_lmo_vertex_counts_and_diameters(lmo_dir):
    from scipy.spatial import ConvexHull

    info = load_models_info(lmo_dir / "models" / "models_info.json")
    counts = {}
    for obj_id in sorted(info):  # LM-O's 8 objects
        mesh = load_ply(lmo_dir / "models" / f"obj_{obj_id:06d}.ply")
        counts[obj_id] = len(mesh.vertices_mm)
        v = mesh.vertices_mm.astype(np.float64)
        hull = v[ConvexHull(v).vertices]
        diameter = np.sqrt(((hull[:, None] - hull[None]) ** 2).sum(-1)).max()
        assert diameter == pytest.approx(info[obj_id].diameter_mm, rel=1e-4, abs=1e-3)
    assert counts == {1: 5841, 5: 22831, 6: 15736, 8: 12655, 9: 7912, 10: 18473, 11: 7479, 12: 15972}


@pytest.mark.parametrize("binary", [False, True])
def test_non_finite_vertex_is_refused_with_its_row(tmp_path, binary):
    mesh = Mesh(vertices_mm=np.arange(12, dtype=np.float32).reshape(4, 3), faces=np.array([[0, 1, 2], [1, 2, 3]]))
    mesh.vertices_mm[2, 2] = np.inf
    save_ply(tmp_path / "a.ply", mesh, binary=binary)
    with pytest.raises(DatasetError, match=r"a\.ply: element 'vertex' row 2: property 'z' is inf"):
        load_ply(tmp_path / "a.ply")


def test_non_numeric_ascii_token_is_refused_with_its_row(tmp_path):
    mesh = Mesh(vertices_mm=np.arange(12, dtype=np.float32).reshape(4, 3), faces=np.array([[0, 1, 2], [1, 2, 3]]))
    save_ply(tmp_path / "a.ply", mesh)
    text = (tmp_path / "a.ply").read_text().replace("\n6 7 8\n", "\n6 seven 8\n")
    (tmp_path / "a.ply").write_text(text)
    with pytest.raises(DatasetError, match=r"element 'vertex' row 2: value 1 is 'seven', not a number"):
        load_ply(tmp_path / "a.ply")

"""bopnp models-info: writes models_info.json, keeps an existing one and prints its differences, rescales metre
meshes, and answers bad input with a message instead of a traceback."""

from __future__ import annotations

import json

import numpy as np
import pytest
from click.testing import CliRunner

from bopnp.bop.io import load_models_info, load_ply, save_ply
from bopnp.bop.mesh import Mesh
from bopnp.cli.main import cli
from bopnp.synth.procedural import dataset_objects


def run(*args):
    return CliRunner().invoke(cli, ["models-info", *map(str, args)])


@pytest.fixture(scope="module")
def objects():
    objs = dataset_objects()
    return {1: objs[1].mesh, 2: objs[3].mesh}  # the wedge (no symmetry) and the tower (4-fold with its colours)


@pytest.fixture
def meshes(tmp_path, objects):
    folder = tmp_path / "models"
    for obj_id, mesh in objects.items():
        save_ply(folder / f"obj_{obj_id:06d}.ply", mesh)
    return folder


def test_help():
    result = run("--help")
    assert result.exit_code == 0
    assert "--symmetries" in result.output and "--scale" in result.output and "bopnp models-info" in result.output


def test_writes_then_keeps_and_compares(meshes):
    first = run(meshes, "--appearance")
    assert first.exit_code == 0, first.output
    info = load_models_info(meshes / "models_info.json")
    assert sorted(info) == [1, 2]
    assert len(info[1].symmetries_discrete) == 0 and len(info[2].symmetries_discrete) == 3
    assert "wrote" in first.output

    # a second run keeps the file and says it agrees; an edited file is kept and its differences are printed
    before = (meshes / "models_info.json").read_text()
    again = run(meshes, "--appearance")
    assert again.exit_code == 0 and "agrees" in again.output
    content = json.loads(before)
    content["1"]["diameter"] += 5.0
    content["2"]["symmetries_discrete"] = []
    (meshes / "models_info.json").write_text(json.dumps(content))
    edited = run(meshes, "--appearance")
    assert edited.exit_code == 0
    assert (
        "obj 1: diameter" in edited.output and "obj 2: symmetries_discrete: 0 in the file, 3 computed" in edited.output
    )
    assert json.loads((meshes / "models_info.json").read_text()) == content  # kept

    replaced = run(meshes, "--appearance", "--overwrite")
    assert replaced.exit_code == 0
    assert load_models_info(meshes / "models_info.json")[1].diameter_mm == pytest.approx(info[1].diameter_mm)


def test_shape_alone_finds_the_square_pillars_eight_rotations(meshes):
    result = run(meshes, "--symmetries", "detect")
    assert result.exit_code == 0, result.output
    assert len(load_models_info(meshes / "models_info.json")[2].symmetries_discrete) == 7


def test_dataset_name_and_symmetry_modes(meshes, tmp_path):
    bop = tmp_path  # meshes is tmp_path/models: a "dataset" whose models/ folder is given by its name
    (tmp_path / "mine").mkdir()
    (meshes).rename(tmp_path / "mine" / "models")
    none = run("mine", "--bop-path", bop, "--symmetries", "none")
    assert none.exit_code == 0, none.output
    path = tmp_path / "mine" / "models" / "models_info.json"
    assert all(len(i.symmetries_discrete) == 0 for i in load_models_info(path).values())
    keep = run("mine", "--bop-path", bop, "--symmetries", "keep", "--overwrite")
    assert keep.exit_code == 0 and "wrote" in keep.output
    missing = run(tmp_path / "mine" / "nothing")
    assert missing.exit_code != 0 and "Traceback" not in missing.output and "no such folder" in missing.output


def test_metre_meshes_are_refused_then_rescaled(tmp_path, objects):
    folder = tmp_path / "m"
    mesh = objects[1]
    save_ply(folder / "obj_000001.ply", Mesh(mesh.vertices_mm / 1000.0, mesh.faces, mesh.normals, mesh.colors))
    refused = run(folder)
    assert refused.exit_code != 0 and "--scale 1000" in refused.output and "obj_000001.ply" in refused.output
    assert not (folder / "models_info.json").exists()

    scaled = run(folder, "--scale", "1000")
    assert scaled.exit_code == 0, scaled.output
    assert (folder / "obj_000001.ply.unscaled").is_file()
    assert np.allclose(load_ply(folder / "obj_000001.ply").vertices_mm, mesh.vertices_mm, atol=1e-3)
    twice = run(folder, "--scale", "1000", "--overwrite")
    assert twice.exit_code != 0 and "rescaled already" in twice.output


def test_bad_meshes_give_a_message_naming_the_file(tmp_path):
    folder = tmp_path / "bad"
    folder.mkdir()
    (folder / "obj_000001.ply").write_text(
        "ply\nformat ascii 1.0\nelement vertex 3\nproperty float x\nproperty float y\nproperty float z\n"
        "element face 0\nproperty list uchar int vertex_indices\nend_header\n0 0 0\n1 0 0\n0 1 0\n"
    )
    result = run(folder)
    assert result.exit_code != 0 and "Traceback" not in result.output
    assert "obj_000001.ply" in result.output and "no triangles" in result.output

    (folder / "obj_000001.ply").write_text("not a ply")
    garbled = run(folder)
    assert garbled.exit_code != 0 and "obj_000001.ply" in garbled.output and "Traceback" not in garbled.output

    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / "chair.ply").write_text("ply")
    none = run(empty)
    assert none.exit_code != 0 and "rename them obj_000001.ply" in none.output


def test_bad_scale_is_refused(meshes):
    result = run(meshes, "--scale", "-2")
    assert result.exit_code == 2 and "--scale" in result.output

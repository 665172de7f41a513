"""Given models (``synth --models DIR``) are loaded and checked before any output is created or replaced."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from bopnp.bop.io import save_models_info, save_ply
from bopnp.bop.mesh import Mesh
from bopnp.errors import DatasetError
from bopnp.synth.generator import CONFIG_FILE, SynthConfig, synthesize
from bopnp.synth.models import check_model_mesh
from bopnp.synth.procedural import dataset_objects, model_info

GOOD = dataset_objects()[2].mesh


def _models_dir(root: Path, bad_ply: str | None = None, bad_id: int = 12) -> Path:
    """A BOP models folder with objects 7 and 12; object ``bad_id``'s ply replaced by ``bad_ply`` when given."""
    folder = root / "src" / "models"
    for obj_id in (7, 12):
        save_ply(folder / f"obj_{obj_id:06d}.ply", GOOD)
    save_models_info(folder / "models_info.json", {i: model_info(i, GOOD) for i in (7, 12)})
    if bad_ply is not None:
        (folder / f"obj_{bad_id:06d}.ply").write_text(bad_ply)
    return folder


def _ascii_ply(vertices: list[str], faces: list[str]) -> str:
    return "\n".join(
        [
            "ply",
            "format ascii 1.0",
            f"element vertex {len(vertices)}",
            "property float x",
            "property float y",
            "property float z",
            f"element face {len(faces)}",
            "property list uchar int vertex_indices",
            "end_header",
            *vertices,
            *faces,
            "",
        ]
    )


NAN_VERTEX = _ascii_ply(["0 0 0", "10 0 0", "0 nan 0"], ["3 0 1 2"])


def _config(tmp_path: Path, models_dir: Path, **kw) -> SynthConfig:
    opts = dict(
        name="given",
        bop_path=tmp_path,
        train_images=2,
        test_images=1,
        workers=1,
        progress=False,
        models_dir=models_dir,
        distractors_per_image=(0, 0),
    )
    return SynthConfig(**{**opts, **kw})


def test_nan_vertex_is_refused_before_any_output_exists(tmp_path):
    src = _models_dir(tmp_path, NAN_VERTEX)
    with pytest.raises(DatasetError) as err:
        synthesize(_config(tmp_path, src))
    # the PLY reader itself refuses the vertex (bopnp.bop.ply); either way the message names the file and the fix
    assert "obj_000012.ply" in str(err.value) and "repair" in str(err.value)
    assert not (tmp_path / "given").exists()


def test_overwrite_keeps_the_old_dataset_when_a_model_is_bad(tmp_path):
    src = _models_dir(tmp_path, NAN_VERTEX)
    old = tmp_path / "given"
    old.mkdir()
    (old / CONFIG_FILE).write_text("{}")
    (old / "keep.txt").write_text("old dataset")
    with pytest.raises(DatasetError, match="obj_000012.ply"):
        synthesize(_config(tmp_path, src, mode="overwrite"))
    assert (old / "keep.txt").read_text() == "old dataset"


def test_bad_models_eval_copy_is_refused_too(tmp_path):
    src = _models_dir(tmp_path)
    eval_dir = src.parent / "models_eval"
    eval_dir.mkdir()
    (eval_dir / "obj_000007.ply").write_text(NAN_VERTEX)
    with pytest.raises(DatasetError, match="models_eval/obj_000007.ply"):
        synthesize(_config(tmp_path, src))
    assert not (tmp_path / "given").exists()


def test_unreadable_ply_is_a_dataset_error_naming_it(tmp_path):
    src = _models_dir(tmp_path, "ply\nformat ascii 1.0\nelement vertex 3\n")  # header never ends
    with pytest.raises(DatasetError, match="obj_000012.ply"):
        synthesize(_config(tmp_path, src))
    assert not (tmp_path / "given").exists()


TRIANGLE = np.array([[0, 0, 0], [10, 0, 0], [0, 10, 0]], np.float32)


@pytest.mark.parametrize(
    "mesh, words",
    [
        (Mesh(np.where(TRIANGLE == 10, np.inf, TRIANGLE), np.array([[0, 1, 2]])), "not finite"),
        (Mesh(TRIANGLE, np.zeros((0, 3), np.int64)), "no triangles"),
        (Mesh(np.zeros((3, 3), np.float32), np.array([[0, 1, 2]])), "zero area"),  # one point
        (Mesh(TRIANGLE * np.array([1, 0, 0], np.float32), np.array([[0, 1, 2]])), "zero area"),  # a line
        (Mesh(TRIANGLE, np.array([[0, 1, 2]]), normals=np.full((3, 3), np.nan, np.float32)), "normals"),
    ],
    ids=["inf-vertex", "no-faces", "point", "line", "nan-normals"],
)
def test_unusable_meshes_are_named_with_a_fix(mesh, words):
    with pytest.raises(DatasetError, match=words) as err:
        check_model_mesh(mesh, Path("models/obj_000003.ply"))
    assert "models/obj_000003.ply" in str(err.value) and "models_info.json" in str(err.value)


def test_a_flat_but_real_mesh_passes():
    check_model_mesh(Mesh(TRIANGLE, np.array([[0, 1, 2]])), Path("obj_000001.ply"))
    check_model_mesh(GOOD, Path("obj_000002.ply"))

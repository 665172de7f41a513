"""The evaluation reads the dataset through BopDataset: paths, depth suffixes, models folder and image size."""

import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from bopnp.bop.dataset import BopDataset
from bopnp.errors import DatasetError
from bopnp.eval.inputs import load_inputs

FIXTURE = Path(__file__).resolve().parents[1] / "fixtures" / "eval"
CSV = FIXTURE / "results" / "fixture-a_tudl-test.csv"


@pytest.fixture
def bop(tmp_path) -> Path:
    shutil.copytree(FIXTURE / "bop", tmp_path / "bop")
    return tmp_path / "bop"


def test_paths_and_sizes_come_from_bop_dataset(bop):
    inputs = load_inputs(CSV, bop)
    ds = BopDataset(bop / "tudl", "test", models="models_eval")
    assert inputs.models_dir == bop / "tudl" / "models_eval" and inputs.dataset_dir == bop / "tudl"
    assert inputs.image_size == (ds.camera.width, ds.camera.height)
    for t in inputs.targets:
        assert inputs.depth_path(t.scene_id, t.im_id) == ds.depth_path(t.scene_id, t.im_id)
        assert inputs.scenes[t.scene_id].folder == ds.scene_path(t.scene_id)


def test_a_tif_depth_image_is_found_in_any_dataset(bop):
    """The depth suffix is the one on disk (BopDataset), not guessed from the dataset name (only ITODD had .tif)."""
    folder = bop / "tudl" / "test" / "000001" / "depth"
    png = load_inputs(CSV, bop).load_depth(1, 2)
    raw = np.asarray(Image.open(folder / "000002.png"))
    Image.fromarray(raw).save(folder / "000002.tif")
    (folder / "000002.png").unlink()
    inputs = load_inputs(CSV, bop)
    assert inputs.depth_path(1, 2) == folder / "000002.tif"
    np.testing.assert_array_equal(inputs.load_depth(1, 2), png)


def test_image_size_without_camera_json_comes_from_a_target_image(bop):
    want = load_inputs(CSV, bop).image_size
    (bop / "tudl" / "camera.json").unlink()
    assert load_inputs(CSV, bop).image_size == want
    shutil.rmtree(bop / "tudl" / "test" / "000001" / "depth")
    shutil.rmtree(bop / "tudl" / "test" / "000002" / "depth")
    with pytest.raises(DatasetError, match="camera.json is missing"):
        load_inputs(CSV, bop)


def test_models_folder_falls_back_to_models_with_a_note(bop):
    (bop / "tudl" / "models_eval").rename(bop / "tudl" / "models")
    inputs = load_inputs(CSV, bop)
    assert inputs.models_dir == bop / "tudl" / "models"
    assert any("models_eval not found" in n for n in inputs.notes)
    assert inputs.mesh(1).vertices_mm.shape[1] == 3


def test_missing_split_names_the_results_file_dataset(bop):
    shutil.rmtree(bop / "tudl" / "test")
    with pytest.raises(DatasetError, match="names dataset 'tudl' and split 'test'.*test not found"):
        load_inputs(CSV, bop)

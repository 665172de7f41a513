"""``bopnp viz``: PNGs of the expected size where they are asked for, typed errors without a traceback, and
the preview ``bopnp prepare`` writes."""

import shutil
from pathlib import Path

import cv2
import pytest
from click.testing import CliRunner

from bopnp.bop.dataset import BopDataset
from bopnp.bop.records import ResultRow
from bopnp.bop.results import save_results_csv
from bopnp.cli.main import cli

TILE, PAD = 640, 8


def run(*args, **kwargs):
    return CliRunner().invoke(cli, ["viz", *map(str, args)], **kwargs)


def png_size(path: Path) -> tuple[int, int]:
    img = cv2.imread(str(path))
    assert img is not None, path
    return img.shape[1], img.shape[0]


def gt_csv(bop_path: Path, name: str, path: Path, images=None) -> Path:
    ds = BopDataset.from_bop_path(bop_path, name, "test")
    rows = [
        ResultRow(s, i, g.obj_id, 0.9, g.R_m2c, g.t_m2c, 1.0)
        for s in ds.scene_ids()
        for i, gts in sorted(ds.scene_gt(s).items())
        if images is None or (s, i) in images
        for g in gts
    ]
    save_results_csv(path, rows)
    return path


@pytest.fixture
def writable(synth_dataset, tmp_path) -> tuple[Path, str]:
    """A copy of the synthetic dataset that a test may prepare."""
    bop_path, name = synth_dataset
    shutil.copytree(bop_path / name, tmp_path / "bop" / name)
    return tmp_path / "bop", name


def test_overview_png_of_the_expected_size(synth_dataset, tmp_path):
    bop_path, name = synth_dataset
    out = tmp_path / "pics" / "gt.png"
    result = run(name, "--bop-path", bop_path, "--images", 2, "--out", out)
    assert result.exit_code == 0, result.output
    assert str(out) in result.output and out.is_file()
    w, h = png_size(out)
    assert w == 2 * TILE + 3 * PAD and 480 + 60 < h < 480 + 250


def test_default_path_under_results_viz(synth_dataset, tmp_path, monkeypatch):
    bop_path, name = synth_dataset
    monkeypatch.chdir(tmp_path)
    result = run(name, "--bop-path", bop_path, "--scene", 0, "--im", 1, "--tile-width", 320)
    assert result.exit_code == 0, result.output
    out = tmp_path / "results" / "viz" / f"{name}_test_0-1.png"
    assert out.is_file() and str(Path("results") / "viz" / out.name) in result.output
    assert png_size(out)[0] == 320 + 2 * PAD  # one tile, shrunk to --tile-width


def test_results_csv_picks_the_images_with_estimates(synth_dataset, tmp_path, monkeypatch):
    bop_path, name = synth_dataset
    csv = gt_csv(bop_path, name, tmp_path / f"gt-poses_{name}-test.csv", images={(0, 2)})
    monkeypatch.chdir(tmp_path)
    result = run(name, "--bop-path", bop_path, "--results", csv, "--images", 4)
    assert result.exit_code == 0, result.output
    assert "1 image" in result.output
    out = tmp_path / "results" / "viz" / f"gt-poses_{name}-test.png"
    assert png_size(out)[0] == TILE + 2 * PAD


@pytest.mark.parametrize(
    "args, message",
    [
        (["--split", "val"], "val not found"),
        (["--scene", 0, "--im", 99], "has no image 99"),
        (["--scene", 5], "scene 5"),
        (["--out", "picture.jpg"], "ending in .png"),
        (["--crops"], "bopnp prepare"),
        (["--crops", "--scene", 0], "--crops"),
        (["--images", 0], "--images"),
    ],
)
def test_bad_input_exits_2_with_a_clear_message(synth_dataset, args, message):
    bop_path, name = synth_dataset
    result = run(name, "--bop-path", bop_path, *args)
    assert result.exit_code == 2, result.output
    assert message in result.output and "Traceback" not in result.output


def test_missing_dataset(tmp_path):
    result = run("nope", "--bop-path", tmp_path)
    assert result.exit_code == 2 and "nope not found" in result.output and "Traceback" not in result.output
    crops = run("nope", "--bop-path", tmp_path, "--crops")
    assert crops.exit_code == 2 and "bopnp synth nope" in crops.output


def test_csv_for_another_dataset(synth_dataset, tmp_path):
    bop_path, name = synth_dataset
    named = gt_csv(bop_path, name, tmp_path / "method_lmo-test.csv")
    result = run(name, "--bop-path", bop_path, "--results", named)
    assert result.exit_code == 2 and "named for dataset 'lmo'" in result.output and "Traceback" not in result.output
    other_split = gt_csv(bop_path, name, tmp_path / f"method_{name}-val.csv")
    result = run(name, "--bop-path", bop_path, "--results", other_split, "--split", "test")
    assert result.exit_code == 2 and "split 'val'" in result.output
    # a CSV not named the BOP way is checked by its contents: images of another scene
    ds = BopDataset.from_bop_path(bop_path, name, "test")
    g = ds.scene_gt(0)[0][0]
    unnamed = tmp_path / "estimates.csv"
    save_results_csv(unnamed, [ResultRow(48, 1, g.obj_id, 0.5, g.R_m2c, g.t_m2c, 1.0)])
    result = run(name, "--bop-path", bop_path, "--results", unnamed)
    assert result.exit_code == 2 and "another dataset or split" in result.output and "Traceback" not in result.output


def test_csv_split_folder_has_the_default_split_type():
    from bopnp.cli.viz import _check_csv_dataset
    from bopnp.errors import ResultsFormatError

    # as bopnp eval and bop_toolkit read it: T-LESS test results are for the test_primesense folder
    assert _check_csv_dataset(Path("method_tless-test.csv"), "tless", None) == "test_primesense"
    assert _check_csv_dataset(Path("method_tless-test-kinect.csv"), "tless", None) == "test_kinect"
    assert _check_csv_dataset(Path("method_lmo-test.csv"), "lmo", "test") == "test"
    with pytest.raises(ResultsFormatError, match="split 'test_primesense'"):
        _check_csv_dataset(Path("method_tless-test.csv"), "tless", "test")


def test_prepare_writes_a_preview_and_viz_draws_the_crops(writable, tmp_path):
    bop_path, name = writable
    runner = CliRunner()
    result = runner.invoke(
        cli, ["prepare", name, "--bop-path", str(bop_path), "--workers", "1", "--crop-size", "64", "--no-progress"]
    )
    assert result.exit_code == 0, result.output
    preview = bop_path / name / "crops" / "train_pbr" / "preview.png"
    assert f"preview: {preview}" in result.output and preview.is_file()
    # the preview does not disturb the cache: a rerun resumes, a reader lists the same crops
    again = runner.invoke(cli, ["prepare", name, "--bop-path", str(bop_path), "--crop-size", "64", "--no-progress"])
    assert again.exit_code == 0 and "already done" in again.output, again.output
    out = tmp_path / "crops.png"
    drawn = run(name, "--bop-path", bop_path, "--crops", "--per-object", 2, "--out", out)
    assert drawn.exit_code == 0, drawn.output
    w, h = png_size(out)
    assert w > 2 * (2 * 128 + 2) and h > 6 * (2 * 128 + 2)  # six objects, 128 px panels

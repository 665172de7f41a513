"""The debug sheet of the pose stage: the panels of a perfect prediction (the oracle network) show inliers only and
an estimate on the GT; ``bopnp viz --debug`` runs a checkpoint on one image."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
from click.testing import CliRunner

from bopnp.bop.dataset import BopDataset
from bopnp.cli.main import cli
from bopnp.infer.detect import GtDetections, ImageItem
from bopnp.viz.colors import EST_COLOR
from bopnp.viz.debug import INLIER_COLOR, OUTLIER_COLOR, PANELS, debug_sheet, detection_panels

TESTS = Path(__file__).resolve().parents[1]


def _load(path: Path, name: str):
    if name not in sys.modules:
        spec = importlib.util.spec_from_file_location(name, path)
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        spec.loader.exec_module(module)
    return sys.modules[name]


def _count(image: np.ndarray, color) -> int:
    return int(np.all(image == np.array(color, np.uint8), axis=-1).sum())


@pytest.fixture(scope="module")
def oracle_results(synth_dataset):
    bop_path, name = synth_dataset
    ds = BopDataset.from_bop_path(bop_path, name, "test")
    est, _ = _load(TESTS / "infer" / "pose_helpers.py", "infer_pose_helpers").oracle_estimator(ds)
    s = ds.scene_ids()[0]
    im = ds.image_ids(s)[0]
    (dets,) = GtDetections(ds)([ImageItem(s, im)])
    (results,) = est([ds.image(s, im)], [ds.K(s, im)], [dets], debug=True)
    return ds, s, im, results


def test_panels_of_a_perfect_prediction(oracle_results):
    ds, s, im, results = oracle_results
    for r in results:
        panels, caption = detection_panels(ds, s, im, r, panel=96)
        assert len(panels) == len(PANELS) and all(p.shape == (96, 96, 3) for p in panels)
        assert "vs GT 0.0 deg, 0 mm" in caption and "100% inliers" in caption
        _, _, _, pixels, pose = panels
        assert _count(pixels, INLIER_COLOR) > 50 and _count(pixels, OUTLIER_COLOR) == 0
        assert _count(pose, EST_COLOR) > 50  # the estimate's contour, drawn over the GT's


def test_sheet_has_one_row_per_detection(oracle_results):
    ds, s, im, results = oracle_results
    image, K = ds.image(s, im), ds.K(s, im)
    one = debug_sheet(ds, s, im, image, K, results[:1], panel=64)
    all_rows = debug_sheet(ds, s, im, image, K, results, panel=64)
    assert all_rows.shape[0] > one.shape[0] + (len(results) - 1) * 64
    assert debug_sheet(ds, s, im, image, K, [], panel=64).ndim == 3


def test_viz_debug_runs_a_checkpoint_on_one_image(synth_dataset, tmp_path):
    bop_path, name = synth_dataset
    ds = BopDataset.from_bop_path(bop_path, name, "test")
    helpers = _load(TESTS / "infer" / "pose_helpers.py", "infer_pose_helpers")
    ckpt = helpers.save_untrained_checkpoint(tmp_path / "run" / "last.pt", ds.obj_ids)
    s = ds.scene_ids()[0]
    im = ds.image_ids(s)[0]
    out = tmp_path / "debug.png"
    base = ["viz", name, "--bop-path", str(bop_path), "--debug"]
    result = CliRunner().invoke(
        cli, [*base, "--scene", str(s), "--im", str(im), "--pose", str(ckpt.parent), "--out", str(out)]
    )
    assert result.exit_code == 0, result.output
    assert cv2.imread(str(out)) is not None and "detections" in result.output
    result = CliRunner().invoke(cli, [*base, "--scene", str(s), "--im", str(im)])
    assert result.exit_code == 2 and "--pose" in result.output
    result = CliRunner().invoke(cli, [*base, "--pose", str(ckpt)])
    assert result.exit_code == 2 and "--im" in result.output

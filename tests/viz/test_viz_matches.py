"""Estimates coloured by the evaluator's matching: the replay of the greedy matching on errors.csv, finding the
evaluation of exactly the CSV drawn, and ``bopnp viz --results`` after ``bopnp eval``."""

from __future__ import annotations

import json

import cv2
import numpy as np
import pytest
from click.testing import CliRunner

from bopnp.bop.dataset import BopDataset
from bopnp.bop.records import ModelInfo, ResultRow
from bopnp.bop.results import save_results_csv
from bopnp.cli.main import cli
from bopnp.eval.report import results_digest
from bopnp.viz.matches import (
    MATCHED_COLOR,
    MISSED_COLOR,
    PARTLY_COLOR,
    UNEVALUATED_COLOR,
    EstimateMatch,
    estimate_matches,
    find_evaluation,
    match_color,
)

HEAD = "scene_id,im_id,obj_id,csv_line,score,gt_id,gt_valid,mssd_mm,mspd_px,add_s_mm\n"


def _info(obj_id: int, diameter: float = 100.0) -> ModelInfo:
    return ModelInfo(obj_id=obj_id, diameter_mm=diameter, min_mm=np.zeros(3), size_mm=np.ones(3))


def test_replay_of_the_greedy_matching(tmp_path):
    # image (0, 1), object 1: one GT; estimate of line 2 (score 0.9) is off by 0.12 d and 12 px, line 3 (0.8) is
    # exact but comes second, so the GT is taken under the thresholds where line 2 already matches
    # image (0, 2), object 2: two GTs (the second not a target); line 4 is near the invalid one only
    rows = [
        "0,1,1,2,0.9,0,1,12.0,12.0,0",
        "0,1,1,3,0.8,0,1,0.0,0.0,0",
        "0,2,2,4,0.5,0,1,90.0,90.0,0",
        "0,2,2,4,0.5,1,0,0.0,0.0,0",
    ]
    path = tmp_path / "errors.csv"
    path.write_text(HEAD + "\n".join(rows) + "\n")
    m = estimate_matches(path, {1: _info(1), 2: _info(2)}, image_width=640)
    # line 2: MSSD thresholds 0.15 .. 0.5 (8 of 10), MSPD 15 .. 50 px (8 of 10)
    assert m[0] == EstimateMatch(16, 20)
    # line 3: the GT is free only under the 2 + 2 strict thresholds that line 2 misses
    assert m[1] == EstimateMatch(4, 20)
    assert m[2] == EstimateMatch(0, 20)
    assert [match_color(m[k]) for k in (0, 1, 2)] == [MATCHED_COLOR, PARTLY_COLOR, MISSED_COLOR]
    assert match_color(m.get(7)) == UNEVALUATED_COLOR
    # MSPD is scaled to a 640-pixel-wide image: 12 px at 1280 wide count as 6
    m = estimate_matches(path, {1: _info(1), 2: _info(2)}, image_width=1280)
    assert m[0].matched == 8 + 9


def test_malformed_errors_file_is_a_typed_error(tmp_path):
    from bopnp.errors import ResultsFormatError

    path = tmp_path / "errors.csv"
    path.write_text("scene_id,im_id\n0,1\n")
    with pytest.raises(ResultsFormatError, match="rerun `bopnp eval`"):
        estimate_matches(path, {}, 640)
    path.write_text(HEAD + "0,1,1,x,0.9,0,1,1,1,0\n")
    with pytest.raises(ResultsFormatError, match="line 2"):
        estimate_matches(path, {1: _info(1)}, 640)


def test_only_an_evaluation_of_this_very_csv_is_used(tmp_path):
    csv = tmp_path / "m_ds-test.csv"
    save_results_csv(csv, [ResultRow(0, 1, 1, 0.5, np.eye(3), np.array([0, 0, 500.0]), 1.0)])
    folder = tmp_path / "eval" / csv.stem
    folder.mkdir(parents=True)
    (folder / "errors.csv").write_text(HEAD)
    (folder / "scores_bop19.json").write_text(json.dumps({"results_sha256": results_digest(csv)}))
    assert find_evaluation(csv) == folder
    save_results_csv(csv, [ResultRow(0, 1, 1, 0.6, np.eye(3), np.array([0, 0, 500.0]), 1.0)])
    assert find_evaluation(csv) is None  # the CSV changed since
    other = tmp_path / "elsewhere"
    other.mkdir()
    (other / "errors.csv").write_text(HEAD)
    (other / "scores_bop19.json").write_text(json.dumps({"results_sha256": results_digest(csv)}))
    assert find_evaluation(csv, [other]) == other


def test_viz_results_after_eval_colours_gt_poses_as_matched(synth_dataset, tmp_path):
    bop_path, name = synth_dataset
    ds = BopDataset.from_bop_path(bop_path, name, "test")
    s = ds.scene_ids()[0]
    im = ds.image_ids(s)[0]
    gts = ds.scene_gt(s)[im]
    ests = [ResultRow(s, im, g.obj_id, 0.9, g.R_m2c, g.t_m2c, 1.0) for g in gts]
    csv = tmp_path / f"gt_{name}-test.csv"
    save_results_csv(csv, ests)
    runner = CliRunner()
    ev = tmp_path / "eval" / csv.stem
    args = ["eval", str(csv), "--bop-path", str(bop_path), "--out", str(ev), "--no-vsd", "--no-plots", "-q"]
    assert runner.invoke(cli, args).exit_code == 0
    out = tmp_path / "v.png"
    result = runner.invoke(
        cli, ["viz", name, "--bop-path", str(bop_path), "--results", str(csv), "--im", str(im), "--out", str(out)]
    )
    assert result.exit_code == 0, result.output
    assert "coloured by the evaluation" in result.output
    picture = cv2.imread(str(out))[..., ::-1]
    assert picture.shape[1] > 2 * 640  # two tiles side by side: GT, estimates
    tiles = picture[-490:]  # below the legend (whose swatches show every colour)
    green = np.all(tiles == np.array(MATCHED_COLOR, np.uint8), axis=-1).sum()
    red = np.all(tiles == np.array(MISSED_COLOR, np.uint8), axis=-1).sum()
    assert green > 200 and red == 0
    # without an evaluation: one colour, and a hint
    (ev / "scores_bop19.json").unlink()
    result = runner.invoke(
        cli, ["viz", name, "--bop-path", str(bop_path), "--results", str(csv), "--im", str(im), "--out", str(out)]
    )
    assert result.exit_code == 0 and f"bopnp eval {csv}" in result.output

"""``bopnp eval`` end to end: the golden fixture, bad results files, missing depth, leaderboard,
the bop_toolkit backend's error, and a CSV made for a ``bopnp synth`` dataset."""

import json
import math
import shutil
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from bopnp.cli.main import cli

FIXTURE = Path(__file__).resolve().parents[1] / "fixtures" / "eval"
CSV = FIXTURE / "results" / "fixture-a_tudl-test.csv"
EXPECTED = json.loads(
    (FIXTURE / "expected_bop_toolkit.json").read_text(), parse_constant=lambda c: {"Infinity": math.inf}[c]
)
HEADER = "scene_id,im_id,obj_id,score,R,t,time"
R_ID = "1 0 0 0 1 0 0 0 1"


def run(*args, env=None):
    return CliRunner().invoke(cli, ["eval", *map(str, args), "-q"], env=env, catch_exceptions=False)


def test_help():
    result = CliRunner().invoke(cli, ["eval", "--help"])
    assert result.exit_code == 0
    assert "--bop-path" in result.output and "--targets" in result.output and "--backend" in result.output


def test_fixture_scores_written_and_printed(tmp_path):
    out = tmp_path / "out"
    result = run(CSV, "--bop-path", FIXTURE / "bop", "--out", out, "--device", "cpu")
    assert result.exit_code == 0, result.output
    scores = json.loads((out / "scores_bop19.json").read_text())
    for key, want in EXPECTED["scores_bop19"].items():
        assert scores[key] == pytest.approx(want, abs=1e-4), key
    assert f"{EXPECTED['scores_bop19']['bop19_average_recall']:.4f}" in result.output
    assert set(scores["per_object"]) == {"1", "2", "3"}
    assert 0 <= scores["add_s_recall"] <= 1 and 0 <= scores["add_s_auc"] <= 1
    errors = (out / "errors.csv").read_text().splitlines()
    assert errors[0].startswith("scene_id,im_id,obj_id,csv_line,score,gt_id")
    assert len(errors) - 1 == len(EXPECTED["errors"]["mssd"])
    assert (out / "recall_curves.png").stat().st_size > 10_000
    assert (out / "report.txt").read_text().startswith("BOP19 evaluation: fixture-a on tudl-test")


def _write(path: Path, lines: list[str]) -> Path:
    path.write_text("\n".join(lines) + "\n")
    return path


def test_bad_file_lists_every_problem_with_its_line(tmp_path):
    csv = _write(
        tmp_path / "bad_tudl-test.csv",
        [
            HEADER,
            f"1,1,1,0.5,{R_ID},0 0 500,0.3",  # fine
            f"1,1,1,0.5,{R_ID},0 0 500",  # 6 fields
            f"1,1,2,abc,{R_ID},0 0 500,0.3",  # score not a number
            "1,1,3,0.5,1 0 0 0 1 0 0 0,0 0 500,0.3",  # 8 numbers in R
            "1,1,3,0.5,2 0 0 0 1 0 0 0 1,0 0 500,0.3",  # not a rotation
            f"1,1,3,0.5,{R_ID},0 0,0.3",  # 2 numbers in t
            f"1,1,2,0.5,{R_ID},0 0 500,0.9",  # another time for image 1
        ],
    )
    result = CliRunner().invoke(cli, ["eval", str(csv), "--bop-path", str(FIXTURE / "bop")])
    assert result.exit_code == 2
    out = result.output
    assert "Traceback" not in out
    for line in (3, 4, 5, 6, 7):
        assert f"line {line}:" in out, out
    assert "time" in out and "score" in out and "R:" in out and "t:" in out


def test_bad_header_and_file_name(tmp_path):
    csv = _write(tmp_path / "m_tudl-test.csv", ["scene,im,obj,score,R,t,time", f"1,1,1,0.5,{R_ID},0 0 500,0.3"])
    result = CliRunner().invoke(cli, ["eval", str(csv), "--bop-path", str(FIXTURE / "bop")])
    assert result.exit_code == 2 and "line 1" in result.output and "header" in result.output
    bad_name = _write(tmp_path / "no-dataset.csv", [HEADER])
    result = CliRunner().invoke(cli, ["eval", str(bad_name), "--bop-path", str(FIXTURE / "bop")])
    assert result.exit_code == 2 and "METHOD_DATASET-SPLIT" in result.output


def test_missing_dataset_says_where(tmp_path):
    result = CliRunner().invoke(cli, ["eval", str(CSV), "--bop-path", str(tmp_path)])
    assert result.exit_code == 2
    assert str(tmp_path / "tudl") in result.output and "not found" in result.output


def test_missing_depth_leaves_vsd_out_and_keeps_mssd_mspd(tmp_path):
    bop = tmp_path / "bop"
    shutil.copytree(FIXTURE / "bop", bop)
    (bop / "tudl" / "test" / "000001" / "depth" / "000002.png").unlink()
    (bop / "tudl" / "test" / "000002" / "depth" / "000001.png").write_bytes(b"not a png")
    out = tmp_path / "out"
    result = run(CSV, "--bop-path", bop, "--out", out, "--device", "cpu")
    assert result.exit_code == 0, result.output
    s = json.loads((out / "scores_bop19.json").read_text())
    assert s["bop19_average_recall_vsd"] is None and s["bop19_average_recall"] is None
    for key in ("bop19_average_recall_mssd", "bop19_average_recall_mspd"):
        assert s[key] == pytest.approx(EXPECTED["scores_bop19"][key], abs=1e-12)
    assert s["vsd_images_without_depth"] == 2
    assert 0 < s["vsd_targets"] < s["targets"]
    assert "VSD unavailable for 2 of 5 images" in result.output
    assert "no depth image" in result.output and "unreadable depth image" in result.output


def test_leaderboard_ranks_several_csvs(tmp_path):
    res = tmp_path / "results"
    res.mkdir()
    shutil.copy(CSV, res / "good_tudl-test.csv")
    lines = CSV.read_text().splitlines()
    _write(res / "half_tudl-test.csv", lines[: len(lines) // 2])
    result = run(
        res / "good_tudl-test.csv",
        res / "half_tudl-test.csv",
        "--bop-path",
        FIXTURE / "bop",
        "--out",
        tmp_path / "ev",
        "--leaderboard",
        "--no-plots",
        "--device",
        "cpu",
    )
    assert result.exit_code == 0, result.output
    header = "  #  method"
    assert header in result.output
    board = result.output[result.output.rindex(header) :]
    assert board.index("good") < board.index("half")
    assert (tmp_path / "ev" / "good_tudl-test" / "scores_bop19.json").is_file()
    assert (tmp_path / "ev" / "half_tudl-test" / "scores_bop19.json").is_file()


def test_bop_toolkit_backend_without_toolkit_names_the_install(tmp_path):
    env = {"BOP_TOOLKIT_PYTHON": sys.executable}  # this environment has no bop_toolkit_lib
    result = CliRunner().invoke(
        cli,
        ["eval", str(CSV), "--bop-path", str(FIXTURE / "bop"), "--backend", "bop_toolkit", "--out", str(tmp_path)],
        env=env,
    )
    assert result.exit_code == 2
    assert "git clone https://github.com/thodan/bop_toolkit" in result.output and "Traceback" not in result.output


def test_csv_for_a_synth_dataset_scores_one_with_gt_poses(synth_dataset, tmp_path):
    from bopnp.bop import io
    from bopnp.bop.records import ResultRow
    from bopnp.bop.results import format_results_csv

    bop_path, name = synth_dataset
    root = bop_path / name
    targets = io.load_targets(root / "test_targets_bop19.json")
    ests = []
    for t in targets:
        gts = io.load_scene_gt(root / "test" / f"{t.scene_id:06d}" / "scene_gt.json")[t.im_id]
        for g in gts:
            if g.obj_id == t.obj_id:
                ests.append(ResultRow(t.scene_id, t.im_id, g.obj_id, 1.0, g.R_m2c, g.t_m2c, 0.5))
    csv = tmp_path / f"gt_{name}-test.csv"
    csv.write_text(format_results_csv(ests))
    out = tmp_path / "out"
    result = run(csv, "--bop-path", bop_path, "--out", out, "--device", "cpu")
    assert result.exit_code == 0, result.output
    s = json.loads((out / "scores_bop19.json").read_text())
    assert s["targets"] == sum(t.inst_count for t in targets)
    assert s["bop19_average_recall_mssd"] == 1.0 and s["bop19_average_recall_mspd"] == 1.0
    # the synthetic test split has depth: VSD and the BOP19 AR are computed
    assert s["bop19_average_recall_vsd"] == pytest.approx(1.0, abs=0.02)
    assert s["bop19_average_recall"] == pytest.approx(1.0, abs=0.01)


def test_makefile_target_runs_eval_leaderboard():
    text = (Path(__file__).resolve().parents[2] / "Makefile").read_text()
    assert "bopnp eval --leaderboard $(RESULTS)" in text


FAST = ("--bop-path", FIXTURE / "bop", "--device", "cpu", "--no-vsd", "--no-plots")


def test_two_csvs_of_one_name_are_refused_before_any_work(tmp_path):
    for sub in ("a", "b"):
        (tmp_path / sub).mkdir()
        shutil.copy(CSV, tmp_path / sub / CSV.name)
    out = tmp_path / "ev"
    result = run(tmp_path / "a" / CSV.name, tmp_path / "b" / CSV.name, *FAST, "--out", out)
    assert result.exit_code == 2
    assert str(tmp_path / "a" / CSV.name) in result.output and str(tmp_path / "b" / CSV.name) in result.output
    assert str(out / CSV.stem) in result.output and "rename one" in result.output
    assert not out.exists()
    result = run(CSV, CSV, *FAST, "--out", out)
    assert result.exit_code == 2 and "given 2 times" in result.output and not out.exists()


def _other_csv(tmp_path) -> Path:
    lines = CSV.read_text().splitlines()
    return _write(tmp_path / "other_tudl-test.csv", lines[: len(lines) // 2])


def test_rerun_replaces_the_same_csv_but_refuses_another_without_overwrite(tmp_path):
    out = tmp_path / "out"
    assert run(CSV, *FAST, "--out", out).exit_code == 0
    first = json.loads((out / "scores_bop19.json").read_text())
    assert first["results_sha256"] and first["results_csv"] == str(CSV)
    assert run(CSV, *FAST, "--out", out).exit_code == 0  # same file: replaced, same scores
    again = json.loads((out / "scores_bop19.json").read_text())
    assert again["bop19_average_recall_mssd"] == first["bop19_average_recall_mssd"]
    before = (out / "scores_bop19.json").read_bytes()
    other = _other_csv(tmp_path)
    result = run(other, *FAST, "--out", out)
    assert result.exit_code == 2 and "--overwrite" in result.output and str(CSV) in result.output
    assert (out / "scores_bop19.json").read_bytes() == before
    result = run(other, *FAST, "--out", out, "--overwrite")
    assert result.exit_code == 0, result.output
    assert json.loads((out / "scores_bop19.json").read_text())["results_csv"] == str(other)
    assert "replaced the evaluation of" in result.output


def test_an_unfinished_folder_is_not_taken_for_a_finished_one(tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    (out / "errors.csv").write_text("stale\n")
    (out / "recall_curves.png").write_bytes(b"stale")
    (out / ".staging-x").mkdir()
    result = run(CSV, *FAST, "--out", out)
    assert result.exit_code == 0, result.output
    assert "unfinished evaluation" in result.output
    assert sorted(p.name for p in out.iterdir()) == ["errors.csv", "report.txt", "scores_bop19.json"]
    assert (out / "errors.csv").read_text().startswith("scene_id,")


def test_scores_file_is_put_in_place_last(tmp_path, monkeypatch):
    import bopnp.eval.report as report

    placed = []
    real = report.os.replace
    monkeypatch.setattr(report.os, "replace", lambda a, b: (placed.append(Path(b)), real(a, b)))
    assert run(CSV, "--bop-path", FIXTURE / "bop", "--device", "cpu", "--no-vsd", "--out", tmp_path).exit_code == 0
    into_out = [p.name for p in placed if p.parent == tmp_path]
    assert into_out[-1] == "scores_bop19.json" and {"errors.csv", "report.txt", "recall_curves.png"} <= set(into_out)


@pytest.mark.parametrize("code, hint", [("ENOSPC", "disk is full"), ("EDQUOT", "quota"), ("EROFS", "read-only")])
@pytest.mark.parametrize("earlier", [False, True])
def test_a_failed_write_leaves_the_earlier_result_or_an_unfinished_folder(tmp_path, monkeypatch, code, hint, earlier):
    import errno

    import bopnp.eval.report as report

    out = tmp_path / "out"
    if earlier:
        assert run(CSV, *FAST, "--out", out).exit_code == 0
    before = {p.name: p.read_bytes() for p in out.iterdir()} if earlier else {}
    real = report.write_text_atomic

    def full_disk(path, text):
        if Path(path).name == "report.txt":  # errors.csv went through: a partial result
            raise OSError(getattr(errno, code), "cannot write")
        real(path, text)

    monkeypatch.setattr(report, "write_text_atomic", full_disk)
    result = CliRunner().invoke(cli, ["eval", str(CSV), *map(str, FAST), "--out", str(out), "-q"])
    assert result.exit_code == 1 and isinstance(result.exception, SystemExit), result.output
    assert "Traceback" not in result.output and hint in result.output and code in result.output
    assert str(out / ".staging-") in result.output and "report.txt" in result.output
    after = {p.name: p.read_bytes() for p in out.iterdir()}
    assert after == before  # the earlier finished result untouched, or an empty folder: nothing looks complete


def test_read_only_output_folder_with_chmod(tmp_path):
    import os

    if os.geteuid() == 0:
        pytest.skip("running as root: chmod does not stop root (the EROFS case above covers the message)")
    out = tmp_path / "out"
    out.mkdir()
    out.chmod(0o555)
    try:
        result = CliRunner().invoke(cli, ["eval", str(CSV), *map(str, FAST), "--out", str(out), "-q"])
    finally:
        out.chmod(0o755)
    assert result.exit_code == 1 and "permission denied" in result.output.lower() and str(out) in result.output
    assert list(out.iterdir()) == []


def test_a_long_problem_list_goes_to_the_output_folder(tmp_path):
    n = 30
    csv = _write(tmp_path / "bad_tudl-test.csv", [HEADER] + [f"1,1,1,x,{R_ID},0 0 500,0.3"] * n)
    out = tmp_path / "out"
    result = CliRunner().invoke(cli, ["eval", str(csv), *map(str, FAST), "--out", str(out)])
    assert result.exit_code == 2 and "Traceback" not in result.output
    assert len([line for line in result.output.splitlines() if line.startswith("  - line ")]) == 20
    assert f"({n} in all)" in result.output and str(out / "problems.txt") in result.output
    assert len((out / "problems.txt").read_text().splitlines()) == n + 1
    # several CSVs: the same short report per failed file, each list in its own folder
    result = CliRunner().invoke(cli, ["eval", str(csv), str(CSV), *map(str, FAST), "--out", str(tmp_path / "ev")])
    assert result.exit_code == 2 and str(tmp_path / "ev" / csv.stem / "problems.txt") in result.output
    assert len([line for line in result.output.splitlines() if line.startswith("  - line ")]) == 20
    # a later successful evaluation of the folder drops the stale list
    assert run(CSV, *FAST, "--out", out).exit_code == 0 and not (out / "problems.txt").exists()


def test_help_documents_the_refusals_that_diverge_from_bop_toolkit():
    result = CliRunner().invoke(cli, ["eval", "--help"])
    text = " ".join(result.output.split())
    assert "Deliberate divergence from bop_toolkit's loader" in text
    assert "NaN or infinite score" in text and "not a rotation" in text


def _fixture_rows() -> list[str]:
    """The fixture's rows without those it holds on purpose: a repeated row and a row of a scene (3) that
    the split lacks."""
    rows = [r for r in CSV.read_text().splitlines()[1:] if r.split(",")[0] in ("1", "2")]
    return list(dict.fromkeys(rows))


@pytest.mark.parametrize("case", ["unknown scene", "duplicates", "absurd time"])
def test_rows_that_bop_toolkit_accepts_silently_are_reported(tmp_path, case):
    rows = _fixture_rows()
    if case == "unknown scene":
        rows = [f"{90 + int(r.split(',')[0])}," + r.split(",", 1)[1] for r in rows]
    elif case == "duplicates":
        rows = rows + rows[:2] + rows[:1]
    else:
        first = rows[0].split(",")[:2]
        rows = [",".join(r.split(",")[:6] + ["1e300"]) if r.split(",")[:2] == first else r for r in rows]
    csv = tmp_path / CSV.name
    csv.write_text("\n".join([HEADER, *rows]) + "\n")
    out = tmp_path / "out"
    result = run(csv, "--bop-path", FIXTURE / "bop", "--out", out, "--device", "cpu", "--no-vsd", "--no-plots")
    assert result.exit_code == 0 and "Traceback" not in result.output, result.output
    scores = json.loads((out / "scores_bop19.json").read_text())
    n = len(_fixture_rows())
    if case == "unknown scene":
        assert f"WARNING: none of the {n} rows is of a scene of this split: they name scene(s) 91" in result.output
        assert scores["bop19_average_recall_mssd"] == 0.0
    elif case == "duplicates":
        assert (
            f"3 row(s) repeat an earlier row exactly (line {n + 2} = line 2, line {n + 3} = line 3, " in result.output
        )
        assert f"line {n + 4} = line 2)" in result.output
    else:
        assert "time: 1 image(s) have a time above 3600 s (largest 1e+300 s, line 2: scene 1 image 1)" in result.output
    assert scores["notes"] and any(n in result.output for n in scores["notes"])


def test_a_clean_csv_gets_no_remark(tmp_path):
    out = tmp_path / "out"
    csv = tmp_path / CSV.name
    csv.write_text("\n".join([HEADER, *_fixture_rows()]) + "\n")
    result = run(csv, "--bop-path", FIXTURE / "bop", "--out", out, "--device", "cpu", "--no-vsd", "--no-plots")
    assert result.exit_code == 0
    for remark in ("repeat an earlier row", "time above", "of a scene of this split", "score nothing"):
        assert remark not in result.output


def test_the_fixtures_deliberate_oddities_are_listed(tmp_path):
    result = run(
        CSV, "--bop-path", FIXTURE / "bop", "--out", tmp_path / "o", "--device", "cpu", "--no-vsd", "--no-plots"
    )
    assert result.exit_code == 0, result.output
    assert "1 row(s) name scene(s) 3 not in" in result.output and "score nothing (lines 25)" in result.output
    assert "1 row(s) repeat an earlier row exactly (line 19 = line 18)" in result.output

from __future__ import annotations

import csv

import numpy as np
import pytest
from bop_helpers import same, snapshot

from bopnp.bop.io import ResultRow, load_results_csv, parse_result_filename, save_results_csv
from bopnp.bop.results import HEADER, split_folder
from bopnp.bop.symmetry import axis_angle_matrix
from bopnp.errors import ResultsFormatError


def _estimates(n=6):
    rng = np.random.default_rng(0)
    out = []
    for i in range(n):
        R = axis_angle_matrix(rng.uniform(0, np.pi), rng.normal(size=3))
        out.append(
            ResultRow(
                scene_id=2,
                im_id=3 + i // 3,
                obj_id=1 + i,
                score=float(rng.random()),
                R_m2c=R,
                t_m2c=rng.normal(0, 100, 3) + [0, 0, 900],
                time_s=0.25 + i // 3,
            )
        )
    return out


def test_round_trip_is_exact_and_leaves_the_input_alone(tmp_path):
    est = _estimates()
    before = snapshot(est)
    save_results_csv(tmp_path / "m_lmo-test.csv", est)
    assert same(est, before)
    back = load_results_csv(tmp_path / "m_lmo-test.csv")
    assert same(back, est)


@pytest.mark.parametrize("newline", ["\n", "\r\n"])
def test_utf8_byte_order_mark_is_accepted_as_bop_toolkit_does(tmp_path, newline):
    est = _estimates()
    save_results_csv(tmp_path / "m_lmo-test.csv", est)
    text = (tmp_path / "m_lmo-test.csv").read_text().replace("\n", newline)
    bom = tmp_path / "bom_lmo-test.csv"
    bom.write_bytes(b"\xef\xbb\xbf" + text.encode())
    assert same(load_results_csv(bom), est)
    # a BOM is dropped only at the start of the file: one inside a row is still reported with its line
    bom.write_bytes(b"\xef\xbb\xbf" + text.encode() + "\ufeff2,3,1,0.5,1 0 0 0 1 0 0 0 1,0 0 9,0.25\n".encode())
    with pytest.raises(ResultsFormatError, match="line 8: scene_id"):
        load_results_csv(bom)


def test_written_file_is_plain_bop19_csv(tmp_path):
    est = _estimates(2)
    save_results_csv(tmp_path / "r.csv", est)
    with open(tmp_path / "r.csv", newline="") as f:
        rows = list(csv.reader(f))
    assert ",".join(rows[0]) == HEADER and len(rows) == 3
    r = rows[1]
    assert len(r) == 7 and int(r[0]) == 2 and len(r[4].split()) == 9 and len(r[5].split()) == 3
    np.testing.assert_array_equal(np.array(r[4].split(), float).reshape(3, 3), est[0].R_m2c)  # row-major


def test_time_minus_one_is_allowed(tmp_path):
    est = [ResultRow(1, 1, 1, 0.5, np.eye(3), np.array([0, 0, 500.0]), -1.0)]
    save_results_csv(tmp_path / "r.csv", est)
    assert load_results_csv(tmp_path / "r.csv")[0].time_s == -1.0


def test_every_problem_is_reported_with_its_line(tmp_path):
    I = "1 0 0 0 1 0 0 0 1"
    lines = [
        "scene_id,im_id,obj_id,score,R,t",  # 1 bad header
        f"1,1,1,0.9,{I},0 0 500,0.5",  # 2 ok
        f"1,1,2,0.9,{I},0 0 500",  # 3 six fields
        "1,1,3,0.9,2 0 0 0 1 0 0 0 1,0 0 500,0.5",  # 4 not orthonormal
        "1,1,4,0.9,1 0 0 0 1 0 0 0,0 0 500,0.5",  # 5 eight numbers
        f"1,1,5,high,{I},0 0 500,0.5",  # 6 score not numeric
        f"1,1,6,0.9,{I},0 0 500,inf",  # 7 time not finite
        f"1,1,7,0.9,{I},0 0 500,0.9",  # 8 other time for image (1, 1)
        f"1,x,8,0.9,{I},0 0 nan,0.5",  # 9 bad im_id and t
        f"2,1,1,0.9,{I},0 0 500,-2",  # 10 negative time other than -1
    ]
    (tmp_path / "r.csv").write_text("\n".join(lines) + "\n")
    with pytest.raises(ResultsFormatError) as info:
        load_results_csv(tmp_path / "r.csv")
    problems = info.value.problems
    expected = {
        "line 1: header": 1,
        "line 3: expected 7": 1,
        "line 4: R: not a rotation": 1,
        "line 5: R: expected 9": 1,
        "line 6: score": 1,
        "line 7: time": 1,
        "line 9: im_id": 1,
        "line 9: t:": 1,
        "line 10: time": 1,
        "line 2: time: scene 1 image 1 has different times": 1,
    }
    for key, n in expected.items():
        assert sum(key in p for p in problems) == n, (key, problems)
    assert len(problems) == len(expected)
    assert [int(p.split(":")[0][5:]) for p in problems] == [1, 2, 3, 4, 5, 6, 7, 9, 9, 10]  # in file order
    assert "|R^T R - I|" in str(info.value) and "< 0.001" in str(info.value)  # the tolerance is stated
    assert str(tmp_path / "r.csv") in str(info.value)


def test_rotation_tolerance_parameter(tmp_path):
    R = axis_angle_matrix(0.4, np.array([0.0, 1.0, 0.0])) + 2e-3
    line = f"1,1,1,0.9,{' '.join(map(str, R.reshape(-1)))},0 0 500,0.5"
    (tmp_path / "r.csv").write_text(HEADER + "\n" + line + "\n")
    with pytest.raises(ResultsFormatError, match="not a rotation"):
        load_results_csv(tmp_path / "r.csv")
    assert len(load_results_csv(tmp_path / "r.csv", rot_tol=0.05)) == 1


def test_empty_and_missing_files(tmp_path):
    (tmp_path / "e.csv").write_text("")
    with pytest.raises(ResultsFormatError, match="empty file"):
        load_results_csv(tmp_path / "e.csv")
    (tmp_path / "h.csv").write_text(HEADER + "\n")
    assert load_results_csv(tmp_path / "h.csv") == []
    with pytest.raises(ResultsFormatError, match="not found"):
        load_results_csv(tmp_path / "none.csv")


def test_writer_refuses_invalid_estimates_and_writes_nothing(tmp_path):
    est = _estimates(2)
    bad = [est[0], ResultRow(2, 3, 9, 0.1, 3 * np.eye(3), np.zeros(3), est[0].time_s + 1)]
    with pytest.raises(ResultsFormatError) as info:
        save_results_csv(tmp_path / "r.csv", bad)
    assert len(info.value.problems) == 2  # the rotation and the time
    assert not (tmp_path / "r.csv").exists()


@pytest.mark.parametrize(
    "name, parts",
    [
        ("pix2pose-bpnp_lmo-test.csv", ("pix2pose-bpnp", "lmo", "test", None)),
        ("results/m_tless-test-primesense.csv", ("m", "tless", "test", "primesense")),
        (
            "unittest-minVisib0_lmo-test_16ab01bd-f020-4194-9750-d42fc7f875d2.csv",
            ("unittest-minVisib0", "lmo", "test", None),
        ),
        ("cnos_ycbv-test.json", ("cnos", "ycbv", "test", None)),
    ],
)
def test_parse_result_filename(name, parts):
    assert tuple(parse_result_filename(name)) == parts


@pytest.mark.parametrize(
    "name", ["my_method_lmo-test.csv", "method_lmo.csv", "method-lmo-test.csv", "m_lmo-test.txt", "_lmo-test.csv"]
)
def test_parse_result_filename_errors(name):
    with pytest.raises(ResultsFormatError, match="mymethod_lmo-test.csv"):
        parse_result_filename(name)


@pytest.mark.parametrize(
    "name, folder",
    [
        ("m_lmo-test.csv", "test"),
        ("m_tless-test.csv", "test_primesense"),
        ("m_hbs-val.csv", "val_primesense"),
        ("m_tless-test-kinect.csv", "test_kinect"),
        ("m_lmo-train-pbr.csv", "train_pbr"),
    ],
)
def test_split_folder(name, folder):
    assert split_folder(parse_result_filename(name)) == folder

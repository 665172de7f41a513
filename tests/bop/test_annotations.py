from __future__ import annotations

import json
import math

import numpy as np
import pytest
from bop_helpers import same, snapshot

from bopnp.bop import annotations as ann
from bopnp.bop.io import (
    Camera,
    ContinuousSymmetry,
    GtInfo,
    GtPose,
    ImageCamera,
    ModelInfo,
    Target,
    load_camera,
    load_models_info,
    load_scene_camera,
    load_scene_gt,
    load_scene_gt_info,
    load_targets,
    save_camera,
    save_models_info,
    save_scene_camera,
    save_scene_gt,
    save_scene_gt_info,
    save_targets,
)
from bopnp.bop.symmetry import axis_angle_matrix
from bopnp.errors import DatasetError


def _rot(k: int) -> np.ndarray:
    return axis_angle_matrix(0.1 + 0.7 * k, np.array([1.0, -2.0, 0.5]))


def _models_info():
    flip = np.eye(4)
    flip[:3, :3] = axis_angle_matrix(np.pi, np.array([0.0, 0.0, 1.0]))
    flip[:3, 3] = [0.25, -0.5, 1e-7]
    return {
        1: ModelInfo(1, 102.099, np.array([-37.9343, -38.7996, -45.8845]), np.array([75.8686, 77.5992, 91.769])),
        10: ModelInfo(
            10, 164.628, np.array([-75.0, -53.5, -34.6]), np.array([150.2, 107.1, 69.2]), symmetries_discrete=flip[None]
        ),
        27: ModelInfo(
            27,
            80.0,
            np.zeros(3) - 40,
            np.full(3, 80.0),
            symmetries_continuous=(ContinuousSymmetry(np.array([0.0, 0.0, 1.0]), np.array([0.0, 0.0, 2.5])),),
            extra={"note": "kept"},
        ),
    }


def _cases():
    return {
        "models_info": (save_models_info, load_models_info, _models_info()),
        "camera": (
            save_camera,
            load_camera,
            Camera(np.array([[572.4114, 0, 325.2611], [0, 573.57043, 242.04899], [0, 0, 1.0]]), 640, 480, 1.0),
        ),
        "scene_camera": (
            save_scene_camera,
            load_scene_camera,
            {
                0: ImageCamera(
                    np.array([[500.0, 0, 320], [0, 501, 240], [0, 0, 1]]),
                    0.1,
                    _rot(0),
                    np.array([1.5, -2.0, 700.0]),
                    {"view_level": 2},
                ),
                7: ImageCamera(np.array([[572.4114, 0, 325.2611], [0, 573.57043, 242.04899], [0, 0, 1.0]]), 1.0),
            },
        ),
        "scene_gt": (
            save_scene_gt,
            load_scene_gt,
            {
                3: [
                    GtPose(1, _rot(1), np.array([161.68945982, -113.74032768, 1112.83112737])),
                    GtPose(5, _rot(2), np.array([1e-3, 0, 964.5])),
                ],
                12: [],
            },
        ),
        "scene_gt_info": (
            save_scene_gt_info,
            load_scene_gt_info,
            {
                3: [
                    GtInfo(np.array([1, 2, 30, 40]), np.array([5, 6, 20, 30]), 1200, 1100, 600, 0.5),
                    GtInfo(np.array([-1] * 4), np.array([-1] * 4), 0, 0, 0, 0.0),
                ],
            },
        ),
        "targets": (save_targets, load_targets, [Target(2, 3, 1, 1), Target(2, 3, 5, 2), Target(2, 894, 12, 1)]),
    }


@pytest.mark.parametrize("name", list(_cases()))
@pytest.mark.parametrize("suffix", [".json", ".json.gz"])
def test_save_load_round_trip_without_touching_the_input(tmp_path, name, suffix):
    save, load, content = _cases()[name]
    before = snapshot(content)
    path = tmp_path / f"{name}{suffix}"
    save(path, content)
    assert same(content, before)
    assert same(load(path), content)
    assert [p.name for p in tmp_path.iterdir()] == [path.name]  # atomic: no temporary file left


def test_files_use_the_bop_field_names_and_layout(tmp_path):
    save, _, content = _cases()["scene_gt"]
    save(tmp_path / "scene_gt.json", content)
    raw = json.loads((tmp_path / "scene_gt.json").read_text())
    assert list(raw) == ["3", "12"]  # keys sorted numerically, as strings
    assert set(raw["3"][0]) == {"cam_R_m2c", "cam_t_m2c", "obj_id"} and len(raw["3"][0]["cam_R_m2c"]) == 9
    assert raw["3"][0]["cam_R_m2c"] == _rot(1).reshape(-1).tolist()  # row-major
    save_camera(tmp_path / "camera.json", _cases()["camera"][2])
    assert json.loads((tmp_path / "camera.json").read_text()) == {
        "cx": 325.2611,
        "cy": 242.04899,
        "fx": 572.4114,
        "fy": 573.57043,
        "height": 480,
        "width": 640,
        "depth_scale": 1.0,
    }
    save_models_info(tmp_path / "mi.json", _models_info())
    raw = json.loads((tmp_path / "mi.json").read_text())
    assert set(raw["1"]) == {"diameter", "min_x", "min_y", "min_z", "size_x", "size_y", "size_z"}
    assert len(raw["10"]["symmetries_discrete"][0]) == 16 and raw["27"]["symmetries_continuous"][0]["offset"] == [
        0,
        0,
        2.5,
    ]


def test_scene_gt_reports_every_problem_with_file_and_field(tmp_path):
    good = _rot(0).reshape(-1).tolist()
    content = {
        "0": [
            {"obj_id": 1, "cam_R_m2c": good, "cam_t_m2c": [0, 0, 500]},
            {"obj_id": 2, "cam_R_m2c": (2 * _rot(1)).reshape(-1).tolist(), "cam_t_m2c": [0, 0, 500]},
        ],
        "1": [{"obj_id": "x", "cam_R_m2c": good, "cam_t_m2c": [0, 0]}],
        "2": [{"cam_R_m2c": good, "cam_t_m2c": [0, 0, float("nan")]}],
        "im": [],
        "3": {"obj_id": 1},
    }
    (tmp_path / "scene_gt.json").write_text(json.dumps(content))
    with pytest.raises(DatasetError) as info:
        load_scene_gt(tmp_path / "scene_gt.json")
    problems = info.value.problems
    src = str(tmp_path / "scene_gt.json")
    assert all(p.startswith(src + ": ") for p in problems)
    want = [
        "['0'][1].cam_R_m2c: not a rotation",
        "['1'][0].obj_id: must be a non-negative integer",
        "['1'][0].cam_t_m2c: expected a list of 3 numbers",
        "['2'][0].obj_id: missing",
        "['2'][0].cam_t_m2c: entries [2] are not finite",
        "['im']: key is not a non-negative integer",
        "['3']: expected a list",
    ]
    for w in want:
        assert sum(w in p for p in problems) == 1, (w, problems)
    assert len(problems) == len(want)


def test_rotation_tolerance_is_a_parameter(tmp_path):
    R = _rot(0) + 0.01  # off by about 1e-2, like some official annotations
    (tmp_path / "g.json").write_text(
        json.dumps({"0": [{"obj_id": 1, "cam_R_m2c": R.reshape(-1).tolist(), "cam_t_m2c": [0, 0, 1]}]})
    )
    assert load_scene_gt(tmp_path / "g.json")[0][0].obj_id == 1  # default dataset tolerance 0.05
    with pytest.raises(DatasetError, match=r"must be < 0.001"):
        load_scene_gt(tmp_path / "g.json", rot_tol=1e-3)


def test_invalid_json_and_missing_file_messages(tmp_path):
    (tmp_path / "scene_camera.json").write_text('{"0": {"cam_K": [1, 0, 0,\n 0, 1, 0, 0, 0 1]}}')
    with pytest.raises(DatasetError, match=r"invalid json at line 2, column \d+"):
        load_scene_camera(tmp_path / "scene_camera.json")
    with pytest.raises(DatasetError, match="camera.json not found"):
        load_camera(tmp_path / "camera.json")


def test_read_json_fix_hint(tmp_path):
    with pytest.raises(
        DatasetError, match=r"x.json not found \(settings\): check the path, or download the file from the BOP website$"
    ):
        ann.read_json(tmp_path / "x.json", "settings")
    with pytest.raises(DatasetError, match=r"x.json not found: run `bopnp prepare NAME` first$"):
        ann.read_json(tmp_path / "x.json", fix="run `bopnp prepare NAME` first")
    (tmp_path / "x.json").write_text("{")
    with pytest.raises(DatasetError, match=r"invalid json at line 1, column 2: .*; run `bopnp prepare NAME` first$"):
        ann.read_json(tmp_path / "x.json", fix="run `bopnp prepare NAME` first")


@pytest.mark.parametrize(
    "content, field",
    [
        ({"fx": 1.0, "fy": 1.0, "cx": 0, "cy": 0, "width": 640}, "height: missing"),
        ({"fx": -1.0, "fy": 1.0, "cx": 0, "cy": 0, "width": 640, "height": 480}, "fx: must be a positive number"),
        ({"fx": 1.0, "fy": 1.0, "cx": 0, "cy": 0, "width": 64.5, "height": 480}, "width: must be a positive integer"),
    ],
)
def test_camera_field_errors(tmp_path, content, field):
    (tmp_path / "camera.json").write_text(json.dumps(content))
    with pytest.raises(DatasetError, match=field):
        load_camera(tmp_path / "camera.json")


def test_models_info_and_targets_errors(tmp_path):
    (tmp_path / "mi.json").write_text(
        json.dumps(
            {
                "1": {"diameter": 0, "min_x": 0, "min_y": 0, "min_z": 0, "size_x": 1, "size_y": 1, "size_z": 1},
                "2": {
                    "diameter": 5,
                    "min_x": 0,
                    "min_y": 0,
                    "min_z": 0,
                    "size_x": 1,
                    "size_y": 1,
                    "size_z": 1,
                    "symmetries_discrete": [[2, 0, 0, 0, 0, 1, 0, 0, 0, 0, 1, 0, 0, 0, 0, 1]],
                    "symmetries_continuous": [{"axis": [0, 0, 0], "offset": [0, 0, 0]}],
                },
            }
        )
    )
    with pytest.raises(DatasetError) as info:
        load_models_info(tmp_path / "mi.json")
    text = "\n".join(info.value.problems)
    assert "['1'].diameter: must be a positive number" in text
    assert "['2'].symmetries_discrete[0] (rotation part): not a rotation" in text
    assert "['2'].symmetries_continuous[0].axis: must be a nonzero vector" in text
    (tmp_path / "t.json").write_text(
        json.dumps(
            [
                {"scene_id": 1, "im_id": 0, "obj_id": 1, "inst_count": 0},
                {"scene_id": 1, "im_id": 0, "obj_id": 2, "inst_count": 1},
                {"scene_id": 1, "im_id": 0, "obj_id": 2, "inst_count": 1},
            ]
        )
    )
    with pytest.raises(DatasetError) as info:
        load_targets(tmp_path / "t.json")
    assert len(info.value.problems) == 2
    assert (
        "[0].inst_count: must be a positive integer" in info.value.problems[0]
        and "duplicate target" in info.value.problems[1]
    )
    assert (
        "t.json: [2]: duplicate target scene 1 image 0 object 2 (also entry 1)" in info.value.problems[1]
    )  # file indices
    indices: list[int] = []
    targets = ann.parse_targets(json.loads((tmp_path / "t.json").read_text()), "t.json", [], indices)
    assert len(targets) == 2 and indices == [1, 2]


def test_parse_collects_problems_without_raising():
    problems: list[str] = []
    out = ann.parse_scene_gt(
        {"0": [{"obj_id": 1, "cam_R_m2c": [1] * 9, "cam_t_m2c": [0, 0, 1]}], "1": []}, "x.json", problems
    )
    assert list(out) == [1] and len(problems) == 1 and problems[0].startswith("x.json: ['0'][0].cam_R_m2c")


@pytest.mark.shared_data
def test_lmo_annotations(lmo_dir):
    K = np.array([[572.4114, 0.0, 325.2611], [0.0, 573.57043, 242.04899], [0.0, 0.0, 1.0]])
    cam = load_camera(lmo_dir / "camera.json")
    assert np.array_equal(cam.K, K) and (cam.width, cam.height, cam.depth_scale) == (640, 480, 1.0)
    sc = load_scene_camera(lmo_dir / "test" / "000002" / "scene_camera.json")
    assert len(sc) == 200 and all(np.array_equal(c.K, K) and c.depth_scale == 1.0 for c in sc.values())
    gt = load_scene_gt(lmo_dir / "test" / "000002" / "scene_gt.json")
    assert len(gt) == 200 and set(gt) == set(sc) and sum(map(len, gt.values())) == 1517
    assert gt[3][0].obj_id == 1 and gt[3][0].t_m2c.shape == (3,) and gt[3][0].R_m2c.shape == (3, 3)
    np.testing.assert_allclose(gt[3][0].t_m2c, [161.68945982, -113.74032768, 1112.83112737])
    targets = load_targets(lmo_dir / "test_targets_bop19.json")
    assert len(targets) == 1445 and len({(t.scene_id, t.im_id) for t in targets}) == 200
    info = load_models_info(lmo_dir / "models" / "models_info.json")
    assert sorted(info) == [1, 5, 6, 8, 9, 10, 11, 12]
    assert sorted(k for k, v in info.items() if v.is_symmetric) == [10, 11]
    assert info[10].symmetries_discrete.shape == (1, 4, 4)


# ----------------------------------------------------------------------------- hostile content


def test_deep_json_and_huge_numbers_are_dataset_errors(tmp_path):
    path = tmp_path / "scene_gt.json"
    path.write_text("[" * 50_000 + "]" * 50_000)
    with pytest.raises(DatasetError, match="scene_gt.json: the json is nested too deeply"):
        ann.read_json(path)
    path.write_text('{"1": ' + "7" * 5000 + "}")  # beyond Python's digit limit for int()
    with pytest.raises(DatasetError, match="scene_gt.json: cannot decode the json"):
        ann.read_json(path)


def _info_json(**entry):
    base = {
        "diameter": 75.0,
        "min_x": -30.0,
        "min_y": -20.0,
        "min_z": -15.0,
        "size_x": 60.0,
        "size_y": 40.0,
        "size_z": 30.0,
    }
    return {"1": {**base, **entry}}


_DIAG = math.sqrt(60**2 + 40**2 + 30**2)  # 78.1 mm: the box 60 x 40 x 30 of _info_json


@pytest.mark.parametrize(
    "diameter, ok", [(75.0, True), (60.0, True), (_DIAG, True), (59.0, False), (1.0, False), (_DIAG * 1.02, False)]
)
def test_diameter_must_lie_between_longest_side_and_diagonal(diameter, ok):
    problems: list[str] = []
    infos = ann.parse_models_info(_info_json(diameter=diameter), "models_info.json", problems)
    assert (not problems) == ok, problems
    assert list(infos) == [1]  # kept either way: check still compares it with the mesh
    if not ok:
        assert problems[0].startswith("models_info.json: ['1'].diameter: ")
        assert "largest distance between two vertices" in problems[0]


@pytest.mark.parametrize("t_mm", [[0.0, 0.0, 0.0], [5.0, 5.0, -300.0]])
def test_pose_at_or_behind_the_camera_is_a_problem(t_mm):
    problems: list[str] = []
    content = {"3": [{"obj_id": 1, "cam_R_m2c": np.eye(3).reshape(-1).tolist(), "cam_t_m2c": t_mm}]}
    assert ann.parse_scene_gt(content, "scene_gt.json", problems) == {}
    assert len(problems) == 1 and problems[0].startswith("scene_gt.json: ['3'][0].cam_t_m2c: t_z = ")


def test_long_values_are_shortened_in_problems():
    problems: list[str] = []
    ann.parse_targets([{"scene_id": 1, "im_id": 10**300, "obj_id": 1, "inst_count": 1}], "t.json", problems)
    ann.parse_scene_gt({"1" * 200: []}, "g.json", problems)
    assert len(problems) == 2 and all(len(p) < 200 for p in problems), problems
    assert "(301 characters)" in problems[0] and "more than 9 digits" in problems[1]

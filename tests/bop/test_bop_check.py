from __future__ import annotations

import json

import pytest

from bopnp.bop.check import CheckOptions, check_dataset
from bopnp.errors import ConfigError, DatasetError

QUIET = CheckOptions(progress=False)


def test_clean_dataset_has_no_problems(tiny_root):
    report = check_dataset(tiny_root, None, QUIET)
    assert report.ok, report.problems
    assert report.counts["models"] == 2 and report.counts["images"] == 3 and report.counts["masks"] == 6
    assert "no problems" in report.summary()


def test_every_planted_problem_is_reported_with_file_and_field(tmp_path, tiny):
    root = tiny.make_dataset(tmp_path / "broken", scenes=2)
    expected = tiny.break_dataset(root)
    report = check_dataset(root, "test", QUIET)
    assert not report.ok
    for line in expected:
        assert sum(p.startswith(line) for p in report.problems) == 1, (line, report.problems)
    assert len(report.problems) == len(expected), report.problems
    files = {line.split(": ", 1)[0] for line in expected}
    assert report.summary().startswith(f"broken: {len(expected)} problem(s) in {len(files)} file(s)")


def test_loaders_raise_the_same_lines(tmp_path, tiny):
    from bopnp.bop.dataset import BopDataset

    root = tiny.make_dataset(tmp_path / "broken", scenes=2)
    tiny.break_dataset(root)
    with pytest.raises(DatasetError) as info:
        BopDataset(root, "test").scene_gt(1)
    report = check_dataset(root, "test", QUIET)
    for p in info.value.problems:  # the loader names the absolute path, the checker the relative one
        assert p.replace(str(root) + "/", "") in report.problems


def test_target_problems_name_the_entry_of_the_file(tiny_root):
    path = tiny_root / "test_targets_bop19.json"
    targets = json.loads(path.read_text())
    bad = {"scene_id": 1, "im_id": 0, "obj_id": 1}  # no inst_count: left out of the parsed targets
    targets = [bad, {**targets[0], "obj_id": 99}, *targets]
    path.write_text(json.dumps(targets))
    problems = check_dataset(tiny_root, "test", QUIET).problems
    assert problems == [
        "test_targets_bop19.json: [0].inst_count: missing",
        "test_targets_bop19.json: [1].obj_id: unknown object 99",
        "test_targets_bop19.json: [1].inst_count: 1 instances of object 99 in scene 1 image 0, but scene_gt.json has 0",
    ]


def test_slightly_off_rotations_are_a_note(tiny_root):
    path = tiny_root / "test" / "000001" / "scene_gt.json"
    gt = json.loads(path.read_text())
    gt["0"][0]["cam_R_m2c"] = [1.005 * x for x in gt["0"][0]["cam_R_m2c"]]  # |R^T R - I| ~ 0.01 < 0.05
    path.write_text(json.dumps(gt))
    report = check_dataset(tiny_root, "test", QUIET)
    assert report.ok, report.problems
    assert (
        "test/000001/scene_gt.json: annotated rotations deviate from orthonormal by up to 0.01 (accepted below 0.05)"
        in report.notes
    )


def test_unreadable_files_are_problems_without_the_path_twice(tiny_root):
    scene = tiny_root / "test" / "000001"
    for junk in ("rgb/000000.png", "depth/000000.png", "mask_visib/000000_000000.png"):
        (scene / junk).write_bytes(b"junk")
    (scene / "scene_gt_info.json").write_text("{")
    (tiny_root / "models" / "obj_000001.ply").write_bytes(b"ply\nformat foo\nend_header\n")
    problems = check_dataset(tiny_root, None, QUIET).problems
    assert [p.split(" (")[0] for p in problems] == [
        "models/obj_000001.ply: not a readable PLY file: header line 2: unknown format 'foo'; re-export it",
        "test/000001/scene_gt_info.json: invalid json at line 1, column 2: "
        "Expecting property name enclosed in double quotes; fix the file or re-download it",
        "test/000001/rgb/000000.png: cannot decode the image",
        "test/000001/depth/000000.png: cannot decode the image",
        "test/000001/mask_visib/000000_000000.png: cannot decode the image",
    ]


@pytest.mark.parametrize("mode", ["present", "none"])
def test_missing_images_are_problems_unless_asked_otherwise(tiny_root, mode):
    (tiny_root / "test" / "000001" / "rgb" / "000001.png").unlink()
    (tiny_root / "test" / "000001" / "mask_visib" / "000000_000001.png").unlink()
    assert {p.split(": ")[0] for p in check_dataset(tiny_root, "test", QUIET).problems} == {
        "test/000001/rgb/000001.png",
        "test/000001/mask_visib/000000_000001.png",
    }
    report = check_dataset(tiny_root, "test", CheckOptions(images=mode, progress=False))
    assert report.ok
    if mode == "present":
        assert any("1 of 2 rgb" in n and "1 of 2 mask_visib" in n for n in report.notes)


def test_models_problems(tiny_root):
    info = json.loads((tiny_root / "models" / "models_info.json").read_text())
    info["1"]["size_x"] *= 1000  # as if in micrometres
    info["2"]["symmetries_continuous"][0]["axis"] = [1, 0, 0]  # the cylinder's axis is z
    for folder in ("models", "models_eval"):
        (tiny_root / folder / "models_info.json").write_text(json.dumps(info))
    (tiny_root / "models_eval" / "obj_000002.ply").unlink()
    (tiny_root / "models" / "obj_000003.ply").write_bytes((tiny_root / "models" / "obj_000001.ply").read_bytes())
    report = check_dataset(tiny_root, None, CheckOptions(models_only=True, progress=False))
    text = "\n".join(report.problems)
    for folder in ("models", "models_eval"):
        # the size no longer fits the diameter, and the mesh's box disagrees with it
        assert f"{folder}/models_info.json: ['1'].diameter: " in text and "is below the longest side" in text
        assert f"{folder}/obj_000001.ply: vertex: bounding box min" in text
    assert "models_eval/obj_000002.ply: missing (model of object 2 listed in models_eval/models_info.json)" in text
    assert "models/obj_000003.ply: object 3 has a model but no entry" in text
    # checked against the models/ mesh; the eval model is missing
    assert text.count("['2'].symmetries: a declared symmetry does not map") == 1
    assert "models/models_info.json: ['2'].symmetries: a declared symmetry does not map models/obj_000002.ply" in text
    assert len(report.problems) == 7


def test_wrong_symmetry_is_caught(tiny_root):
    """In either folder's models_info.json: prepare reads models/, eval models_eval/."""
    clean = (tiny_root / "models" / "models_info.json").read_text()
    for folder in ("models", "models_eval"):
        info = json.loads(clean)
        info["2"]["symmetries_continuous"][0]["axis"] = [1, 0, 0]
        (tiny_root / folder / "models_info.json").write_text(json.dumps(info))
        report = check_dataset(tiny_root, None, CheckOptions(models_only=True, progress=False))
        assert len(report.problems) == 1, report.problems
        want = f"{folder}/models_info.json: ['2'].symmetries: a declared symmetry does not map"
        assert report.problems[0].startswith(want)
        (tiny_root / folder / "models_info.json").write_text(clean)


def test_missing_dataset_and_bad_options(tmp_path, tiny_root):
    with pytest.raises(DatasetError, match="not found"):
        check_dataset(tmp_path / "none")
    with pytest.raises(DatasetError, match="splits present: test, train_pbr"):
        check_dataset(tiny_root, "val")
    with pytest.raises(ConfigError):
        check_dataset(tiny_root, None, CheckOptions(images="some"))


@pytest.mark.shared_data
def test_lmo_partial_download(lmo_dir):
    full = check_dataset(lmo_dir, "test", QUIET)
    # 198 of the 200 test images and 199 depth images are not in the partial copy: reported, nothing else
    assert len(full.problems) == 397
    assert all(": missing image" in p or ": missing depth image" in p for p in full.problems)
    present = check_dataset(lmo_dir, "test", CheckOptions(images="present", progress=False))
    assert present.ok, present.problems
    assert (
        present.counts["image files"] == 2 and present.counts["instances"] == 1517 and present.counts["targets"] == 1445
    )
    assert check_dataset(lmo_dir, None, CheckOptions(models_only=True, progress=False)).ok


@pytest.mark.parametrize(
    "change, field, needle",
    [
        ({2: 5000.0, 5: -3000.0}, "cx", "principal point 5000 px is far outside the image"),
        ({5: -3000.0}, "cy", "principal point -3000 px is far outside the image"),
        ({1: 50.0}, "skew", "skew K[0][1] = 50 shifts points by up to"),
        ({0: 0.0}, "", "not an intrinsics matrix"),
        ({4: -300.0}, "", "not an intrinsics matrix"),
    ],
    ids=["cx", "cy", "skew", "fx zero", "fy negative"],
)
def test_intrinsics_that_cannot_be_the_camera_are_reported(tiny_root, change, field, needle):
    path = tiny_root / "test" / "000001" / "scene_camera.json"
    cams = json.loads(path.read_text())
    for k, v in change.items():
        cams["1"]["cam_K"][k] = v
    path.write_text(json.dumps(cams))
    problems = check_dataset(tiny_root, "test", CheckOptions(progress=False, images="none")).problems
    mine = [p for p in problems if p.startswith("test/000001/scene_camera.json: ['1'].cam_K: ")]
    assert len(mine) == len(problems) >= 1, problems
    assert any(p.split(".cam_K: ", 1)[1].startswith(field) and needle in p for p in mine), problems


def test_small_skew_and_an_off_centre_principal_point_are_accepted(tiny_root):
    path = tiny_root / "test" / "000001" / "scene_camera.json"
    cams = json.loads(path.read_text())
    camera = json.loads((tiny_root / "camera.json").read_text())
    cams["0"]["cam_K"][1] = 0.2 * cams["0"]["cam_K"][4] / camera["height"]  # shifts points by < 0.5 px
    cams["1"]["cam_K"][2] = -0.4 * camera["width"]  # a crop of a larger image: off-centre, within half the width
    path.write_text(json.dumps(cams))
    report = check_dataset(tiny_root, "test", CheckOptions(progress=False, images="none"))
    assert report.ok, report.problems


def test_camera_json_principal_point_far_outside_is_reported(tiny_root):
    path = tiny_root / "camera.json"
    cam = json.loads(path.read_text())
    cam["cy"] = cam["height"] * 3.0
    path.write_text(json.dumps(cam))
    problems = check_dataset(tiny_root, None, CheckOptions(progress=False, models_only=True)).problems
    assert problems == [p for p in problems if p.startswith("camera.json: cy: principal point ")] != [], problems


def test_scene_gt_info_boxes_that_cannot_be_the_images_are_reported(tiny_root):
    path = tiny_root / "test" / "000001" / "scene_gt_info.json"
    camera = json.loads((tiny_root / "camera.json").read_text())
    W, H = camera["width"], camera["height"]
    info = json.loads(path.read_text())
    info["0"][0]["bbox_visib"] = [2, 3, -10, 5]
    info["0"][1]["bbox_obj"] = [0, 0, 10 * W, 10 * H]
    info["1"][0]["bbox_visib"] = [W + 5, 0, 4, 4]
    path.write_text(json.dumps(info))
    problems = check_dataset(tiny_root, "test", CheckOptions(progress=False, images="none")).problems
    src = "test/000001/scene_gt_info.json"
    assert len(problems) == 3, problems
    assert problems[0].startswith(f"{src}: ['0'][0].bbox_visib: [2, 3, -10, 5] has a negative width or height")
    assert problems[1].startswith(f"{src}: ['0'][1].bbox_obj: [0, 0, {10 * W}, {10 * H}] (x, y, width, height) does")
    assert "the 3x canvas around the image" in problems[1]
    assert (
        problems[2].startswith(f"{src}: ['1'][0].bbox_visib: [{W + 5}, 0, 4, 4]")
        and "does not fit the image" in problems[2]
    )


def test_an_image_present_as_png_and_jpg_is_reported_with_the_one_read(tiny_root):
    import cv2

    from bopnp.bop.dataset import BopDataset

    rgb = tiny_root / "test" / "000001" / "rgb"
    png = rgb / "000001.png"
    cv2.imwrite(str(rgb / "000001.jpg"), 255 - cv2.imread(str(png)))
    problems = check_dataset(tiny_root, "test", QUIET).problems
    assert problems == [
        "test/000001/rgb/000001.png: 000001.png and 000001.jpg both exist: bopnp reads 000001.png; remove the other "
        "file(s)"
    ]
    for _ in range(3):  # the file read does not depend on the folder's listing order
        assert BopDataset(tiny_root, "test").image_path(1, 1) == png

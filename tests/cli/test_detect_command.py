"""bopnp detect: writes the BOP default-detections file that FileDetections reads back unchanged, scores it when
the split has ground truth, and reports bad inputs without a traceback."""

import numpy as np
import pytest
import torch
from click.testing import CliRunner

from bopnp.bop.dataset import BopDataset
from bopnp.cli.main import cli
from bopnp.infer.detect import FileDetections, ImageItem
from bopnp.infer.maskrcnn import MaskRcnnDetections
from bopnp.models.detector import build_maskrcnn
from bopnp.train.checkpoint import save_checkpoint


@pytest.fixture
def setup(tiny, tmp_path):
    """(bop_path, a detector checkpoint with random weights for objects 1 and 2)."""
    tiny.make_dataset(tmp_path / "bop" / "drawn")
    torch.manual_seed(0)
    net = build_maskrcnn(
        num_classes=3,
        backbone="resnet18_fpn",
        returned_layers=(2, 3, 4),
        min_size=48,
        max_size=64,
        fpn_channels=32,
        box_head_dim=64,
        mask_head_layers=1,
        mask_head_channels=16,
        box_detections_per_img=10,
    )
    save_checkpoint(tmp_path / "det.pt", {"model": net.state_dict(), "detector": net.spec.to_dict(), "obj_ids": [1, 2]})
    return tmp_path / "bop", tmp_path / "det.pt"


def _args(bop, ckpt, out, *more):
    return [
        "detect",
        "drawn",
        "--bop-path",
        str(bop),
        "--detector",
        str(ckpt),
        "--out",
        str(out),
        "--no-progress",
        *more,
    ]


def test_detections_file_round_trips_through_the_default_detections_reader(setup, tmp_path):
    bop, ckpt = setup
    out = tmp_path / "dets" / "maskrcnn_drawn-test.json"
    result = CliRunner().invoke(cli, _args(bop, ckpt, out, "--score-threshold", "0"))
    assert result.exit_code == 0, result.output
    assert str(out) in result.output and "box mAP" in result.output and "recall" in result.output
    # the confusion table: a row per object and one for background, a column per object and one for misses
    lines = result.output.splitlines()
    at = next(i for i, line in enumerate(lines) if line.startswith("GT \\ detected"))
    assert lines[at].split()[-3:] == ["obj", "2", "miss"] and [line.split()[0] for line in lines[at + 1 : at + 4]] == [
        "obj",
        "obj",
        "bg",
    ]
    read = FileDetections(out)
    assert read.keys() == [(1, 0), (1, 1)]  # the images of the test targets
    ds = BopDataset(bop / "drawn", "test")
    direct = MaskRcnnDetections(ckpt, score_threshold=0.0)([ImageItem(1, i, ds.image(1, i)) for i in (0, 1)])
    for key, mine in zip(read.keys(), direct):
        theirs = read([ImageItem(*key)])[0]
        assert len(theirs) == len(mine) > 0
        for a, b in zip(theirs, mine):
            assert (a.scene_id, a.im_id, a.obj_id) == (b.scene_id, b.im_id, b.obj_id)
            assert a.score == b.score
            np.testing.assert_allclose(a.bbox_xywh, b.bbox_xywh, rtol=0, atol=0)
            np.testing.assert_array_equal(a.rle.decode(), b.rle.decode())
            assert a.time_s > 0


def test_bad_inputs_are_reported_without_a_traceback(setup, tmp_path):
    bop, ckpt = setup
    runner = CliRunner()
    missing = runner.invoke(cli, _args(bop, tmp_path / "none.pt", tmp_path / "d.json"))
    assert missing.exit_code == 2 and "bopnp train drawn --stage detector" in missing.output
    save_checkpoint(tmp_path / "pose.pt", {"model": {"w": torch.zeros(1)}, "obj_ids": [1], "crop_size": 64})
    pose = runner.invoke(cli, _args(bop, tmp_path / "pose.pt", tmp_path / "d.json"))
    assert pose.exit_code == 2 and "not a detector checkpoint" in pose.output
    txt = runner.invoke(cli, _args(bop, ckpt, tmp_path / "d.txt"))
    assert txt.exit_code == 2 and ".json" in txt.output
    no_split = runner.invoke(cli, [*_args(bop, ckpt, tmp_path / "d.json"), "--split", "val"])
    assert no_split.exit_code == 2 and "val not found" in no_split.output
    for r in (missing, pose, txt, no_split):
        assert "Traceback" not in r.output


def test_an_image_of_another_size_than_camera_json_is_refused(setup, tmp_path):
    import cv2

    bop, ckpt = setup
    path = BopDataset(bop / "drawn", "test").image_path(1, 1)
    img = cv2.imread(str(path))
    h, w = img.shape[:2]
    cv2.imwrite(str(path), cv2.resize(img, (w // 2, h // 2)))
    out = tmp_path / "d.json"
    result = CliRunner().invoke(cli, _args(bop, ckpt, out))
    assert result.exit_code == 2 and "Traceback" not in result.output, result.output
    assert f"{path}: the image is {w // 2}x{h // 2} pixels but" in result.output
    assert f"camera.json says {w}x{h}" in result.output
    assert not out.exists()

"""The Mask R-CNN as a detection source: per-image detections with object ids, xywh boxes, RLE masks and times,
the same as the network's own output; checkpoints of another stage are refused."""

import numpy as np
import pytest
import torch

from bopnp.errors import CheckpointError, ConfigError, ShapeError
from bopnp.infer.detect import ImageItem
from bopnp.infer.maskrcnn import MaskRcnnDetections, load_detector
from bopnp.models.detector import build_maskrcnn
from bopnp.train.checkpoint import save_checkpoint

TINY = dict(
    min_size=48,
    max_size=64,
    fpn_channels=32,
    box_head_dim=64,
    mask_head_layers=1,
    mask_head_channels=16,
    rpn_pre_nms_top_n_test=100,
    rpn_post_nms_top_n_test=50,
    box_detections_per_img=20,
)


@pytest.fixture(scope="module")
def net():
    torch.manual_seed(0)
    return build_maskrcnn(num_classes=3, backbone="resnet18_fpn", returned_layers=(2, 3, 4), **TINY).eval()


def _images(n=3, seed=0):
    rng = np.random.default_rng(seed)
    return [rng.integers(0, 256, (48, 64, 3), dtype=np.uint8) for _ in range(n)]


def test_detections_are_the_networks_output_per_image(net):
    images = _images()
    src = MaskRcnnDetections(model=net, obj_ids=[4, 9], score_threshold=0.0, batch_size=2)
    assert src.needs_pixels
    out = src([ImageItem(0, k, im) for k, im in enumerate(images)])
    assert len(out) == 3
    with torch.no_grad():
        ref = net([torch.from_numpy(im).permute(2, 0, 1).float() / 255 for im in images])
    for k, (dets, r) in enumerate(zip(out, ref)):
        assert len(dets) == len(r["scores"]) > 0
        for d, box, score, label, mask in zip(dets, r["boxes"], r["scores"], r["labels"], r["masks"]):
            assert (d.scene_id, d.im_id) == (0, k)
            assert d.obj_id == [4, 9][int(label) - 1]
            assert d.score == pytest.approx(float(score), abs=1e-6)
            x1, y1, x2, y2 = box.tolist()
            np.testing.assert_allclose(d.bbox_xywh, [x1, y1, x2 - x1, y2 - y1], rtol=0, atol=1e-4)
            assert (d.rle.height, d.rle.width) == (48, 64)
            np.testing.assert_array_equal(d.rle.decode(), (mask[0] >= 0.5).numpy())
            assert d.time_s > 0


def test_score_threshold_and_gray_images(net):
    image = _images(1)[0]
    all_dets = MaskRcnnDetections(model=net, obj_ids=[4, 9], score_threshold=0.0)([ImageItem(1, 2, image)])[0]
    cut = float(np.median([d.score for d in all_dets]))
    kept = MaskRcnnDetections(model=net, obj_ids=[4, 9], score_threshold=cut)([ImageItem(1, 2, image)])[0]
    assert kept and all(d.score >= cut for d in kept) and len(kept) < len(all_dets)
    gray = image[:, :, 0]
    out = MaskRcnnDetections(model=net, obj_ids=[4, 9], score_threshold=0.0)([ImageItem(1, 2, gray)])
    assert len(out) == 1  # gray pixels are repeated into three channels


def test_an_item_without_pixels_or_with_bad_pixels_is_refused(net):
    src = MaskRcnnDetections(model=net, obj_ids=[4, 9])
    with pytest.raises(ShapeError, match="scene 1 image 2: the Mask R-CNN needs the pixels"):
        src([ImageItem(1, 2, None)])
    with pytest.raises(ShapeError, match="uint8"):
        src([ImageItem(1, 2, np.zeros((48, 64, 3), np.float32))])
    with pytest.raises(ConfigError, match="obj_ids"):
        MaskRcnnDetections(model=net)
    with pytest.raises(ConfigError, match="one of the two"):
        MaskRcnnDetections()


def test_checkpoint_rebuilds_the_network_and_pose_checkpoints_are_refused(net, tmp_path):
    save_checkpoint(tmp_path / "det.pt", {"model": net.state_dict(), "detector": net.spec.to_dict(), "obj_ids": [4, 9]})
    model, obj_ids = load_detector(tmp_path / "det.pt")
    assert obj_ids == [4, 9] and not model.training
    for k, v in net.state_dict().items():
        torch.testing.assert_close(model.state_dict()[k], v, rtol=0, atol=0, msg=k)
    save_checkpoint(tmp_path / "pose.pt", {"model": {"head.weight": torch.zeros(1)}, "obj_ids": [1], "crop_size": 64})
    with pytest.raises(CheckpointError, match="not a detector checkpoint"):
        MaskRcnnDetections(tmp_path / "pose.pt")
    with pytest.raises(CheckpointError, match="no checkpoint there"):
        MaskRcnnDetections(tmp_path / "none.pt")

"""The Mask R-CNN builder: its contract (input range, boxes, masks, labels), empty targets, backbones by name, and
pretrained weights only from a local file or torch's hub cache."""

import os

import pytest
import torch

from bopnp.errors import ConfigError, ShapeError
from bopnp.models.detector import (
    DetectorSpec,
    build_from_spec,
    build_maskrcnn,
    cached_weights,
    check_detection_inputs,
    load_pretrained,
)

#: a tiny, fast network: small input, few proposals and RoI samples, narrow heads
TINY = dict(
    min_size=64,
    max_size=96,
    fpn_channels=32,
    box_head_dim=64,
    mask_head_layers=1,
    mask_head_channels=16,
    rpn_pre_nms_top_n_train=100,
    rpn_post_nms_top_n_train=50,
    rpn_pre_nms_top_n_test=100,
    rpn_post_nms_top_n_test=50,
    box_batch_size_per_image=32,
)


def _target(H=48, W=64):
    masks = torch.zeros(2, H, W, dtype=torch.uint8)
    masks[0, 5:25, 4:30] = 1
    masks[1, 20:40, 30:60] = 1
    return {"boxes": torch.tensor([[4.0, 5, 30, 25], [30, 20, 60, 40]]), "labels": torch.tensor([1, 2]), "masks": masks}


def _empty(H=48, W=64):
    return {
        "boxes": torch.zeros(0, 4),
        "labels": torch.zeros(0, dtype=torch.int64),
        "masks": torch.zeros(0, H, W, dtype=torch.uint8),
    }


def _check_eval_output(net):
    net.eval()
    with torch.no_grad():
        out = net([torch.rand(3, 48, 64), torch.rand(3, 40, 56)])
    assert len(out) == 2
    for o, (H, W) in zip(out, [(48, 64), (40, 56)]):
        D = len(o["scores"])
        assert o["boxes"].shape == (D, 4) and o["masks"].shape == (D, 1, H, W)  # in each input image's pixels
        assert ((o["labels"] >= 1) & (o["labels"] <= 2)).all()
        assert ((o["scores"] >= 0) & (o["scores"] <= 1)).all()


def test_light_backbone_trains_on_cpu_with_an_empty_target_and_infers():
    torch.manual_seed(0)
    net = build_maskrcnn(num_classes=3, backbone="resnet18_fpn", **TINY)
    assert net.init_source == "scratch" and net.spec.backbone == "resnet18_fpn"
    images = [torch.rand(3, 48, 64), torch.rand(3, 48, 64)]
    losses = net(images, [_target(), _empty()])  # the second image has no object: it trains the background
    assert set(losses) == {"loss_classifier", "loss_box_reg", "loss_mask", "loss_objectness", "loss_rpn_box_reg"}
    total = sum(losses.values())
    assert torch.isfinite(total)
    total.backward()
    grads = [p.grad for p in net.parameters() if p.requires_grad]
    assert all(g is not None for g in grads) and sum(float(g.abs().sum()) for g in grads) > 0
    with torch.no_grad():
        only_empty = net([images[1]], [_empty()])
    assert all(torch.isfinite(v) for v in only_empty.values()) and float(only_empty["loss_mask"]) == 0.0
    _check_eval_output(net)


def test_mobilenet_backbone_trains_and_infers():
    torch.manual_seed(0)
    net = build_maskrcnn(num_classes=3, backbone="mobilenet_v3_large_fpn", **TINY)
    losses = net([torch.rand(3, 48, 64)], [_target()])
    assert torch.isfinite(sum(losses.values()))
    _check_eval_output(net)


def test_resnet50_fpn_v2_is_torchvisions_architecture():
    from torchvision.models.detection import maskrcnn_resnet50_fpn_v2

    ours = build_maskrcnn(num_classes=4, backbone="resnet50_fpn_v2")
    ref = maskrcnn_resnet50_fpn_v2(weights=None, weights_backbone=None, num_classes=4)
    a, b = ours.state_dict(), ref.state_dict()
    assert a.keys() == b.keys()
    assert all(a[k].shape == b[k].shape for k in a)
    assert (ours.transform.min_size, ours.transform.max_size) == ((480,), 640)


def test_spec_round_trips_and_rebuilds_the_same_network():
    net = build_maskrcnn(num_classes=3, backbone="resnet18_fpn", returned_layers=(2, 3, 4), **TINY)
    spec = DetectorSpec.from_dict(net.spec.to_dict())
    assert spec == net.spec
    again = build_from_spec(spec)
    assert again.state_dict().keys() == net.state_dict().keys()
    assert len(again.rpn.anchor_generator.sizes) == 4  # three feature maps and the pooled level


@pytest.mark.parametrize(
    "kw, match",
    [
        ({"backbone": "vgg16"}, "backbone"),
        ({"num_classes": 1}, "num_classes"),
        ({"min_size": 700}, "min_size"),
        ({"rpn_post_nms_top_n_train": 0}, "rpn_post_nms_top_n_train"),
        ({"returned_layers": (3, 2)}, "returned_layers"),
        ({"anchors": 3}, "unknown detector settings"),
    ],
)
def test_bad_settings_say_what_to_fix(kw, match):
    with pytest.raises(ConfigError, match=match):
        build_maskrcnn(**{"num_classes": 3, "backbone": "resnet18_fpn", **kw})


def _imagenet_resnet18(path):
    from torchvision.models import resnet18

    torch.manual_seed(1)
    state = resnet18(weights=None).state_dict()
    torch.save(state, path)
    return state


def test_pretrained_trunk_from_a_local_file(tmp_path):
    state = _imagenet_resnet18(tmp_path / "r18.pth")
    net = build_maskrcnn(num_classes=3, backbone="resnet18_fpn", backbone_weights=tmp_path / "r18.pth", **TINY)
    assert net.init_source == str(tmp_path / "r18.pth") and net.spec.frozen_bn
    body = net.backbone.body.state_dict()
    torch.testing.assert_close(body["conv1.weight"], state["conv1.weight"], rtol=0, atol=0)
    torch.testing.assert_close(body["layer3.1.bn2.running_var"], state["layer3.1.bn2.running_var"], rtol=0, atol=0)
    assert not net.backbone.body.conv1.weight.requires_grad  # torchvision's recipe: the first stages stay frozen
    assert net.backbone.body.layer4[0].conv1.weight.requires_grad


def test_weights_of_another_network_or_no_file_are_refused(tmp_path):
    from torchvision.models import mobilenet_v3_large

    torch.save(mobilenet_v3_large(weights=None).state_dict(), tmp_path / "mnv3.pth")
    with pytest.raises(ConfigError, match="resnet18_fpn backbone"):
        build_maskrcnn(num_classes=3, backbone="resnet18_fpn", backbone_weights=tmp_path / "mnv3.pth", **TINY)
    with pytest.raises(ConfigError, match="no such file"):
        build_maskrcnn(num_classes=3, backbone="resnet18_fpn", backbone_weights=tmp_path / "none.pth", **TINY)
    (tmp_path / "junk.pth").write_bytes(b"not a checkpoint")
    with pytest.raises(ConfigError, match="not a readable weights file"):
        build_maskrcnn(num_classes=3, backbone="resnet18_fpn", backbone_weights=tmp_path / "junk.pth", **TINY)


def test_hub_cache_is_used_only_when_it_already_holds_the_file(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    hub = torch.hub.get_dir()
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path / "torch" / "hub"))
    try:
        assert cached_weights("resnet18_fpn") is None
        net = build_maskrcnn(num_classes=3, backbone="resnet18_fpn", hub_cache=True, **TINY)
        assert net.init_source == "scratch"  # nothing there, nothing downloaded
        assert not (tmp_path / "torch").exists()
        folder = tmp_path / "torch" / "hub" / "checkpoints"
        folder.mkdir(parents=True)
        state = _imagenet_resnet18(folder / "resnet18-f37072fd.pth")  # the name torchvision downloads to
        assert cached_weights("resnet18_fpn") == folder / "resnet18-f37072fd.pth"
        net = build_maskrcnn(num_classes=3, backbone="resnet18_fpn", hub_cache=True, **TINY)
        assert net.init_source == str(folder / "resnet18-f37072fd.pth")
        torch.testing.assert_close(net.backbone.body.conv1.weight, state["conv1.weight"], rtol=0, atol=0)
    finally:
        assert os.path.isabs(hub)


def test_a_whole_detector_file_loads_all_but_the_class_predictors(tmp_path):
    torch.manual_seed(2)
    other = build_maskrcnn(num_classes=5, backbone="resnet18_fpn", **TINY)  # another number of classes
    torch.save(other.state_dict(), tmp_path / "det.pth")
    net = build_maskrcnn(num_classes=3, backbone="resnet18_fpn", **TINY)
    n = load_pretrained(net, tmp_path / "det.pth", "resnet18_fpn")
    mine, theirs = net.state_dict(), other.state_dict()
    torch.testing.assert_close(mine["rpn.head.conv.0.0.weight"], theirs["rpn.head.conv.0.0.weight"], rtol=0, atol=0)
    assert mine["roi_heads.box_predictor.cls_score.weight"].shape[0] == 3
    assert n == sum(1 for k in mine if theirs[k].shape == mine[k].shape)


def test_input_checks_name_the_image_and_field():
    good = [torch.rand(3, 48, 64)]
    check_detection_inputs(good, [_target()], 3)
    with pytest.raises(ShapeError, match=r"image 0: values must lie in \[0, 1\]"):
        check_detection_inputs([torch.rand(3, 48, 64) * 255], None, 3)
    with pytest.raises(ShapeError, match="x2 > x1"):
        t = _target()
        t["boxes"] = torch.tensor([[4.0, 5, 26, 20], [30, 20, 2, 2]])  # x, y, w, h by mistake
        check_detection_inputs(good, [t], 3)
    with pytest.raises(ShapeError, match="labels must lie in 1..2"):
        check_detection_inputs(good, [{**_target(), "labels": torch.tensor([0, 1])}], 3)
    with pytest.raises(ShapeError, match="uint8"):
        check_detection_inputs(good, [{**_target(), "masks": _target()["masks"].bool()}], 3)

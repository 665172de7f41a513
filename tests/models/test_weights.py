"""Pretrained weights: `imagenet|coco|FILE` resolved through torch's hub cache. Nothing is downloaded here: torch's
cache is a temporary folder (TORCH_HOME) and the download function is replaced by one that fails (offline) or
writes a small local file (online)."""

from __future__ import annotations

import pytest
import torch

from bopnp.errors import ConfigError
from bopnp.models import weights as W
from bopnp.models.detector import build_maskrcnn, pretrained_file

TINY = {"min_size": 64, "max_size": 96, "fpn_channels": 16, "box_head_dim": 32, "mask_head_channels": 8}


@pytest.fixture
def hub(tmp_path, monkeypatch):
    """An empty torch home, offline: any download attempt raises as a machine without internet does."""
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    monkeypatch.delenv(W.OFFLINE_ENV, raising=False)
    attempts = []

    def offline(url, dst):
        attempts.append(url)
        raise OSError("[Errno -3] Temporary failure in name resolution")

    monkeypatch.setattr(W, "_download", offline)
    folder = W.hub_folder()
    assert folder == tmp_path / "torch" / "hub" / "checkpoints"
    return folder, attempts


def _resnet18_state(seed=0):
    from torchvision.models import resnet18

    torch.manual_seed(seed)
    return resnet18(weights=None).state_dict()


def test_a_local_file_is_read_as_it_is(tmp_path, hub):
    state = {"conv1.weight": torch.randn(4, 3, 3, 3)}
    torch.save(state, tmp_path / "mine.pth")
    got = W.load_weights(tmp_path / "mine.pth", "resnet18")
    torch.testing.assert_close(got["conv1.weight"], state["conv1.weight"], rtol=0, atol=0)
    torch.save({"model": state, "step": 3}, tmp_path / "ckpt.pt")  # a training checkpoint: its model
    assert set(W.load_weights(tmp_path / "ckpt.pt", "resnet18")) == {"conv1.weight"}
    with pytest.raises(ConfigError, match="no such file; pass imagenet or coco"):
        W.weights_file(tmp_path / "none.pth", "resnet18")
    assert hub[1] == []


def test_offline_without_the_file_names_the_file_and_the_cache_folder(hub):
    folder, attempts = hub
    with pytest.raises(ConfigError) as info:
        W.load_weights("imagenet", "resnet18")
    msg = str(info.value)
    assert "resnet18-f37072fd.pth" in msg and str(folder) in msg and "download.pytorch.org" in msg
    assert "name resolution" in msg and len(attempts) == 1
    with pytest.raises(ConfigError, match="maskrcnn_resnet50_fpn_v2_coco-73cbd019.pth"):
        pretrained_file("coco", "resnet50_fpn_v2")
    with pytest.raises(ConfigError, match="resnet50-0676ba61.pth"):
        pretrained_file("imagenet", "resnet50_fpn_v2")


def test_offline_setting_never_tries_to_download(hub, monkeypatch):
    folder, attempts = hub
    monkeypatch.setenv(W.OFFLINE_ENV, "1")
    with pytest.raises(ConfigError, match=r"BOPNP_OFFLINE=1.*Put the file resnet34-b627a593.pth"):
        W.weights_file("imagenet", "resnet34")
    with pytest.raises(ConfigError, match="downloads are off"):
        W.weights_file("imagenet", "resnet18", download=False)
    assert attempts == [] and not folder.exists()


def test_online_the_file_is_fetched_once_into_the_hub_cache(hub, monkeypatch):
    folder, _ = hub
    state = _resnet18_state()
    fetched = []

    def online(url, dst):
        fetched.append(url)
        torch.save(state, dst)

    monkeypatch.setattr(W, "_download", online)
    path = W.weights_file("imagenet", "resnet18")
    assert path == folder / "resnet18-f37072fd.pth" and path.is_file()
    assert W.weights_file("imagenet", "resnet18") == path and len(fetched) == 1  # cached: not fetched again
    net = build_maskrcnn(num_classes=3, backbone="resnet18_fpn", backbone_weights="imagenet", **TINY)
    assert net.init_source == str(path) and len(fetched) == 1
    torch.testing.assert_close(net.backbone.body.conv1.weight, state["conv1.weight"], rtol=0, atol=0)


def test_unpublished_kinds_and_architectures_are_refused(hub):
    with pytest.raises(ConfigError, match="no coco detector with a resnet18_fpn backbone.*imagenet"):
        build_maskrcnn(num_classes=3, backbone="resnet18_fpn", backbone_weights="coco", **TINY)
    with pytest.raises(ConfigError, match="no coco weights for resnet34"):
        W.weights_file("coco", "resnet34")
    with pytest.raises(ConfigError, match="architecture 'vgg11'"):
        W.weights_file("imagenet", "vgg11")
    assert hub[1] == []


def test_coco_weights_of_the_mobilenet_detector_fit_its_backbone(hub):
    """torchvision's COCO Faster R-CNN with a MobileNetV3 FPN (the file `coco` names for that backbone) fits the
    backbone this project builds: checked with an untrained network of torchvision's in the cache."""
    from torchvision.models.detection import fasterrcnn_mobilenet_v3_large_fpn

    folder, _ = hub
    folder.mkdir(parents=True)
    torch.manual_seed(0)
    theirs = fasterrcnn_mobilenet_v3_large_fpn(weights=None, weights_backbone=None, num_classes=91).state_dict()
    path = folder / "fasterrcnn_mobilenet_v3_large_fpn-fb6a3cc7.pth"
    torch.save(theirs, path)
    net = build_maskrcnn(num_classes=3, backbone="mobilenet_v3_large_fpn", backbone_weights="coco", min_size=64,
                         max_size=96)  # fmt: skip
    assert net.init_source == str(path)
    mine = net.state_dict()
    same = [k for k in mine if k.startswith("backbone.") and k in theirs]
    assert len(same) >= 0.9 * sum(1 for k in mine if k.startswith("backbone."))
    for k in same[:5] + same[-5:]:
        torch.testing.assert_close(mine[k], theirs[k], rtol=0, atol=0)


def test_training_config_and_cli_take_the_kinds():
    from click.testing import CliRunner

    from bopnp.cli.main import cli
    from bopnp.train.detector_config import DetectorTrainConfig

    DetectorTrainConfig(backbone_weights="imagenet").validate()
    with pytest.raises(ConfigError, match="no such file"):
        DetectorTrainConfig(backbone_weights="imagenett").validate()
    out = CliRunner().invoke(cli, ["train", "--help"]).output
    assert "imagenet|coco|FILE" in out

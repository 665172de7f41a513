"""The Pix2Pose U-Net's own behaviour: its fully connected bottleneck, the output groups inference computes and its
errors (the contract every coordinate network shares, learning and gradients are in test_coordnet.py)."""

import pytest
import torch

from bopnp.errors import ConfigError, ShapeError
from bopnp.models import CoordUNet, UNetConfig, build_coord_unet


def _net(**kw):
    torch.manual_seed(0)
    kw = {"num_objects": 3, "width": 4, "crop_size": 32, **kw}
    return build_coord_unet(**kw)


def test_inference_computes_only_the_asked_groups_and_gives_the_same_output():
    net = _net(num_objects=4).eval()
    image = torch.rand(5, 3, 32, 32)
    index = torch.tensor([2, 0, 2, 3, 0])
    full = net(image, index)  # autograd on: every group computed
    with torch.inference_mode():
        selected = net(image, index)
    for a, b in zip(selected, full):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)


def test_convolutional_bottleneck_takes_any_multiple_of_16():
    net = _net(bottleneck=0).eval()
    for side in (16, 48):
        xyz, err = net(torch.rand(1, 3, side, side), torch.tensor([2]))
        assert xyz.shape == (1, 3, side, side)


def test_bad_inputs_raise_shape_errors():
    net = _net()
    with pytest.raises(ShapeError, match="32 px"):
        net(torch.rand(1, 3, 48, 48), torch.tensor([0]))
    with pytest.raises(ShapeError, match="image"):
        net(torch.rand(1, 1, 32, 32), torch.tensor([0]))
    with pytest.raises(ShapeError, match=r"obj_index.*\[0, 3\)"):
        net(torch.rand(1, 3, 32, 32), torch.tensor([3]))
    with pytest.raises(ShapeError, match="obj_index"):
        net(torch.rand(2, 3, 32, 32), torch.tensor([0]))


@pytest.mark.parametrize(
    "kw, match",
    [
        ({"crop_size": 100}, "multiple of 16"),
        ({"width": 0}, "width"),
        ({"num_objects": 0}, "num_objects"),
        ({"bottleneck": -1}, "bottleneck"),
    ],
)
def test_config_validation_says_what_to_fix(kw, match):
    with pytest.raises(ConfigError, match=match):
        CoordUNet(UNetConfig(**kw))

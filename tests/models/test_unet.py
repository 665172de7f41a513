import pytest
import torch

from bopnp.errors import ConfigError, ShapeError
from bopnp.models import CoordUNet, UNetConfig, build_coord_unet


def _net(**kw):
    torch.manual_seed(0)
    kw = {"num_objects": 3, "width": 4, "crop_size": 32, **kw}
    return build_coord_unet(**kw)


def test_contract_shapes_and_ranges():
    net = _net()
    image = torch.rand(5, 3, 32, 32)
    xyz, err = net(image, torch.tensor([0, 1, 2, 0, 1]))
    assert xyz.shape == (5, 3, 32, 32) and err.shape == (5, 1, 32, 32)
    assert xyz.dtype == err.dtype == torch.float32
    assert xyz.abs().max() <= 1 and err.min() >= 0 and err.max() <= 1


def test_head_serves_each_item_its_own_object():
    net = _net().eval()
    image = torch.rand(2, 3, 32, 32)
    before = net(image, torch.tensor([0, 1]))
    with torch.no_grad():  # change only the output group of object index 1
        net.head.bias[4:8] += 5.0
    after = net(image, torch.tensor([0, 1]))
    for b, a in zip(before, after):
        torch.testing.assert_close(a[0], b[0], rtol=0, atol=0)
        assert (a[1] - b[1]).abs().max() > 1e-3
    # the same image asked as object 1 equals the second item's output (selection, not mixing)
    again = net(image[1:], torch.tensor([1]))
    torch.testing.assert_close(again[0][0], after[0][1], rtol=1e-5, atol=1e-6)


def test_inference_computes_only_the_asked_groups_and_gives_the_same_output():
    net = _net(num_objects=4).eval()
    image = torch.rand(5, 3, 32, 32)
    index = torch.tensor([2, 0, 2, 3, 0])
    full = net(image, index)  # autograd on: every group computed
    with torch.inference_mode():
        selected = net(image, index)
    for a, b in zip(selected, full):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)


def test_gradients_reach_every_parameter():
    net = _net(num_objects=1)
    xyz, err = net(torch.rand(2, 3, 32, 32), torch.zeros(2, dtype=torch.long))
    (xyz.square().mean() + err.mean()).backward()
    # every parameter but the head's has a gradient; the head's only through the selected group
    missing = [n for n, p in net.named_parameters() if p.grad is None or not p.grad.abs().sum() > 0]
    assert missing == []


def test_a_few_steps_fit_a_fixed_batch():
    net = _net(num_objects=1)
    gen = torch.Generator().manual_seed(1)
    image = torch.rand(4, 3, 32, 32, generator=gen)
    target = image * 2 - 1  # a map the network can represent: coordinates that follow the image
    idx = torch.zeros(4, dtype=torch.long)
    opt = torch.optim.Adam(net.parameters(), lr=3e-3)
    losses = []
    for _ in range(30):
        opt.zero_grad()
        loss = (net(image, idx)[0] - target).abs().mean()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < 0.85 * losses[0]  # 0.555 -> 0.412 here: it learns, slowly on noise images


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

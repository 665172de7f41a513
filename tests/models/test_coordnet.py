"""The coordinate networks by name: the shared contract, the class-aware head, learning, norms and backbone weights."""

import pytest
import torch
from torch import nn

from bopnp.errors import ConfigError, ShapeError
from bopnp.models import ARCHS, CoordUNet, build_coord_net, coord_net_from_config
from bopnp.models.plain_unet import PlainUNet
from bopnp.models.resnet_unet import ResNetUNet

S = 32  # the smallest side every arch takes


def _net(arch, **kw):
    """A small ``arch`` network; pix2pose has its default fully connected bottleneck, as it is trained."""
    torch.manual_seed(0)
    kw = {"num_objects": 3, "width": 4, "crop_size": S, **kw}
    return build_coord_net(arch=arch, **kw)


@pytest.mark.parametrize("arch", ARCHS)
@pytest.mark.parametrize("norm", ["batch", "group"])
def test_contract_shapes_and_ranges(arch, norm):
    net = _net(arch, norm=norm)
    xyz, err = net(torch.rand(5, 3, S, S), torch.tensor([0, 1, 2, 0, 1]))
    assert xyz.shape == (5, 3, S, S) and err.shape == (5, 1, S, S)
    assert xyz.dtype == err.dtype == torch.float32
    assert xyz.abs().max() <= 1 and err.min() >= 0 and err.max() <= 1
    kinds = {type(m) for m in net.modules()}
    assert (nn.GroupNorm in kinds) == (norm == "group") and (nn.BatchNorm2d in kinds) == (norm == "batch")


@pytest.mark.parametrize("arch", ARCHS)
def test_head_serves_each_item_its_own_object_and_inference_computes_the_same(arch):
    net = _net(arch).eval()
    image = torch.rand(2, 3, S, S)
    before = net(image, torch.tensor([0, 1]))
    with torch.no_grad():  # change only the output group of object index 1
        net.head.bias[4:8] += 5.0
    after = net(image, torch.tensor([0, 1]))
    for b, a in zip(before, after):
        torch.testing.assert_close(a[0], b[0], rtol=0, atol=0)
        assert (a[1] - b[1]).abs().max() > 1e-3
    # the same image asked as object 1 alone equals the second item's output (selection, not mixing)
    again = net(image[1:], torch.tensor([1]))
    torch.testing.assert_close(again[0][0], after[0][1], rtol=1e-5, atol=1e-6)
    with torch.inference_mode():  # one convolution per object asked, same numbers
        selected = net(image, torch.tensor([0, 1]))
    for a, b in zip(selected, after):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("arch", ARCHS)
@pytest.mark.parametrize("norm", ["batch", "group"])
def test_gradients_reach_every_parameter(arch, norm):
    net = _net(arch, num_objects=1, norm=norm)
    xyz, err = net(torch.rand(2, 3, S, S), torch.zeros(2, dtype=torch.long))
    (xyz.square().mean() + err.mean()).backward()
    # the head's parameters too: one object, so its only output group is the selected one
    missing = [n for n, p in net.named_parameters() if p.grad is None or not p.grad.abs().sum() > 0]
    assert missing == []


@pytest.mark.parametrize("arch", ARCHS)
def test_a_few_steps_fit_a_fixed_batch(arch):
    net = _net(arch, num_objects=1)
    gen = torch.Generator().manual_seed(1)
    image = torch.rand(4, 3, S, S, generator=gen)
    target = image * 2 - 1  # coordinates that follow the image: a map the network can represent
    idx = torch.zeros(4, dtype=torch.long)
    opt = torch.optim.Adam(net.parameters(), lr=3e-3)
    losses = []
    for _ in range(30):
        opt.zero_grad()
        loss = (net(image, idx)[0] - target).abs().mean()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    # it learns, slowly on noise images: 0.555 -> 0.412 (pix2pose), 0.553 -> 0.411 (unet), 0.591 -> 0.443
    # (resnet18), 0.574 -> 0.444 (resnet34) here
    assert losses[-1] < 0.85 * losses[0]


def test_bad_inputs_and_configs_say_what_to_fix(tmp_path):
    with pytest.raises(ShapeError, match="multiple of 16"):
        _net("unet")(torch.rand(1, 3, 24, 24), torch.tensor([0]))
    with pytest.raises(ShapeError, match="multiple of 32"):
        _net("resnet18")(torch.rand(1, 3, 48, 48), torch.tensor([0]))
    with pytest.raises(ShapeError, match=r"obj_index.*\[0, 3\)"):
        _net("resnet18")(torch.rand(1, 3, S, S), torch.tensor([3]))
    with pytest.raises(ConfigError, match="arch must be one of"):
        build_coord_net(arch="vit")
    with pytest.raises(ConfigError, match="multiple of 32"):
        build_coord_net(arch="resnet18", crop_size=48)
    with pytest.raises(ConfigError, match="resnet18/resnet34"):
        build_coord_net(arch="unet", crop_size=S, backbone_weights=str(tmp_path / "w.pth"))
    with pytest.raises(ConfigError, match="norm"):
        build_coord_net(arch="unet", crop_size=S, norm="layer")


def test_backbone_weights_start_the_encoder_and_bad_files_are_refused(tmp_path):
    from torchvision.models import resnet18, resnet34

    torch.manual_seed(5)
    reference = resnet18(weights=None)
    with torch.no_grad():
        reference.conv1.weight.fill_(0.25)  # unlike any random init
    path = tmp_path / "resnet18.pth"
    torch.save(reference.state_dict(), path)
    net = _net("resnet18", backbone_weights=str(path))
    for name, value in reference.state_dict().items():
        if not name.startswith("fc."):
            torch.testing.assert_close(net.encoder.state_dict()[name], value, rtol=0, atol=0)
    random = _net("resnet18")
    assert not torch.equal(random.encoder.conv1.weight, reference.conv1.weight)

    torch.save(resnet34(weights=None).state_dict(), tmp_path / "resnet34.pth")
    with pytest.raises(ConfigError, match=r"resnet34\.pth.*same depth"):
        _net("resnet18", backbone_weights=str(tmp_path / "resnet34.pth"))
    with pytest.raises(ConfigError, match="no such file"):
        _net("resnet18", backbone_weights=str(tmp_path / "missing.pth"))
    (tmp_path / "junk.pth").write_text("not a state dict")
    with pytest.raises(ConfigError, match="junk.pth"):
        _net("resnet18", backbone_weights=str(tmp_path / "junk.pth"))
    with pytest.raises(ConfigError, match="batch"):
        _net("resnet18", backbone_weights=str(path), norm="group")


@pytest.mark.parametrize(
    "saved, kind",
    [({"width": 4, "bottleneck": 0}, CoordUNet), ({"width": 4, "arch": "unet"}, PlainUNet),
     ({"width": 4, "arch": "resnet34", "norm": "group"}, ResNetUNet)],
)  # fmt: skip
def test_a_saved_config_rebuilds_its_network(saved, kind):
    """Configs saved before ``arch`` existed describe the Pix2Pose network; the rebuilt network takes the
    trained weights."""
    net = coord_net_from_config(saved, num_objects=2, crop_size=S)
    assert type(net) is kind and net.config.width == 4
    same = {k: v for k, v in saved.items() if k in ("bottleneck", "norm")}
    trained = _net(saved.get("arch", "pix2pose"), num_objects=2, **same)
    net.load_state_dict(trained.state_dict())


def _autocast_step(arch: str, device: str):
    """One forward and backward under bf16 autocast, as the trainer runs them on a GPU."""
    net = _net(arch, num_objects=2).to(device)
    image = torch.rand(3, 3, S, S, device=device)
    with torch.autocast(device, dtype=torch.bfloat16):
        xyz, err = net(image, torch.tensor([0, 1, 1], device=device))
    assert xyz.dtype == err.dtype == torch.bfloat16 and xyz.shape == (3, 3, S, S)
    (xyz.float().square().mean() + err.float().mean()).backward()
    grads = [p.grad for p in net.parameters()]
    assert all(g is not None and torch.isfinite(g).all() for g in grads)


@pytest.mark.parametrize("arch", ARCHS)
def test_every_arch_trains_under_cpu_bf16_autocast(arch):
    _autocast_step(arch, "cpu")


@pytest.mark.gpu
@pytest.mark.parametrize("arch", ARCHS)
def test_every_arch_trains_under_cuda_bf16_autocast(arch):
    _autocast_step(arch, "cuda")

import math
from dataclasses import replace

import pytest
import torch

from bopnp.geometry import crop_intrinsics, project_points, transform_points
from bopnp.models import build_coord_unet
from bopnp.models.e2e import E2EConfig, box_corners, e2e_projection_loss, symmetric_gt_pose
from bopnp.models.losses import transform_targets


def _rot(axis: int, deg: float, dtype=torch.float64) -> torch.Tensor:
    a = math.radians(deg)
    i, j = [k for k in range(3) if k != axis]
    R = torch.eye(3, dtype=dtype)
    R[i, i], R[i, j], R[j, i], R[j, j] = math.cos(a), -math.sin(a), math.sin(a), math.cos(a)
    return R


def test_symmetric_gt_pose_maps_transformed_targets_to_the_same_pixels():
    K = torch.tensor([[600.0, 0, 320], [0, 600.0, 240], [0, 0, 1]], dtype=torch.float64)
    R, t = _rot(0, 30) @ _rot(1, 20), torch.tensor([10.0, -5.0, 700.0], dtype=torch.float64)
    T = torch.eye(4, dtype=torch.float64)
    T[:3, :3], T[:3, 3] = _rot(2, 180), torch.tensor([0.0, 0.0, 4.0], dtype=torch.float64)
    pool = torch.stack([torch.eye(4, dtype=torch.float64), T])[None]
    x = torch.randn(1, 50, 3, dtype=torch.float64, generator=torch.Generator().manual_seed(0)) * 30
    x_moved = x @ T[:3, :3].T + T[:3, 3]
    R_p, t_p = symmetric_gt_pose(R[None], t[None], pool, torch.tensor([1]))
    torch.testing.assert_close(
        project_points(transform_points(R_p, t_p, x_moved), K), project_points(transform_points(R[None], t[None], x), K)
    )


def _batch(S=32):
    """One crop of a box-shaped object's front face (a plane at z_m = -20 mm) seen head on: exact targets."""
    K_img = torch.tensor([[600.0, 0, 320], [0, 600.0, 240], [0, 0, 1]])
    R, t = _rot(0, 10, torch.float32), torch.tensor([0.0, 0.0, 600.0])
    box = torch.tensor([270.0, 190.0, 370.0, 290.0])
    centre, half = torch.zeros(3), torch.full((3,), 60.0)
    return {
        "K": crop_intrinsics(K_img, box, S)[None],
        "box_xyxy": box[None],
        "centre_mm": centre[None],
        "half_extent_mm": half[None],
        "R_m2c_target": R[None],
        "t_m2c_target": t[None],
        "pool": torch.eye(4)[None, None],
    }, K_img


def _plane_xyz(batch, K_img, S):
    """Exact normalised coordinates of every crop pixel: the plane z_m = -20 mm, ray-cast."""
    from bopnp.models.correspondences import crop_pixel_centres

    uv = crop_pixel_centres(batch["box_xyxy"].double(), S)[0]
    R, t = batch["R_m2c_target"][0].double(), batch["t_m2c_target"][0].double()
    rays = torch.linalg.solve(K_img.double(), torch.cat([uv, torch.ones(S * S, 1, dtype=torch.float64)], 1).T).T
    o, d = -R.T @ t, rays @ R  # camera centre and ray directions in the model frame
    s = (-20.0 - o[2]) / d[:, 2]
    xyz = ((o + s[:, None] * d) / 60.0).T.reshape(1, 3, S, S)
    assert xyz.abs().max() < 1  # inside the normalisation box: no clipping
    return xyz


def test_exact_prediction_gives_zero_projection_loss_and_a_wrong_one_does_not():
    S = 32
    batch, K_img = _batch(S)
    xyz = _plane_xyz(batch, K_img, S).float()
    err = torch.zeros(1, 1, S, S)
    cfg = E2EConfig()
    loss, per_item, valid = e2e_projection_loss(xyz, err, batch, torch.tensor([0]), cfg)
    assert bool(valid.all()) and float(per_item[0]) < 1e-3
    shifted = xyz.clone()
    shifted[:, 0] += 0.05  # 3 mm along x
    loss2, per2, _ = e2e_projection_loss(shifted, err, batch, torch.tensor([0]), cfg)
    assert float(per2[0]) > 1.0


def test_projection_loss_alone_reaches_the_first_convolution():
    torch.manual_seed(0)
    S = 32
    net = build_coord_unet(num_objects=1, width=4, crop_size=S)
    batch, _ = _batch(S)
    batch = {k: v.repeat(2, *([1] * (v.dim() - 1))) for k, v in batch.items()}
    image = torch.rand(2, 3, S, S)
    xyz, err = net(image, torch.zeros(2, dtype=torch.long))
    # a network at initialisation predicts near 0; push it onto an object so PnP has points
    xyz = (
        xyz
        + 0.5
        * transform_targets(
            torch.ones(2, 3, S, S) * 0.3,
            torch.ones(2, S, S, dtype=torch.bool),
            batch["pool"],
            batch["centre_mm"],
            batch["half_extent_mm"],
        )[:, 0]
    )
    loss, _, valid = e2e_projection_loss(xyz, err, batch, torch.zeros(2, dtype=torch.long), E2EConfig(cap_px=1e6))
    assert bool(valid.any())
    loss.backward()
    g = net.encoder[0].main[0].weight.grad
    assert g is not None and g.abs().sum() > 0


def test_box_corners():
    c = box_corners(torch.tensor([[1.0, 2.0, 3.0]]), torch.tensor([[1.0, 2.0, 3.0]]))
    assert c.shape == (1, 8, 3)
    torch.testing.assert_close(c.amin(1), torch.zeros(1, 3))
    torch.testing.assert_close(c.amax(1), torch.tensor([[2.0, 4.0, 6.0]]))


def test_gradient_through_network_and_pnp_matches_finite_differences():
    torch.manual_seed(0)
    S = 16
    net = build_coord_unet(num_objects=1, width=2, crop_size=S, bottleneck=0).double().eval()
    batch, K_img = _batch(S)
    batch = {k: v.double() for k, v in batch.items()}
    gen = torch.Generator().manual_seed(1)
    image = torch.rand(1, 3, S, S, generator=gen, dtype=torch.float64)
    # the exact coordinates of a plane plus the network's output: PnP is well posed around it
    base = _plane_xyz(batch, K_img, S)
    cfg = E2EConfig(cap_px=1e9)

    def loss_fn():
        xyz, err = net(image, torch.zeros(1, dtype=torch.long))
        loss, _, valid = e2e_projection_loss(0.05 * xyz + base, 0.2 * err, batch, torch.zeros(1, dtype=torch.long), cfg)
        assert bool(valid.all())
        return loss

    params = [net.head.bias, net.encoder[0].main[0].weight]
    loss = loss_fn()
    grads = torch.autograd.grad(loss, params)
    eps = 1e-6
    for p, g in zip(params, grads):
        flat, gflat = p.data.view(-1), g.reshape(-1)
        for i in range(min(4, flat.numel())):
            old = flat[i].item()
            flat[i] = old + eps
            up = loss_fn().item()
            flat[i] = old - eps
            down = loss_fn().item()
            flat[i] = old
            fd = (up - down) / (2 * eps)
            assert abs(fd - gflat[i].item()) <= 1e-4 * max(1.0, abs(fd)), (i, fd, gflat[i].item())
    assert sum(g.abs().sum() for g in grads) > 0


def test_one_e2e_step_with_a_small_learning_rate_lowers_the_projection_loss():
    torch.manual_seed(0)
    S = 16
    net = build_coord_unet(num_objects=1, width=4, crop_size=S, bottleneck=0).eval()  # fixed batch statistics
    batch, K_img = _batch(S)
    base = _plane_xyz(batch, K_img, S).float()
    image = torch.rand(1, 3, S, S, generator=torch.Generator().manual_seed(2))
    idx, best, cfg = torch.zeros(1, dtype=torch.long), torch.zeros(1, dtype=torch.long), E2EConfig(cap_px=1e9)

    def l_proj():
        xyz, err = net(image, idx)
        return e2e_projection_loss(base + 0.1 * xyz, 0.2 * err, batch, best, cfg)[0]

    before = l_proj()
    assert before > 0.01
    opt = torch.optim.SGD(net.parameters(), lr=1e-4)
    opt.zero_grad()
    before.backward()
    opt.step()
    after = l_proj()
    assert after < before, (float(before), float(after))


def test_huber_rms_is_quadratic_then_linear_with_a_bounded_gradient():
    from bopnp.models.e2e import huber_rms

    mse = torch.tensor([0.0, 100.0, 2500.0, 10000.0, 1e6], dtype=torch.float64, requires_grad=True)
    out = huber_rms(mse, 50.0)
    rms = mse.detach().sqrt()
    expect = torch.where(rms <= 50, mse.detach(), 50 * (2 * rms - 50))
    torch.testing.assert_close(out.detach(), expect, rtol=0, atol=1e-9)
    out.sum().backward()
    g = mse.grad  # d/d(mse): 1 below the cap, cap / rms beyond (a pull that weakens but never stops)
    torch.testing.assert_close(g[:3], torch.ones(3, dtype=torch.float64))
    torch.testing.assert_close(g[3:], 50 / rms[3:], rtol=1e-12, atol=0)
    assert torch.autograd.gradcheck(
        lambda m: huber_rms(m, 50.0), (torch.tensor([400.0, 3600.0], dtype=torch.float64, requires_grad=True),)
    )


def _autocast_e2e_step(device: str):
    """One e2e loss and backward with the network under bf16 autocast, as the trainer runs it on a GPU; and the
    same loss in float32 on the same (bf16-rounded) network output."""
    torch.manual_seed(0)
    S = 16
    net = build_coord_unet(num_objects=1, width=4, crop_size=S, bottleneck=0).to(device).eval()
    batch, K_img = _batch(S)
    base = _plane_xyz(batch, K_img, S).float().to(device)
    batch = {k: v.to(device) for k, v in batch.items()}
    image = torch.rand(1, 3, S, S, generator=torch.Generator().manual_seed(2)).to(device)
    idx, best, cfg = torch.zeros(1, dtype=torch.long, device=device), torch.zeros(1, dtype=torch.long), E2EConfig()
    best = best.to(device)
    with torch.autocast(device, dtype=torch.bfloat16):
        xyz, err = net(image, idx)
        assert xyz.dtype == torch.bfloat16  # the network really runs in bf16
        xyz_in, err_in = base + 0.1 * xyz.float(), 0.2 * err.float()
        loss, per_item, valid = e2e_projection_loss(xyz_in, err_in, batch, best, cfg)
        bf16_in = (base + 0.1 * xyz.float()).bfloat16(), err.bfloat16()
        loss_bf16_input, _, _ = e2e_projection_loss(*bf16_in, batch, best, cfg)
    loss.backward()
    ref, ref_per_item, _ = e2e_projection_loss(xyz_in.detach(), err_in.detach(), batch, best, cfg)
    return net, loss, per_item, valid, ref, ref_per_item, loss_bf16_input


def test_e2e_step_under_cpu_bf16_autocast_runs_in_float32_and_reaches_the_network():
    """The trainer's bf16 autocast: the PnP and the projection loss run outside it, in float32 (the CUDA crash:
    intrinsics uncropped under autocast came out in bf16 and failed the PnP layer's dtype check)."""
    net, loss, per_item, valid, ref, ref_per_item, loss_bf16_input = _autocast_e2e_step("cpu")
    assert bool(valid.all()) and loss.dtype == torch.float32 and loss_bf16_input.dtype == torch.float32
    assert torch.isfinite(loss_bf16_input)
    # the geometry is float32 under autocast: the same numbers as outside it (float32 solver tolerance)
    torch.testing.assert_close(per_item, ref_per_item, rtol=1e-4, atol=1e-4)
    g = net.encoder[0].main[0].weight.grad
    assert g is not None and torch.isfinite(g).all() and g.abs().sum() > 0


@pytest.mark.gpu
def test_e2e_step_under_cuda_bf16_autocast():
    net, loss, per_item, valid, ref, ref_per_item, _ = _autocast_e2e_step("cuda")
    assert bool(valid.all()) and loss.dtype == torch.float32
    torch.testing.assert_close(per_item, ref_per_item, rtol=1e-4, atol=1e-4)
    g = net.encoder[0].main[0].weight.grad
    assert g is not None and torch.isfinite(g).all() and g.abs().sum() > 0


def _partial_batch(S=32, B=3, dtype=torch.float64):
    """B crops of the plane with noisy coordinates, a visible mask on part of the crop and an error map that drops
    some of its pixels: only some pixels have weight, as in training."""
    batch, K_img = _batch(S)
    batch = {k: v.repeat(B, *([1] * (v.dim() - 1))).to(dtype) for k, v in batch.items()}
    gen = torch.Generator().manual_seed(3)
    xyz = _plane_xyz(batch, K_img, S).to(dtype).repeat(B, 1, 1, 1)
    xyz = xyz + 0.01 * torch.randn(xyz.shape, generator=gen, dtype=dtype)
    ii, jj = torch.meshgrid(torch.arange(S), torch.arange(S), indexing="ij")
    radius = torch.tensor([0.3, 0.4, 0.2])[:B, None, None] * S
    batch["mask_visib"] = (ii - S / 2) ** 2 + (jj - S / 3) ** 2 < radius**2
    err = torch.rand(B, 1, S, S, generator=gen, dtype=dtype) * 0.6
    return batch, xyz.requires_grad_(True), err.requires_grad_(True)


def test_cpu_training_path_solves_only_the_weighted_pixels_with_the_same_loss_and_gradients(monkeypatch):
    """The e2e loss on a CPU hands PnP the weighted pixels alone (points of weight 0 have no say in the pose or its
    gradient): the same loss, validity and gradients as on every pixel, float64 to 1e-9."""
    import bopnp.models.e2e as e2e

    seen = []
    solve = e2e.solve_pnp

    def spy(x2d, *args, **kwargs):
        seen.append((x2d.shape[1], kwargs.get("execution")))
        return solve(x2d, *args, **kwargs)

    monkeypatch.setattr(e2e, "solve_pnp", spy)
    S, B = 32, 3
    best, cfg = torch.zeros(B, dtype=torch.long), E2EConfig(cap_px=1e9)
    out = {}
    for name in ("weighted", "weighted, sync_free", "every pixel"):
        if name == "every pixel":
            monkeypatch.setattr(e2e, "weighted_first", lambda x2d, x3d, w: (x2d, x3d, w))
        batch, xyz, err = _partial_batch(S, B)
        execution = "sync_free" if "sync_free" in name else "auto"
        loss, per_item, valid = e2e_projection_loss(xyz, err, batch, best, replace(cfg, pnp_execution=execution))
        loss.backward()
        out[name] = (loss.detach(), per_item, valid, xyz.grad, err.grad)
    n_weighted = int(batch["mask_visib"].flatten(1).sum(1).max())
    assert seen[0] == (seen[0][0], "eager") and seen[0][0] <= n_weighted < S * S  # only the weighted pixels
    assert seen[1] == (seen[0][0], "sync_free")  # the configured execution
    assert seen[2][0] == S * S
    loss_r, per_item_r, valid_r, g_xyz_r, g_err_r = out.pop("every pixel")
    for loss, per_item, valid, g_xyz, g_err in out.values():
        assert bool(valid.all()) and torch.equal(valid, valid_r)
        torch.testing.assert_close(per_item, per_item_r, rtol=1e-9, atol=1e-9)
        torch.testing.assert_close(loss, loss_r, rtol=1e-9, atol=1e-9)
        assert g_xyz.abs().sum() > 0 and g_err.abs().sum() > 0
        torch.testing.assert_close(g_xyz, g_xyz_r, rtol=0, atol=1e-9 * float(g_xyz_r.abs().max()))
        torch.testing.assert_close(g_err, g_err_r, rtol=0, atol=1e-9 * float(g_err_r.abs().max()))


def test_e2e_config_names_the_pnp_executions():
    from bopnp.errors import ConfigError

    E2EConfig(pnp_execution="cuda_graph").validate()
    with pytest.raises(ConfigError, match="'auto', 'eager', 'sync_free', 'cuda_graph'"):
        E2EConfig(pnp_execution="fast").validate()


@pytest.mark.gpu
def test_cuda_e2e_loss_matches_the_cpu_and_syncs_only_in_the_closed_form_start():
    """On CUDA the training path runs every pixel through the solver's ``sync_free`` execution: the same loss and
    gradients as the CPU's path, and its forward and backward wait for the device only where the solver's closed-form
    start does (status checks of its small eigen- and singular-value problems), never per Levenberg-Marquardt
    iteration: at most 20 synchronisations, and no more than ``solve_pnp`` alone on the same correspondences."""
    from bopnp.device import count_cuda_syncs
    from bopnp.models.e2e import _pose_from_prediction

    S, B = 32, 3
    best, cfg = torch.zeros(B, dtype=torch.long), E2EConfig(cap_px=1e9)
    out = {}
    for device in ("cpu", "cuda"):
        batch, xyz, err = _partial_batch(S, B)
        batch = {k: v.to(device) for k, v in batch.items()}
        xyz_d, err_d = xyz.to(device), err.to(device)
        loss, per_item, valid = e2e_projection_loss(xyz_d, err_d, batch, best.to(device), cfg)
        loss.backward()
        out[device] = (loss.detach().cpu(), per_item.cpu(), valid.cpu(), xyz.grad, err.grad)
    (_, per_c, valid_c, gx_c, ge_c), (_, per_g, valid_g, gx_g, ge_g) = out["cpu"], out["cuda"]
    assert bool(valid_c.all()) and torch.equal(valid_c, valid_g)
    torch.testing.assert_close(per_g, per_c, rtol=1e-8, atol=1e-8)
    torch.testing.assert_close(gx_g, gx_c, rtol=0, atol=1e-8 * float(gx_c.abs().max()))
    torch.testing.assert_close(ge_g, ge_c, rtol=0, atol=1e-8 * float(ge_c.abs().max()))

    batch, xyz, err = _partial_batch(S, B, torch.float32)
    batch = {k: v.to("cuda") for k, v in batch.items()}
    xyz = xyz.detach().to("cuda").requires_grad_(True)
    err = err.detach().to("cuda").requires_grad_(True)
    best = best.to("cuda")
    e2e_projection_loss(xyz, err, batch, best, cfg)[0].backward()  # warm-up: lazy CUDA initialisation

    def forward_backward():
        e2e_projection_loss(xyz, err, batch, best, cfg)[0].backward()

    n_e2e, _ = count_cuda_syncs(forward_backward)
    with torch.no_grad():
        n_solver, _ = count_cuda_syncs(lambda: _pose_from_prediction(xyz, err, batch, cfg, None, training=True))
    assert n_e2e <= n_solver and n_e2e <= 20, (n_e2e, n_solver)

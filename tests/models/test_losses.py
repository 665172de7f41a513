import math

import pytest
import torch

from bopnp.errors import ConfigError, ShapeError
from bopnp.models.losses import (
    CoordLossConfig,
    coord_error_per_pixel,
    error_map_loss,
    symmetric_coord_loss,
    transform_targets,
    transformer_loss,
)

H = W = 4


def _rot_z(deg: float) -> torch.Tensor:
    a = math.radians(deg)
    T = torch.eye(4, dtype=torch.float64)
    T[:2, :2] = torch.tensor([[math.cos(a), -math.sin(a)], [math.sin(a), math.cos(a)]])
    return T


def _unit_norm(B=1):
    return torch.zeros(B, 3, dtype=torch.float64), torch.ones(B, 3, dtype=torch.float64)


def test_lr_by_hand():
    # one object pixel off by (0.5, 0, 0), one background pixel off by (0, 0.25, 0.25); the rest exact
    gt = torch.zeros(1, 3, H, W, dtype=torch.float64)
    pred = gt.clone()
    mask = torch.zeros(1, H, W, dtype=torch.bool)
    mask[0, 1, 1] = True
    gt[0, :, 1, 1] = torch.tensor([0.2, 0.3, -0.1], dtype=torch.float64)
    pred[0, :, 1, 1] = gt[0, :, 1, 1] + torch.tensor([0.5, 0.0, 0.0], dtype=torch.float64)
    pred[0, 1:, 2, 3] = 0.25
    pool = torch.eye(4, dtype=torch.float64)[None, None]
    loss, best, err_px = symmetric_coord_loss(pred, gt, mask, pool, *_unit_norm(), beta=3.0)
    assert best.tolist() == [0]
    torch.testing.assert_close(loss, torch.tensor([(3 * 0.5 + 0.5) / (H * W)], dtype=torch.float64))
    expected = torch.zeros(1, H, W, dtype=torch.float64)
    expected[0, 1, 1], expected[0, 2, 3] = 0.5, 0.5
    torch.testing.assert_close(err_px, expected)
    torch.testing.assert_close(coord_error_per_pixel(pred, gt), expected)


def test_symmetry_minimum_picks_the_member_that_explains_the_prediction():
    gen = torch.Generator().manual_seed(0)
    mask = torch.rand(2, H, W, generator=gen) > 0.3
    gt = torch.where(mask[:, None], torch.rand(2, 3, H, W, generator=gen, dtype=torch.float64) - 0.5, 0.0)
    centre, half = (
        torch.tensor([[1.0, -2.0, 0.5]] * 2, dtype=torch.float64),
        torch.tensor([[10.0, 10.0, 4.0]] * 2, dtype=torch.float64),
    )
    pool = torch.stack([torch.eye(4, dtype=torch.float64), _rot_z(90), _rot_z(180), _rot_z(270)])[None].repeat(
        2, 1, 1, 1
    )
    noise = 0.01 * torch.randn(2, 3, H, W, generator=gen, dtype=torch.float64)
    # the prediction is the target seen under member 2 (item 0) and member 3 (item 1), plus the same noise
    moved = transform_targets(gt, mask, pool, centre, half)
    pred = torch.stack([moved[0, 2], moved[1, 3]]) + noise
    loss, best, _ = symmetric_coord_loss(pred, gt, mask, pool, centre, half)
    assert best.tolist() == [2, 3]
    # ... and the loss equals that of an unrotated prediction against the unrotated target
    plain, _, _ = symmetric_coord_loss(gt + noise, gt, mask, pool[:, :1], centre, half)
    torch.testing.assert_close(loss, plain, rtol=1e-12, atol=1e-12)


def test_transform_targets_round_trips_through_millimetres():
    gt = torch.full((1, 3, 1, 1), 0.5, dtype=torch.float64)
    mask = torch.ones(1, 1, 1, dtype=torch.bool)
    T = _rot_z(90)
    T[:3, 3] = torch.tensor([1.0, 0.0, 0.0], dtype=torch.float64)
    centre, half = (
        torch.tensor([[2.0, 0.0, 0.0]], dtype=torch.float64),
        torch.tensor([[4.0, 2.0, 2.0]], dtype=torch.float64),
    )
    out = transform_targets(gt, mask, T[None, None], centre, half)
    x_mm = torch.tensor([4.0, 1.0, 1.0], dtype=torch.float64)  # centre + 0.5 * half
    y_mm = T[:3, :3] @ x_mm + T[:3, 3]  # (0, 4, 1) + (1, 0, 0)
    torch.testing.assert_close(out[0, 0, :, 0, 0], (y_mm - centre[0]) / half[0])
    off = transform_targets(gt, ~mask, T[None, None], centre, half)
    assert off.abs().max() == 0


def test_error_loss_by_hand_and_target_not_differentiated():
    err_px = torch.tensor([[[0.5, 2.0], [0.0, 1.0]]], dtype=torch.float64, requires_grad=True)
    err_pred = torch.tensor([[[[0.25, 1.0], [0.0, 0.5]]]], dtype=torch.float64, requires_grad=True)
    loss = error_map_loss(err_pred, err_px)  # clipped target (0.5, 1, 0, 1)
    torch.testing.assert_close(loss, torch.tensor([(0.25**2 + 0 + 0 + 0.5**2) / 4], dtype=torch.float64))
    loss.sum().backward()
    assert err_px.grad is None or err_px.grad.abs().sum() == 0
    assert err_pred.grad.abs().sum() > 0


def test_transformer_loss_weights_its_parts():
    gen = torch.Generator().manual_seed(3)
    pred = torch.rand(2, 3, H, W, generator=gen, dtype=torch.float64)
    gt = torch.rand(2, 3, H, W, generator=gen, dtype=torch.float64)
    err = torch.rand(2, 1, H, W, generator=gen, dtype=torch.float64)
    mask = torch.rand(2, H, W, generator=gen) > 0.5
    pool = torch.eye(4, dtype=torch.float64)[None, None].repeat(2, 1, 1, 1)
    out = transformer_loss(
        pred, err, gt, mask, pool, *_unit_norm(2), CoordLossConfig(beta=2, lambda_3d=7, lambda_err=5)
    )
    torch.testing.assert_close(out["loss"], 7 * out["l3d"] + 5 * out["lerr"])
    l3d, _, _ = symmetric_coord_loss(pred, gt, mask, pool, *_unit_norm(2), beta=2)
    torch.testing.assert_close(out["l3d"], l3d.mean())


def test_gradcheck_symmetric_loss():
    gen = torch.Generator().manual_seed(5)
    gt = torch.rand(2, 3, H, W, generator=gen, dtype=torch.float64)
    # keep every |pred - target| away from 0, where L1 has its kink
    pred = (gt + 0.3 + 0.1 * torch.rand(2, 3, H, W, generator=gen, dtype=torch.float64)).requires_grad_()
    mask = torch.rand(2, H, W, generator=gen) > 0.5
    pool = torch.eye(4, dtype=torch.float64)[None, None].repeat(2, 1, 1, 1)
    err = torch.rand(2, 1, H, W, generator=gen, dtype=torch.float64).requires_grad_()
    # L_3D w.r.t. the coordinates; L_e w.r.t. the error map (its target is detached on purpose, so a numerical
    # derivative of the whole L_trans w.r.t. the coordinates would differ from the analytic one by design)
    assert torch.autograd.gradcheck(lambda p: symmetric_coord_loss(p, gt, mask, pool, *_unit_norm(2))[0], (pred,))
    err_px = coord_error_per_pixel(pred.detach(), gt)
    assert torch.autograd.gradcheck(lambda e: error_map_loss(e, err_px), (err,))


def test_bad_inputs():
    x = torch.zeros(1, 3, H, W)
    with pytest.raises(ShapeError, match="mask_full"):
        symmetric_coord_loss(x, x, torch.zeros(1, H + 1, W, dtype=torch.bool), torch.eye(4)[None, None], *_unit_norm())
    with pytest.raises(ConfigError, match="beta"):
        CoordLossConfig(beta=float("nan")).validate()

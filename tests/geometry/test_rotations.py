import math

import cv2
import numpy as np
import pytest
import torch

from bopnp.errors import ShapeError
from bopnp.geometry import (
    axis_angle_to_matrix,
    matrix_to_axis_angle,
    nearest_rotation,
    orthonormality_error,
    random_rotation,
    rotation_angle_deg,
)


def test_axis_angle_matches_opencv_rodrigues():
    rng = np.random.default_rng(0)
    aa = rng.normal(size=(20, 3)) * 1.2
    R = axis_angle_to_matrix(torch.from_numpy(aa)).numpy()
    for i in range(len(aa)):
        R_cv, _ = cv2.Rodrigues(aa[i])
        np.testing.assert_allclose(R[i], R_cv, atol=1e-12)


@pytest.mark.parametrize("angle", [0.0, 1e-9, 1e-3, 1.0, math.pi - 1e-6, math.pi])
def test_round_trip_over_angle_range(angle):
    axis = torch.tensor([0.3, -0.5, 0.8], dtype=torch.float64)
    aa = axis / axis.norm() * angle
    R = axis_angle_to_matrix(aa)
    back = axis_angle_to_matrix(matrix_to_axis_angle(R))
    assert torch.allclose(back, R, atol=1e-10)
    assert orthonormality_error(R) < 1e-12


def test_batch_shapes_and_angles():
    R1 = random_rotation(16, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    R2 = random_rotation(16, generator=torch.Generator().manual_seed(2), dtype=torch.float64)
    assert R1.shape == (16, 3, 3)
    aa = matrix_to_axis_angle(R1.transpose(-1, -2) @ R2)
    assert torch.allclose(rotation_angle_deg(R1, R2), torch.rad2deg(aa.norm(dim=-1)), atol=1e-6)
    assert torch.all(orthonormality_error(R1) < 1e-12)


def test_gradcheck_axis_angle_to_matrix_including_zero():
    aa = torch.tensor([[0.2, -0.4, 0.1], [0.0, 0.0, 0.0], [1e-5, 2e-5, 0.0]], dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(axis_angle_to_matrix, (aa,))


def test_gradcheck_matrix_to_axis_angle():
    R = random_rotation(4, generator=torch.Generator().manual_seed(3), dtype=torch.float64).requires_grad_()
    assert torch.autograd.gradcheck(matrix_to_axis_angle, (R,))


def test_bad_shape_raises_typed_error():
    with pytest.raises(ShapeError, match="R"):
        matrix_to_axis_angle(torch.zeros(4, 3, 4))


def test_nearest_rotation_is_the_polar_factor_and_keeps_det_plus_one():
    g = torch.Generator().manual_seed(4)
    R = random_rotation(24, generator=g, dtype=torch.float64).view(2, 12, 3, 3)
    # M = R S with S symmetric positive definite: R is the nearest rotation (polar decomposition)
    Q = random_rotation(24, generator=g, dtype=torch.float64).view(2, 12, 3, 3)
    s = torch.rand(2, 12, 3, generator=g, dtype=torch.float64) * 3 + 0.1
    S = Q @ torch.diag_embed(s) @ Q.transpose(-1, -2)
    got = nearest_rotation(R @ S)
    assert got.shape == (2, 12, 3, 3)
    torch.testing.assert_close(got, R, atol=1e-12, rtol=0)
    # a reflection: the nearest rotation flips the direction of the smallest singular value, not the largest
    flip = torch.diag(torch.tensor([3.0, 2.0, -1.0], dtype=torch.float64))
    torch.testing.assert_close(nearest_rotation(R @ flip), R, atol=1e-12, rtol=0)
    # items are independent of the batch they come in
    torch.testing.assert_close(nearest_rotation((R @ S)[1, 5]), got[1, 5], atol=1e-15, rtol=0)
    bad = nearest_rotation(torch.full((3, 3), float("nan"), dtype=torch.float64))
    assert torch.isfinite(bad).all() and orthonormality_error(bad) < 1e-12


@pytest.mark.parametrize("angle", [0.0, 1e-8, 1e-3, 0.2999, 0.3001, 1.0, 2.5, math.pi - 1e-3, math.pi - 1e-6])
def test_axis_angle_vjp_left_equals_autograd_through_the_log_map(angle):
    from bopnp.geometry import axis_angle_vjp_left

    gen = torch.Generator().manual_seed(int(angle * 1000))
    axes = torch.nn.functional.normalize(torch.randn(5, 3, dtype=torch.float64, generator=gen), dim=-1)
    aa = axes * angle
    g = torch.randn(5, 3, dtype=torch.float64, generator=gen)
    phi = torch.zeros(5, 3, dtype=torch.float64, requires_grad=True)
    out = matrix_to_axis_angle(axis_angle_to_matrix(phi) @ axis_angle_to_matrix(aa))
    (out * g).sum().backward()
    got = axis_angle_vjp_left(aa, g)
    tol = 1e-9 if angle < math.pi - 1e-4 else 1e-3  # autograd near pi goes through a nearly singular quaternion
    torch.testing.assert_close(got, phi.grad, atol=tol * g.abs().max().item(), rtol=0)
    # float32 agrees with float64 (the Taylor branch and the cot form meet without a jump)
    torch.testing.assert_close(axis_angle_vjp_left(aa.float(), g.float()).double(), got, atol=1e-5, rtol=1e-5)

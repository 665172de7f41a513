"""Rotations as pure, batched, differentiable torch functions (device and dtype follow the inputs).

Axis-angle vectors are ``(..., 3)``: direction = axis, norm = angle in radians.
"""

from __future__ import annotations

import torch
from torch import Tensor

from bopnp.checks import check_shape


def skew(v: Tensor) -> Tensor:
    """Cross-product matrix: ``skew(a) @ b == cross(a, b)``.

    Args:
        v: (..., 3).
    Returns:
        (..., 3, 3).
    """
    zero = torch.zeros_like(v[..., 0])
    x, y, z = v.unbind(-1)
    return torch.stack([zero, -z, y, z, zero, -x, -y, x, zero], dim=-1).reshape(*v.shape[:-1], 3, 3)


def axis_angle_to_matrix(aa: Tensor) -> Tensor:
    """Rodrigues' formula, smooth at zero angle (Taylor series below 1e-4 rad^2).

    Args:
        aa: (..., 3) axis-angle, radians.
    Returns:
        (..., 3, 3) rotation matrices.

    Example:
        >>> R = axis_angle_to_matrix(torch.tensor([0.0, 0.0, torch.pi / 2]))
        >>> torch.allclose(R @ torch.tensor([1.0, 0.0, 0.0]), torch.tensor([0.0, 1.0, 0.0]), atol=1e-6)
        True
    """
    theta2 = (aa * aa).sum(-1, keepdim=True)[..., None]  # (..., 1, 1)
    small = theta2 < 1e-4
    theta2_safe = torch.where(small, torch.ones_like(theta2), theta2)
    theta = theta2_safe.sqrt()
    a = torch.where(small, 1 - theta2 / 6 + theta2 * theta2 / 120, torch.sin(theta) / theta)
    b = torch.where(small, 0.5 - theta2 / 24 + theta2 * theta2 / 720, (1 - torch.cos(theta)) / theta2_safe)
    K = skew(aa)
    eye = torch.eye(3, dtype=aa.dtype, device=aa.device).expand(K.shape)
    return eye + a * K + b * (K @ K)


def matrix_to_quaternion(R: Tensor) -> Tensor:
    """Rotation matrices to unit quaternions ``(w, x, y, z)`` with ``w >= 0`` (Shepperd's method, batched).

    Args:
        R: (..., 3, 3).
    Returns:
        (..., 4).
    """
    m = R
    tr = m[..., 0, 0] + m[..., 1, 1] + m[..., 2, 2]
    # Four candidate (unnormalised) quaternions; pick the best-conditioned one per item.
    cands = torch.stack(
        [
            torch.stack(
                [1 + tr, m[..., 2, 1] - m[..., 1, 2], m[..., 0, 2] - m[..., 2, 0], m[..., 1, 0] - m[..., 0, 1]], -1
            ),
            torch.stack(
                [
                    m[..., 2, 1] - m[..., 1, 2],
                    1 + m[..., 0, 0] - m[..., 1, 1] - m[..., 2, 2],
                    m[..., 0, 1] + m[..., 1, 0],
                    m[..., 0, 2] + m[..., 2, 0],
                ],
                -1,
            ),
            torch.stack(
                [
                    m[..., 0, 2] - m[..., 2, 0],
                    m[..., 0, 1] + m[..., 1, 0],
                    1 - m[..., 0, 0] + m[..., 1, 1] - m[..., 2, 2],
                    m[..., 1, 2] + m[..., 2, 1],
                ],
                -1,
            ),
            torch.stack(
                [
                    m[..., 1, 0] - m[..., 0, 1],
                    m[..., 0, 2] + m[..., 2, 0],
                    m[..., 1, 2] + m[..., 2, 1],
                    1 - m[..., 0, 0] - m[..., 1, 1] + m[..., 2, 2],
                ],
                -1,
            ),
        ],
        dim=-2,
    )  # (..., 4, 4)
    diag = torch.stack([tr, m[..., 0, 0], m[..., 1, 1], m[..., 2, 2]], -1)
    best = diag.argmax(-1)
    q = torch.gather(cands, -2, best[..., None, None].expand(*best.shape, 1, 4)).squeeze(-2)
    q = q / q.norm(dim=-1, keepdim=True)
    return torch.where(q[..., :1] < 0, -q, q)


def quaternion_to_axis_angle(q: Tensor) -> Tensor:
    """Unit quaternions ``(w, x, y, z)`` to axis-angle with angle in [0, pi].

    Args:
        q: (..., 4).
    Returns:
        (..., 3).
    """
    q = torch.where(q[..., :1] < 0, -q, q)
    v = q[..., 1:]
    s = v.norm(dim=-1, keepdim=True)
    angle = 2 * torch.atan2(s, q[..., :1])
    small = s < 1e-6
    # angle / s -> 2 / w as s -> 0
    scale = torch.where(small, 2 / q[..., :1].clamp_min(1e-12), angle / torch.where(small, torch.ones_like(s), s))
    return v * scale


def matrix_to_axis_angle(R: Tensor) -> Tensor:
    """Inverse of :func:`axis_angle_to_matrix`, stable near 0 and near pi.

    Args:
        R: (..., 3, 3) rotation matrices.
    Returns:
        (..., 3) axis-angle with norm in [0, pi].

    Example:
        >>> aa = torch.tensor([0.1, -0.2, 0.3], dtype=torch.float64)
        >>> torch.allclose(matrix_to_axis_angle(axis_angle_to_matrix(aa)), aa)
        True
    """
    check_shape(R, " ".join(["*"] * (R.dim() - 2) + ["3", "3"]), "R")
    return quaternion_to_axis_angle(matrix_to_quaternion(R))


def axis_angle_vjp_left(aa: Tensor, grad_aa: Tensor) -> Tensor:
    """Pull a gradient w.r.t. the axis-angle of ``R`` back to the left perturbation ``phi`` of ``R <- exp([phi]x) R``.

    ``d log(exp([phi]x) R) / d phi`` at ``phi = 0`` is the inverse left Jacobian of SO(3) at ``w = log R``,
    ``I - [w]x / 2 + c [w]x^2`` with ``c = (1 - (theta / 2) cot(theta / 2)) / theta^2``; this returns its
    transpose applied to ``grad_aa``: ``g + (w x g) / 2 + c w x (w x g)``. ``c`` is finite on [0, pi] (1/12 at 0,
    1/pi^2 at pi); a Taylor series serves below 0.3 rad.

    Args:
        aa: (..., 3) axis-angle of ``R`` (norm in [0, pi], as :func:`matrix_to_axis_angle` returns), radians.
        grad_aa: (..., 3) gradient w.r.t. ``aa``.
    Returns:
        (..., 3) gradient w.r.t. ``phi``.

    Example:
        >>> aa = torch.tensor([0.3, -1.2, 2.0], dtype=torch.float64)
        >>> phi = torch.zeros(3, dtype=torch.float64, requires_grad=True)
        >>> matrix_to_axis_angle(axis_angle_to_matrix(phi) @ axis_angle_to_matrix(aa)).sum().backward()
        >>> torch.allclose(axis_angle_vjp_left(aa, torch.ones(3, dtype=torch.float64)), phi.grad)
        True
    """
    theta2 = (aa * aa).sum(-1, keepdim=True)
    theta = theta2.sqrt()
    small = theta < 0.3
    half = torch.where(small, torch.ones_like(theta), theta) / 2
    c_big = (1 - half / torch.tan(half)) / (4 * half * half)
    c_small = 1 / 12 + theta2 / 720 + theta2 * theta2 / 30240
    c = torch.where(small, c_small, c_big)
    wxg = torch.linalg.cross(aa, grad_aa, dim=-1)
    return grad_aa + wxg / 2 + c * torch.linalg.cross(aa, wxg, dim=-1)


def quaternion_to_matrix(q: Tensor) -> Tensor:
    """Unit quaternions ``(w, x, y, z)`` to rotation matrices.

    Args:
        q: (..., 4), normalised inside.
    Returns:
        (..., 3, 3).
    """
    q = q / q.norm(dim=-1, keepdim=True)
    w, x, y, z = q.unbind(-1)
    return torch.stack(
        [
            1 - 2 * (y * y + z * z),
            2 * (x * y - w * z),
            2 * (x * z + w * y),
            2 * (x * y + w * z),
            1 - 2 * (x * x + z * z),
            2 * (y * z - w * x),
            2 * (x * z - w * y),
            2 * (y * z + w * x),
            1 - 2 * (x * x + y * y),
        ],
        dim=-1,
    ).reshape(*q.shape[:-1], 3, 3)


def random_rotation(
    n: int,
    *,
    generator: torch.Generator | None = None,
    dtype: torch.dtype = torch.float32,
    device: torch.device | str | None = None,
) -> Tensor:
    """Rotations drawn uniformly from SO(3) (normalised Gaussian quaternions).

    Returns:
        (n, 3, 3).
    """
    q = torch.randn(
        n, 4, generator=generator, dtype=torch.float64, device="cpu" if generator is None else generator.device
    )
    return quaternion_to_matrix(q).to(dtype=dtype, device=device)


def nearest_rotation(M: Tensor) -> Tensor:
    """Closest rotation to each 3x3 matrix in the Frobenius norm (one batched SVD; the sign of the smallest singular
    direction is flipped where ``M``'s nearest orthogonal matrix is a reflection).

    Args:
        M: (..., 3, 3); non-finite entries are read as :func:`torch.nan_to_num` makes them, so the result is finite.
    Returns:
        (..., 3, 3) rotation matrices (determinant +1).

    Example:
        >>> R = axis_angle_to_matrix(torch.tensor([0.1, -0.2, 0.3], dtype=torch.float64))
        >>> torch.allclose(nearest_rotation(R @ torch.diag(torch.tensor([3.0, 2.0, 0.5], dtype=torch.float64))), R)
        True
    """
    U, _, Vh = torch.linalg.svd(torch.nan_to_num(M))
    d = torch.linalg.det(U @ Vh)
    D = torch.ones(*M.shape[:-2], 3, dtype=M.dtype, device=M.device)
    D[..., 2] = torch.where(d < 0, -1.0, 1.0)
    return U @ (D.unsqueeze(-1) * Vh)


def rotation_angle_deg(R_a: Tensor, R_b: Tensor) -> Tensor:
    """Angle of the relative rotation ``R_a^T R_b`` in degrees, in [0, 180].

    Args:
        R_a, R_b: (..., 3, 3), broadcastable.
    Returns:
        (...,) degrees.
    """
    rel = R_a.transpose(-1, -2) @ R_b
    cos = ((rel.diagonal(dim1=-2, dim2=-1).sum(-1) - 1) / 2).clamp(-1.0, 1.0)
    return torch.rad2deg(torch.arccos(cos))


def orthonormality_error(R: Tensor) -> Tensor:
    """Largest absolute entry of ``R^T R - I``, and ``|det R - 1|``, whichever is larger.

    Args:
        R: (..., 3, 3).
    Returns:
        (...,) unitless; 0 for an exact rotation.
    """
    eye = torch.eye(3, dtype=R.dtype, device=R.device)
    gram = (R.transpose(-1, -2) @ R - eye).abs().amax(dim=(-1, -2))
    return torch.maximum(gram, (torch.linalg.det(R) - 1).abs())


__all__ = [
    "axis_angle_vjp_left",
    "skew",
    "axis_angle_to_matrix",
    "matrix_to_axis_angle",
    "matrix_to_quaternion",
    "quaternion_to_matrix",
    "quaternion_to_axis_angle",
    "random_rotation",
    "nearest_rotation",
    "rotation_angle_deg",
    "orthonormality_error",
]

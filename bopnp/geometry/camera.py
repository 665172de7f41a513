"""Pinhole camera geometry as pure, batched torch functions. Pixels follow OpenCV/BOP: (u, v) with the
centre of the top-left pixel at (0, 0); intrinsics ``K = [[fx, 0, cx], [0, fy, cy], [0, 0, 1]]``."""

from __future__ import annotations

import torch
from torch import Tensor


def transform_points(R: Tensor, t: Tensor, x: Tensor) -> Tensor:
    """Apply a rigid transform: ``R @ x + t`` for every point.

    Args:
        R: (..., 3, 3) rotation, e.g. ``R_m2c``.
        t: (..., 3) translation, mm.
        x: (..., N, 3) points, mm.
    Returns:
        (..., N, 3) transformed points, mm.

    Example:
        >>> transform_points(torch.eye(3), torch.tensor([0.0, 0.0, 500.0]), torch.zeros(1, 3))
        tensor([[  0.,   0., 500.]])
    """
    return x @ R.transpose(-1, -2) + t.unsqueeze(-2)


def project_points(x3d_c: Tensor, K: Tensor, eps: float = 1e-9) -> Tensor:
    """Project camera-frame points to pixels.

    Args:
        x3d_c: (..., N, 3) points in the camera frame, mm, z > 0.
        K: (..., 3, 3) intrinsics.
        eps: smallest |z| used in the division (points on the image plane stay finite).
    Returns:
        (..., N, 2) pixel coordinates (u, v).

    Example:
        >>> K = torch.tensor([[500.0, 0, 320], [0, 500.0, 240], [0, 0, 1]])
        >>> project_points(torch.tensor([[10.0, -20.0, 1000.0]]), K)
        tensor([[325., 230.]])
    """
    z = x3d_c[..., 2:3]
    z = torch.where(z.abs() < eps, torch.full_like(z, eps), z)
    xy = x3d_c[..., :2] / z
    f = torch.stack([K[..., 0, 0], K[..., 1, 1]], -1).unsqueeze(-2)
    c = torch.stack([K[..., 0, 2], K[..., 1, 2]], -1).unsqueeze(-2)
    skew_term = (K[..., 0, 1].unsqueeze(-1) * xy[..., 1]).unsqueeze(-1)
    uv = xy * f + c
    return torch.cat([uv[..., :1] + skew_term, uv[..., 1:]], dim=-1)


def backproject_depth(depth_mm: Tensor, K: Tensor) -> Tensor:
    """Camera-frame 3D point of every pixel of a depth image.

    Args:
        depth_mm: (..., H, W) depth along the optical axis, mm (0 = no data).
        K: (..., 3, 3) intrinsics.
    Returns:
        (..., H, W, 3) points in the camera frame, mm; zero where depth is zero.
    """
    H, W = depth_mm.shape[-2:]
    v, u = torch.meshgrid(
        torch.arange(H, dtype=depth_mm.dtype, device=depth_mm.device),
        torch.arange(W, dtype=depth_mm.dtype, device=depth_mm.device),
        indexing="ij",
    )
    fx, fy = K[..., 0, 0, None, None], K[..., 1, 1, None, None]
    cx, cy = K[..., 0, 2, None, None], K[..., 1, 2, None, None]
    x = (u - cx) / fx * depth_mm
    y = (v - cy) / fy * depth_mm
    return torch.stack([x, y, depth_mm], dim=-1)


def crop_intrinsics(K: Tensor, box_xyxy: Tensor, out_size: int | tuple[int, int]) -> Tensor:
    """Intrinsics of a crop resized to ``out_size``: a pixel (u, v) of the image maps to
    ((u - x1) * sx, (v - y1) * sy) of the crop with ``sx = out_w / (x2 - x1)``.

    Uses the "corner" convention of ``cv2.warpAffine`` with the matrix ``[[sx, 0, -x1*sx], [0, sy, -y1*sy]]``.

    Args:
        K: (..., 3, 3) intrinsics of the full image.
        box_xyxy: (..., 4) crop box in pixels of the full image.
        out_size: crop side, or (height, width), pixels.
    Returns:
        (..., 3, 3) intrinsics of the crop.
    """
    out_h, out_w = (out_size, out_size) if isinstance(out_size, int) else out_size
    x1, y1, x2, y2 = box_xyxy.unbind(-1)
    sx = out_w / (x2 - x1)
    sy = out_h / (y2 - y1)
    A = torch.zeros(*box_xyxy.shape[:-1], 3, 3, dtype=K.dtype, device=K.device)
    A[..., 0, 0] = sx
    A[..., 1, 1] = sy
    A[..., 0, 2] = -x1 * sx
    A[..., 1, 2] = -y1 * sy
    A[..., 2, 2] = 1
    return A @ K


def uncrop_intrinsics(K_crop: Tensor, box_xyxy: Tensor, out_size: int | tuple[int, int]) -> Tensor:
    """The full image's intrinsics from a crop's: the inverse of :func:`crop_intrinsics`.

    Args:
        K_crop: (..., 3, 3) intrinsics of the crop. box_xyxy: (..., 4) its box in image pixels.
        out_size: crop side, or (height, width), pixels.
    Returns:
        (..., 3, 3) intrinsics of the image.

    Example:
        >>> K = torch.tensor([[500.0, 0, 320], [0, 500.0, 240], [0, 0, 1]])
        >>> box = torch.tensor([300.0, 200.0, 364.0, 264.0])
        >>> torch.allclose(uncrop_intrinsics(crop_intrinsics(K, box, 128), box, 128), K)
        True
    """
    out_h, out_w = (out_size, out_size) if isinstance(out_size, int) else out_size
    x1, y1, x2, y2 = box_xyxy.unbind(-1)
    A_inv = torch.zeros(*box_xyxy.shape[:-1], 3, 3, dtype=K_crop.dtype, device=K_crop.device)
    A_inv[..., 0, 0] = (x2 - x1) / out_w
    A_inv[..., 1, 1] = (y2 - y1) / out_h
    A_inv[..., 0, 2] = x1
    A_inv[..., 1, 2] = y1
    A_inv[..., 2, 2] = 1
    return A_inv @ K_crop


__all__ = ["transform_points", "project_points", "backproject_depth", "crop_intrinsics", "uncrop_intrinsics"]

"""The result type every PnP backend returns (:func:`bopnp.pnp.solve_pnp`, the OpenCV reference); its own module so
that the backends depend on it and not on each other."""

from __future__ import annotations

from dataclasses import dataclass

from torch import Tensor


@dataclass(frozen=True)
class PnPResult:
    """Batched PnP solution (model-to-camera). Tensors are on the inputs' device and dtype (``cost`` stays float32
    for float16/bfloat16 inputs: sums of squared pixels overflow float16).

    Attributes:
        R: (B, 3, 3) rotation ``R_m2c``; identity where not valid. Differentiable.
        t: (B, 3) translation ``t_m2c``, mm; zero where not valid. Differentiable.
        pose: (B, 6) axis-angle (radians) and translation (mm) of the same pose. Differentiable.
        valid: (B,) bool; False where the problem was degenerate (see :func:`bopnp.pnp.solve_pnp`).
        inliers: (B, N) bool, correspondences the pose was refined on (``weights > 0``, RANSAC inliers if any).
        cost: (B,) final weighted sum of squared reprojection errors over the inliers, px^2 (0 where not valid).
        iterations: (B,) Levenberg-Marquardt iterations run (summed over RANSAC refinement rounds, and over the retry
            of an item that reached ``max_iters`` or stopped off a minimum).
    """

    R: Tensor
    t: Tensor
    pose: Tensor
    valid: Tensor
    inliers: Tensor
    cost: Tensor
    iterations: Tensor


__all__ = ["PnPResult"]

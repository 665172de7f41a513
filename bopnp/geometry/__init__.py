"""Pure, batched torch geometry: rotations and pinhole cameras."""

from bopnp.geometry.camera import (
    backproject_depth,
    crop_intrinsics,
    project_points,
    transform_points,
    uncrop_intrinsics,
)
from bopnp.geometry.rotations import (
    axis_angle_to_matrix,
    axis_angle_vjp_left,
    matrix_to_axis_angle,
    matrix_to_quaternion,
    nearest_rotation,
    orthonormality_error,
    quaternion_to_axis_angle,
    quaternion_to_matrix,
    random_rotation,
    rotation_angle_deg,
    skew,
)

__all__ = [
    "axis_angle_to_matrix",
    "axis_angle_vjp_left",
    "backproject_depth",
    "crop_intrinsics",
    "matrix_to_axis_angle",
    "matrix_to_quaternion",
    "nearest_rotation",
    "orthonormality_error",
    "project_points",
    "quaternion_to_axis_angle",
    "quaternion_to_matrix",
    "random_rotation",
    "rotation_angle_deg",
    "skew",
    "transform_points",
    "uncrop_intrinsics",
]

"""Crop geometry against projection: a crop pixel's model coordinates, projected with the crop's K, land
on that pixel. The reference is analytic: a fronto-parallel plane, whose per-pixel model coordinates are
an affine function of the pixel, so bilinear resampling reproduces them exactly."""

import numpy as np
import pytest
import torch

from bopnp.data.crop_geometry import MIN_SIDE_PX, crop_affine, crop_K, inside_image_mask, square_box, warp_crop
from bopnp.errors import ConfigError, ShapeError
from bopnp.geometry import crop_intrinsics, project_points, transform_points

K = np.array([[572.4, 0.0, 325.3], [0.0, 573.6, 242.0], [0.0, 0.0, 1.0]])
W, H = 640, 480


def plane_xyz_map(K, R_m2c, t_m2c, z_mm):
    """(H, W, 3) model coordinates of the plane z_c = z_mm seen through every pixel (pixel-centre rays)."""
    v, u = np.mgrid[0:H, 0:W].astype(np.float64)
    x_c = np.stack([(u - K[0, 2]) / K[0, 0] * z_mm, (v - K[1, 2]) / K[1, 1] * z_mm, np.full_like(u, z_mm)], -1)
    return (x_c - t_m2c) @ R_m2c  # R^T (x_c - t)


def rot_z(deg):
    a = np.deg2rad(deg)
    return np.array([[np.cos(a), -np.sin(a), 0], [np.sin(a), np.cos(a), 0], [0, 0, 1.0]])


@pytest.mark.parametrize(
    "bbox_xywh, out_size",
    [
        ((300.0, 200.0, 60.0, 40.0), 128),  # upsampled (90 px -> 128)
        ((100.0, 150.0, 250.0, 180.0), 128),  # downsampled
        ((600.0, 10.0, 80.0, 50.0), 64),  # partly outside the image
        ((5.5, 7.25, 31.0, 33.0), 96),  # fractional box
    ],
)
def test_crop_K_projects_model_points_onto_their_crop_pixels(bbox_xywh, out_size):
    R_m2c, t_m2c, z = rot_z(30.0), np.array([15.0, -8.0, 700.0]), 700.0
    xyz = plane_xyz_map(K, R_m2c, t_m2c, z).astype(np.float32)
    box = square_box(np.array(bbox_xywh), enlarge=1.5, out_size=out_size)
    crop_xyz = warp_crop(xyz, box, out_size)  # bilinear: exact on an affine field
    inside = inside_image_mask((W, H), box, out_size)
    Kc = crop_K(K, box, out_size)
    # the reference: project every crop pixel's model point with the crop's K
    pts = torch.as_tensor(crop_xyz.reshape(-1, 3), dtype=torch.float64)
    uv = project_points(
        transform_points(torch.as_tensor(R_m2c), torch.as_tensor(t_m2c), pts), torch.as_tensor(Kc)
    ).numpy()
    jj, ii = np.meshgrid(np.arange(out_size), np.arange(out_size))
    err = np.linalg.norm(uv.reshape(out_size, out_size, 2) - np.stack([jj, ii], -1), axis=-1)
    # exact where all four bilinear neighbours are inside the image (away from the padding)
    core = inside & (np.roll(inside, 1, 0) & np.roll(inside, -1, 0) & np.roll(inside, 1, 1) & np.roll(inside, -1, 1))
    core[[0, -1], :] = core[:, [0, -1]] = False
    assert core.sum() > 0.2 * out_size**2
    assert err[core].max() < 1e-3


def test_nearest_sampling_is_within_half_a_source_pixel():
    R_m2c, t_m2c = rot_z(-20.0), np.array([-30.0, 10.0, 650.0])
    xyz = plane_xyz_map(K, R_m2c, t_m2c, 650.0).astype(np.float32)
    out = 128
    box = square_box(np.array([280.0, 220.0, 40.0, 30.0]), 1.5, out)  # 60 px -> 128: scale 2.13
    crop_xyz = warp_crop(xyz, box, out, nearest=True)
    Kc = crop_K(K, box, out)
    pts = torch.as_tensor(crop_xyz.reshape(-1, 3), dtype=torch.float64)
    uv = project_points(
        transform_points(torch.as_tensor(R_m2c), torch.as_tensor(t_m2c), pts), torch.as_tensor(Kc)
    ).numpy()
    jj, ii = np.meshgrid(np.arange(out), np.arange(out))
    d = np.abs(uv.reshape(out, out, 2) - np.stack([jj, ii], -1))
    scale = out / (box[2] - box[0])
    assert d.max() <= 0.5 * scale + 1e-3
    # nearest never invents values: every crop value is one of the source pixels
    x1, y1, x2, y2 = box.astype(int)
    src = {tuple(v) for v in xyz[y1 - 2 : y2 + 2, x1 - 2 : x2 + 2].reshape(-1, 3).tolist()}
    assert all(tuple(v) in src for v in crop_xyz.reshape(-1, 3).tolist())


def test_square_box_centres_the_instance_box_on_the_crop_centre():
    bbox = np.array([[100.0, 50.0, 40.0, 20.0], [0.0, 0.0, 10.0, 30.0]])
    boxes = square_box(bbox, enlarge=1.5, out_size=128)
    assert boxes.shape == (2, 4)
    side = boxes[:, 2] - boxes[:, 0]
    np.testing.assert_allclose(side, boxes[:, 3] - boxes[:, 1])
    np.testing.assert_allclose(side, [60.0, 45.0])
    for b, box in zip(bbox, boxes):
        A = crop_affine(box, 128)
        centre = np.array([b[0] + b[2] / 2, b[1] + b[3] / 2, 1.0])
        np.testing.assert_allclose(A @ centre, [63.5, 63.5], atol=1e-9)


def test_square_box_has_a_minimum_side_and_checks_its_input():
    box = square_box(np.array([10.0, 10.0, 0.0, 0.0]), 1.5, 32)
    assert box[2] - box[0] == pytest.approx(MIN_SIDE_PX)
    with pytest.raises(ShapeError):
        square_box(np.zeros(3))
    with pytest.raises(ConfigError):
        square_box(np.array([0.0, 0, 10, 10]), enlarge=0.0)


def test_crop_K_matches_the_torch_geometry_batch():
    boxes = square_box(np.array([[100.0, 50.0, 40.0, 20.0], [500.0, 400.0, 200.0, 150.0]]), 1.5, 128)
    Kt = crop_intrinsics(torch.as_tensor(K).expand(2, 3, 3), torch.as_tensor(boxes), 128).numpy()
    for i in range(2):
        np.testing.assert_allclose(crop_K(K, boxes[i], 128), Kt[i], rtol=1e-12)


def test_unit_scale_integer_box_is_a_plain_slice():
    img = np.random.default_rng(0).integers(0, 255, (H, W, 3), dtype=np.uint8)
    box = np.array([10.0, 20.0, 74.0, 84.0])
    np.testing.assert_array_equal(warp_crop(img, box, 64), img[20:84, 10:74])
    np.testing.assert_array_equal(warp_crop(img, box, 64, nearest=True), img[20:84, 10:74])


def test_outside_the_image_is_zero_and_not_inside():
    img = np.full((H, W), 7, np.uint8)
    box = np.array([-32.0, -32.0, 32.0, 32.0])  # the top-left quarter of the crop is outside
    crop = warp_crop(img, box, 64, nearest=True)
    inside = inside_image_mask((W, H), box, 64)
    assert not inside[:32, :32].any() and inside[32:, 32:].all()
    assert (crop[~inside] == 0).all() and (crop[inside] == 7).all()


def test_bool_and_single_channel_keep_their_type_and_shape():
    m = np.zeros((H, W), bool)
    m[100:200, 100:200] = True
    out = warp_crop(m, np.array([90.0, 90.0, 210.0, 210.0]), 60, nearest=True)
    assert out.dtype == np.bool_ and out.shape == (60, 60)
    assert out[5:55, 5:55].all() and not out[:4].any()
    one = warp_crop(np.ones((H, W, 1), np.float32), np.array([0.0, 0.0, 64.0, 64.0]), 32)
    assert one.shape == (32, 32, 1)

import numpy as np
import pytest

from bopnp.errors import ShapeError
from bopnp.eval.scores import VSD_TAUS
from bopnp.eval.vsd import DepthCrop, depth_to_dist, vsd, vsd_from_dist

K = np.array([[500.0, 0.0, 15.0], [0.0, 500.0, 15.0], [0.0, 0.0, 1.0]])
H = W = 32


def _square(x0, y0, size, depth):
    d = np.zeros((H, W), np.float32)
    d[y0 : y0 + size, x0 : x0 + size] = depth
    return d


def _vsd_full(test, est, gt, delta=15.0, diameter=100.0):
    return vsd(test, K, DepthCrop.from_full(est), DepthCrop.from_full(gt), delta, VSD_TAUS, diameter)


def test_depth_to_dist_is_the_ray_length():
    depth = np.full((H, W), 1000.0, np.float32)
    dist = depth_to_dist(depth, K)
    assert dist[15, 15] == 1000.0
    assert dist[15, 25] == pytest.approx(1000.0 * np.hypot(1.0, 10 / 500.0), rel=1e-12)
    # a crop gives the same numbers as the full image
    np.testing.assert_array_equal(depth_to_dist(depth[5:9, 20:27], K, 20, 5), dist[5:9, 20:27])
    assert np.all(depth_to_dist(np.zeros((3, 3)), K) == 0)


def test_shifted_silhouette_fully_visible():
    # GT 10x10 square, estimate shifted 2 px right, same depth, scene = the GT object on a far wall
    gt = _square(10, 10, 10, 1000.0)
    est = _square(12, 10, 10, 1000.0)
    test = np.where(gt > 0, gt, 2000.0).astype(np.float32)
    e = _vsd_full(test, est, gt)
    # union 10 x 12 = 120 pixels, intersection 10 x 8 = 80, no depth disagreement on it
    np.testing.assert_allclose(e, 40 / 120)


def test_occluded_part_of_estimate_is_not_visible():
    gt = _square(10, 10, 10, 1000.0)
    est = _square(12, 10, 10, 1000.0)
    test = np.where(gt > 0, gt, 2000.0).astype(np.float32)
    test[:, 20:] = 500.0  # an occluder hides the estimate's last two columns
    # estimate visible on 10 x 8 (inside the GT), union = the GT's 100 pixels
    np.testing.assert_allclose(_vsd_full(test, est, gt), 20 / 100)


def test_missing_depth_counts_as_visible():
    gt = _square(10, 10, 10, 1000.0)
    est = _square(12, 10, 10, 1000.0)
    test = np.zeros((H, W), np.float32)
    test[:, 20:] = 500.0
    test[:, 20:22] = 0.0  # no measurement where only the estimate is: visible again
    np.testing.assert_allclose(_vsd_full(test, est, gt), 40 / 120)


def test_depth_offset_against_tau():
    # same silhouette, estimate 32 mm further: not visible by itself (32 > delta) but visible where the GT
    # is; every pixel differs by ~0.32 diameters -> cost 1 for tau <= 0.3, 0 above
    gt = _square(10, 10, 10, 1000.0)
    est = _square(10, 10, 10, 1032.0)
    test = gt.copy()
    e = _vsd_full(test, est, gt)
    np.testing.assert_allclose(e, [1, 1, 1, 1, 1, 1, 0, 0, 0, 0])


def test_gt_hidden_by_the_scene_and_empty_union():
    gt = _square(10, 10, 10, 1000.0)
    test = np.full((H, W), 500.0, np.float32)  # everything hidden by a nearer surface
    np.testing.assert_allclose(_vsd_full(test, gt.copy(), gt), 1.0)
    empty = np.zeros((H, W), np.float32)
    np.testing.assert_allclose(_vsd_full(test, empty, empty), 1.0)
    np.testing.assert_allclose(_vsd_full(gt, empty, gt), 1.0)  # nothing estimated where the GT is


def test_crops_equal_full_images():
    rng = np.random.default_rng(0)
    for _ in range(20):
        test = rng.uniform(900, 1100, (H, W)).astype(np.float32)
        test[rng.random((H, W)) < 0.2] = 0
        gt = np.where(rng.random((H, W)) < 0.4, rng.uniform(950, 1050, (H, W)), 0).astype(np.float32)
        est = np.where(rng.random((H, W)) < 0.4, rng.uniform(950, 1050, (H, W)), 0).astype(np.float32)
        gt[:3] = est[:, :3] = 0
        full = vsd_from_dist(depth_to_dist(test, K), depth_to_dist(est, K), depth_to_dist(gt, K), 15.0, VSD_TAUS, 100.0)
        np.testing.assert_array_equal(_vsd_full(test, est, gt), full)


def test_shapes_checked():
    with pytest.raises(ShapeError):
        vsd_from_dist(np.zeros((3, 3)), np.zeros((3, 4)), np.zeros((3, 3)), 15.0, VSD_TAUS, 1.0)

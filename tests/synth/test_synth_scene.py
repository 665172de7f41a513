"""Scene layouts: poses in front of the camera, in view, spread over the depth range, not interpenetrating."""

from __future__ import annotations

import numpy as np
import pytest

from bopnp.errors import ShapeError
from bopnp.synth.scene import Placement, random_rotation_np, sample_layout, tabletop_rotation_np

K = np.array([[572.4114, 0, 325.2611], [0, 573.57043, 242.04899], [0, 0, 1]])
SIZE = (640, 480)


def test_random_rotations_are_rotations_and_uniform():
    rng = np.random.default_rng(0)
    Rs = np.stack([random_rotation_np(rng) for _ in range(4000)])
    np.testing.assert_allclose(Rs @ Rs.transpose(0, 2, 1), np.broadcast_to(np.eye(3), Rs.shape), atol=1e-12)
    np.testing.assert_allclose(np.linalg.det(Rs), 1.0, atol=1e-12)
    # Haar measure: E[R] = 0 and the rotation angle has density (1 - cos a) / pi, mean pi/2 + 2/pi
    assert np.abs(Rs.mean(0)).max() < 0.05
    angles = np.arccos(np.clip((np.trace(Rs, axis1=1, axis2=2) - 1) / 2, -1, 1))
    assert angles.mean() == pytest.approx(np.pi / 2 + 2 / np.pi, abs=0.03)


def test_layout_in_view_in_range_and_apart():
    rng = np.random.default_rng(1)
    objects = [(i, 60.0) for i in range(1, 6)]
    depths, count = [], 0
    for _ in range(200):
        layout = sample_layout(rng, K, SIZE, objects, (500.0, 1300.0))
        count += len(layout)
        for p in layout:
            assert isinstance(p, Placement) and p.R_m2c.shape == (3, 3) and p.t_m2c.shape == (3,)
            u, v, w = K @ p.t_m2c
            assert 0 <= u / w < 640 and 0 <= v / w < 480  # centre projects inside the image
            assert 500 <= p.t_m2c[2] <= 1300
            depths.append(p.t_m2c[2])
        for a in range(len(layout)):
            for b in range(a):
                assert np.linalg.norm(layout[a].t_m2c - layout[b].t_m2c) >= 0.8 * 120.0 - 1e-9
    assert count > 0.95 * 200 * 5  # almost every object finds a spot
    assert np.ptp(depths) > 700  # the depth range is used


def test_layout_avoids_already_placed_instances_and_clusters():
    rng = np.random.default_rng(2)
    first = sample_layout(rng, K, SIZE, [(1, 80.0)], (900.0, 900.0))
    more = sample_layout(rng, K, SIZE, [(2, 80.0)] * 3, (900.0, 900.0), placed=first, radii_placed_mm=[80.0])
    for p in more:
        assert np.linalg.norm(p.t_m2c - first[0].t_m2c) >= 0.8 * 160 - 1e-9
    spread = []
    for cluster in (None, (320.0, 240.0, 40.0)):
        uv = []
        for _ in range(100):
            for p in sample_layout(rng, K, SIZE, [(1, 30.0), (2, 30.0)], (800.0, 1200.0), cluster_px=cluster):
                x = K @ p.t_m2c
                uv.append(x[:2] / x[2])
        spread.append(np.std(uv, axis=0).mean())
    assert spread[1] < 0.5 * spread[0]


def test_layout_is_a_function_of_the_generator_state():
    a = sample_layout(np.random.default_rng(5), K, SIZE, [(1, 50.0), (2, 70.0)], (500.0, 1000.0))
    b = sample_layout(np.random.default_rng(5), K, SIZE, [(1, 50.0), (2, 70.0)], (500.0, 1000.0))
    for p, q in zip(a, b):
        np.testing.assert_array_equal(p.R_m2c, q.R_m2c)
        np.testing.assert_array_equal(p.t_m2c, q.t_m2c)


def test_layout_drops_objects_that_cannot_fit_and_checks_K():
    crowded = sample_layout(
        np.random.default_rng(0), K, SIZE, [(i, 400.0) for i in range(10)], (600.0, 600.0), max_tries=5
    )
    assert 1 <= len(crowded) < 10
    with pytest.raises(ShapeError):
        sample_layout(np.random.default_rng(0), np.eye(4), SIZE, [(1, 10.0)], (500.0, 600.0))


def test_tabletop_rotations_stand_the_object_up_seen_from_above():
    rng = np.random.default_rng(3)
    Rs = np.stack([tabletop_rotation_np(rng, elevation_deg=(10.0, 75.0), roll_std_deg=10.0) for _ in range(2000)])
    np.testing.assert_allclose(Rs @ Rs.transpose(0, 2, 1), np.broadcast_to(np.eye(3), Rs.shape), atol=1e-12)
    np.testing.assert_allclose(np.linalg.det(Rs), 1.0, atol=1e-12)
    up = Rs[:, :, 2]  # the model's +z axis in the camera frame
    elevation = np.degrees(np.arcsin(-up[:, 2]))
    roll = np.degrees(np.arctan2(up[:, 0], -up[:, 1]))
    assert elevation.min() >= 10.0 - 1e-9 and elevation.max() <= 75.0 + 1e-9
    assert np.ptp(elevation) > 60.0  # the range is used, not one angle
    assert np.abs(roll).max() <= 30.0 + 1e-9 and 8.0 < roll.std() < 12.0
    # the yaw about the object's own axis is free: its x axis points every way around the up axis
    x_axis = Rs[:, :, 0]
    assert np.abs(x_axis.mean(0)).max() < 0.1


def test_layout_draws_rotations_from_the_chosen_distribution():
    K = np.array([[572.0, 0, 320], [0, 573.0, 240], [0, 0, 1]])
    objs = [(1, 50.0), (2, 40.0), (3, 30.0)]
    table = sample_layout(np.random.default_rng(5), K, (640, 480), objs, (500.0, 1200.0), poses="tabletop")
    assert table and all(-p.R_m2c[2, 2] > np.sin(np.radians(10.0)) - 1e-9 for p in table)
    uniform = sample_layout(np.random.default_rng(5), K, (640, 480), objs, (500.0, 1200.0), poses="uniform")
    default = sample_layout(np.random.default_rng(5), K, (640, 480), objs, (500.0, 1200.0))
    assert all(np.array_equal(a.R_m2c, b.R_m2c) for a, b in zip(uniform, default, strict=True))
    with pytest.raises(ValueError, match="poses must be one of"):
        sample_layout(np.random.default_rng(5), K, (640, 480), objs, (500.0, 1200.0), poses="upside-down")

"""Distance images and visible masks (bop_toolkit's definitions), on hand-checkable pixels."""

from __future__ import annotations

import numpy as np
import pytest

from bopnp.bop.visibility import distance_image, visible_mask
from bopnp.errors import ConfigError


def test_distance_and_visibility_match_bop_toolkit_definitions():
    K_ = np.array([[100.0, 0, 1.0], [0, 200.0, 2.0], [0, 0, 1]])
    depth = np.zeros((3, 4), np.float32)
    depth[0, 3] = 100.0  # pixel (u=3, v=0): x = (3-1)/100*100 = 2, y = (0-2)/200*100 = -1
    np.testing.assert_allclose(distance_image(depth, K_)[0, 3], np.sqrt(4 + 1 + 100**2))
    assert distance_image(depth, K_)[1, 1] == 0
    d_obj = np.array([[0.0, 100.0, 100.0, 100.0]])
    d_scene = np.array([[50.0, 85.0, 84.9, 0.0]])
    np.testing.assert_array_equal(visible_mask(d_scene, d_obj, 15.0), [[False, True, False, True]])
    np.testing.assert_array_equal(visible_mask(d_scene, d_obj, 15.0, "bop18"), [[False, True, False, False]])
    with pytest.raises(ConfigError, match="bop19"):
        visible_mask(d_scene, d_obj, 15.0, "vsd")


def test_a_crop_has_the_bits_of_the_full_image():
    rng = np.random.default_rng(0)
    K = np.array([[572.4114, 0.0, 325.2611], [0.0, 573.57043, 242.04899], [0.0, 0.0, 1.0]])
    depth = (rng.uniform(300, 2000, (48, 64)) * (rng.uniform(size=(48, 64)) > 0.2)).astype(np.float32)
    full = distance_image(depth, K)
    # the meshgrid formula of bop_toolkit's depth_im_to_dist_im_fast, bit for bit
    xs, ys = np.meshgrid(np.arange(64), np.arange(48))
    pre_x, pre_y = (xs - K[0, 2]) / K[0, 0], (ys - K[1, 2]) / K[1, 1]
    np.testing.assert_array_equal(
        full, np.sqrt((pre_x * depth) ** 2 + (pre_y * depth) ** 2 + depth.astype(np.float64) ** 2)
    )
    np.testing.assert_array_equal(distance_image(depth[5:19, 20:47], K, 20, 5), full[5:19, 20:47])
    scene = distance_image(np.where(depth > 0, depth - 10, 0).astype(np.float32), K)
    np.testing.assert_array_equal(
        visible_mask(scene[5:19, 20:47], full[5:19, 20:47]), visible_mask(scene, full)[5:19, 20:47]
    )

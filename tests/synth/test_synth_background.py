"""Procedural backgrounds: every kind, reproducible, textured."""

from __future__ import annotations

import numpy as np
import pytest

from bopnp.synth.background import BACKGROUND_KINDS, random_background, value_noise


@pytest.mark.parametrize("kind", BACKGROUND_KINDS)
def test_each_kind_is_a_textured_rgb_image(kind):
    for seed in range(3):
        img = random_background(np.random.default_rng(seed), 120, 160, kind)
        assert img.shape == (120, 160, 3) and img.dtype == np.uint8
        assert img.reshape(-1, 3).std(0).max() > 5  # not a flat colour
        np.testing.assert_array_equal(img, random_background(np.random.default_rng(seed), 120, 160, kind))


def test_seeds_give_different_backgrounds():
    imgs = [random_background(np.random.default_rng(s), 60, 80) for s in range(12)]
    assert len({im.tobytes() for im in imgs}) == 12


def test_value_noise_is_normalised_and_smooth():
    n = value_noise(np.random.default_rng(0), 240, 320, octaves=1)
    assert n.min() == pytest.approx(0.0) and n.max() == pytest.approx(1.0)
    assert np.abs(np.diff(n, axis=1)).mean() < 0.02  # neighbouring pixels are close: smooth, not white noise

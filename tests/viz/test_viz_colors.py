"""Colour maps: the coordinate colours at known values, the error colours against matplotlib's maps."""

import numpy as np
import pytest

from bopnp.errors import ConfigError, ShapeError
from bopnp.viz.colors import (
    COLORMAPS,
    PALETTE,
    colorbar,
    colormap_lut,
    error_to_rgb,
    object_color,
    text_color_on,
    xyz_to_rgb,
)


class TestXyzToRgb:
    def test_corners_of_the_cube(self):
        xyz = np.array([[-1, -1, -1], [1, 1, 1], [1, -1, -1], [-1, 1, -1], [-1, -1, 1], [0, 0, 0]], np.float32)
        assert xyz_to_rgb(xyz).tolist() == [
            [0, 0, 0],
            [255, 255, 255],
            [255, 0, 0],
            [0, 255, 0],
            [0, 0, 255],
            [128, 128, 128],
        ]

    def test_linear_in_between_and_clipped_outside(self):
        x = np.linspace(-1, 1, 101)
        rgb = xyz_to_rgb(np.stack([x, -x, np.zeros_like(x)], 1))
        assert np.abs(rgb[:, 0].astype(float) - (x + 1) * 127.5).max() <= 0.5
        assert np.all(np.diff(rgb[:, 0].astype(int)) >= 0) and np.all(np.diff(rgb[:, 1].astype(int)) <= 0)
        assert xyz_to_rgb(np.array([[2.0, -7.0, 1.5]])).tolist() == [[255, 0, 255]]

    def test_float16_image_with_a_mask_and_nan(self):
        xyz = np.full((4, 5, 3), 0.5, np.float16)
        xyz[0, 0] = np.nan
        mask = np.ones((4, 5), bool)
        mask[3, 4] = False
        rgb = xyz_to_rgb(xyz, mask, background=(9, 8, 7))
        assert rgb.shape == (4, 5, 3) and rgb.dtype == np.uint8
        assert rgb[0, 0].tolist() == [9, 8, 7] and rgb[3, 4].tolist() == [9, 8, 7]
        assert rgb[1, 1].tolist() == [191, 191, 191]  # floor(1.5 * 127.5 + 0.5)

    def test_bad_shapes(self):
        with pytest.raises(ShapeError):
            xyz_to_rgb(np.zeros((4, 4, 2)))
        with pytest.raises(ShapeError, match="mask"):
            xyz_to_rgb(np.zeros((4, 4, 3)), np.ones((4, 3), bool))


class TestErrorToRgb:
    @pytest.mark.parametrize("name", COLORMAPS)
    def test_lut_matches_matplotlib(self, name):
        """OpenCV's colour maps are the same as matplotlib's (an independent implementation)."""
        import matplotlib

        ref = np.rint(matplotlib.colormaps[name](np.linspace(0, 1, 256))[:, :3] * 255)
        diff = np.abs(colormap_lut(name).astype(float) - ref)
        assert diff.max() <= 1, name

    def test_known_values(self):
        lut = colormap_lut("turbo")
        err = np.array([[0.0, 5.0, 10.0, 50.0, -3.0]])
        rgb = error_to_rgb(err, vmax=10.0)
        assert rgb[0, 0].tolist() == lut[0].tolist()
        assert rgb[0, 1].tolist() == lut[128].tolist()  # rint(0.5 * 255) = 128
        assert rgb[0, 2].tolist() == lut[255].tolist() == rgb[0, 3].tolist()  # clipped at vmax
        assert rgb[0, 4].tolist() == lut[0].tolist()  # clipped at vmin
        assert error_to_rgb(np.array([12.5]), vmax=20.0, vmin=10.0)[0].tolist() == lut[64].tolist()  # rint(0.25 * 255)

    def test_turbo_runs_from_blue_to_red(self):
        rgb = error_to_rgb(np.array([0.0, 1.0]), vmax=1.0).astype(int)
        assert rgb[0, 2] > rgb[0, 0] and rgb[1, 0] > rgb[1, 2]

    def test_invalid_pixels_get_the_background(self):
        err = np.array([[1.0, np.nan], [np.inf, 2.0]])
        valid = np.array([[True, True], [True, False]])
        rgb = error_to_rgb(err, vmax=2.0, valid=valid, background=(1, 2, 3))
        assert rgb[0, 1].tolist() == rgb[1, 0].tolist() == rgb[1, 1].tolist() == [1, 2, 3]
        assert rgb[0, 0].tolist() == colormap_lut()[128].tolist()

    def test_bad_arguments(self):
        with pytest.raises(ConfigError, match="vmin < vmax"):
            error_to_rgb(np.zeros(3), vmax=0.0)
        with pytest.raises(ConfigError, match="unknown colour map"):
            error_to_rgb(np.zeros(3), vmax=1.0, cmap="rainbow-ish")
        with pytest.raises(ShapeError):
            error_to_rgb(np.zeros((2, 2)), vmax=1.0, valid=np.ones(4, bool))


def test_colorbar_runs_from_vmax_at_the_top_to_vmin_at_the_bottom():
    bar = colorbar(300, 0.0, 20.0, "error (mm)")
    assert bar.shape[0] == 300 and bar.dtype == np.uint8
    column = bar[:, 12].astype(int)  # inside the bar (it starts 8 px from the left)
    lut = colormap_lut().astype(int)
    coloured = np.flatnonzero(np.abs(column[:, None, :] - lut[None]).sum(-1).min(1) == 0)
    top, bottom = column[coloured[0]], column[coloured[-1]]
    assert np.abs(top - lut[255]).sum() <= 6 and np.abs(bottom - lut[0]).sum() <= 6
    with pytest.raises(ConfigError):
        colorbar(20, 0.0, 1.0)


def test_object_colours_and_text_colours():
    assert object_color(1) == PALETTE[0] and object_color(2) != object_color(1)
    assert len(set(PALETTE)) == len(PALETTE)
    assert text_color_on((250, 250, 250)) == (0, 0, 0) and text_color_on((10, 10, 10)) == (255, 255, 255)

"""Tiles, legends, colour bars and the PNG writer."""

import numpy as np
import pytest

from bopnp.bop.images import load_image
from bopnp.errors import ConfigError, ShapeError
from bopnp.viz.colors import PAPER, colormap_lut, error_to_rgb
from bopnp.viz.grid import legend_band, save_png, stack, tile, with_colorbar, with_legend, wrap
from bopnp.viz.text import text_box_size


def solid(h, w, value):
    return np.full((h, w, 3), value, np.uint8)


def test_tile_places_images_row_by_row():
    a, b, c = solid(30, 40, 10), solid(20, 50, 20), solid(25, 40, 30)
    pad = 5
    out = tile([a, b, c], cols=2, pad=pad)
    assert out.shape == (pad + 30 + pad + 25 + pad, pad + 40 + pad + 50 + pad, 3)
    np.testing.assert_array_equal(out[pad : pad + 30, pad : pad + 40], a)
    np.testing.assert_array_equal(out[pad : pad + 20, 2 * pad + 40 : 2 * pad + 90], b)
    np.testing.assert_array_equal(out[2 * pad + 30 : 2 * pad + 55, pad : pad + 40], c)
    assert np.all(out[pad + 20 : pad + 30, 2 * pad + 40 : 2 * pad + 90] == PAPER)  # the short cell is padded


def test_tile_captions_sit_above_their_image():
    img = solid(30, 200, 0)
    out = tile([img], labels=["scene 2, image 3"], pad=4)
    cap = text_box_size("Ag", 16, pad=2)[1]
    assert out.shape[0] == 4 + cap + 30 + 4
    assert np.any(out[4 : 4 + cap] != PAPER)  # text drawn
    np.testing.assert_array_equal(out[4 + cap : 4 + cap + 30, 4:204], img)


def test_tile_errors():
    with pytest.raises(ConfigError):
        tile([])
    with pytest.raises(ConfigError, match="labels"):
        tile([solid(2, 2, 0)], labels=["a", "b"])
    with pytest.raises(ShapeError):
        tile([np.zeros((4, 4), np.uint8)])


def test_legend_wraps_to_the_width():
    entries = [((255, 0, 0), f"object number {k}") for k in range(12)]
    narrow, wide = legend_band(300, "title", entries), legend_band(3000, "title", entries)
    assert narrow.shape[1] == 300 and wide.shape[1] == 3000 and narrow.shape[0] > wide.shape[0]
    assert np.any(np.all(narrow == (255, 0, 0), axis=2))  # the swatches
    note = "a long note " * 20
    assert all(text_box_size(line, 14, pad=2)[0] <= 284 for line in wrap(note, 284, 14))
    assert " ".join(wrap(note, 284, 14)) == note


def test_with_legend_and_stack():
    pic = solid(50, 400, 7)
    out = with_legend(pic, "title", [((0, 0, 255), "GT")], ["a note"])
    assert out.shape[1] == 400 and out.shape[0] > 50
    np.testing.assert_array_equal(out[-50:], pic)
    s = stack([solid(10, 20, 1), solid(5, 30, 2)])
    assert s.shape == (15, 30, 3) and np.all(s[:10, 20:] == PAPER)


def test_with_colorbar():
    err = np.linspace(0, 10, 200)[None].repeat(100, 0)
    pic = with_colorbar(error_to_rgb(err, vmax=10.0), 0.0, 10.0, "err (px)")
    assert pic.shape[0] == 100 and pic.shape[1] > 200
    np.testing.assert_array_equal(pic[:, :200], error_to_rgb(err, vmax=10.0))
    bar = pic[:, 206:]
    assert np.any(np.all(bar == colormap_lut()[255], axis=2)) and np.any(np.all(bar == colormap_lut()[0], axis=2))


def test_save_png_round_trip(tmp_path):
    img = np.random.default_rng(0).integers(0, 256, (12, 17, 3), dtype=np.uint8)
    path = save_png(tmp_path / "a" / "b.png", img)
    np.testing.assert_array_equal(load_image(path), img)
    assert not list((tmp_path / "a").glob(".*.tmp"))  # written atomically, nothing left over
    with pytest.raises(ConfigError, match=".png"):
        save_png(tmp_path / "c.jpg", img)

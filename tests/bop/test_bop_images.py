from __future__ import annotations

import numpy as np
import pytest
from bop_helpers import snapshot

from bopnp.bop.io import (
    image_size,
    load_depth,
    load_image,
    load_mask,
    load_scene_camera,
    load_scene_gt,
    mask_bbox_xywh,
    save_depth,
    save_image,
    save_mask,
)
from bopnp.errors import DatasetError, ShapeError


def test_rgb_png_round_trip_is_exact_and_rgb_ordered(tmp_path):
    img = np.zeros((5, 7, 3), np.uint8)
    img[..., 0] = 200  # red
    before = snapshot(img)
    save_image(tmp_path / "a.png", img)
    assert np.array_equal(img, before)
    back = load_image(tmp_path / "a.png")
    assert back.dtype == np.uint8 and np.array_equal(back, img)
    assert image_size(tmp_path / "a.png") == (7, 5)


def test_jpg_and_gray_tif(tmp_path):
    rng = np.random.default_rng(0)
    smooth = np.clip(np.linspace(0, 255, 64)[None, :, None] + np.zeros((32, 64, 3)), 0, 255).astype(np.uint8)
    save_image(tmp_path / "a.jpg", smooth, jpg_quality=95)
    back = load_image(tmp_path / "a.jpg")
    assert back.shape == smooth.shape and np.abs(back.astype(int) - smooth).mean() < 2
    gray16 = rng.integers(0, 65535, (9, 11), dtype=np.uint16)
    save_image(tmp_path / "g.tif", gray16)
    back = load_image(tmp_path / "g.tif")
    assert back.dtype == np.uint16 and np.array_equal(back, gray16)


def test_depth_round_trip_in_mm_with_depth_scale(tmp_path):
    rng = np.random.default_rng(1)
    depth_mm = rng.uniform(300, 5000, (6, 8))
    depth_mm[0, 0] = 0.0  # no measurement
    before = snapshot(depth_mm)
    save_depth(tmp_path / "d.png", depth_mm, depth_scale=0.1)
    assert np.array_equal(depth_mm, before)
    raw = load_depth(tmp_path / "d.png", depth_scale=1.0)  # the stored 16-bit units
    assert raw.dtype == np.float32 and np.array_equal(raw, np.round(depth_mm / 0.1).astype(np.float32))
    back = load_depth(tmp_path / "d.png", depth_scale=0.1)
    assert back.dtype == np.float32 and back[0, 0] == 0
    np.testing.assert_allclose(back, depth_mm, atol=0.05 + 1e-3)


@pytest.mark.parametrize(
    "depth, match",
    [
        (np.full((2, 2), 7000.0), "exceeds 16 bits"),
        (np.full((2, 2), -1.0), ">= 0 mm"),
        (np.full((2, 2), np.nan), "finite"),
    ],
)
def test_depth_that_does_not_fit_is_refused(tmp_path, depth, match):
    with pytest.raises(DatasetError, match=match):
        save_depth(tmp_path / "d.png", depth, depth_scale=0.1)
    assert not (tmp_path / "d.png").exists()


def test_mask_round_trip_and_bop_box_convention(tmp_path):
    m = np.zeros((10, 12), bool)
    m[2:5, 3:9] = True
    m[7, 10] = True
    before = snapshot(m)
    save_mask(tmp_path / "m.png", m)
    assert np.array_equal(m, before)
    assert np.array_equal(load_mask(tmp_path / "m.png"), m)
    # bop_toolkit calc_2d_bbox: (x_min, y_min, x_max - x_min, y_max - y_min)
    assert mask_bbox_xywh(m).tolist() == [3, 2, 10 - 3, 7 - 2]
    assert mask_bbox_xywh(np.zeros((3, 3), bool)).tolist() == [-1, -1, -1, -1]
    with pytest.raises(ShapeError):
        mask_bbox_xywh(np.zeros((3, 3, 1), bool))


def test_missing_and_corrupt_files(tmp_path):
    with pytest.raises(DatasetError, match="not found"):
        load_image(tmp_path / "none.png")
    (tmp_path / "bad.png").write_bytes(b"not a png")
    with pytest.raises(DatasetError, match="cannot decode"):
        load_depth(tmp_path / "bad.png")
    with pytest.raises(DatasetError, match="not a readable image"):
        image_size(tmp_path / "bad.png")
    save_image(tmp_path / "rgb.png", np.zeros((4, 4, 3), np.uint8))
    with pytest.raises(DatasetError, match="one channel"):
        load_depth(tmp_path / "rgb.png")


@pytest.mark.shared_data
def test_lmo_depth_of_image_3_is_in_mm_and_agrees_with_the_ground_truth(lmo_dir):
    scene = lmo_dir / "test" / "000002"
    cam = load_scene_camera(scene / "scene_camera.json")[3]
    depth = load_depth(scene / "depth" / "000003.png", cam.depth_scale)
    assert depth.shape == (480, 640) and depth.dtype == np.float32
    valid = depth[depth > 0]
    assert valid.size > 0.5 * depth.size and 300 < np.median(valid) < 2500  # a table-top scene about 1 m away
    # the depth at the projected model origin of each visible object is near its ground-truth distance
    close = 0
    gts = load_scene_gt(scene / "scene_gt.json")[3]
    for g in gts:
        u, v, w = cam.K @ g.t_m2c
        d = depth[int(round(v / w)), int(round(u / w))]
        close += bool(d > 0 and abs(d - g.t_m2c[2]) < 100)  # within an object radius (mm)
    assert close >= len(gts) - 2  # occluded objects may show another surface
    assert load_image(scene / "rgb" / "000003.png").shape == (480, 640, 3)


# ----------------------------------------------------------------------------- whole files, strict formats


@pytest.mark.parametrize("suffix", [".png", ".jpg"])
def test_truncated_image_is_refused_not_half_decoded(tmp_path, suffix):
    rng = np.random.default_rng(0)
    path = tmp_path / f"a{suffix}"
    save_image(path, rng.integers(0, 255, (60, 80, 3), dtype=np.uint8))
    assert load_image(path).shape == (60, 80, 3)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) * 2 // 3])
    with pytest.raises(DatasetError, match=r"a\.(png|jpg): the (PNG|JPEG) .*: the file is truncated") as exc:
        load_image(path)
    assert str(path) in str(exc.value)


def test_truncated_depth_and_mask_are_refused(tmp_path):
    save_depth(tmp_path / "d.png", np.random.default_rng(1).uniform(400, 900, (40, 50)))
    save_mask(tmp_path / "m.png", np.eye(40, 50, dtype=bool))
    for name, load in (("d.png", load_depth), ("m.png", load_mask)):
        data = (tmp_path / name).read_bytes()
        (tmp_path / name).write_bytes(data[:-20])  # only IEND and a few bytes of the last chunk are gone
        with pytest.raises(DatasetError, match=rf"{name[0]}\.png: the PNG ends .*: the file is truncated"):
            load(tmp_path / name)


def test_depth_must_be_single_channel_16_bit(tmp_path):
    import cv2

    depth = np.arange(12, dtype=np.uint16).reshape(3, 4) * 1000
    cv2.imwrite(str(tmp_path / "8bit.png"), (depth // 256).astype(np.uint8))
    with pytest.raises(DatasetError, match="must be uint16.*got uint8"):
        load_depth(tmp_path / "8bit.png")
    cv2.imwrite(str(tmp_path / "rgb.png"), np.repeat(depth[:, :, None], 3, axis=2))
    with pytest.raises(DatasetError, match="one channel"):
        load_depth(tmp_path / "rgb.png")


@pytest.mark.parametrize("dtype", [np.uint16, np.float32])
def test_tif_depth_reads_16_bit_and_float32(tmp_path, dtype):
    import cv2

    raw = (np.arange(12).reshape(3, 4) * 1000.5).astype(dtype)
    cv2.imwrite(str(tmp_path / "d.tif"), raw)
    got = load_depth(tmp_path / "d.tif", 0.1)
    assert got.dtype == np.float32
    np.testing.assert_allclose(got, raw.astype(np.float32) * np.float32(0.1), rtol=1e-6)


@pytest.mark.parametrize("load", [load_image, load_depth, load_mask], ids=["rgb", "depth", "mask"])
@pytest.mark.parametrize("suffix", [".png", ".jpg", ".tif"])
def test_empty_image_file_is_a_typed_error_naming_it(tmp_path, load, suffix):
    path = tmp_path / f"000001{suffix}"
    path.write_bytes(b"")
    with pytest.raises(DatasetError, match="the file is empty") as exc:
        load(path)
    assert str(path) in str(exc.value)
    with pytest.raises(DatasetError, match="not a readable image"):
        image_size(path)

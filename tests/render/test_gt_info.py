"""scene_gt_info and masks from renders, on hand-checkable scenes of flat cards facing the camera."""

from __future__ import annotations

import numpy as np
import pytest

from bopnp.bop.mesh import Mesh
from bopnp.errors import ConfigError, ShapeError
from bopnp.render import compute_gt_info, compute_gt_info_and_masks, compute_masks, get_renderer
from bopnp.render.gt_info import bbox_xywh

W, H = 320, 240
K = np.array([[410.0, 0.0, 151.37], [0.0, 380.0, 126.96], [0.0, 0.0, 1.0]])


def card(half_x: float, half_y: float) -> Mesh:
    """A flat rectangle in the model's z = 0 plane: its silhouette facing the camera is a rectangle."""
    v = np.array([[-half_x, -half_y, 0], [half_x, -half_y, 0], [half_x, half_y, 0], [-half_x, half_y, 0]], np.float32)
    return Mesh(vertices_mm=v, faces=np.array([[0, 1, 2], [0, 2, 3]], np.int64))


def covered_range(lo_mm: float, hi_mm: float, z_mm: float, f: float, c: float) -> tuple[int, int]:
    """First and last pixel index whose centre the interval [lo, hi] at depth z projects over."""
    lo, hi = c + f * lo_mm / z_mm, c + f * hi_mm / z_mm
    assert min(abs(lo - round(lo)), abs(hi - round(hi))) > 0.05, "pick edges away from pixel centres"
    return int(np.floor(lo)) + 1, int(np.ceil(hi)) - 1


def card_pixels(half, t):
    """(u0, u1, v0, v1) inclusive pixel ranges of a card at t facing the camera (may leave the image)."""
    u0, u1 = covered_range(t[0] - half[0], t[0] + half[0], t[2], K[0, 0], K[0, 2])
    v0, v1 = covered_range(t[1] - half[1], t[1] + half[1], t[2], K[1, 1], K[1, 2])
    return u0, u1, v0, v1


def rect_mask(u0, u1, v0, v1) -> np.ndarray:
    m = np.zeros((H, W), bool)
    m[max(v0, 0) : min(v1, H - 1) + 1, max(u0, 0) : min(u1, W - 1) + 1] = True
    return m


@pytest.fixture(scope="module")
def renderer():
    r = get_renderer(W, H)
    r.add_model(21, card(30.0, 20.0))
    r.add_model(22, card(10.0, 8.0))
    return r


def test_card_partly_outside_the_image(renderer):
    t = np.array([-100.0, 12.0, 300.0])
    u0, u1, v0, v1 = card_pixels((30.0, 20.0), t)
    assert u0 < 0 < u1 < W and 0 < v0 < v1 < H
    (info,) = compute_gt_info(renderer, K, [(21, np.eye(3), t)], im_size=(W, H))
    n_all = (u1 - u0 + 1) * (v1 - v0 + 1)
    n_in = (u1 + 1) * (v1 - v0 + 1)
    assert info["px_count_all"] == n_all  # counted in the 3x canvas, beyond the left border
    assert info["px_count_valid"] == n_in and info["px_count_visib"] == n_in
    assert info["bbox_obj"] == [u0, v0, u1 - u0, v1 - v0]  # x < 0, w = x_max - x_min
    assert info["bbox_visib"] == [0, v0, u1, v1 - v0]
    assert info["visib_fract"] == pytest.approx(n_in / n_all)


def test_card_outside_the_image_but_inside_the_canvas(renderer):
    t = np.array([-200.0, 0.0, 300.0])
    (info,) = compute_gt_info(renderer, K, [(21, np.eye(3), t)])
    assert info["px_count_all"] > 1000 and info["px_count_visib"] == 0 and info["px_count_valid"] == 0
    assert info["bbox_obj"] == [-1, -1, -1, -1] and info["bbox_visib"] == [-1, -1, -1, -1]
    assert info["visib_fract"] == 0.0


def test_occluded_pair_and_the_delta_tolerance(renderer):
    far_t, near_t = np.array([0.0, 0.0, 300.0]), np.array([12.0, 3.0, 250.0])
    far_px, near_px = card_pixels((30.0, 20.0), far_t), card_pixels((10.0, 8.0), near_t)
    far_full, near_full = rect_mask(*far_px), rect_mask(*near_px)
    assert (near_full & ~far_full).sum() == 0 and near_full.sum() > 200

    scene = [(21, np.eye(3), far_t), (22, np.eye(3), near_t)]
    infos, fulls, visibs = compute_gt_info_and_masks(renderer, K, scene)
    np.testing.assert_array_equal(fulls[0], far_full)
    np.testing.assert_array_equal(visibs[0], far_full & ~near_full)  # 50 mm in front: hidden
    np.testing.assert_array_equal(visibs[1], near_full)
    assert infos[0]["px_count_visib"] == far_full.sum() - near_full.sum()
    assert infos[0]["px_count_all"] == far_full.sum() == infos[0]["px_count_valid"]
    assert (
        infos[0]["bbox_visib"]
        == infos[0]["bbox_obj"]
        == [far_px[0], far_px[2], far_px[1] - far_px[0], far_px[3] - far_px[2]]
    )

    # 10 mm in front is within bop_toolkit's 15 mm tolerance: the far card counts as fully visible
    close = [(21, np.eye(3), far_t), (22, np.eye(3), np.array([0.0, 0.0, 290.0]))]
    infos_close, _, visibs_close = compute_gt_info_and_masks(renderer, K, close)
    np.testing.assert_array_equal(visibs_close[0], far_full)
    assert infos_close[0]["visib_fract"] == 1.0
    # ... but not within a 5 mm tolerance (ITODD)
    infos_itodd = compute_gt_info(renderer, K, close, delta_mm=5.0)
    assert infos_itodd[0]["visib_fract"] < 1.0

    full_m, visib_m = compute_masks(renderer, K, scene)
    np.testing.assert_array_equal(full_m, fulls)
    np.testing.assert_array_equal(visib_m, visibs)


def test_missing_sensor_depth_counts_as_visible_in_bop19_only(renderer):
    t = np.array([0.0, 0.0, 300.0])
    full = rect_mask(*card_pixels((30.0, 20.0), t))
    depth = np.full((H, W), 1000.0, np.float32)  # a wall behind the card ...
    depth[full] = 300.0  # ... and the card itself
    depth[:, 140:150] = 0  # a stripe without sensor data
    stripe = np.zeros((H, W), bool)
    stripe[:, 140:150] = True
    (info,) = compute_gt_info(renderer, K, [(21, np.eye(3), t)], depth_mm=depth)
    assert info["px_count_valid"] == (full & ~stripe).sum()
    assert info["px_count_visib"] == full.sum()
    (info18,) = compute_gt_info(renderer, K, [(21, np.eye(3), t)], depth_mm=depth, visib_mode="bop18")
    assert info18["px_count_visib"] == (full & ~stripe).sum()
    # an occluder seen only by the sensor (30 mm in front of the card) hides it
    depth[100:120, 120:130] = 270.0
    (occluded,) = compute_gt_info(renderer, K, [(21, np.eye(3), t)], depth_mm=depth)
    assert occluded["px_count_visib"] == full.sum() - (full[100:120, 120:130]).sum()


def test_bbox_matches_bop_toolkit_definition():
    # distance images and visible masks: tests/bop/test_bop_visibility.py
    mask = np.zeros((5, 6), bool)
    mask[1, 2] = mask[3, 4] = True
    assert bbox_xywh(mask) == [2, 1, 2, 2]
    assert bbox_xywh(mask, (1, 1)) == [1, 0, 2, 2]


def test_bad_arguments_raise_typed_errors(renderer):
    scene = [(21, np.eye(3), np.array([0.0, 0.0, 300.0]))]
    with pytest.raises(ConfigError, match="im_size"):
        compute_gt_info(renderer, K, scene, im_size=(640, 480))
    with pytest.raises(ShapeError, match="depth_mm"):
        compute_gt_info(renderer, K, scene, depth_mm=np.zeros((480, 640)))
    # also when no instance is in the image (no visible mask is computed then)
    behind = [(21, np.eye(3), np.array([0.0, 0.0, -300.0]))]
    for instances in (scene, behind):
        with pytest.raises(ConfigError, match="bop19"):
            compute_gt_info(renderer, K, instances, visib_mode="vsd")
    assert compute_gt_info(renderer, K, []) == []


@pytest.mark.shared_data
def test_lmo_image_with_real_depth(lmo_image3):
    im = lmo_image3
    infos = compute_gt_info(im.renderer, im.K, im.instances, depth_mm=im.depth_mm)
    by_obj = {g.obj_id: info for g, info in zip(im.gts, infos)}
    for info in infos:
        assert 0 < info["px_count_visib"] <= info["px_count_all"] and info["px_count_valid"] <= info["px_count_all"]
        x, y, w, h = info["bbox_visib"]
        bx, by, bw, bh = info["bbox_obj"]
        assert bx <= x and by <= y and x + w <= bx + bw and y + h <= by + bh
    # the ape sits behind the glue and the drill in this image; the can is nearly unoccluded
    assert by_obj[1]["visib_fract"] < 0.5 and by_obj[5]["visib_fract"] > 0.9


@pytest.mark.shared_data
def test_visible_pixels_never_exceed_all_pixels_on_lmo(lmo_dir):
    """Image 1199 of LM-O scene 2 has an instance near the border whose silhouette in the 3x canvas and in
    the image-size render differ by a pixel at a triangle edge; both counts must come from one silhouette."""
    from bopnp.bop.io import load_camera, load_ply, load_scene_camera, load_scene_gt

    scene = lmo_dir / "test" / "000002"
    cam = load_scene_camera(scene / "scene_camera.json")[1199]
    size = load_camera(lmo_dir / "camera.json")
    r = get_renderer(size.width, size.height)
    gts = load_scene_gt(scene / "scene_gt.json")[1199]
    for g in gts:
        r.add_model(g.obj_id, load_ply(lmo_dir / "models" / f"obj_{g.obj_id:06d}.ply", load_texture=False))
    infos = compute_gt_info(r, cam.K, [(g.obj_id, g.R_m2c, g.t_m2c) for g in gts])
    for info in infos:
        assert info["px_count_visib"] <= info["px_count_all"]
        assert info["visib_fract"] <= 1.0

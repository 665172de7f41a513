"""Mask overlays and pose drawings, checked against OpenCV's contour tracing and bopnp.geometry."""

import cv2
import numpy as np
import pytest
import torch

from bopnp.bop.images import as_rgb
from bopnp.errors import ShapeError
from bopnp.geometry import axis_angle_to_matrix, project_points, transform_points
from bopnp.viz.draw import (
    AXIS_COLORS,
    BOX_EDGES,
    box3d_corners,
    draw_pose,
    draw_segments_3d,
    mask_boundary,
    overlay_mask,
    project_box,
)
from bopnp.viz.text import draw_text

K = np.array([[572.4, 0.0, 325.3], [0.0, 573.6, 242.0], [0.0, 0.0, 1.0]])
W, H = 640, 480


def blob(seed=0, shape=(60, 80), sigma=4.0) -> np.ndarray:
    """A random smooth mask with several parts and holes, touching the image border."""
    rng = np.random.default_rng(seed)
    return cv2.GaussianBlur(rng.random(shape).astype(np.float32), (0, 0), sigma) > 0.5


def contour_pixels(mask: np.ndarray) -> np.ndarray:
    """Every pixel OpenCV's border following visits (outer borders and holes)."""
    contours, _ = cv2.findContours(mask.astype(np.uint8), cv2.RETR_LIST, cv2.CHAIN_APPROX_NONE)
    out = np.zeros_like(mask)
    for c in contours:
        out[c[:, 0, 1], c[:, 0, 0]] = True
    return out


class TestMasks:
    @pytest.mark.parametrize("seed", [0, 1, 2])
    def test_boundary_is_opencvs_contour(self, seed):
        m = blob(seed)
        assert m.any() and (~m).any() and m[0].any()  # the blob reaches the image border
        np.testing.assert_array_equal(mask_boundary(m), contour_pixels(m))

    def test_thick_boundary_is_a_band_of_l1_distance(self):
        m = blob(3, (90, 120), 6.0)
        dist = cv2.distanceTransform(np.pad(m, 1).astype(np.uint8), cv2.DIST_L1, 3)[
            1:-1, 1:-1
        ]  # outside the image is outside
        for t in (1, 2, 4):
            np.testing.assert_array_equal(mask_boundary(m, t), m & (dist <= t))

    def test_contour_is_drawn_exactly_on_the_boundary(self):
        m = blob(4)
        img = np.full(m.shape + (3,), 90, np.uint8)
        out = overlay_mask(img, m, (255, 0, 0), alpha=0.0, thickness=1)
        changed = np.any(out != img, axis=2)
        np.testing.assert_array_equal(changed, contour_pixels(m))
        assert np.all(out[changed] == [255, 0, 0])
        assert np.all(img == 90)  # the input is not modified

    def test_fill_is_translucent_inside_only(self):
        m = blob(5)
        img = np.random.default_rng(0).integers(0, 256, m.shape + (3,), dtype=np.uint8)
        out = overlay_mask(img, m, (0, 200, 100), alpha=0.25, thickness=2)
        inner = m & ~mask_boundary(m, 2)
        expected = np.rint(0.25 * np.array([0, 200, 100]) + 0.75 * img[inner].astype(float))
        np.testing.assert_array_equal(out[inner], expected.astype(np.uint8))
        np.testing.assert_array_equal(out[~m], img[~m])
        assert np.all(out[mask_boundary(m, 2)] == [0, 200, 100])

    def test_halo_lies_just_outside(self):
        m = np.zeros((40, 40), bool)
        m[10:30, 12:25] = True
        img = np.full((40, 40, 3), 200, np.uint8)
        out = overlay_mask(img, m, (255, 0, 0), alpha=0.0, thickness=1, halo=(0, 0, 0))
        halo = np.all(out == 0, axis=2)
        assert not (halo & m).any()
        ring = cv2.dilate(m.astype(np.uint8), cv2.getStructuringElement(cv2.MORPH_CROSS, (3, 3))).astype(bool) & ~m
        np.testing.assert_array_equal(halo, ring)

    def test_shape_errors(self):
        with pytest.raises(ShapeError, match="mask"):
            overlay_mask(np.zeros((10, 10, 3), np.uint8), np.zeros((10, 11), bool), (1, 2, 3))
        with pytest.raises(ShapeError, match="uint8"):
            overlay_mask(np.zeros((10, 10, 3), np.float32), np.zeros((10, 10), bool), (1, 2, 3))
        with pytest.raises(ShapeError):
            mask_boundary(np.zeros((3, 3, 3), bool))

    def test_as_rgb(self):
        gray = np.arange(12, dtype=np.uint8).reshape(3, 4)
        assert as_rgb(gray).shape == (3, 4, 3) and np.all(as_rgb(gray)[..., 1] == gray)
        assert as_rgb(np.full((2, 2), 65535, np.uint16)).max() == 255


def random_pose(seed):
    g = torch.Generator().manual_seed(seed)
    R = axis_angle_to_matrix(torch.randn(1, 3, generator=g, dtype=torch.float64) * 1.5)[0]
    t = torch.tensor([40.0, -30.0, 600.0], dtype=torch.float64) + torch.randn(3, generator=g, dtype=torch.float64) * 20
    return R.numpy(), t.numpy()


class TestPose:
    MIN = np.array([-40.0, -30.0, -20.0])
    SIZE = np.array([80.0, 60.0, 45.0])

    def test_box_corners(self):
        c = box3d_corners(self.MIN, self.SIZE)
        assert c[0].tolist() == self.MIN.tolist() and c[7].tolist() == (self.MIN + self.SIZE).tolist()
        assert len(BOX_EDGES) == 12 and len(set(BOX_EDGES)) == 12
        for i, j in BOX_EDGES:  # every edge runs along one axis, the full size
            d = np.abs(c[j] - c[i])
            assert np.count_nonzero(d) == 1 and d.max() == self.SIZE[np.argmax(d)]

    @pytest.mark.parametrize("seed", range(4))
    def test_corners_project_as_geometry_does(self, seed):
        R, t = random_pose(seed)
        ours = project_box(K, R, t, self.MIN, self.SIZE)
        x_c = transform_points(
            torch.from_numpy(R), torch.from_numpy(t), torch.from_numpy(box3d_corners(self.MIN, self.SIZE))
        )
        ref = project_points(x_c, torch.from_numpy(K)).numpy()
        np.testing.assert_allclose(ours, ref, rtol=0, atol=1e-9)

    @pytest.mark.parametrize("seed", range(4))
    def test_drawn_box_lies_on_the_projected_edges(self, seed):
        R, t = random_pose(seed)
        color = (255, 60, 0)
        img = np.zeros((H, W, 3), np.uint8)
        out = draw_pose(img, K, R, t, min_mm=self.MIN, size_mm=self.SIZE, color=color, thickness=1)
        uv = project_box(K, R, t, self.MIN, self.SIZE)
        # every corner has a pixel of the line colour at most one pixel away
        for u, v in uv:
            x, y = int(round(u)), int(round(v))
            patch = out[max(y - 1, 0) : y + 2, max(x - 1, 0) : x + 2].reshape(-1, 3).astype(int)
            assert np.abs(patch - color).sum(1).min() <= 60, (u, v)
        # every drawn pixel is near a projected edge (anti-aliased: faint ones a little further), and
        # every edge's midpoint is drawn
        ys, xs = np.nonzero(out.any(axis=2))
        strong = out[ys, xs].astype(int).sum(1) > sum(color) / 2
        p = np.stack([xs, ys], 1).astype(float)
        dist = np.full(len(p), np.inf)
        for i, j in BOX_EDGES:
            a, b = uv[i], uv[j]
            s = np.clip(((p - a) @ (b - a)) / max((b - a) @ (b - a), 1e-12), 0, 1)
            dist = np.minimum(dist, np.linalg.norm(p - (a + s[:, None] * (b - a)), axis=1))
            mx, my = np.rint((a + b) / 2).astype(int)
            assert out[my - 1 : my + 2, mx - 1 : mx + 2].astype(int).sum(-1).max() > 200
        assert dist[strong].max() <= 1.25 and dist.max() <= 2.0
        assert not img.any()

    def test_axes_start_at_the_origin_in_their_colours(self):
        R, t = np.eye(3), np.array([0.0, 0.0, 500.0])
        out = draw_pose(np.zeros((H, W, 3), np.uint8), K, R, t, axes_mm=50.0, thickness=2)
        for k, color in enumerate(AXIS_COLORS):
            end = K @ (t + 50.0 * R[:, k])
            u, v = end[:2] / end[2]
            mid = K @ (t + 40.0 * R[:, k])
            if k == 2:  # the z axis points at the camera's principal point: it projects onto the origin
                continue
            mu, mv = np.rint(mid[:2] / mid[2]).astype(int)
            assert np.abs(out[mv, mu].astype(int) - color).sum() <= 60, k

    def test_box_behind_the_camera_draws_nothing(self):
        img = np.zeros((H, W, 3), np.uint8)
        out = draw_pose(
            img, K, np.eye(3), np.array([0.0, 0.0, -300.0]), min_mm=self.MIN, size_mm=self.SIZE, label="obj 1"
        )
        assert not out.any()

    def test_box_through_the_near_plane_is_cut(self):
        img = np.zeros((H, W, 3), np.uint8)
        size = np.array([80.0, 60.0, 400.0])  # from 120 mm behind the camera to 280 mm in front
        out = draw_pose(
            img, K, np.eye(3), np.array([0.0, 0.0, -100.0]), min_mm=self.MIN, size_mm=size, color=(0, 255, 0)
        )
        far = project_box(K, np.eye(3), np.array([0.0, 0.0, -100.0]), self.MIN, size)[[1, 3, 5, 7]]  # z = 280 mm
        for u, v in far:
            x, y = int(round(u)), int(round(v))
            assert out[y - 1 : y + 2, x - 1 : x + 2, 1].max() > 200
        # the edges along z run from the far corners outwards, cut at the near plane (never through the centre)
        assert not out[int(K[1, 2]) - 5 : int(K[1, 2]) + 5, int(K[0, 2]) - 5 : int(K[0, 2]) + 5].any()

    def test_segments_far_outside_are_skipped(self):
        segs = np.array([[[1e7, 1e7, 100.0], [2e7, 1e7, 100.0]], [[-50, 0, 500.0], [50, 0, 500.0]]])
        out = draw_segments_3d(np.zeros((H, W, 3), np.uint8), K, segs, (255, 255, 255), 1)
        assert out[int(round(K[1, 2])), int(round(K[0, 2]))].any()

    def test_label_is_written_above_the_box(self):
        R, t = np.eye(3), np.array([0.0, 0.0, 600.0])
        with_label = draw_pose(
            np.zeros((H, W, 3), np.uint8), K, R, t, min_mm=self.MIN, size_mm=self.SIZE, label="obj 5"
        )
        without = draw_pose(np.zeros((H, W, 3), np.uint8), K, R, t, min_mm=self.MIN, size_mm=self.SIZE)
        ys, _ = np.nonzero(np.any(with_label != without, axis=2))
        top = project_box(K, R, t, self.MIN, self.SIZE)[:, 1].min()
        assert len(ys) and ys.max() <= top + 1

    def test_bad_pose_shapes(self):
        with pytest.raises(ShapeError, match="R_m2c"):
            draw_pose(np.zeros((H, W, 3), np.uint8), K, np.eye(4), np.zeros(3))
        with pytest.raises(ShapeError, match="K"):
            project_box(np.eye(2), np.eye(3), np.zeros(3), self.MIN, self.SIZE)


def test_text_stays_inside_and_leaves_the_input_alone():
    img = np.full((30, 60, 3), 120, np.uint8)
    out = draw_text(img, "a long label that does not fit", (50, 25), size=14)
    assert np.all(img == 120)
    ys, xs = np.nonzero(np.any(out != img, axis=2))
    assert ys.min() >= 0 and xs.min() == 0  # moved left to stay in the image
    with pytest.raises(ShapeError):
        draw_text(np.zeros((10, 10), np.uint8), "x", (0, 0))

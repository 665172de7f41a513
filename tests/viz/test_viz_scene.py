"""Split overviews: GT from mask_visib/ or from renders, estimates of a results CSV, image choice, and the
real LM-O photos (whose masks are rendered)."""

import numpy as np
import pytest

from bopnp.bop.dataset import BopDataset
from bopnp.bop.records import ResultRow
from bopnp.errors import DatasetError, ResultsFormatError
from bopnp.viz.colors import EST_COLOR, GT_COLOR, object_color
from bopnp.viz.draw import mask_boundary
from bopnp.viz.scene import (
    Pose,
    _image_tile,
    _Notes,
    _render_masks,
    _renderer,
    _scaled,
    annotate_image,
    pick_images,
    scene_overview,
)


@pytest.fixture(scope="module")
def synth(synth_dataset) -> BopDataset:
    bop_path, name = synth_dataset
    return BopDataset.from_bop_path(bop_path, name, "test")


def gt_estimates(ds: BopDataset, images=None) -> list[ResultRow]:
    """One estimate per GT instance, in the GT pose, with a made-up score."""
    out = []
    for s in ds.scene_ids():
        for i, gts in sorted(ds.scene_gt(s).items()):
            if images is None or (s, i) in images:
                out += [ResultRow(s, i, g.obj_id, 0.5 + 0.1 * k, g.R_m2c, g.t_m2c, 1.0) for k, g in enumerate(gts)]
    return out


def iou(a, b):
    return (a & b).sum() / max((a | b).sum(), 1)


def inside(a, b):
    """Fraction of the pixels of ``a`` that are in ``b``."""
    return (a & b).sum() / max(a.sum(), 1)


def colour_share(img, where, color) -> float:
    """Fraction of the pixels ``where`` that have exactly ``color``."""
    return float(np.all(img[where] == color, axis=1).mean()) if where.any() else 0.0


class TestSynth:
    def test_rendered_masks_match_the_split_masks(self, synth):
        """The fallback for splits without mask_visib/ renders the GT instances together: each rendered
        mask holds the split's visible mask (unannotated distractors may occlude more there) and lies in
        its full mask."""
        s, i = 0, 1
        image = synth.image(s, i)
        K = synth.K(s, i)
        gt = [Pose(g.obj_id, g.R_m2c, g.t_m2c) for g in synth.scene_gt(s)[i]]
        rendered = _render_masks(synth, K, (image.shape[1], image.shape[0]), gt, together=True)
        for k, m in enumerate(rendered):
            visib, full = synth.mask(s, i, k), synth.mask(s, i, k, visib=False)
            assert inside(visib, m) > 0.98 and inside(m, full) > 0.98, k

    def test_shrunk_intrinsics_keep_the_masks_in_place(self, synth):
        import cv2

        s, i = 0, 2
        image, K = synth.image(s, i), synth.K(s, i)
        small, Ks, scale = _scaled(image, K, 320)
        assert small.shape[:2] == (240, 320) and scale == 0.5
        gt = [Pose(g.obj_id, g.R_m2c, g.t_m2c) for g in synth.scene_gt(s)[i]]
        rendered = _render_masks(synth, Ks, (320, 240), gt, together=True)
        checked = 0
        for k, m in enumerate(rendered):
            visib, full = (
                cv2.resize(synth.mask(s, i, k, visib=v).astype(np.float32), (320, 240), interpolation=cv2.INTER_AREA)
                >= 0.5
                for v in (True, False)
            )
            # a sliver of under ~200 px at half resolution is mostly boundary, where area resampling and the
            # renderer's rasterisation differ by a pixel; larger masks must line up
            if visib.sum() > 200:
                checked += 1
                assert inside(visib, m) > 0.9 and inside(m, full) > 0.9, k
        assert checked >= 1

    def test_gt_tile_draws_each_visible_mask_in_its_object_colour(self, synth):
        s, i = 0, 0
        ((tile, caption),) = _image_tile(synth, s, i, None, 640, _Notes(), 15)
        gts = synth.scene_gt(s)[i]
        assert caption.startswith(f"scene {s}, image {i}: {len(gts)} GT (mask_visib)")
        for k, g in enumerate(gts):
            band = mask_boundary(synth.mask(s, i, k), 2)
            if band.sum() > 50:  # boxes and labels drawn later cover some of the contour
                assert colour_share(tile, band, object_color(g.obj_id)) > 0.5, k

    def test_overview_with_gt_as_estimates(self, synth):
        images = [(0, 0), (0, 2)]
        results = gt_estimates(synth, images)
        pic = scene_overview(synth, "test", 4, results)
        assert pic.dtype == np.uint8 and pic.ndim == 3
        assert pic.shape[1] == 2 * 640 + 3 * 8  # only the two images with estimates, side by side
        # the estimates, drawn last, hide most of the GT they coincide with
        assert np.all(pic == EST_COLOR, axis=2).sum() > 500 and np.all(pic == GT_COLOR, axis=2).sum() > 100

    def test_estimate_silhouettes_are_the_full_gt_silhouettes(self, synth):
        s, i = 0, 2
        image, K = synth.image(s, i), synth.K(s, i)
        gts = synth.scene_gt(s)[i]
        ests = [Pose(g.obj_id, g.R_m2c, g.t_m2c, 0.9) for g in gts]
        sil = _render_masks(synth, K, (image.shape[1], image.shape[0]), ests, together=False)
        for k, m in enumerate(sil):
            assert iou(m, synth.mask(s, i, k, visib=False)) > 0.97
        out = annotate_image(image, K, synth.models_info, estimates=ests, est_masks=sil)
        for m in sil:
            if m.sum() > 200:
                assert colour_share(out, mask_boundary(m, 2), EST_COLOR) > 0.4

    def test_overview_of_chosen_images_without_results(self, synth):
        pic = scene_overview(synth, images=[(0, 1)])
        assert pic.shape[1] == 640 + 2 * 8 and pic.shape[0] > 480 + 60  # the legend is on top

    def test_pick_images(self, synth):
        assert pick_images(synth, 2) == [(0, 0), (0, 2)]  # spread: first and last
        assert pick_images(synth, 10) == [(0, 0), (0, 1), (0, 2)]
        assert pick_images(synth, 3, gt_estimates(synth, [(0, 1)])) == [(0, 1)]
        with pytest.raises(DatasetError, match="scene 7"):
            pick_images(synth, 2, scene_ids=[7])

    def test_estimates_for_other_images_or_objects(self, synth):
        R, t = np.eye(3), np.array([0.0, 0.0, 500.0])
        with pytest.raises(ResultsFormatError, match="another dataset or split"):
            scene_overview(synth, "test", 2, [ResultRow(5, 0, 1, 0.5, R, t)])
        with pytest.raises(ResultsFormatError, match="objects \\[99\\]"):
            scene_overview(synth, "test", 2, [ResultRow(0, 0, 99, 0.5, R, t)])

    def test_missing_split(self, synth):
        with pytest.raises(DatasetError, match="val not found"):
            scene_overview(synth, "val", 1)


@pytest.mark.shared_data
class TestLmo:
    def test_overview_of_the_real_photo_renders_the_masks(self, lmo_dir):
        ds = BopDataset(lmo_dir, "test")
        s, i = 2, 3
        assert not ds.mask_path(s, i, 0).is_file()  # no masks here: they come from renders
        ((tile, caption),) = _image_tile(ds, s, i, None, 640, _Notes(), 15)
        gts = ds.scene_gt(s)[i]
        assert caption.startswith(f"scene 2, image 3: {len(gts)} GT (masks rendered)")
        K = ds.K(s, i)
        masks = _render_masks(ds, K, (640, 480), [Pose(g.obj_id, g.R_m2c, g.t_m2c) for g in gts], together=True)
        # the rendered masks sit on the photographed objects: rendered depth agrees with the sensor's
        r = _renderer(ds, 640, 480, [g.obj_id for g in gts])
        depth = r.render(K, [(g.obj_id, g.R_m2c, g.t_m2c) for g in gts], full_masks=False).depth_mm
        sensor = ds.depth(s, i)
        both = (depth > 0) & (sensor > 0)
        assert both.sum() > 5000 and np.median(np.abs(depth[both] - sensor[both])) < 10.0
        for k, (g, m) in enumerate(zip(gts, masks)):
            band = mask_boundary(m, 2)
            if band.sum() > 100:
                assert colour_share(tile, band, object_color(g.obj_id)) > 0.3, (k, g.obj_id)

    def test_overview_picks_the_images_that_exist(self, lmo_dir):
        ds = BopDataset(lmo_dir, "test")
        assert pick_images(ds, 4) == [(2, 3), (2, 894)]  # 200 annotated images, 2 photos present
        pic = scene_overview(ds, images=4)
        assert pic.shape[1] == 2 * 640 + 3 * 8

"""The pose stage: an oracle network that returns the true coordinate maps must give the GT poses through the whole
crop -> re-crop -> correspondences -> PnP path; a saved checkpoint loads and runs; the coordinate normalisation
equals the crop cache's."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from bopnp.bop.dataset import BopDataset
from bopnp.bop.detections import Detection
from bopnp.data.crop_geometry import square_box
from bopnp.errors import CheckpointError, ConfigError
from bopnp.infer.detect import GtDetections, ImageItem
from bopnp.infer.network import load_pose_network, object_normalisation, resolve_checkpoint
from bopnp.infer.pose import PoseEstimator, recentred_boxes, spread_order

#: the oracle's poses equal GT within these, by PnP precision (on exact rendered coordinates, measured: float64
#: 4e-5 deg and 5e-5 mm, float32 0.02 deg and 4e-4 mm)
TOLERANCE = {True: (0.001, 0.001), False: (0.05, 0.01)}  # pnp_float64 -> (degrees, mm)


def rotation_error_deg(R1: np.ndarray, R2: np.ndarray) -> float:
    c = (np.trace(R1.T @ R2) - 1.0) / 2.0
    return float(np.degrees(np.arccos(np.clip(c, -1.0, 1.0))))


def _helpers():
    module = sys.modules.get("infer_pose_helpers")
    if module is None:
        spec = importlib.util.spec_from_file_location("infer_pose_helpers", Path(__file__).with_name("pose_helpers.py"))
        module = importlib.util.module_from_spec(spec)
        sys.modules["infer_pose_helpers"] = module
        spec.loader.exec_module(module)
    return module


def _oracle_estimator(ds: BopDataset, **config):
    return _helpers().oracle_estimator(ds, **config)


def _test_batch(ds: BopDataset):
    scene = ds.scene_ids()[0]
    ims = ds.image_ids(scene)
    images = [ds.image(scene, i) for i in ims]
    Ks = [ds.K(scene, i) for i in ims]
    dets = GtDetections(ds)([ImageItem(scene, i) for i in ims])
    return scene, ims, images, Ks, dets


@pytest.mark.parametrize("two_stage,pnp_float64", [(True, True), (False, True), (True, False)])
def test_oracle_coordinates_give_the_gt_poses(synth_dataset, two_stage, pnp_float64):
    bop_path, name = synth_dataset
    ds = BopDataset.from_bop_path(bop_path, name, "test")
    est, _ = _oracle_estimator(ds, two_stage=two_stage, pnp_float64=pnp_float64)
    rot_tol_deg, t_tol_mm = TOLERANCE[pnp_float64]
    scene, ims, images, Ks, dets = _test_batch(ds)
    assert sum(map(len, dets)) >= 6
    results = est(images, Ks, dets)
    checked = 0
    for im_id, per_image in zip(ims, results):
        gts = ds.scene_gt(scene)[im_id]
        infos = ds.scene_gt_info(scene)[im_id]
        for r in per_image:
            (gt,) = [
                g
                for g, i in zip(gts, infos)
                if g.obj_id == r.obj_id and np.array_equal(np.asarray(i.bbox_visib, float), r.detection.bbox_xywh)
            ]
            assert r.valid, f"image {im_id} object {r.obj_id}: no pose from exact coordinates"
            assert rotation_error_deg(r.R_m2c, gt.R_m2c) < rot_tol_deg
            np.testing.assert_allclose(r.t_m2c, gt.t_m2c, atol=t_tol_mm)
            assert r.inlier_fraction == pytest.approx(1.0, abs=1e-9)
            assert r.score == pytest.approx(r.detection.score * r.inlier_fraction)
            checked += 1
    assert checked == sum(map(len, dets))


def test_second_crop_is_the_training_crop_of_the_whole_object(synth_dataset):
    """Re-centring on the first pass's object pixels finds the crop `bopnp prepare` makes (centred on bbox_obj),
    to within a crop pixel or two, for instances that lie inside the image and inside the first crop (an instance
    whose hidden part reaches beyond the first crop gets a box of what that crop saw)."""
    bop_path, name = synth_dataset
    ds = BopDataset.from_bop_path(bop_path, name, "test")
    est, oracle = _oracle_estimator(ds)
    scene, ims, images, Ks, dets = _test_batch(ds)
    results = est(images, Ks, dets, debug=True)
    cam = ds.camera
    compared = 0
    for im_id, per_image in zip(ims, results):
        infos = ds.scene_gt_info(scene)[im_id]
        for r in per_image:
            (info,) = [i for i in infos if np.array_equal(np.asarray(i.bbox_visib, float), r.detection.bbox_xywh)]
            x, y, w, h = np.asarray(info.bbox_obj, float)
            b1 = r.debug.box_first
            if x < 0 or y < 0 or x + w >= cam.width or y + h >= cam.height:
                continue
            if x < b1[0] or y < b1[1] or x + w > b1[2] or y + h > b1[3]:
                continue
            want = square_box(np.asarray(info.bbox_obj, float), 1.5, 64)
            px = (want[2] - want[0]) / 64  # image pixels per crop pixel
            assert np.abs(r.debug.box_second - want).max() < 2.0 * px + 1.0
            assert r.debug.inliers.sum() == r.n_points
            compared += 1
    assert compared >= 3
    assert len(oracle.calls) == 2  # one network call per pass for the whole batch


def test_recentring_keeps_the_first_box_without_object_pixels():
    xyz = torch.zeros(2, 3, 16, 16)
    xyz[1, 0, 4:12, 4:12] = 0.5
    err = torch.zeros(2, 1, 16, 16)
    box = torch.tensor([[10.0, 20.0, 42.0, 52.0], [10.0, 20.0, 42.0, 52.0]], dtype=torch.float64)
    boxes, moved = recentred_boxes(xyz, err, box, enlarge=1.5, outlier_err=0.5, min_coord=0.1, min_points=16)
    assert moved.tolist() == [False, True]
    np.testing.assert_array_equal(boxes[0], box[0].numpy())
    # the object is crop pixels 4..11, centres at image x = 18..32 (2 image pixels per crop pixel), so image pixels
    # 17..32: BOP's box (17, 17, 15, 15), centred on 25; the new crop is 1.5 x 15 px, shifted by half a crop pixel
    side = 1.5 * 15
    assert boxes[1][2] - boxes[1][0] == pytest.approx(side)
    assert (boxes[1][0] + boxes[1][2]) / 2 == pytest.approx(25.0 + 0.5 * side / 16)
    err[1] = 0.9  # every pixel an outlier
    boxes, moved = recentred_boxes(xyz, err, box, enlarge=1.5, outlier_err=0.5, min_coord=0.1, min_points=16)
    assert not moved.any()


def test_spread_order_picks_evenly_spread_pixels():
    key = spread_order(1000)
    first = key.topk(100).indices.sort().values
    gaps = first.diff()
    assert gaps.min() >= 2 and gaps.max() <= 20  # no clusters, no holes
    assert torch.equal(spread_order(1000), key)


def test_no_detections_and_unknown_objects(synth_dataset):
    bop_path, name = synth_dataset
    ds = BopDataset.from_bop_path(bop_path, name, "test")
    est, _ = _oracle_estimator(ds)
    image = np.zeros((48, 64, 3), np.uint8)
    assert est([image, image], [np.eye(3)] * 2, [[], []]) == [[], []]
    stranger = Detection(0, 0, 99, 1.0, np.array([1.0, 1.0, 5.0, 5.0]))
    with pytest.raises(ConfigError, match="99"):
        est([image], [np.eye(3)], [[stranger]])


def test_gt_detections_are_the_visible_boxes(synth_dataset):
    bop_path, name = synth_dataset
    ds = BopDataset.from_bop_path(bop_path, name, "test")
    scene = ds.scene_ids()[0]
    im = ds.image_ids(scene)[0]
    (dets,) = GtDetections(ds)([ImageItem(scene, im)])
    infos = [i for i in ds.scene_gt_info(scene)[im] if i.px_count_visib > 0]
    assert len(dets) == len(infos)
    for d, info in zip(dets, infos):
        assert d.score == 1.0 and d.time_s == 0.0
        np.testing.assert_array_equal(d.bbox_xywh, np.asarray(info.bbox_visib, float))
        assert d.rle is not None and d.rle.area == info.px_count_visib


# ------------------------------------------------------------------------------------- checkpoints


def _save_untrained(path, obj_ids):
    return _helpers().save_untrained_checkpoint(path, obj_ids)


def test_checkpoint_loads_and_runs_through_the_pose_stage(synth_dataset, tmp_path):
    bop_path, name = synth_dataset
    ds = BopDataset.from_bop_path(bop_path, name, "test")
    run = tmp_path / "run"
    run.mkdir()
    _save_untrained(run / "last.pt", ds.obj_ids)
    assert resolve_checkpoint(run) == run / "last.pt"
    _save_untrained(run / "best.pt", ds.obj_ids)
    assert resolve_checkpoint(run) == run / "best.pt"
    loaded = load_pose_network(run)
    assert loaded.obj_ids == ds.obj_ids and loaded.crop_size == 32 and len(loaded.digest) == 64
    saved = torch.load(run / "best.pt", weights_only=True)["model"]
    for k, v in loaded.net.state_dict().items():
        assert torch.equal(v, saved[k])
    est = PoseEstimator.from_network(loaded, {o: ds.mesh(o) for o in ds.obj_ids})
    assert est.config.max_err == loaded.e2e.max_err
    scene, ims, images, Ks, dets = _test_batch(ds)
    first = est(images, Ks, dets)
    again = est(images, Ks, dets)
    assert [len(r) for r in first] == [len(d) for d in dets]
    for r1, r2 in zip(sum(first, []), sum(again, [])):
        assert np.isfinite(r1.R_m2c).all() and np.isfinite(r1.t_m2c).all()
        np.testing.assert_allclose(r1.R_m2c @ r1.R_m2c.T, np.eye(3), atol=1e-6)
        assert 0.0 <= r1.score <= 1.0
        np.testing.assert_array_equal(r1.t_m2c, r2.t_m2c)  # deterministic
    assert est.times.calls == 2 and est.times.network_s > 0


def test_checkpoint_errors_name_the_file(tmp_path):
    with pytest.raises(CheckpointError, match="best.pt or last.pt"):
        resolve_checkpoint(tmp_path)
    with pytest.raises(CheckpointError, match="nope.pt"):
        load_pose_network(tmp_path / "nope.pt")
    bad = tmp_path / "bad.pt"
    _save_untrained(bad, [1, 2])
    from bopnp.train.checkpoint import load_checkpoint, save_checkpoint

    state = load_checkpoint(bad)
    state["obj_ids"] = [1, 2, 3]  # three output groups asked of a head that has two
    save_checkpoint(bad, state)
    with pytest.raises(CheckpointError, match="do not fit"):
        load_pose_network(bad)
    del state["obj_ids"]
    save_checkpoint(bad, state)
    with pytest.raises(CheckpointError, match="obj_ids"):
        load_pose_network(bad)


def test_normalisation_equals_the_crop_cache(synth_dataset, tmp_path):
    from bopnp.data.prepare import _write_object_metas

    bop_path, name = synth_dataset
    ds = BopDataset.from_bop_path(bop_path, name, "train_pbr")
    _write_object_metas(tmp_path, ds, ds.obj_ids, 32)
    for o in ds.obj_ids:
        meta = json.loads((tmp_path / f"obj_{o:06d}" / "meta.json").read_text())["xyz_normalisation"]
        centre, half = object_normalisation(ds.mesh(o))
        np.testing.assert_array_equal(centre, meta["centre_mm"])
        np.testing.assert_array_equal(half, meta["half_extent_mm"])


def test_surface_undoes_coordinates_shrunk_towards_the_centre(synth_dataset):
    """A network that predicts every model point at 0.6 of its distance from the object's centre (the shrinkage of
    an early network) puts objects at ~0.6 of their depth; with the radial surface profiles the points move back
    out to the surface and the depth returns to within a few percent (the profile's bins are 2.8 degrees wide)."""
    from bopnp.geometry.radial_surface import radial_profile
    from bopnp.infer.pose import PoseConfig

    bop_path, name = synth_dataset
    ds = BopDataset.from_bop_path(bop_path, name, "test")
    oracle = _helpers().OracleNetwork(ds)

    def shrunk(image, obj_index, ctx):
        xyz, err = oracle(image, obj_index, ctx)
        return 0.6 * xyz, err

    norm = {o: object_normalisation(ds.mesh(o)) for o in ds.obj_ids}
    profiles = {o: radial_profile(ds.mesh(o).vertices_mm, ds.mesh(o).faces, norm[o][0]) for o in ds.obj_ids}
    scene, ims, images, Ks, dets = _test_batch(ds)
    gt_z = {}
    for im_id in ims:
        for g, i in zip(ds.scene_gt(scene)[im_id], ds.scene_gt_info(scene)[im_id]):
            gt_z[(im_id, g.obj_id, tuple(np.asarray(i.bbox_visib, float)))] = g.t_m2c[2]
    ratios = {}
    for surface in (False, True):
        # min_coord 0.05: the shrunk background threshold scales with the points (0.1 of a unit box at 0.6 is 0.06)
        cfg = PoseConfig(two_stage=False, surface=surface, min_coord=0.05)
        est = PoseEstimator(shrunk, ds.obj_ids, norm, crop_size=64, config=cfg, profiles=profiles)
        z = [
            r.t_m2c[2] / gt_z[(im_id, r.obj_id, tuple(r.detection.bbox_xywh))]
            for im_id, per_image in zip(ims, est(images, Ks, dets))
            for r in per_image
            if r.valid
        ]
        assert len(z) == sum(map(len, dets))
        ratios[surface] = np.median(z)
    assert ratios[False] == pytest.approx(0.6, abs=0.05)
    assert ratios[True] == pytest.approx(1.0, abs=0.04)

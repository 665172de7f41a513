"""The detector's dataset: targets from scene_gt_info (visibility threshold, boxes of the visible masks), masks read
lazily, images without instances skipped, and augmentation that moves boxes and masks with the image."""

import pytest
import torch

from bopnp.bop.dataset import BopDataset
from bopnp.data.detection_set import (
    DetectionAugmentConfig,
    DetectionSet,
    collate_detections,
    detection_records,
    masks_to_boxes_xyxy,
    output_size,
)
from bopnp.errors import ConfigError, DatasetError

NO_COLOR = dict(color=False)


@pytest.fixture
def ds(tiny, tmp_path):
    """The tiny drawn dataset: test images 0 (objects 1 and 2; object 1 62 % visible) and 1 (object 1)."""
    tiny.make_dataset(tmp_path / "tiny")
    return BopDataset(tmp_path / "tiny", "test")


def test_records_keep_visible_instances_with_pixel_edge_boxes(ds):
    recs = detection_records(ds, [1, 2])
    assert [r.key for r in recs] == [(1, 0), (1, 1)]
    assert recs[0].obj_ids == (1, 2) and recs[0].gt_ids == (0, 1)
    # object 1 of image 0: visible mask rows 5..24, columns 4..19
    assert recs[0].boxes_xyxy[0].tolist() == [4.0, 5.0, 20.0, 25.0]
    strict = detection_records(ds, [1, 2], min_visib_fract=0.7)  # object 1 of image 0 is 0.62 visible
    assert [(r.key, r.obj_ids) for r in strict] == [((1, 0), (2,)), ((1, 1), (1,))]
    only_2 = detection_records(ds, [2])  # image 1 has no instance of object 2: skipped
    assert [r.key for r in only_2] == [(1, 0)]


def test_items_follow_torchvisions_detection_format(ds):
    s = DetectionSet(ds, [2, 1])
    assert s.obj_ids == [1, 2] and s.label_of(2) == 2
    it = s[0]
    assert it["image"].shape == (3, 48, 64) and it["image"].dtype == torch.float32
    assert 0 <= float(it["image"].min()) and float(it["image"].max()) <= 1
    assert it["boxes"].shape == (2, 4) and it["labels"].tolist() == [1, 2]
    assert it["masks"].shape == (2, 48, 64) and it["masks"].dtype == torch.uint8
    torch.testing.assert_close(masks_to_boxes_xyxy(it["masks"]), it["boxes"], rtol=0, atol=0)
    torch.testing.assert_close(it["masks"][0].bool(), torch.from_numpy(ds.mask(1, 0, 0)), rtol=0, atol=0)
    assert (int(it["scene_id"]), int(it["im_id"])) == (1, 0)
    batch = collate_detections([s[0], s[1]])
    assert len(batch["image"]) == 2 and batch["targets"][1]["labels"].tolist() == [1]
    assert batch["im_id"].tolist() == [0, 1]


def test_masks_are_read_only_when_an_item_is_loaded(ds, monkeypatch):
    def no_masks(*args, **kwargs):
        raise AssertionError("a mask was read")

    monkeypatch.setattr(BopDataset, "mask", no_masks)
    s = DetectionSet(ds, [1, 2])
    assert len(s) == 2
    with pytest.raises(AssertionError, match="a mask was read"):
        s[0]


def test_resizes_as_the_detector_will(ds):
    assert output_size(480, 640, 240, 320) == (240, 320) and output_size(480, 640, 480, 560) == (420, 560)
    s = DetectionSet(ds, [1, 2], min_size=24, max_size=32)
    it = s[0]
    assert it["image"].shape == (3, 24, 32) and it["masks"].shape == (2, 24, 32)
    torch.testing.assert_close(it["boxes"][0], torch.tensor([2.0, 2.5, 10.0, 12.5]), rtol=0, atol=0)
    assert float(it["scale"]) == 0.5


def test_augmentation_is_a_function_of_the_seed_and_boxes_follow_masks(ds):
    s = DetectionSet(ds, [1, 2], augment=DetectionAugmentConfig(scale_range=(0.8, 1.25), max_shift=0.2))
    a, b, c = s[(0, 5)], s[(0, 5)], s[(0, 6)]
    torch.testing.assert_close(a["image"], b["image"], rtol=0, atol=0)
    assert (a["image"] - c["image"]).abs().max() > 0.01
    torch.manual_seed(123)
    d = s[(0, 5)]  # the global random state plays no part
    torch.testing.assert_close(a["image"], d["image"], rtol=0, atol=0)
    for seed in range(6):
        it = s[(0, seed)]
        assert it["masks"].shape[0] == len(it["boxes"]) == len(it["labels"]) == len(it["gt_ids"])
        assert (it["masks"].flatten(1).sum(1) >= 16).all()
        torch.testing.assert_close(masks_to_boxes_xyxy(it["masks"]), it["boxes"], rtol=0, atol=0)


def test_zoom_moves_image_and_masks_together(ds):
    zoom = DetectionSet(ds, [1, 2], augment=DetectionAugmentConfig(scale_range=(2.0, 2.0), max_shift=0.0, **NO_COLOR))
    plain = DetectionSet(ds, [1, 2])
    z, p = zoom[(0, 0)], plain[0]
    # a 2x zoom about the centre: the window rows 12..35, columns 16..47 enlarged to the image size
    window = p["image"][None, :, 12:36, 16:48]
    expected = torch.nn.functional.interpolate(window, size=(48, 64), mode="bilinear", antialias=True)[0]
    torch.testing.assert_close(z["image"], expected, rtol=0, atol=1 / 255 + 1e-6)  # an 8-bit image resized
    expected_masks = torch.nn.functional.interpolate(p["masks"][None, :, 12:36, 16:48].float(), size=(48, 64))[0]
    torch.testing.assert_close(z["masks"].float(), expected_masks, rtol=0, atol=0)
    assert z["labels"].tolist() == [1, 2]
    # object 2's visible mask (rows 10..39, columns 25..49) is cut by the window's right and bottom edges
    torch.testing.assert_close(z["boxes"][1], torch.tensor([18.0, 0.0, 64.0, 48.0]), rtol=0, atol=0)


def test_no_horizontal_flip_by_default_and_a_flip_mirrors_everything(ds):
    still = DetectionAugmentConfig(scale_range=(1.0, 1.0), max_shift=0.0, **NO_COLOR)
    assert still.hflip_p == 0.0
    plain = DetectionSet(ds, [1, 2])[0]
    same = DetectionSet(ds, [1, 2], augment=still)[(0, 3)]
    torch.testing.assert_close(same["image"], plain["image"], rtol=0, atol=0)
    torch.testing.assert_close(same["boxes"], plain["boxes"], rtol=0, atol=0)
    flip = DetectionSet(ds, [1, 2], augment=DetectionAugmentConfig(**{**still.__dict__, "hflip_p": 1.0}))[(0, 3)]
    torch.testing.assert_close(flip["image"], plain["image"].flip(-1), rtol=0, atol=0)
    torch.testing.assert_close(flip["boxes"][0], torch.tensor([44.0, 5.0, 60.0, 25.0]), rtol=0, atol=0)


def test_missing_visibility_file_says_to_prepare(ds):
    (ds.root / "test" / "000001" / "scene_gt_info.json").unlink()
    with pytest.raises(DatasetError, match="bopnp prepare"):
        detection_records(ds, [1, 2])


@pytest.mark.parametrize(
    "kw, match",
    [({"scale_range": (1.2, 0.8)}, "scale_range"), ({"hflip_p": 2.0}, "hflip_p"), ({"max_shift": 0.6}, "max_shift")],
)
def test_bad_augmentation_settings(kw, match):
    with pytest.raises(ConfigError, match=match):
        DetectionAugmentConfig(**kw).validate()

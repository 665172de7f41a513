import pytest
import torch

from bopnp.data.crop_dataset import open_crop_datasets
from bopnp.data.training_set import (
    AUGMENT_PRESETS,
    AugmentConfig,
    EpochSampler,
    TrainingSet,
    occluder_mask,
    procedural_texture,
)
from bopnp.errors import ConfigError


@pytest.fixture
def cache(tiny_cache):
    return tiny_cache


def test_items_carry_object_index_padded_pool_and_normalisation(cache):
    ds = TrainingSet(open_crop_datasets(cache))
    assert len(ds) == 12 and ds.obj_ids == [1, 2]
    a, b = ds[0], ds[11]
    assert int(a["obj_index"]) == 0 and int(b["obj_index"]) == 1
    assert a["pool"].shape == b["pool"].shape == (2, 4, 4)
    torch.testing.assert_close(a["pool"][1], torch.eye(4))  # object 1's pool padded with the identity
    torch.testing.assert_close(b["pool"][1, 0, 0], torch.tensor(-1.0))  # object 2's 180 deg member
    torch.testing.assert_close(a["half_extent_mm"], torch.full((3,), 50.0))


def test_augmentation_is_a_function_of_the_seed(cache):
    ds = TrainingSet(open_crop_datasets(cache), AugmentConfig())
    x1, x2, y = ds[(3, 11)]["image"], ds[(3, 11)]["image"], ds[(3, 12)]["image"]
    torch.testing.assert_close(x1, x2, rtol=0, atol=0)
    assert (x1 - y).abs().max() > 0.01
    torch.manual_seed(0)
    z1 = ds[(3, 11)]["image"]
    torch.manual_seed(1)
    z2 = ds[(3, 11)]["image"]  # the global random state plays no part
    torch.testing.assert_close(z1, z2, rtol=0, atol=0)


def test_background_replaces_only_pixels_outside_the_visible_mask(cache):
    plain = TrainingSet(open_crop_datasets(cache))
    aug = TrainingSet(
        open_crop_datasets(cache),
        AugmentConfig(background_p=1.0, occluder_p=0.0, color=False, box_shift=0.0, box_scale=(1.0, 1.0)),
    )
    for seed in range(4):
        a, p = aug[(2, seed)], plain[2]
        visib = p["mask_visib"]
        torch.testing.assert_close(a["image"][:, visib], p["image"][:, visib], rtol=0, atol=0)
        assert (a["image"][:, ~visib] - p["image"][:, ~visib]).abs().mean() > 0.01
        torch.testing.assert_close(a["xyz"], p["xyz"], rtol=0, atol=0)  # targets untouched


def test_occluder_covers_the_asked_share_of_the_box():
    gen = torch.Generator().manual_seed(0)
    box = (10, 20, 50, 60)
    for cover in (0.2, 0.45, 0.7) * 4:  # both shapes are drawn
        occ = occluder_mask(box, 64, cover, gen)
        inside = occ[20:60, 10:50].float().mean().item()
        assert abs(inside - cover) < 0.08, (cover, inside)
        assert occ.sum() == occ[20:60, 10:50].sum()  # never outside the box
    tex = procedural_texture(16, gen)
    assert tex.shape == (3, 16, 16) and tex.min() >= 0 and tex.max() <= 1


def test_sampler_resumes_mid_epoch_and_splits_ranks():
    s = EpochSampler(10, seed=3)
    s.set_epoch(2)
    full = list(s)
    s.set_epoch(2, start=4)
    assert list(s) == full[4:] and len(s) == 6
    s.set_epoch(3)
    assert [i for i, _ in s] != [i for i, _ in full]
    r0, r1 = EpochSampler(10, seed=3, rank=0, world_size=2), EpochSampler(10, seed=3, rank=1, world_size=2)
    for r in (r0, r1):
        r.set_epoch(2)
    assert sorted([i for i, _ in r0] + [i for i, _ in r1]) == list(range(10))
    assert len(r0) == len(r1) == 5


def test_bad_configs():
    with pytest.raises(ConfigError, match="occluder_cover"):
        AugmentConfig(occluder_cover=(0.8, 0.2)).validate()
    with pytest.raises(ConfigError, match="background_p"):
        AugmentConfig(background_p=1.5).validate()
    with pytest.raises(ConfigError, match="prepare"):
        TrainingSet({})


def test_indices_keep_a_subset_in_their_order(cache):
    full = TrainingSet(open_crop_datasets(cache))
    part = TrainingSet(open_crop_datasets(cache), indices=[11, 0, 7])
    assert len(part) == 3 and [int(part[i]["obj_index"]) for i in range(3)] == [1, 0, 1]
    torch.testing.assert_close(part[0]["image"], full[11]["image"], rtol=0, atol=0)
    assert len(part.all_records()) == 12
    with pytest.raises(ConfigError, match="indices"):
        TrainingSet(open_crop_datasets(cache), indices=[12])


def test_augment_presets_are_valid_ordered_by_strength_and_named_in_errors():
    configs = [AugmentConfig.preset(name) for name in AUGMENT_PRESETS]
    for cfg in configs:
        cfg.validate()
    assert configs[0] == AugmentConfig()
    full, light, none = configs
    assert full.background_p > light.background_p > none.background_p == 0
    assert full.occluder_p > light.occluder_p > none.occluder_p == 0
    assert none.box_jitter is None and not none.color
    with pytest.raises(ConfigError, match="unknown augmentation 'heavy'.*pix2pose"):
        AugmentConfig.preset("heavy")

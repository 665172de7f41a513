"""Batched on-device augmentation: reproducible from the item seeds, the per-item path's distributions, targets and
masks moving exactly with the image, torchvision's colour operations, CPU autocast and CUDA."""

import inspect
import math

import pytest
import torch
import torch.nn.functional as F
from torch.utils.data import default_collate

from bopnp.data import batch_augment as ba
from bopnp.data.augment import color_augment
from bopnp.data.crop_dataset import open_crop_datasets
from bopnp.data.training_set import AugmentConfig, TrainingSet

S = 64
ONLY_JITTER = AugmentConfig(background_p=0.0, occluder_p=0.0, color=False)
ONLY_BACKGROUND = AugmentConfig(background_p=0.8, occluder_p=0.0, box_shift=0.0, box_scale=(1.0, 1.0), color=False)
ONLY_OCCLUDER = AugmentConfig(background_p=0.0, occluder_p=0.5, box_shift=0.0, box_scale=(1.0, 1.0), color=False)
ONLY_COLOUR = AugmentConfig(background_p=0.0, occluder_p=0.0, box_shift=0.0, box_scale=(1.0, 1.0), color=True)


@pytest.fixture(scope="module")
def cache64(tmp_path_factory, tiny_cache_module):
    """Two objects, 12 crops each, 64 px."""
    return tiny_cache_module.make_tiny_cache(tmp_path_factory.mktemp("crops64"), size=S, per_object=12)


def _device_batch(cache, cfg, seeds, device="cpu"):
    ds = TrainingSet(open_crop_datasets(cache), cfg, device_augment=True)
    items = [ds[(s % len(ds), int(s))] for s in seeds]
    batch = default_collate(items)
    return {k: v.to(device) for k, v in batch.items()}


def _per_item(cache, cfg, seeds):
    ds = TrainingSet(open_crop_datasets(cache), cfg)
    return default_collate([ds[(s % len(ds), int(s))] for s in seeds])


def _raw(cache, seeds):
    ds = TrainingSet(open_crop_datasets(cache))
    return default_collate([ds[s % len(ds)] for s in seeds])


# -- reproducibility -------------------------------------------------------------------------------------------------
def test_same_seeds_same_batch_bitwise_and_independent_of_the_batch(cache64):
    cfg = AugmentConfig()
    seeds = list(range(100, 116))
    a = ba.augment_batch(_device_batch(cache64, cfg, seeds), cfg)
    b = ba.augment_batch(_device_batch(cache64, cfg, seeds), cfg)
    for k in a:
        torch.testing.assert_close(a[k], b[k], rtol=0, atol=0, msg=k)
    assert "aug_seed" not in a and "background" not in a
    # an item looks the same in another batch, at another position (per-item draws, no batch-wide generator)
    pick = [5, 4, 3, 2, 1]
    part = ba.augment_batch(_device_batch(cache64, cfg, [seeds[i] for i in pick]), cfg)
    torch.testing.assert_close(part["image"], a["image"][pick], rtol=0, atol=1e-6)
    torch.testing.assert_close(part["xyz"], a["xyz"][pick], rtol=0, atol=0)
    other = ba.augment_batch(_device_batch(cache64, cfg, [s + 1000 for s in seeds]), cfg)
    assert (other["image"] - a["image"]).abs().mean() > 0.02  # the seed matters
    torch.manual_seed(3)  # the global generators play no part
    c = ba.augment_batch(_device_batch(cache64, cfg, seeds), cfg)
    torch.testing.assert_close(c["image"], a["image"], rtol=0, atol=0)


def test_hashed_draws_are_uniform_normal_and_uncorrelated():
    seed = torch.arange(4000)
    u = ba.hashed_uniform(seed, 7, 3)
    assert u.dtype == torch.float64 and u.min() > 0 and u.max() < 1
    assert abs(u.mean() - 0.5) < 0.01 and abs(u.var() - 1 / 12) < 0.003
    hist = torch.histc(u[:, 0].float(), bins=10, min=0, max=1) / len(seed)
    assert (hist - 0.1).abs().max() < 0.025  # ~5 sigma of a binomial share of 4000
    corr = torch.corrcoef(torch.stack([u[:-1, 0], u[1:, 0], u[:-1, 1]]))
    assert corr.sub(torch.eye(3, dtype=corr.dtype)).abs().max() < 0.06  # neighbouring seeds and slots
    z = ba.hashed_normal(seed[:64], 0, (3, 32, 32))
    assert z.shape == (64, 3, 32, 32) and z.dtype == torch.float32
    assert abs(z.mean()) < 0.01 and abs(z.std() - 1) < 0.01
    assert abs((z.abs() < 1).float().mean() - 0.6827) < 0.01


def test_mirrors_the_per_item_colour_defaults():
    defaults = {k: p.default for k, p in inspect.signature(color_augment).parameters.items()}
    mirrored = dict(
        brightness=ba.BRIGHTNESS,
        contrast=ba.CONTRAST,
        saturation=ba.SATURATION,
        hue=ba.HUE,
        blur_p=ba.BLUR_P,
        noise_std=ba.NOISE_STD,
        erase_p=ba.ERASE_P,
    )
    assert mirrored == defaults


# -- independent references ------------------------------------------------------------------------------------------
def test_colour_jitter_equals_torchvision_in_the_drawn_order():
    from torchvision.transforms.v2 import functional as TF

    gen = torch.Generator().manual_seed(0)
    image = torch.rand(6, 3, 24, 24, generator=gen)
    image[0, :, :4] = 0.5  # grey pixels: hue undefined
    factors = torch.stack(
        [torch.rand(6, generator=gen) * 0.6 + 0.7 for _ in range(3)] + [torch.rand(6, generator=gen) * 0.06 - 0.03], 1
    )
    order = torch.stack([torch.randperm(4, generator=gen) for _ in range(6)])
    out = ba.color_jitter(image, factors, order)
    ops = [TF.adjust_brightness, TF.adjust_contrast, TF.adjust_saturation, TF.adjust_hue]
    for b in range(6):
        ref = image[b]
        for j in order[b].tolist():
            ref = ops[j](ref, float(factors[b, j]))
        torch.testing.assert_close(out[b], ref, rtol=0, atol=2e-6)


def test_blur_equals_torchvision_and_textures_equal_interpolate():
    from torchvision.transforms.v2 import functional as TF

    gen = torch.Generator().manual_seed(1)
    image = torch.rand(4, 3, 20, 20, generator=gen)
    sigma = torch.tensor([0.1, 0.5, 1.0, 1.5])
    out = ba.gaussian_blur(image, sigma)
    for b in range(4):
        ref = TF.gaussian_blur(image[b], [5, 5], [float(sigma[b])] * 2)
        torch.testing.assert_close(out[b], ref, rtol=0, atol=1e-6)
    u = torch.rand(5, 9, generator=gen, dtype=torch.float64)
    u[:, 0] = torch.tensor([0.0, 0.2, 0.5, 0.8, 0.999])  # 2 .. 16 cells
    u[:, 7] = torch.tensor([0.1, 0.9, 0.3, 0.7, 0.5])
    noise = torch.rand(5, 3, 16, 16, generator=gen)
    tex = ba.procedural_textures(u, noise, 40)
    for n in range(5):
        c = 2 + int(u[n, 0] * 15)
        smooth = F.interpolate(noise[n : n + 1, :, :c, :c], size=(40, 40), mode="bicubic", align_corners=False)[0]
        ramp = torch.linspace(0, 1, 40)
        r = ramp[None, :, None] if u[n, 7] < 0.5 else ramp[None, None, :]
        c0, c1, mix = u[n, 1:4].float()[:, None, None], u[n, 4:7].float()[:, None, None], float(u[n, 8])
        ref = (mix * smooth + (1 - mix) * (c0 + (c1 - c0) * r)).clamp(0, 1)
        torch.testing.assert_close(tex[n], ref, rtol=0, atol=1e-5)


def test_erase_and_occluder_shapes_follow_their_parameters():
    gen = torch.Generator().manual_seed(2)
    rect, fits = ba.erase_boxes(torch.rand(2000, ba.ERASE_TRIES, 4, generator=gen, dtype=torch.float64), S)
    assert fits.float().mean() > 0.99
    area = (rect[:, 2] * rect[:, 3]).double() / S**2
    assert area.min() > 0.015 and area.max() < 0.21  # 2 .. 20 % of the crop, up to rounding
    assert abs(area.mean() - 0.11) < 0.01
    masks = ba.rect_masks(rect, S)
    assert ((rect[:, 0] + rect[:, 2] <= S) & (rect[:, 1] + rect[:, 3] <= S)).all()
    torch.testing.assert_close(masks.flatten(1).sum(1), rect[:, 2] * rect[:, 3])
    box = torch.tensor([[10, 20, 50, 60]]).expand(400, 4)
    u = torch.rand(400, 5, generator=gen, dtype=torch.float64)
    occ = ba.occluder_masks(box, u, S, (0.2, 0.7))
    inside = occ[:, 20:60, 10:50].flatten(1).float().mean(1)
    cover = 0.2 + 0.5 * u[:, 0]
    assert (inside - cover).abs().max() < 0.08  # as the per-item occluder_mask test bounds it
    assert (occ.flatten(1).sum(1) == occ[:, 20:60, 10:50].flatten(1).sum(1)).all()


# -- box jitter: one resampling of image, targets and masks -------------------------------------------------------
def _coordinate_batch(B=6):
    """Crops whose image and targets encode their own pixel coordinates: image (x/S, y/S, 0.5), xyz the same
    normalised coordinates, full mask a checkerboard of 4 px squares, visible mask its left half."""
    c = torch.arange(S, dtype=torch.float32)
    yy, xx = torch.meshgrid(c, c, indexing="ij")
    img = torch.stack([xx / S, yy / S, torch.full_like(xx, 0.5)])
    full = ((xx // 4 + yy // 4) % 2 == 0) & (xx > 2)
    K = torch.tensor([[500.0, 0.0, 31.5], [0.0, 500.0, 31.5], [0.0, 0.0, 1.0]])
    return {
        "image": img.expand(B, 3, S, S).clone(),
        "xyz": img.expand(B, 3, S, S).clone(),
        "mask_full": full.expand(B, S, S).clone(),
        "mask_visib": (full & (xx < S / 2)).expand(B, S, S).clone(),
        "mask_inside": torch.ones(B, S, S, dtype=torch.bool),
        "K": K.expand(B, 3, 3).clone(),
        "box_xyxy": torch.tensor([100.0, 50.0, 164.0, 114.0]).expand(B, 4).clone(),
        "aug_seed": torch.arange(B) * 7 + 1,
        "background": torch.zeros(B, 3, S, S, dtype=torch.uint8),
        "background_index": torch.full((B,), -1),
    }


def test_targets_and_masks_move_exactly_with_the_image():
    cfg = AugmentConfig(background_p=0.0, occluder_p=0.0, box_shift=0.15, box_scale=(0.7, 1.3), color=False)
    batch = _coordinate_batch()
    out = ba.augment_batch(batch, cfg)
    c = torch.arange(S, dtype=torch.float64)
    for b in range(len(batch["image"])):
        A = out["K"][b].double() @ torch.linalg.inv(batch["K"][b].double())  # old crop px -> new crop px
        assert abs(A[0, 1]) < 1e-6 and abs(A[1, 0]) < 1e-6 and abs(A[0, 0] - A[1, 1]) < 1e-4
        # the source pixel of every new pixel, from K: the image says it (bilinear of a linear ramp) ...
        src_x = (c - A[0, 2]) / A[0, 0]
        src_y = (c - A[1, 2]) / A[1, 1]
        inner_x = (src_x >= 0) & (src_x <= S - 1)
        inner_y = (src_y >= 0) & (src_y <= S - 1)
        inner = inner_y[:, None] & inner_x[None]
        img = out["image"][b].double()
        torch.testing.assert_close(img[0][inner], (src_x[None] / S).expand(S, S)[inner], rtol=0, atol=2e-5)
        torch.testing.assert_close(img[1][inner], (src_y[:, None] / S).expand(S, S)[inner], rtol=0, atol=2e-5)
        # ... the targets hold the nearest source pixel's value, never a blend, and the masks that same pixel's
        xyz = out["xyz"][b].double()
        near_x, near_y = torch.round(src_x), torch.round(src_y)
        ok = inner & ((src_x - near_x).abs() < 0.49)[None] & ((src_y - near_y).abs() < 0.49)[:, None]
        torch.testing.assert_close(xyz[0][ok], (near_x[None] / S).expand(S, S)[ok], rtol=0, atol=1e-6)
        torch.testing.assert_close(xyz[1][ok], (near_y[:, None] / S).expand(S, S)[ok], rtol=0, atol=1e-6)
        iy, ix = near_y.long().clamp(0, S - 1), near_x.long().clamp(0, S - 1)
        for key in ("mask_full", "mask_visib"):
            expected = batch[key][b][iy[:, None], ix[None]]
            assert torch.equal(out[key][b][ok], expected[ok]), key
        # outside the stored crop: zero image, zero targets, empty masks
        off = ~((src_y > -0.5) & (src_y < S - 0.5))[:, None] | ~((src_x > -0.5) & (src_x < S - 0.5))[None]
        assert (out["xyz"][b][:, off] == 0).all() and not out["mask_full"][b][off].any()
        assert not out["mask_inside"][b][off].any() and out["mask_inside"][b][~off].all()
        # the box in image pixels moves with K: 1 crop px = (box side / S) image px
        side = out["box_xyxy"][b, 2] - out["box_xyxy"][b, 0]
        assert abs(float(side) - 64.0 / float(A[0, 0])) < 1e-3
        assert abs(float(out["box_xyxy"][b, 0]) - (100.0 - float(A[0, 2] / A[0, 0]))) < 1e-3
    assert (out["K"][:, 0, 0] != batch["K"][:, 0, 0]).all()  # every item was jittered


def test_augmentation_leaves_targets_and_visible_pixels_alone_without_jitter(cache64):
    seeds = list(range(40))
    raw = _raw(cache64, seeds)
    cfg = AugmentConfig(background_p=1.0, occluder_p=0.0, box_shift=0.0, box_scale=(1.0, 1.0), color=False)
    out = ba.augment_batch(_device_batch(cache64, cfg, seeds), cfg)
    for key in ("xyz", "mask_full", "mask_visib", "K", "box_xyxy"):
        torch.testing.assert_close(out[key], raw[key], rtol=0, atol=0, msg=key)
    visib = raw["mask_visib"][:, None].expand_as(raw["image"])
    torch.testing.assert_close(out["image"][visib], raw["image"][visib], rtol=0, atol=0)
    assert (out["image"][~visib] - raw["image"][~visib]).abs().mean() > 0.05


# -- the per-item path's distributions -------------------------------------------------------------------------------
N_STATS = 384  # items per path; the tolerances below are ~4 standard errors of a difference at this size


def _changed(out, raw):
    return (out["image"] - raw["image"]).abs().amax(1) > 1e-6  # (B, S, S)


def test_background_statistics_match_the_per_item_path(cache64):
    """The tiny cache's crops share one flat grey ground, so a crop background leaves it as it is and only a
    texture shows: background_p (1 - background_crop_p) = 0.4 of the items."""
    seeds = list(range(N_STATS))
    raw = _raw(cache64, seeds)
    outside = ~raw["mask_visib"]
    device_batch = _device_batch(cache64, ONLY_BACKGROUND, seeds)
    stats = {}
    for name, out in (
        ("item", _per_item(cache64, ONLY_BACKGROUND, seeds)),
        ("batch", ba.augment_batch(device_batch, ONLY_BACKGROUND)),
    ):
        changed = _changed(out, raw)
        assert not changed[~outside].any()
        replaced = changed.flatten(1).float().mean(1) > 0.5 * outside.flatten(1).float().mean(1)
        pix = out["image"].permute(1, 0, 2, 3)[:, replaced[:, None, None].expand_as(outside) & outside]
        stats[name] = (replaced.float().mean(), changed.float().mean(), pix.mean(), pix.std())
    item, batch = stats["item"], stats["batch"]
    assert abs(item[0] - 0.4) < 0.1 and abs(batch[0] - 0.4) < 0.1  # the share of items given a texture
    assert abs(item[0] - batch[0]) < 0.1
    assert abs(item[1] - batch[1]) < 0.06  # the share of replaced pixels
    assert abs(item[2] - batch[2]) < 0.04 and abs(item[3] - batch[3]) < 0.04  # the textures' colours
    crop = device_batch["background_index"] >= 0
    assert abs(crop.float().mean() - 0.4) < 0.1  # the workers read another crop for these
    for b in crop.nonzero()[:, 0].tolist()[:8]:
        other = int(device_batch["background_index"][b])
        ds = TrainingSet(open_crop_datasets(cache64))
        expected = (ds[other]["image"] * 255).round().to(torch.uint8)
        assert torch.equal(device_batch["background"][b], expected)


def test_occluder_statistics_match_the_per_item_path(cache64):
    seeds = list(range(N_STATS))
    raw = _raw(cache64, seeds)
    boxes, _ = ba.mask_boxes(raw["mask_full"])
    box_area = ((boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])).double()
    stats = {}
    for name, out in (
        ("item", _per_item(cache64, ONLY_OCCLUDER, seeds)),
        ("batch", ba.augment_batch(_device_batch(cache64, ONLY_OCCLUDER, seeds), ONLY_OCCLUDER)),
    ):
        changed = _changed(out, raw)
        share = changed.flatten(1).double().sum(1) / box_area  # of the object's box
        hit = share > 0.05
        stats[name] = (hit.float().mean(), share[hit].mean(), share[hit].std())
    item, batch = stats["item"], stats["batch"]
    assert abs(item[0] - 0.5) < 0.1 and abs(batch[0] - 0.5) < 0.1
    assert abs(item[0] - batch[0]) < 0.1  # the share of occluded items
    assert abs(item[1] - batch[1]) < 0.04  # the occluded share of the box: U(0.2, 0.7), mean 0.45, std 0.14
    assert abs(item[2] - batch[2]) < 0.03


def test_colour_statistics_match_the_per_item_path(cache64):
    seeds = list(range(N_STATS))
    raw = _raw(cache64, seeds)
    stats = {}
    for name, out in (
        ("item", _per_item(cache64, ONLY_COLOUR, seeds)),
        ("batch", ba.augment_batch(_device_batch(cache64, ONLY_COLOUR, seeds), ONLY_COLOUR)),
    ):
        d = out["image"] - raw["image"]
        mean_shift = d.mean((1, 2, 3))  # brightness / contrast changes per item
        ratio = out["image"].std((1, 2, 3)) / raw["image"].std((1, 2, 3))  # contrast, saturation, blur
        erased = ((out["image"] == 0).all(1).flatten(1).float().mean(1) > 0.015).float()  # a zero rectangle
        # pixel noise: the high-frequency part of the change on flat regions (the raw crops' flat grey ground)
        flat = (raw["image"][:, :, 1:-1, 1:-1] - 90 / 255).abs().amax(1) < 1e-6
        lap = 4 * out["image"][:, :, 1:-1, 1:-1] - out["image"][:, :, :-2, 1:-1] - out["image"][:, :, 2:, 1:-1]
        lap = lap - out["image"][:, :, 1:-1, :-2] - out["image"][:, :, 1:-1, 2:]
        rough = lap.permute(1, 0, 2, 3)[:, flat & (erased[:, None, None] == 0)].std()
        stats[name] = dict(
            shift_mean=mean_shift.mean(),
            shift_std=mean_shift.std(),
            ratio_mean=ratio.mean(),
            ratio_std=ratio.std(),
            erased=erased.mean(),
            rough=rough,
        )
    item, batch = stats["item"], stats["batch"]
    tol = dict(shift_mean=0.012, shift_std=0.01, ratio_mean=0.03, ratio_std=0.02, erased=0.1)
    for key, t in tol.items():
        assert abs(item[key] - batch[key]) < t, (key, item[key], batch[key])
    assert abs(item["erased"] - 0.3) < 0.1
    assert abs(item["rough"] / batch["rough"] - 1) < 0.15  # the noise (and blur) level


def test_box_jitter_distribution_matches_the_per_item_path(cache64):
    seeds = list(range(N_STATS))
    raw = _raw(cache64, seeds)
    stats = {}
    for name, out in (
        ("item", _per_item(cache64, ONLY_JITTER, seeds)),
        ("batch", ba.augment_batch(_device_batch(cache64, ONLY_JITTER, seeds), ONLY_JITTER)),
    ):
        scale = (raw["K"][:, 0, 0] / out["K"][:, 0, 0]).double()  # new side / stored side
        side = out["box_xyxy"][:, 2] - out["box_xyxy"][:, 0]
        centre = (out["box_xyxy"][:, 0] + side / 2 - raw["box_xyxy"][:, 0] - 32.0).double() / 64  # stored sides
        stats[name] = (scale, centre)
    for (s_i, c_i), (s_b, c_b) in [(stats["item"], stats["batch"])]:
        for s in (s_i, s_b):
            assert s.min() >= 0.85 - 1e-4 and s.max() <= 1.15 + 1e-4
        assert abs(s_i.mean() - s_b.mean()) < 0.015 and abs(s_i.std() - s_b.std()) < 0.01
        assert abs(s_b.std() - 0.3 / math.sqrt(12)) < 0.01
        assert abs(c_i.std() - c_b.std()) < 0.01 and c_b.abs().max() <= 0.1 + 0.01


# -- autocast and devices --------------------------------------------------------------------------------------------
def test_same_result_inside_cpu_autocast(cache64):
    cfg = AugmentConfig()
    batch = _device_batch(cache64, cfg, list(range(8)))
    plain = ba.augment_batch(batch, cfg)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        under = ba.augment_batch(batch, cfg)
    for k in plain:
        assert under[k].dtype == plain[k].dtype, k
        torch.testing.assert_close(under[k], plain[k], rtol=0, atol=0, msg=k)


@pytest.mark.gpu
def test_cuda_batch_matches_the_cpu_batch(cache64):
    cfg = AugmentConfig()
    seeds = list(range(64))
    cpu = ba.augment_batch(_device_batch(cache64, cfg, seeds), cfg)
    with torch.autocast("cuda", dtype=torch.bfloat16):
        cuda = ba.augment_batch(_device_batch(cache64, cfg, seeds, device="cuda"), cfg)
    assert cuda["image"].device.type == "cuda" and cuda["image"].dtype == torch.float32
    for key in ("mask_full", "mask_visib", "mask_inside"):
        assert (cuda[key].cpu() != cpu[key]).float().mean() < 1e-3, key  # nearest ties may round apart
    torch.testing.assert_close(cuda["K"].cpu(), cpu["K"], rtol=1e-5, atol=1e-4)
    assert (cuda["image"].cpu() - cpu["image"]).abs().mean() < 2e-3

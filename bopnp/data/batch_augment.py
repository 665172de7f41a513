"""Pix2Pose's training augmentation as batched tensor operations on the device that trains (CPU or CUDA).

Loader workers only read raw crops (:class:`bopnp.data.training_set.TrainingSet` with ``device_augment=True``);
:func:`augment_batch` then runs on the collated batch, where the network is: box jitter (one affine resampling of
image, coordinate target and masks: image bilinear, targets and masks nearest, ``K`` and the box updated), a
background pasted outside the visible mask (a procedural texture or another training crop, read by the worker),
an occluder over part of the object's box, colour jitter (brightness, contrast, saturation, hue in a random order),
Gaussian blur, Gaussian noise and random erasing. The distributions are those of the per-item path
(:meth:`bopnp.data.training_set.TrainingSet._augment` with :func:`bopnp.data.augment.color_augment` and
:class:`bopnp.data.augment.BoxJitter`).

Randomness is counter-based: every random number of an item is a hash of the item's seed (the one
:class:`bopnp.data.training_set.EpochSampler` gives it) and a fixed slot, computed with integer tensor operations
on the item's device. So an augmented item depends only on its own crop and seed: not on the batch it is in, the
worker that loaded it, a global generator or the device (the draws are the same on CPU and CUDA), and a resumed run
sees exactly the batches of an uninterrupted one, without a host synchronisation to seed a generator.

Every function is pure and batched and takes its device and dtype from its inputs; :func:`augment_batch` runs in
float32 with autocast disabled, whatever the caller's autocast state.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor

#: the colour augmentation of :func:`bopnp.data.augment.color_augment` (its defaults)
BRIGHTNESS, CONTRAST, SATURATION, HUE = 0.3, 0.3, 0.3, 0.03
BLUR_P, BLUR_SIGMA, BLUR_KERNEL = 0.2, (0.1, 1.5), 5
NOISE_STD = 0.02
ERASE_P, ERASE_SCALE, ERASE_RATIO, ERASE_TRIES = 0.3, (0.02, 0.2), (0.3, 3.3), 10

#: largest cell count of a procedural texture (:func:`bopnp.data.training_set.procedural_texture`: 2 .. 16)
TEXTURE_CELLS = 16

# slots of the counter-based draws of one item (see :func:`hashed_uniform`)
SLOT_BACKGROUND, SLOT_BACKGROUND_CROP, SLOT_OTHER = 0, 1, 2
SLOT_JITTER = 3  # 3: scale, shift x, shift y
SLOT_OCCLUDER = 6  # 6: apply, cover, aspect, ellipse, position x, position y
SLOT_TEXTURES = 12  # 2 textures x 9: cells, c0 (3), c1 (3), orientation, mix
SLOT_COLOUR = 30  # 4 factors, then 4 keys whose order is the order of the operations
SLOT_BLUR = 38  # apply, sigma
SLOT_ERASE = 40  # apply, then ERASE_TRIES x (area, log aspect, row, column)
SLOT_TEXTURE_NOISE = 100  # 2 x 3 x TEXTURE_CELLS x TEXTURE_CELLS
SLOT_PIXEL_NOISE = 4096  # one per noise value

_M32 = 0xFFFFFFFF


def _mix32(x: Tensor) -> Tensor:
    """A bijective 32-bit integer hash, on int64 tensors holding values in [0, 2**32) (no product overflows)."""
    x = (((x >> 16) ^ x) * 0x45D9F3B) & _M32
    x = (((x >> 16) ^ x) * 0x45D9F3B) & _M32
    return (x >> 16) ^ x


def _item_keys(seed: Tensor) -> Tensor:
    """(B,) int64 32-bit keys of item seeds."""
    return _mix32(_mix32((seed.long() ^ 0x5BD1E995) & _M32) ^ 0x27D4EB2F)


def _hash(seed: Tensor, counter: Tensor) -> Tensor:
    """(B, *C) 32-bit hashes of (seed, counter) pairs: seed (B,) int64, counter (*C,) int64 in [0, 2**32)."""
    key = _item_keys(seed)
    return _mix32(key.reshape(key.shape + (1,) * counter.dim()) ^ counter)


def hashed_uniform(seed: Tensor, first_slot: int, count: int) -> Tensor:
    """Uniform draws in (0, 1) of each item, a fixed function of its seed and the slots.

    Args:
        seed: (B,) int64 item seeds.
        first_slot, count: the slots ``first_slot .. first_slot + count - 1``.
    Returns:
        (B, count) float64 on ``seed``'s device.
    """
    counter = torch.arange(first_slot, first_slot + count, device=seed.device, dtype=torch.long)
    return (_hash(seed, counter).double() + 0.5) / 2.0**32


def hashed_normal(seed: Tensor, first_slot: int, shape: tuple[int, ...]) -> Tensor:
    """Standard normal draws of each item: Box-Muller on the two 16-bit halves of one hash per value (tails cut at
    4.9 sigma; plenty for pixel noise, and a quarter of the integer work of two 32-bit uniforms).

    Args:
        seed: (B,) int64 item seeds.
        first_slot: the first of the ``prod(shape)`` slots used.
        shape: the shape of one item's draws.
    Returns:
        (B, *shape) float32 on ``seed``'s device.
    """
    counter = torch.arange(first_slot, first_slot + math.prod(shape), device=seed.device, dtype=torch.long)
    h = _hash(seed, counter)
    u1 = ((h >> 16).float() + 0.5) / 65536.0  # never 0 or 1
    u2 = ((h & 0xFFFF).float() + 0.5) / 65536.0
    r = torch.sqrt(-2.0 * torch.log(u1))
    return (r * torch.cos((2.0 * math.pi) * u2)).reshape(len(seed), *shape)


def background_choice(seed: Tensor, background_p: float, background_crop_p: float, n_items: int) -> Tensor:
    """Which training crop each item takes as its background: what a loader worker reads for it.

    Args:
        seed: (B,) int64 item seeds.
        background_p, background_crop_p: see :class:`bopnp.data.training_set.AugmentConfig`.
        n_items: the size of the training set (a set of one crop never takes a crop background).
    Returns:
        (B,) int64: the position of the background crop in the training set, or -1 (none, or a texture).
    """
    u = hashed_uniform(seed, SLOT_BACKGROUND, 3)
    take = (u[:, 0] < background_p) & (u[:, 1] < background_crop_p) & (n_items > 1)
    other = (u[:, 2] * n_items).long().clamp_(max=max(n_items - 1, 0))
    return torch.where(take, other, torch.full_like(other, -1))


# -- box jitter ------------------------------------------------------------------------------------------------------
def jitter_boxes(u: Tensor, size: int, max_shift: float, scale_range: tuple[float, float]) -> Tensor:
    """Jittered boxes in pixels of ``size x size`` crops, as :meth:`bopnp.data.augment.BoxJitter.sample_box` draws
    them from three uniforms.

    Args:
        u: (B, 3) uniforms in [0, 1): side scale, centre shift x, centre shift y.
    Returns:
        (B, 4) ``(x1, y1, x2, y2)`` crop pixels, ``u``'s dtype; no shift and scale 1 give ``(0, 0, size, size)``.
    """
    lo, hi = scale_range
    side = size * (lo + (hi - lo) * u[:, 0])
    cx = (size - 1) / 2.0 + (2 * u[:, 1] - 1) * max_shift * size
    cy = (size - 1) / 2.0 + (2 * u[:, 2] - 1) * max_shift * size
    x1 = cx - side / 2.0 + side / (2.0 * size)
    y1 = cy - side / 2.0 + side / (2.0 * size)
    return torch.stack([x1, y1, x1 + side, y1 + side], -1)


def box_grid(sub_xyxy: Tensor, size: int) -> Tensor:
    """The ``grid_sample`` grid (``align_corners=False``) that resamples the box ``sub_xyxy`` of a ``size x size``
    crop into a new ``size x size`` crop: output pixel (j, i) samples ``(x1 + j s, y1 + i s)``, ``s = side / size``,
    the map of :func:`bopnp.data.crop_geometry.warp_crop` (pixel centres at integers).

    Args:
        sub_xyxy: (B, 4) boxes in crop pixels.
    Returns:
        (B, size, size, 2) float32 normalised ``(x, y)`` sample positions.
    """
    sub = sub_xyxy.double()
    d = torch.arange(size, device=sub.device, dtype=torch.float64)
    sx = (sub[:, 2] - sub[:, 0]) / size
    sy = (sub[:, 3] - sub[:, 1]) / size
    gx = (2 * (sub[:, 0, None] + d * sx[:, None]) + 1) / size - 1  # (B, S) along columns
    gy = (2 * (sub[:, 1, None] + d * sy[:, None]) + 1) / size - 1  # (B, S) along rows
    B = len(sub)
    grid = torch.stack([gx[:, None, :].expand(B, size, size), gy[:, :, None].expand(B, size, size)], -1)
    return grid.float()


def resample_crops(
    image: Tensor, xyz: Tensor, masks: Tensor, sub_xyxy: Tensor, K: Tensor, box_xyxy: Tensor
) -> tuple[Tensor, Tensor, Tensor, Tensor, Tensor]:
    """Re-crop a batch of crops from boxes inside them: ONE affine map for image, coordinates and masks (image
    bilinear; coordinates and masks nearest, never blended across an edge; zeros outside the stored crop), and the
    crops' intrinsics and boxes moved with it.

    Args:
        image: (B, 3, S, S) float. xyz: (B, 3, S, S) float. masks: (B, M, S, S) bool.
        sub_xyxy: (B, 4) the new boxes, crop pixels. K: (B, 3, 3) crop intrinsics. box_xyxy: (B, 4) crop boxes in
            image pixels.
    Returns:
        image, xyz, masks of the same shapes and dtypes, K (B, 3, 3) and box_xyxy (B, 4) of the new crops.
    """
    B, _, S, _ = image.shape
    grid = box_grid(sub_xyxy, S).to(image.device)
    image = F.grid_sample(image.float(), grid, mode="bilinear", padding_mode="zeros", align_corners=False)
    nearest_in = torch.cat([xyz.float(), masks.float()], 1)
    nearest = F.grid_sample(nearest_in, grid, mode="nearest", padding_mode="zeros", align_corners=False)
    xyz_out, masks_out = nearest[:, :3].to(xyz.dtype), nearest[:, 3:] > 0.5
    sub = sub_xyxy.to(K.dtype)
    s = S / (sub[:, 2] - sub[:, 0])
    A = torch.zeros(B, 3, 3, dtype=K.dtype, device=K.device)
    A[:, 0, 0], A[:, 1, 1], A[:, 2, 2] = s, s, 1.0
    A[:, 0, 2], A[:, 1, 2] = -sub[:, 0] * s, -sub[:, 1] * s
    scale = (box_xyxy[:, 2:] - box_xyxy[:, :2]).to(sub.dtype) / S  # image pixels per crop pixel (x, y)
    box = torch.cat([box_xyxy[:, :2] + sub[:, :2] * scale, box_xyxy[:, :2] + sub[:, 2:] * scale], -1)
    return image, xyz_out, masks_out, A @ K, box.to(box_xyxy.dtype)


# -- backgrounds and occluders ---------------------------------------------------------------------------------------
def bicubic_matrix(cells: Tensor, size: int) -> Tensor:
    """Per-item matrices of ``F.interpolate(mode="bicubic", align_corners=False)`` from ``cells`` to ``size``
    samples along one axis (cubic coefficient -0.75, taps past the edges clamped to the edge sample).

    Args:
        cells: (N,) int64 input sizes, each <= ``TEXTURE_CELLS``.
    Returns:
        (N, size, TEXTURE_CELLS) float32: output sample d = sum over c of ``M[d, c] * input[c]`` (columns past the
        item's size are zero).
    """
    N, dev = len(cells), cells.device
    d = torch.arange(size, device=dev, dtype=torch.float64)
    p = (d[None] + 0.5) * cells[:, None].double() / size - 0.5  # (N, size) source positions
    p0 = torch.floor(p)
    t = (p - p0)[..., None]
    offsets = torch.arange(-1, 3, device=dev, dtype=torch.float64)
    x = (t - offsets).abs()  # distance to each of the 4 taps
    A = -0.75
    near = ((A + 2) * x - (A + 3)) * x * x + 1
    far = ((A * x - 5 * A) * x + 8 * A) * x - 4 * A
    w = torch.where(x <= 1, near, far)  # (N, size, 4)
    taps = (p0[..., None] + offsets).long()
    taps = torch.minimum(taps.clamp(min=0), (cells - 1)[:, None, None])
    M = torch.zeros(N, size, TEXTURE_CELLS, device=dev, dtype=torch.float64)
    return M.scatter_add_(2, taps, w).float()


def procedural_textures(u: Tensor, noise: Tensor, size: int) -> Tensor:
    """Random backgrounds, as :func:`bopnp.data.training_set.procedural_texture` makes them: smooth colour noise
    (``cells x cells`` uniform cells, bicubic) at a random scale over a colour gradient.

    Args:
        u: (N, 9) uniforms in [0, 1): cells (2 .. 16), c0 (3), c1 (3), orientation (< 0.5: along rows), mix.
        noise: (N, 3, 16, 16) uniform cell values; only the first ``cells x cells`` of each are used.
        size: side of the textures, pixels.
    Returns:
        (N, 3, size, size) float32 in [0, 1] on ``noise``'s device.
    """
    dev = noise.device
    cells = (2 + (u[:, 0] * 15).long()).clamp_(2, TEXTURE_CELLS)
    M = bicubic_matrix(cells, size)[:, None]  # (N, 1, size, 16): one matrix for rows and columns
    smooth = M @ noise.float() @ M.transpose(-1, -2)
    ramp = torch.linspace(0, 1, size, device=dev)
    c0, c1 = u[:, 1:4].float()[:, :, None, None], u[:, 4:7].float()[:, :, None, None]
    along_rows = (u[:, 7] < 0.5)[:, None, None, None]
    r = torch.where(along_rows, ramp[None, None, :, None], ramp[None, None, None, :])
    gradient = c0 + (c1 - c0) * r
    mix = u[:, 8].float()[:, None, None, None]
    return (mix * smooth + (1 - mix) * gradient).clamp(0, 1)


def mask_boxes(mask: Tensor) -> tuple[Tensor, Tensor]:
    """The bounding boxes of masks, as the per-item path takes them (``x2``, ``y2`` one past the last pixel).

    Args:
        mask: (B, S, S) bool.
    Returns:
        (B, 4) int64 ``(x1, y1, x2, y2)`` pixels (0 for an empty mask), (B,) bool: the mask is not empty.
    """
    S = mask.shape[-1]
    cols, rows = mask.any(1), mask.any(2)  # (B, S): a pixel in that column / row
    x1, y1 = cols.int().argmax(1), rows.int().argmax(1)
    x2, y2 = S - cols.flip(1).int().argmax(1), S - rows.flip(1).int().argmax(1)
    return torch.stack([x1, y1, x2, y2], -1).long(), cols.any(1)


def occluder_masks(box_xyxy: Tensor, u: Tensor, size: int, cover_range: tuple[float, float]) -> Tensor:
    """Random ellipses or rectangles covering about ``cover`` of their boxes, as
    :func:`bopnp.data.training_set.occluder_mask` draws them (one per item).

    Args:
        box_xyxy: (B, 4) boxes, crop pixels. u: (B, 5) uniforms in [0, 1): cover, aspect, ellipse, position x, y.
        cover_range: (low, high) of the covered share.
    Returns:
        (B, size, size) bool.
    """
    b = box_xyxy.double()
    u = u.double()
    bw, bh = (b[:, 2] - b[:, 0]).clamp(min=1), (b[:, 3] - b[:, 1]).clamp(min=1)
    lo, hi = cover_range
    cover = lo + (hi - lo) * u[:, 0]
    aspect = 0.5 + 1.5 * u[:, 1]
    ellipse = u[:, 2] < 0.5
    shape_fill = torch.where(ellipse, torch.full_like(bw, 4 / math.pi), torch.ones_like(bw))  # an ellipse fills pi/4
    area = torch.minimum(cover * bw * bh * shape_fill, bw * bh)
    w = torch.minimum((area * aspect).sqrt(), bw)
    h = torch.minimum(area / w, bh)
    w = torch.minimum(area / h, bw)
    cx = (b[:, 0] + w / 2 + u[:, 3] * (bw - w)).float()[:, None, None]
    cy = (b[:, 1] + h / 2 + u[:, 4] * (bh - h)).float()[:, None, None]
    hw, hh = (w / 2).float()[:, None, None], (h / 2).float()[:, None, None]
    c = torch.arange(size, device=box_xyxy.device, dtype=torch.float32) + 0.5
    xx, yy = c[None, None, :], c[None, :, None]
    in_ellipse = ((xx - cx) / hw) ** 2 + ((yy - cy) / hh) ** 2 <= 1
    in_rect = ((xx - cx).abs() <= hw) & ((yy - cy).abs() <= hh)
    return torch.where(ellipse[:, None, None], in_ellipse, in_rect)


# -- colour, blur, noise, erasing ------------------------------------------------------------------------------------
def _gray(image: Tensor) -> Tensor:
    """(B, 1, S, S) luma (ITU-R 601-2, as torchvision's grayscale)."""
    return (0.2989 * image[:, 0] + 0.587 * image[:, 1] + 0.114 * image[:, 2])[:, None]


def rgb_to_hsv(image: Tensor) -> Tensor:
    """(B, 3, S, S) RGB in [0, 1] -> HSV, every channel in [0, 1] (hue 0 for grey pixels)."""
    r, g, b = image.unbind(1)
    v, _ = image.max(1)
    m, _ = image.min(1)
    chroma = v - m
    grey = chroma == 0
    safe = torch.where(grey, torch.ones_like(chroma), chroma)
    s = chroma / torch.where(v == 0, torch.ones_like(v), v)
    h = (
        torch.where(v == r, ((g - b) / safe) % 6.0, torch.where(v == g, (b - r) / safe + 2.0, (r - g) / safe + 4.0))
        / 6.0
    )
    h = torch.where(grey, torch.zeros_like(h), h) % 1.0
    return torch.stack([h, s, v], 1)


def hsv_to_rgb(hsv: Tensor) -> Tensor:
    """(B, 3, S, S) HSV in [0, 1] -> RGB in [0, 1]."""
    h, s, v = hsv.unbind(1)

    def channel(n: float) -> Tensor:
        k = (n + h * 6.0) % 6.0
        return v - v * s * torch.clamp(torch.minimum(k, 4.0 - k), 0.0, 1.0)

    return torch.stack([channel(5.0), channel(3.0), channel(1.0)], 1).clamp(0, 1)


def _blend_step(image: Tensor, op: Tensor, factors: Tensor) -> Tensor:
    """One of brightness (op 0), contrast (1), saturation (2) per item, or nothing (-1): ``f x + (1 - f) y``
    clamped to [0, 1], with y = 0, the mean luma, or the luma; an item doing nothing gets f = 1 (exactly x)."""
    f = torch.where(op >= 0, factors.gather(1, op.clamp(min=0)[:, None])[:, 0], torch.ones_like(factors[:, 0]))
    gray = _gray(image)
    mean = gray.mean((1, 2, 3), keepdim=True)
    # y = a luma + b mean with a, b in {0, 1}: exactly 0, the mean or the luma
    a = (op == 2).to(image.dtype)[:, None, None, None]
    b = (op == 1).to(image.dtype)[:, None, None, None]
    f = f[:, None, None, None]
    return (f * image + (1 - f) * (a * gray + b * mean)).clamp(0, 1)


def color_jitter(image: Tensor, factors: Tensor, order: Tensor) -> Tensor:
    """torchvision's ``ColorJitter`` with per-item factors and order.

    Args:
        image: (B, 3, S, S) float in [0, 1].
        factors: (B, 4) brightness, contrast, saturation factors (1: unchanged) and hue shift (turns, 0: unchanged).
        order: (B, 4) int64, a permutation of 0..3 per item (0 brightness, 1 contrast, 2 saturation, 3 hue).
    Returns:
        (B, 3, S, S) in [0, 1].
    """
    # hue, the costly one, runs once for all; the blends before and after it are done position by position
    hue_at = (order == 3).long().argmax(1)
    none = torch.full_like(hue_at, -1)
    for k in range(3):
        image = _blend_step(image, torch.where(hue_at > k, order[:, k], none), factors[:, :3])
    hsv = rgb_to_hsv(image)
    hue = (hsv[:, 0] + factors[:, 3, None, None].to(hsv.dtype)) % 1.0
    image = hsv_to_rgb(torch.stack([hue, hsv[:, 1], hsv[:, 2]], 1))
    for k in range(1, 4):
        image = _blend_step(image, torch.where(hue_at < k, order[:, k], none), factors[:, :3])
    return image


def gaussian_blur(image: Tensor, sigma: Tensor, kernel_size: int = BLUR_KERNEL) -> Tensor:
    """Per-item Gaussian blur (torchvision's kernel: ``exp(-x^2 / (2 sigma^2))`` at x = -k/2 .. k/2, normalised;
    reflected borders), separable.

    Args:
        image: (B, C, S, S) float. sigma: (B,) pixels.
    Returns:
        (B, C, S, S).
    """
    B, C, S, _ = image.shape
    half = kernel_size // 2
    x = torch.arange(-half, half + 1, device=image.device, dtype=torch.float32)
    k = torch.exp(-0.5 * (x[None] / sigma.float()[:, None]) ** 2)
    k = (k / k.sum(1, keepdim=True)).repeat_interleave(C, 0)  # (B C, k)
    out = F.pad(image.reshape(1, B * C, S, S), (half, half, half, half), mode="reflect")
    out = F.conv2d(out, k[:, None, None, :], groups=B * C)
    out = F.conv2d(out, k[:, None, :, None], groups=B * C)
    return out.reshape(B, C, S, S)


def erase_boxes(u: Tensor, size: int) -> tuple[Tensor, Tensor]:
    """Random rectangles as torchvision's ``RandomErasing`` draws them (scale 2 .. 20 % of the crop, aspect 0.3 ..
    3.3 log-uniform, up to 10 tries for one that fits).

    Args:
        u: (B, ERASE_TRIES, 4) uniforms in [0, 1): area, log aspect, row, column, per try.
    Returns:
        (B, 4) int64 ``(top, left, height, width)``, (B,) bool: a try fitted.
    """
    area = size * size * (ERASE_SCALE[0] + (ERASE_SCALE[1] - ERASE_SCALE[0]) * u[..., 0])
    lr = math.log(ERASE_RATIO[0]), math.log(ERASE_RATIO[1])
    aspect = torch.exp(lr[0] + (lr[1] - lr[0]) * u[..., 1])
    h = torch.round(torch.sqrt(area * aspect)).long()
    w = torch.round(torch.sqrt(area / aspect)).long()
    fits = (h < size) & (w < size)
    first = fits.long().argmax(1)  # the first try that fits (0 when none does: then ``ok`` is False)
    pick = lambda t: t.gather(1, first[:, None])[:, 0]  # noqa: E731
    h, w = pick(h), pick(w)
    top = (pick(u[..., 2]) * (size - h + 1)).long()
    left = (pick(u[..., 3]) * (size - w + 1)).long()
    return torch.stack([top, left, h, w], -1), fits.any(1)


def rect_masks(rect: Tensor, size: int) -> Tensor:
    """(B, size, size) bool: the pixels of ``rect`` (B, 4) ``(top, left, height, width)``."""
    r = torch.arange(size, device=rect.device)
    rows = (r[None] >= rect[:, 0, None]) & (r[None] < (rect[:, 0] + rect[:, 2])[:, None])
    cols = (r[None] >= rect[:, 1, None]) & (r[None] < (rect[:, 1] + rect[:, 3])[:, None])
    return rows[:, :, None] & cols[:, None, :]


# -- the whole augmentation ------------------------------------------------------------------------------------------
def augment_batch(batch: dict[str, Tensor], config) -> dict[str, Tensor]:
    """Augment a collated batch of raw crops where it lies (CPU or CUDA).

    Args:
        batch: a collated batch of :class:`bopnp.data.training_set.TrainingSet` items made with
            ``device_augment=True``:
            ``image`` (B, 3, S, S) float in [0, 1]; ``xyz`` (B, 3, S, S) float; ``mask_full``, ``mask_visib``,
            ``mask_inside`` (B, S, S) bool; ``K`` (B, 3, 3); ``box_xyxy`` (B, 4) image pixels;
            ``aug_seed`` (B,) int64; ``background`` (B, 3, S, S) uint8 and ``background_index`` (B,) int64 (>= 0:
            ``background`` holds that training crop, see :func:`background_choice`).
        config: the :class:`bopnp.data.training_set.AugmentConfig`.
    Returns:
        a new dict: the batch with ``image``, ``xyz``, the masks, ``K`` and ``box_xyxy`` augmented (image float32 in
        [0, 1]) and the augmentation's own keys removed; every other entry as it was.
    """
    with torch.autocast(batch["image"].device.type, enabled=False):
        return _augment(batch, config)


class AugmentingCollate:
    """A DataLoader ``collate_fn`` that collates raw crops and runs :func:`augment_batch` on the batch in the
    loader worker (on the CPU): for CPU training, where the main process's cores are busy with the step and the
    workers' are free. The result is the same as augmenting the collated batch in the main process.

    Args:
        config: the :class:`bopnp.data.training_set.AugmentConfig`.
    """

    def __init__(self, config):
        self.config = config

    def __call__(self, items: list[dict[str, Tensor]]) -> dict[str, Tensor]:
        from torch.utils.data import default_collate

        return augment_batch(default_collate(items), self.config)


def _augment(batch: dict[str, Tensor], cfg) -> dict[str, Tensor]:
    out = {k: v for k, v in batch.items() if k not in ("aug_seed", "background", "background_index")}
    seed = batch["aug_seed"].long()
    image = batch["image"].float()
    B, _, S, _ = image.shape
    dev = image.device
    if B == 0:
        return out
    masks = torch.stack([batch["mask_full"], batch["mask_visib"], batch["mask_inside"]], 1)
    xyz, K, box = batch["xyz"], batch["K"], batch["box_xyxy"]
    jitter = cfg.box_jitter
    if jitter is not None:
        sub = jitter_boxes(hashed_uniform(seed, SLOT_JITTER, 3), S, jitter.max_shift, jitter.scale_range)
        image, xyz, masks, K, box = resample_crops(image, xyz, masks, sub, K, box)
    full, visib = masks[:, 0], masks[:, 1]
    out.update(xyz=xyz, mask_full=full, mask_visib=visib, mask_inside=masks[:, 2], K=K, box_xyxy=box)

    u_bg = hashed_uniform(seed, SLOT_BACKGROUND, 1)[:, 0]
    u_occ = hashed_uniform(seed, SLOT_OCCLUDER, 6)
    has_bg = u_bg < cfg.background_p
    has_occ = (u_occ[:, 0] < cfg.occluder_p) & full.flatten(1).any(1)
    if cfg.background_p > 0 or cfg.occluder_p > 0:
        tex_u = hashed_uniform(seed, SLOT_TEXTURES, 18).reshape(B, 2, 9).transpose(0, 1).reshape(2 * B, 9)
        tex_noise = hashed_uniform(seed, SLOT_TEXTURE_NOISE, 2 * 3 * TEXTURE_CELLS**2).float()
        tex_noise = tex_noise.reshape(B, 2, 3, TEXTURE_CELLS, TEXTURE_CELLS).transpose(0, 1)
        textures = procedural_textures(tex_u, tex_noise.reshape(2 * B, 3, TEXTURE_CELLS, TEXTURE_CELLS), S)
        bg_texture, occ_texture = textures[:B], textures[B:]
        crop_bg = batch["background"].to(dev).float() / 255.0
        from_crop = (batch["background_index"].to(dev) >= 0)[:, None, None, None]
        background = torch.where(from_crop, crop_bg, bg_texture)
        image = torch.where((has_bg[:, None, None] & ~visib)[:, None], background, image)
        occ_box, _ = mask_boxes(full)
        occ = occluder_masks(occ_box, u_occ[:, 1:], S, cfg.occluder_cover) & has_occ[:, None, None]
        image = torch.where(occ[:, None], occ_texture, image)
    if cfg.color:
        u = hashed_uniform(seed, SLOT_COLOUR, 8)
        spans = torch.tensor([BRIGHTNESS, CONTRAST, SATURATION, HUE], device=dev, dtype=torch.float64)
        centres = torch.tensor([1.0, 1.0, 1.0, 0.0], device=dev, dtype=torch.float64)
        factors = (centres + spans * (2 * u[:, :4] - 1)).float()
        order = u[:, 4:].argsort(1)
        image = color_jitter(image, factors, order)
        u_blur = hashed_uniform(seed, SLOT_BLUR, 2)
        sigma = BLUR_SIGMA[0] + (BLUR_SIGMA[1] - BLUR_SIGMA[0]) * u_blur[:, 1]
        image = torch.where((u_blur[:, 0] < BLUR_P)[:, None, None, None], gaussian_blur(image, sigma), image)
        if NOISE_STD > 0:
            noise = hashed_normal(seed, SLOT_PIXEL_NOISE, (3, S, S))
            image = (image + NOISE_STD * noise).clamp(0, 1)
        if ERASE_P > 0:
            u_erase = hashed_uniform(seed, SLOT_ERASE, 1 + 4 * ERASE_TRIES)
            rect, fits = erase_boxes(u_erase[:, 1:].reshape(B, ERASE_TRIES, 4), S)
            erase = rect_masks(rect, S) & ((u_erase[:, 0] < ERASE_P) & fits)[:, None, None]
            image = image.masked_fill(erase[:, None], 0.0)
    out["image"] = image.clamp(0, 1)
    return out


__all__ = [
    "AugmentingCollate",
    "augment_batch",
    "background_choice",
    "bicubic_matrix",
    "box_grid",
    "color_jitter",
    "erase_boxes",
    "gaussian_blur",
    "hashed_normal",
    "hashed_uniform",
    "hsv_to_rgb",
    "jitter_boxes",
    "mask_boxes",
    "occluder_masks",
    "procedural_textures",
    "rect_masks",
    "resample_crops",
    "rgb_to_hsv",
]

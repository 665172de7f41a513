"""Procedural background images (no image corpus needed): noise, gradients, stripes, random shapes.

>>> import numpy as np
>>> random_background(np.random.default_rng(0), 48, 64).shape
(48, 64, 3)
"""

from __future__ import annotations

import numpy as np

#: the kinds of background :func:`random_background` draws from
BACKGROUND_KINDS = ("noise", "gradient", "stripes", "shapes")


def _random_color(rng: np.random.Generator) -> np.ndarray:
    return rng.uniform(0, 255, 3)


def value_noise(rng: np.random.Generator, height: int, width: int, octaves: int = 4) -> np.ndarray:
    """Multi-octave value noise (random grids upsampled bicubically), (H, W) float32 in [0, 1]."""
    import cv2

    out = np.zeros((height, width), np.float32)
    total = 0.0
    cells = int(rng.integers(2, 6))
    for k in range(octaves):
        amp = 0.5**k
        grid = rng.uniform(0, 1, (cells * 2**k + 1, cells * 2**k + 1)).astype(np.float32)
        out += amp * cv2.resize(grid, (width, height), interpolation=cv2.INTER_CUBIC)
        total += amp
    out /= total
    lo, hi = out.min(), out.max()
    return (out - lo) / max(hi - lo, 1e-6)


def _colormap(rng: np.random.Generator, x: np.ndarray) -> np.ndarray:
    """Map (H, W) values in [0, 1] through a random 3-colour ramp -> (H, W, 3) float32."""
    stops = np.stack([_random_color(rng) for _ in range(3)])
    ramp = np.linspace(0.0, 2.0, 256)[:, None]
    lut = np.where(ramp < 1, stops[0] * (1 - ramp) + stops[1] * ramp, stops[1] * (2 - ramp) + stops[2] * (ramp - 1))
    index = np.round(np.clip(x, 0, 1) * 255).astype(np.uint8)
    return lut.astype(np.float32)[index]


def _noise(rng, height, width):
    return _colormap(rng, value_noise(rng, height, width, octaves=int(rng.integers(2, 6))))


def _gradient(rng, height, width):
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    if rng.uniform() < 0.5:
        angle = rng.uniform(0, 2 * np.pi)
        x = xx * np.cos(angle) + yy * np.sin(angle)
    else:
        cx, cy = rng.uniform(0, width), rng.uniform(0, height)
        x = np.hypot(xx - cx, yy - cy)
    x = (x - x.min()) / max(float(x.max() - x.min()), 1e-6)
    return _colormap(rng, x)


def _stripes(rng, height, width):
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    angle = rng.uniform(0, np.pi)
    period = rng.uniform(8, 120)
    phase = (xx * np.cos(angle) + yy * np.sin(angle)) / period
    if rng.uniform() < 0.5:
        x = 0.5 + 0.5 * np.sin(2 * np.pi * phase)  # smooth
    else:
        x = (np.floor(phase) % 2).astype(np.float32)  # hard-edged
    return _colormap(rng, x)


def _shapes(rng, height, width):
    import cv2

    base = [_noise, _gradient, _stripes][int(rng.integers(3))](rng, height, width) * rng.uniform(0.4, 1.0)
    img = np.ascontiguousarray(base.astype(np.uint8))
    for _ in range(int(rng.integers(5, 40))):
        color = tuple(float(c) for c in _random_color(rng))
        kind = int(rng.integers(4))
        cx, cy = int(rng.integers(0, width)), int(rng.integers(0, height))
        size = int(rng.integers(5, max(6, min(width, height) // 3)))
        thick = -1 if rng.uniform() < 0.7 else int(rng.integers(1, 8))
        if kind == 0:
            cv2.circle(img, (cx, cy), size, color, thick, lineType=cv2.LINE_AA)
        elif kind == 1:
            cv2.rectangle(
                img, (cx - size, cy - size // 2), (cx + size, cy + size // 2), color, thick, lineType=cv2.LINE_AA
            )
        elif kind == 2:
            pts = (np.array([cx, cy]) + rng.normal(0, size, (int(rng.integers(3, 7)), 2))).astype(np.int32)
            if thick < 0:
                cv2.fillPoly(img, [pts], color, lineType=cv2.LINE_AA)
            else:
                cv2.polylines(img, [pts], True, color, thick, lineType=cv2.LINE_AA)
        else:
            end = (int(rng.integers(0, width)), int(rng.integers(0, height)))
            cv2.line(img, (cx, cy), end, color, max(1, thick), lineType=cv2.LINE_AA)
    return img.astype(np.float32)


_MAKERS = {"noise": _noise, "gradient": _gradient, "stripes": _stripes, "shapes": _shapes}


def random_background(rng: np.random.Generator, height: int, width: int, kind: str | None = None) -> np.ndarray:
    """A random procedural background.

    Args:
        rng: source of randomness (the image is a function of its state).
        height, width: image size, pixels.
        kind: one of :data:`BACKGROUND_KINDS`, or None to pick one at random.
    Returns:
        (H, W, 3) uint8 RGB.
    """
    kind = kind if kind is not None else BACKGROUND_KINDS[int(rng.integers(len(BACKGROUND_KINDS)))]
    img = _MAKERS[kind](rng, height, width)
    return np.clip(np.round(img), 0, 255).astype(np.uint8)

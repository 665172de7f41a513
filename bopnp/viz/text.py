"""Readable text on numpy images: anti-aliased, scalable (Pillow's built-in FreeType font), optionally on
a translucent box, and kept inside the image.

>>> img = np.zeros((40, 120, 3), np.uint8)
>>> out = draw_text(img, "obj 5", (2, 2), size=16)
>>> out.shape, bool(out.any()), bool(img.any())
((40, 120, 3), True, False)
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np

from bopnp.errors import ShapeError

RGB = tuple[int, int, int]


@lru_cache(maxsize=16)
def _font(size: int):
    from PIL import ImageFont

    try:
        return ImageFont.load_default(size=int(size))
    except (TypeError, OSError, ImportError):  # Pillow without FreeType: the fixed bitmap font
        return ImageFont.load_default()


def _metrics(size: int) -> tuple[int, int]:
    font = _font(size)
    if hasattr(font, "getmetrics"):
        ascent, descent = font.getmetrics()
        return int(ascent), int(descent)
    return int(size), 0


def text_size(text: str, size: int = 16) -> tuple[int, int]:
    """(width, height) in pixels of one line of ``text`` (height: the font's line, the same for any text)."""
    font = _font(size)
    ascent, descent = _metrics(size)
    width = int(np.ceil(font.getlength(text))) if hasattr(font, "getlength") else len(text) * size // 2
    return max(width, 1), ascent + descent


@lru_cache(maxsize=512)
def _alpha(text: str, size: int) -> np.ndarray:
    from PIL import Image, ImageDraw

    w, h = text_size(text, size)
    canvas = Image.new("L", (w + 2, h))
    ImageDraw.Draw(canvas).text((0, 0), text, font=_font(size), fill=255)
    a = np.asarray(canvas, dtype=np.float32) / 255.0
    a.setflags(write=False)
    return a


def _blend(region: np.ndarray, color, alpha: np.ndarray) -> None:
    """region (h, w, 3) uint8 <- alpha * color + (1 - alpha) * region, in place."""
    a = alpha[..., None]
    region[:] = np.rint(a * np.asarray(color, np.float32) + (1.0 - a) * region).astype(np.uint8)


def draw_text(
    image: np.ndarray,
    text: str,
    xy: tuple[float, float],
    *,
    size: int = 16,
    color: RGB = (255, 255, 255),
    bg: RGB | None = (0, 0, 0),
    bg_alpha: float = 0.65,
    pad: int = 3,
    anchor: str = "lt",
    inside: bool = True,
) -> np.ndarray:
    """Write one line of text; returns a new image (the input is not modified).

    Args:
        image: (H, W, 3) uint8 RGB.
        text: one line.
        xy: (x, y) pixels of the anchor point.
        size: font size, pixels (16 reads well at 640 x 480).
        color: RGB of the text.
        bg: RGB of a box behind the text, or None for none.
        bg_alpha: opacity of that box.
        pad: pixels between the text and the box edge.
        anchor: where ``xy`` is on the box: horizontal ``l``/``m``/``r`` then vertical ``t``/``m``/``b``.
        inside: move the box inside the image when it would stick out.
    Returns:
        (H, W, 3) uint8 RGB.
    """
    image = np.asarray(image)
    if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
        raise ShapeError(f"image: expected (H, W, 3) uint8 RGB, got {image.dtype} {image.shape}")
    out = image.copy()
    if not text:
        return out
    alpha = _alpha(text, int(size))
    h, w = alpha.shape[0] + 2 * pad, alpha.shape[1] + 2 * pad
    x = float(xy[0]) - {"l": 0.0, "m": w / 2, "r": float(w)}[anchor[0]]
    y = float(xy[1]) - {"t": 0.0, "m": h / 2, "b": float(h)}[anchor[1]]
    x, y = int(round(x)), int(round(y))
    H, W = out.shape[:2]
    if inside:
        x = min(max(x, 0), max(W - w, 0))
        y = min(max(y, 0), max(H - h, 0))
    # the part of the box inside the image
    x0, y0, x1, y1 = max(x, 0), max(y, 0), min(x + w, W), min(y + h, H)
    if x0 >= x1 or y0 >= y1:
        return out
    if bg is not None:
        _blend(out[y0:y1, x0:x1], bg, np.full((y1 - y0, x1 - x0), float(bg_alpha), np.float32))
    ox, oy = x + pad, y + pad  # where the text's top-left corner goes
    tx0, ty0 = max(ox, x0), max(oy, y0)
    tx1, ty1 = min(ox + alpha.shape[1], x1), min(oy + alpha.shape[0], y1)
    if tx0 < tx1 and ty0 < ty1:
        _blend(out[ty0:ty1, tx0:tx1], color, alpha[ty0 - oy : ty1 - oy, tx0 - ox : tx1 - ox])
    return out


def text_box_size(text: str, size: int = 16, pad: int = 3) -> tuple[int, int]:
    """(width, height) of the box :func:`draw_text` draws for ``text``."""
    w, h = _alpha(text, int(size)).shape[::-1]
    return w + 2 * pad, h + 2 * pad

"""Composing pictures: a grid of captioned tiles, a title band with a colour legend, vertical stacking,
resizing, and an atomic PNG writer.

>>> tiles = [np.zeros((30, 40, 3), np.uint8), np.zeros((20, 40, 3), np.uint8)]
>>> tile(tiles, labels=["a", "b"], cols=2, label_size=12).shape[1]
104
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from bopnp.errors import ConfigError, ShapeError
from bopnp.viz.colors import INK, PAPER, RGB
from bopnp.viz.text import draw_text, text_box_size


def _check(images: Sequence[np.ndarray]) -> list[np.ndarray]:
    out = []
    for k, im in enumerate(images):
        im = np.asarray(im)
        if im.ndim != 3 or im.shape[2] != 3 or im.dtype != np.uint8:
            raise ShapeError(f"images[{k}]: expected (H, W, 3) uint8 RGB, got {im.dtype} {im.shape}")
        out.append(im)
    return out


def tile(
    images: Sequence[np.ndarray],
    labels: Sequence[str] | None = None,
    cols: int | None = None,
    pad: int = 8,
    bg: RGB = PAPER,
    label_size: int = 16,
    label_color: RGB = INK,
) -> np.ndarray:
    """Arrange images in a grid, row by row, each with a caption above it.

    Args:
        images: (h_i, w_i, 3) uint8 RGB each; cells take the largest size of their row and column and
            images sit at their top-left.
        labels: one caption per image (None: no captions).
        cols: columns (default: about square, at most 4).
        pad: pixels between and around the cells.
        bg: background RGB.
        label_size: caption font size, pixels.
    Returns:
        (H, W, 3) uint8 RGB.
    """
    images = _check(images)
    if not images:
        raise ConfigError("tile: no images to arrange")
    if labels is not None and len(labels) != len(images):
        raise ConfigError(f"tile: {len(labels)} labels for {len(images)} images")
    n = len(images)
    cols = int(cols) if cols else min(4, int(np.ceil(np.sqrt(n))))
    rows = int(np.ceil(n / cols))
    cap_h = text_box_size("Ag", label_size, pad=2)[1] if labels is not None else 0
    col_w = [max((images[i].shape[1] for i in range(c, n, cols)), default=0) for c in range(cols)]
    row_h = [max(images[i].shape[0] for i in range(r * cols, min(n, (r + 1) * cols))) + cap_h for r in range(rows)]
    W = sum(col_w) + pad * (cols + 1)
    H = sum(row_h) + pad * (rows + 1)
    out = np.full((H, W, 3), bg, np.uint8)
    for i, im in enumerate(images):
        r, c = divmod(i, cols)
        x = pad + sum(col_w[:c]) + pad * c
        y = pad + sum(row_h[:r]) + pad * r
        if labels is not None and labels[i]:
            out = draw_text(out, labels[i], (x, y), size=label_size, color=label_color, bg=None, pad=2, inside=False)
        out[y + cap_h : y + cap_h + im.shape[0], x : x + im.shape[1]] = im
    return out


def legend_band(
    width: int,
    title: str = "",
    entries: Sequence[tuple[RGB, str]] = (),
    notes: Sequence[str] = (),
    size: int = 18,
    bg: RGB = PAPER,
) -> np.ndarray:
    """A band with a title, colour swatches with their meaning, and lines of notes, wrapped to ``width``.

    Args:
        width: pixels (the width of the picture it goes on).
        title: first line.
        entries: (colour, meaning) pairs, laid out left to right, wrapping onto new lines.
        notes: further lines of smaller text.
        size: font size of title and entries, pixels.
    Returns:
        (H, width, 3) uint8 RGB.
    """
    pad = 8
    line_h = text_box_size("Ag", size, pad=2)[1]
    small = max(size - 4, 10)
    small_h = text_box_size("Ag", small, pad=2)[1]
    # lay out the entries first to know the height
    placed: list[tuple[int, int, RGB, str]] = []
    x, y = pad, pad + (line_h + 4 if title else 0)
    sw = line_h - 8
    for color, text in entries:
        w = sw + 6 + text_box_size(text, size, pad=2)[0] + 18
        if x > pad and x + w > width - pad:
            x, y = pad, y + line_h + 2
        placed.append((x, y, color, text))
        x += w
    y_notes = (y + line_h + 4) if entries else y
    notes = [part for note in notes for part in wrap(note, int(width) - 2 * pad, small)]
    H = y_notes + len(notes) * (small_h + 1) + pad
    out = np.full((H, int(width), 3), bg, np.uint8)
    if title:
        out = draw_text(out, title, (pad, pad), size=size, color=INK, bg=None, pad=2, inside=False)
    for x, y, color, text in placed:
        out[y + 4 : y + 4 + sw, x : x + sw] = (150, 150, 150)  # a border shows light colours too
        out[y + 5 : y + 3 + sw, x + 1 : x + sw - 1] = np.asarray(color, np.uint8)
        out = draw_text(out, text, (x + sw + 6, y), size=size, color=INK, bg=None, pad=2, inside=False)
    for k, note in enumerate(notes):
        out = draw_text(
            out, note, (pad, y_notes + k * (small_h + 1)), size=small, color=(80, 80, 80), bg=None, pad=2, inside=False
        )
    return out


def wrap(text: str, width: int, size: int = 16) -> list[str]:
    """Split ``text`` at spaces into lines at most ``width`` pixels wide (a longer word stays whole)."""
    lines: list[str] = []
    line = ""
    for word in text.split(" "):
        trial = f"{line} {word}" if line else word
        if line and text_box_size(trial, size, pad=2)[0] > width:
            lines.append(line)
            line = word
        else:
            line = trial
    return lines + [line]


def stack(images: Sequence[np.ndarray], bg: RGB = PAPER) -> np.ndarray:
    """Stack images vertically, left-aligned, padding the narrower ones with ``bg``."""
    images = _check(images)
    W = max(im.shape[1] for im in images)
    parts = []
    for im in images:
        if im.shape[1] < W:
            im = np.concatenate([im, np.full((im.shape[0], W - im.shape[1], 3), bg, np.uint8)], axis=1)
        parts.append(im)
    return np.concatenate(parts, axis=0)


def with_legend(
    picture: np.ndarray, title: str, entries: Sequence[tuple[RGB, str]] = (), notes: Sequence[str] = (), size: int = 18
) -> np.ndarray:
    """``picture`` under a :func:`legend_band` of its width."""
    picture = _check([picture])[0]
    return stack([legend_band(picture.shape[1], title, entries, notes, size), picture])


def with_colorbar(
    picture: np.ndarray, vmin: float, vmax: float, label: str = "", cmap: str = "turbo", bg: RGB = PAPER
) -> np.ndarray:
    """``picture`` (e.g. from :func:`bopnp.viz.colors.error_to_rgb`) with a :func:`~bopnp.viz.colors.colorbar`
    of its height on the right."""
    from bopnp.viz.colors import colorbar

    picture = _check([picture])[0]
    bar = colorbar(max(picture.shape[0], 80), vmin, vmax, label, cmap)
    if bar.shape[0] > picture.shape[0]:
        picture = np.concatenate(
            [picture, np.full((bar.shape[0] - picture.shape[0],) + picture.shape[1:], bg, np.uint8)]
        )
    gap = np.full((picture.shape[0], 6, 3), bg, np.uint8)
    return np.concatenate([picture, gap, bar], axis=1)


def resize_to_width(image: np.ndarray, width: int, nearest: bool = False) -> np.ndarray:
    """Resize keeping the aspect ratio (area averaging when shrinking; nearest neighbour if asked)."""
    import cv2

    image = np.asarray(image)
    h, w = image.shape[:2]
    if w == width:
        return image.copy()
    height = max(1, int(round(h * width / w)))
    interp = cv2.INTER_NEAREST if nearest else (cv2.INTER_AREA if width < w else cv2.INTER_LINEAR)
    return cv2.resize(image, (int(width), height), interpolation=interp)


def save_png(path: str | os.PathLike, image: np.ndarray) -> Path:
    """Write an (H, W, 3) uint8 RGB picture as PNG, atomically, creating the folders; returns the path.

    Raises:
        ConfigError: the path does not end in ``.png``.
    """
    from bopnp.bop.images import save_image

    path = Path(path)
    if path.suffix.lower() != ".png":
        raise ConfigError(f"{path}: pictures are written as PNG; give a file name ending in .png")
    save_image(path, _check([image])[0])
    return path

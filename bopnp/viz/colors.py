"""Colours: coordinate maps and error maps as RGB images, and the fixed colours of the pictures.

Definitions (the tests check them):

* :func:`xyz_to_rgb`: a normalised model coordinate ``x`` in [-1, 1] becomes the channel value
  ``floor((x + 1) * 127.5 + 0.5)``, per axis (x -> red, y -> green, z -> blue): (-1, -1, -1) is black,
  (1, 1, 1) white, 0 is 128; values outside [-1, 1] are clipped (the Pix2Pose colour convention).
* :func:`error_to_rgb`: ``t = clip((err - vmin) / (vmax - vmin), 0, 1)`` picks entry ``round(255 t)`` of
  a 256-entry colour map (OpenCV's, e.g. turbo: dark blue at 0, dark red at 1).

>>> xyz_to_rgb(np.array([[-1.0, 0.0, 1.0]])).tolist()
[[0, 128, 255]]
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np

from bopnp.errors import ConfigError, ShapeError

RGB = tuple[int, int, int]

#: ground truth and estimates when both are drawn
GT_COLOR: RGB = (40, 200, 80)
EST_COLOR: RGB = (235, 50, 210)
#: text and background of the figure bands
INK: RGB = (25, 25, 25)
PAPER: RGB = (250, 250, 250)

#: distinguishable colours for object ids (Sasha Trubetskoy's list of distinct colours, the 16 most
#: saturated), RGB
PALETTE: tuple[RGB, ...] = (
    (230, 25, 75), (60, 180, 75), (255, 225, 25), (0, 130, 200), (245, 130, 48), (145, 30, 180),
    (70, 240, 240), (240, 50, 230), (210, 245, 60), (250, 190, 212), (0, 128, 128), (170, 110, 40),
    (128, 0, 0), (170, 255, 195), (128, 128, 0), (0, 0, 128),
)  # fmt: skip

#: colour map names :func:`error_to_rgb` accepts
COLORMAPS = ("turbo", "viridis", "inferno", "magma", "plasma")


def object_color(obj_id: int) -> RGB:
    """The palette colour of an object id (the same id always gets the same colour).

    >>> object_color(1) == PALETTE[0], object_color(17) == PALETTE[0]
    (True, True)
    """
    return PALETTE[(int(obj_id) - 1) % len(PALETTE)]


def text_color_on(background: RGB) -> RGB:
    """Black or white, whichever reads better on ``background`` (by its luma).

    >>> text_color_on((255, 255, 0)), text_color_on((20, 20, 120))
    ((0, 0, 0), (255, 255, 255))
    """
    r, g, b = background
    return (0, 0, 0) if 0.299 * r + 0.587 * g + 0.114 * b > 140 else (255, 255, 255)


def xyz_to_rgb(xyz_norm: np.ndarray, mask: np.ndarray | None = None, background: RGB = (0, 0, 0)) -> np.ndarray:
    """Colour a normalised coordinate map (see the module docstring for the definition).

    Args:
        xyz_norm: (..., 3) float model coordinates normalised to [-1, 1] (any float dtype; NaN is
            background).
        mask: (...) bool, True on the object; elsewhere ``background``. None: everywhere but NaN.
        background: RGB colour off the object.
    Returns:
        (..., 3) uint8 RGB.
    """
    xyz = np.asarray(xyz_norm, dtype=np.float32)
    if xyz.ndim < 1 or xyz.shape[-1] != 3:
        raise ShapeError(f"xyz_norm: expected shape (..., 3), got {xyz.shape}")
    valid = np.all(np.isfinite(xyz), axis=-1)
    if mask is not None:
        mask = np.asarray(mask, dtype=bool)
        if mask.shape != xyz.shape[:-1]:
            raise ShapeError(
                f"mask: expected shape {xyz.shape[:-1]} (that of xyz_norm without its last axis), got {mask.shape}"
            )
        valid &= mask
    rgb = np.floor((np.clip(np.nan_to_num(xyz), -1.0, 1.0) + 1.0) * 127.5 + 0.5).astype(np.uint8)
    rgb[~valid] = np.asarray(background, np.uint8)
    return rgb


@lru_cache(maxsize=len(COLORMAPS))
def colormap_lut(name: str = "turbo") -> np.ndarray:
    """(256, 3) uint8 RGB entries of an OpenCV colour map (one of :data:`COLORMAPS`)."""
    import cv2

    if name not in COLORMAPS:
        raise ConfigError(f"unknown colour map {name!r}: choose one of {', '.join(COLORMAPS)}")
    code = getattr(cv2, f"COLORMAP_{name.upper()}")
    lut = cv2.applyColorMap(np.arange(256, dtype=np.uint8)[:, None], code)[:, 0, ::-1]
    lut = np.ascontiguousarray(lut)
    lut.setflags(write=False)
    return lut


def error_to_rgb(
    err: np.ndarray,
    vmax: float,
    vmin: float = 0.0,
    valid: np.ndarray | None = None,
    cmap: str = "turbo",
    background: RGB = (0, 0, 0),
) -> np.ndarray:
    """Colour an error map (see the module docstring for the definition).

    Args:
        err: (H, W) (or any shape) errors, e.g. mm or pixels; NaN and inf are background.
        vmax: the error shown in the top colour (larger ones are clipped to it).
        vmin: the error shown in the bottom colour.
        valid: same shape as ``err``, bool: where there is an error to show; elsewhere ``background``.
        cmap: one of :data:`COLORMAPS`.
        background: RGB colour where there is no error.
    Returns:
        ``err.shape + (3,)`` uint8 RGB.
    """
    err = np.asarray(err, dtype=np.float64)
    if not np.isfinite(vmin) or not np.isfinite(vmax) or not vmax > vmin:
        raise ConfigError(f"error_to_rgb: need finite vmin < vmax, got vmin={vmin}, vmax={vmax}")
    ok = np.isfinite(err)
    if valid is not None:
        valid = np.asarray(valid, dtype=bool)
        if valid.shape != err.shape:
            raise ShapeError(f"valid: expected shape {err.shape} (that of err), got {valid.shape}")
        ok &= valid
    t = np.clip((np.nan_to_num(err, nan=vmin, posinf=vmax, neginf=vmin) - vmin) / (vmax - vmin), 0.0, 1.0)
    rgb = colormap_lut(cmap)[np.rint(t * 255.0).astype(np.intp)]
    rgb[~ok] = np.asarray(background, np.uint8)
    return rgb


def colorbar(
    height: int,
    vmin: float,
    vmax: float,
    label: str = "",
    cmap: str = "turbo",
    bar_width: int = 18,
    ticks: int = 5,
    text_size: int = 14,
) -> np.ndarray:
    """A vertical colour bar with tick values and a label, for an :func:`error_to_rgb` picture.

    Args:
        height: height of the picture, pixels (the bar is a little shorter, leaving room for text).
        vmin, vmax: the values at the bottom and the top.
        label: the quantity and unit, e.g. ``"error (mm)"``; written above the bar.
        ticks: tick marks from vmin to vmax, evenly spaced.
    Returns:
        (height, W, 3) uint8 RGB on a light background; W fits the widest tick label.
    """
    from bopnp.viz.text import draw_text
    from bopnp.viz.text import text_size as measure

    if height < 4 * text_size:
        raise ConfigError(f"colorbar: height {height} too small for text of {text_size} px; use >= {4 * text_size}")
    top = measure(label or "0", text_size)[1] + 8
    bottom = height - text_size
    lut = colormap_lut(cmap)
    values = np.linspace(vmax, vmin, max(bottom - top, 2))
    idx = np.rint((values - vmin) / (vmax - vmin) * 255.0).astype(np.intp)
    labels = [f"{v:.3g}" for v in np.linspace(vmin, vmax, max(ticks, 2))]
    tick_w = max(measure(s, text_size)[0] for s in labels)
    width = max(8 + bar_width + 6 + tick_w + 4, measure(label, text_size)[0] + 8 if label else 0)
    out = np.full((height, width, 3), PAPER, np.uint8)
    out[top:bottom, 8 : 8 + bar_width] = lut[idx][:, None, :]
    if label:
        out = draw_text(out, label, (4, 2), size=text_size, color=INK, bg=None)
    for k, s in enumerate(labels):
        y = int(round(bottom - 1 - k * (bottom - top - 1) / (len(labels) - 1)))
        out[y, 8 + bar_width : 8 + bar_width + 4] = INK
        out = draw_text(out, s, (8 + bar_width + 6, y), size=text_size, color=INK, bg=None, anchor="lm")
    return out

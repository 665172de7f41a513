"""COCO run-length encoding of binary masks, as pycocotools writes it.

A mask of size (H, W) is read in column-major order (down the first column, then the next) and stored
as alternating run lengths, starting with a run of zeros (0 if the first pixel is set). ``counts`` is
either that list of ints ("uncompressed", as bop_toolkit writes) or the COCO string: each count (from
the fourth on, minus the count two places before it) in 5-bit groups, low bits first, a continuation
bit 0x20 and sign bit 0x10, each group plus 48 as an ASCII character.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from bopnp.bop.images import mask_bbox_xywh
from bopnp.checks import check_shape


class RleError(ValueError):
    """A malformed RLE; callers turn it into a typed error naming the file and entry."""


@dataclass(frozen=True, eq=False)
class Rle:
    """A run-length encoded (H, W) binary mask.

    Attributes:
        counts: (M,) int64 run lengths in column-major order, starting with a (possibly empty) run of zeros.
        height: H, pixels.
        width: W, pixels.
    """

    counts: np.ndarray
    height: int
    width: int

    @classmethod
    def encode(cls, mask: np.ndarray) -> Rle:
        """Encode an (H, W) mask (nonzero = set).

        >>> Rle.encode(np.array([[0, 1], [1, 1]])).counts.tolist()
        [1, 3]
        """
        mask = np.asarray(mask)
        check_shape(mask, "H W", "mask")
        h, w = mask.shape
        flat = (mask.T.reshape(-1) != 0).astype(np.int8)
        if flat.size == 0:
            return cls(np.zeros(0, np.int64), h, w)
        change = np.flatnonzero(flat[1:] != flat[:-1]) + 1
        bounds = np.concatenate([[0], change, [flat.size]])
        runs = np.diff(bounds)
        if flat[0]:
            runs = np.concatenate([[0], runs])
        return cls(runs.astype(np.int64), h, w)

    def decode(self) -> np.ndarray:
        """(H, W) bool mask.

        Raises:
            RleError: when the runs do not add up to H * W.
        """
        counts = np.asarray(self.counts, np.int64)
        total = int(counts.sum())
        if total != self.height * self.width or np.any(counts < 0):
            raise RleError(
                f"run lengths add up to {total}, expected height * width = {self.height} * {self.width} = "
                f"{self.height * self.width}"
            )
        values = (np.arange(len(counts)) % 2).astype(bool)
        flat = np.repeat(values, counts)
        return flat.reshape(self.width, self.height).T.copy()

    @property
    def area(self) -> int:
        """Number of set pixels."""
        return int(np.asarray(self.counts, np.int64)[1::2].sum())

    def bbox_xywh(self) -> np.ndarray:
        """(4,) float64 COCO box ``(x, y, width, height)`` of the set pixels (width = x_max - x_min + 1,
        as pycocotools ``toBbox``); zeros when empty."""
        box = mask_bbox_xywh(self.decode())  # bop_toolkit's (x, y, x_max - x, y_max - y), -1s when empty
        if box[0] < 0:
            return np.zeros(4)
        return box.astype(np.float64) + [0, 0, 1, 1]

    def to_string(self) -> str:
        """The COCO compressed ``counts`` string."""
        return encode_counts_string(self.counts)

    def to_json(self, compressed: bool = True) -> dict[str, Any]:
        """``{"size": [H, W], "counts": str or list}`` (a new object)."""
        counts: Any = self.to_string() if compressed else [int(c) for c in self.counts]
        return {"counts": counts, "size": [int(self.height), int(self.width)]}

    @classmethod
    def from_json(cls, obj: Any) -> Rle:
        """Parse ``{"size": [H, W], "counts": str or list}``.

        Raises:
            RleError: malformed size or counts, or runs that do not add up to H * W.
        """
        if not isinstance(obj, Mapping) or "counts" not in obj or "size" not in obj:
            raise RleError("expected an object with 'counts' and 'size'")
        size = obj["size"]
        if not (
            isinstance(size, (list, tuple))
            and len(size) == 2
            and all(isinstance(s, int) and not isinstance(s, bool) and s >= 0 for s in size)
        ):
            raise RleError(f"size must be [height, width] (non-negative ints), got {size!r}")
        counts = obj["counts"]
        if isinstance(counts, bytes):
            counts = counts.decode("ascii")
        if isinstance(counts, str):
            arr = decode_counts_string(counts)
        elif isinstance(counts, (list, tuple)):
            if not all(isinstance(c, int) and not isinstance(c, bool) and c >= 0 for c in counts):
                raise RleError("counts list must hold non-negative integers")
            arr = np.asarray(counts, np.int64)
        else:
            raise RleError(f"counts must be a string or a list, got {type(counts).__name__}")
        rle = cls(arr, int(size[0]), int(size[1]))
        total = int(arr.sum())
        if total != rle.height * rle.width:
            raise RleError(f"run lengths add up to {total}, expected height * width = {rle.height * rle.width}")
        return rle


def encode_counts_string(counts: np.ndarray) -> str:
    """COCO compressed string of a run-length list (pycocotools ``rleToString``)."""
    cnts = [int(c) for c in counts]
    out = []
    for i, c in enumerate(cnts):
        x = c - cnts[i - 2] if i > 2 else c
        more = True
        while more:
            ch = x & 0x1F
            x >>= 5  # arithmetic shift, as on the C long
            more = (x != -1) if (ch & 0x10) else (x != 0)
            if more:
                ch |= 0x20
            out.append(chr(ch + 48))
    return "".join(out)


def decode_counts_string(s: str) -> np.ndarray:
    """Run lengths from a COCO compressed string (pycocotools ``rleFrString``).

    Raises:
        RleError: characters outside the alphabet, a truncated last count, or a negative run.
    """
    cnts: list[int] = []
    p, n = 0, len(s)
    while p < n:
        x, k, more = 0, 0, True
        while more:
            if p >= n:
                raise RleError("counts string ends inside a number")
            c = ord(s[p]) - 48
            if not 0 <= c < 64:
                raise RleError(f"counts string has an invalid character {s[p]!r} at {p}")
            x |= (c & 0x1F) << (5 * k)
            more = bool(c & 0x20)
            p += 1
            k += 1
            if not more and (c & 0x10):
                x |= -1 << (5 * k)
        if len(cnts) > 2:
            x += cnts[-2]
        if x < 0:
            raise RleError(f"counts string decodes to a negative run ({x}) at count {len(cnts)}")
        cnts.append(x)
    return np.asarray(cnts, np.int64)

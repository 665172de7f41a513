"""Images of a BOP split: colour/gray (png, jpg, tif), 16-bit depth png scaled to mm, and binary masks
(``mask/`` and ``mask_visib/``, named ``{im_id:06d}_{gt_id:06d}.png``). Writes are atomic."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from bopnp.bop.atomic import write_bytes_atomic
from bopnp.checks import check_shape
from bopnp.errors import DatasetError, ShapeError


def _cv2():
    import cv2

    return cv2


_PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
_JPEG_SOI, _JPEG_SOS, _JPEG_EOI = b"\xff\xd8", b"\xff\xda", b"\xff\xd9"


def incomplete_reason(data: bytes) -> str | None:
    """Why the bytes of a PNG or JPEG file are not a complete image, or None when they are (or are
    another format). OpenCV decodes a truncated PNG or JPEG without an error, returning the rows it got
    plus filler; this finds the cut: a PNG must end its chunk list with IEND, a JPEG must have an EOI
    marker after its last scan.

    >>> incomplete_reason(_PNG_MAGIC + bytes.fromhex("0000000d") + b"IHDR")
    'the PNG ends inside chunk IHDR (byte 16 of 33): the file is truncated'
    """
    if data.startswith(_PNG_MAGIC):
        pos, n, idat = len(_PNG_MAGIC), len(data), False
        while True:
            if pos + 8 > n:
                return f"the PNG ends after {n} bytes without an IEND chunk: the file is truncated"
            length = int.from_bytes(data[pos : pos + 4], "big")
            kind = data[pos + 4 : pos + 8]
            end = pos + 12 + length
            if end > n:
                return f"the PNG ends inside chunk {kind.decode('latin-1')} (byte {n} of {end}): the file is truncated"
            idat |= kind == b"IDAT"
            if kind == b"IEND":
                return None if idat else "the PNG has no image data (IDAT chunk)"
            pos = end
    if data.startswith(_JPEG_SOI):
        sos = data.rfind(_JPEG_SOS)
        if sos < 0:
            return "the JPEG has no image data (no start-of-scan marker): the file is truncated or corrupt"
        if data.rfind(_JPEG_EOI) < sos:
            return "the JPEG has no end-of-image marker after its image data: the file is truncated"
    return None


def _read(path: Path, what: str) -> np.ndarray:
    """Decode a whole image file with OpenCV (IMREAD_UNCHANGED), refusing truncated PNG/JPEG files."""
    cv2 = _cv2()
    if not path.is_file():
        if path.exists():
            raise DatasetError(f"{path} is not a file ({what}); remove it and restore the image")
        raise DatasetError(f"{path} not found ({what}): check the split folder, or download the split's archive")
    data = path.read_bytes()
    if not data:  # OpenCV >= 5 asserts on an empty buffer instead of returning None
        raise DatasetError(
            f"{path}: the file is empty (0 bytes) ({what}); re-download the split archive, or regenerate it"
        )
    why = incomplete_reason(data)
    if why is not None:
        raise DatasetError(f"{path}: {why} ({what}); re-download the split archive, or regenerate the file")
    try:
        img = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED)
    except cv2.error:  # some OpenCV builds assert on malformed data instead of returning None
        img = None
    if img is None:
        raise DatasetError(f"{path}: cannot decode the image ({what}); the file is corrupt, re-download it")
    return img


def load_image(path: str | os.PathLike) -> np.ndarray:
    """Read a colour or gray image.

    Returns:
        (H, W, 3) uint8 RGB for colour images (alpha dropped, BGR from OpenCV turned to RGB), or (H, W)
        for gray images in the file's dtype (uint8, or uint16 for 16-bit gray tif/png).
    Raises:
        DatasetError: missing, truncated (PNG, JPEG) or undecodable file.
    """
    path = Path(path)
    img = _read(path, "an rgb/gray image")
    if img.ndim == 3:
        if img.shape[2] == 1:
            return img[:, :, 0]
        img = img[:, :, 2::-1] if img.shape[2] >= 3 else img
        if img.dtype == np.uint16:  # 16-bit colour: keep the 8 most significant bits
            img = (img >> 8).astype(np.uint8)
        return np.ascontiguousarray(img)
    return img


def as_rgb(image: np.ndarray) -> np.ndarray:
    """(H, W, 3) uint8 RGB of a colour or gray image as :func:`load_image` returns it (uint8, or uint16
    scaled down by 256); always a new array.

    >>> as_rgb(np.full((1, 2), 513, np.uint16)).tolist()
    [[[2, 2, 2], [2, 2, 2]]]
    """
    image = np.asarray(image)
    if image.dtype == np.uint16:
        image = (image >> 8).astype(np.uint8)
    if image.dtype != np.uint8:
        raise ShapeError(f"image: expected uint8 (or uint16 gray), got {image.dtype}")
    if image.ndim == 2:
        return np.repeat(image[:, :, None], 3, axis=2)
    if image.ndim != 3 or image.shape[2] != 3:
        raise ShapeError(f"image: expected (H, W, 3) uint8 RGB, got {image.dtype} {image.shape}")
    return image.copy()


def save_image(path: str | os.PathLike, image: np.ndarray, jpg_quality: int = 95) -> None:
    """Write an (H, W, 3) uint8 RGB or (H, W) uint8/uint16 gray image; the format follows the suffix
    (``.png``, ``.jpg``, ``.tif``). Atomic; ``image`` is not modified."""
    cv2 = _cv2()
    path = Path(path)
    image = np.asarray(image)
    if image.ndim == 3:
        check_shape(image, "H W 3", "image")
        image = np.ascontiguousarray(image[:, :, ::-1])
    elif image.ndim != 2:
        raise DatasetError(f"cannot write {path}: expected an (H, W, 3) or (H, W) image, got shape {image.shape}")
    suffix = path.suffix.lower()
    params = [cv2.IMWRITE_JPEG_QUALITY, int(jpg_quality)] if suffix in (".jpg", ".jpeg") else []
    ok, buf = cv2.imencode(suffix, image, params)
    if not ok:
        raise DatasetError(f"cannot write {path}: OpenCV could not encode a {image.dtype} image as {suffix}")
    write_bytes_atomic(path, buf.tobytes())


def image_size(path: str | os.PathLike) -> tuple[int, int]:
    """(width, height) of an image file, reading only its header.

    Raises:
        DatasetError: missing or unreadable file.
    """
    from PIL import Image, UnidentifiedImageError

    path = Path(path)
    try:
        with Image.open(path) as im:
            return int(im.size[0]), int(im.size[1])
    except FileNotFoundError:
        raise DatasetError(f"{path} not found") from None
    except (UnidentifiedImageError, OSError) as exc:
        raise DatasetError(f"{path}: not a readable image ({exc}); re-download it") from None


def load_depth(path: str | os.PathLike, depth_scale: float = 1.0) -> np.ndarray:
    """Read a depth image and convert it to millimetres.

    Args:
        path: a single-channel 16-bit png, or a 16-bit or float32 tif (ITODD) depth image.
        depth_scale: mm per stored unit (``scene_camera.json`` ``depth_scale``).
    Returns:
        (H, W) float32 depth, mm; 0 where there is no measurement.
    Raises:
        DatasetError: missing, truncated or undecodable file, not single-channel, or not 16-bit (float32 tif).
    """
    path = Path(path)
    raw = _read(path, "a depth image")
    if raw.ndim != 2:
        raise DatasetError(
            f"{path}: a depth image must have one channel, got shape {raw.shape}; is this an rgb "
            "image? BOP depth is a single-channel 16-bit png; re-download the split archive"
        )
    allowed = (np.uint16, np.float32) if path.suffix.lower() in (".tif", ".tiff") else (np.uint16,)
    if raw.dtype not in allowed:
        kinds = " or ".join(np.dtype(d).name for d in allowed)
        raise DatasetError(
            f"{path}: a depth image must be {kinds} ({'16-bit png' if len(allowed) == 1 else 'tif'}), got {raw.dtype}; "
            "an 8-bit depth has lost its precision (values up to 255 units): re-download the split archive, or "
            "write the depth with bopnp.bop.images.save_depth"
        )
    return raw.astype(np.float32) * np.float32(depth_scale)


def save_depth(path: str | os.PathLike, depth_mm: np.ndarray, depth_scale: float = 1.0) -> None:
    """Write a depth image as a 16-bit png: ``round(depth_mm / depth_scale)`` (atomic; input unchanged).

    Args:
        path: destination ``.png``.
        depth_mm: (H, W) depth in mm, 0 for no measurement.
        depth_scale: mm per stored unit; choose it so that the deepest value fits in 65535 units.
    Raises:
        DatasetError: negative or non-finite depth, or values that overflow 16 bits at this scale.
    """
    path = Path(path)
    check_shape(np.asarray(depth_mm), "H W", "depth_mm")
    units = np.asarray(depth_mm, np.float64) / float(depth_scale)
    if not np.all(np.isfinite(units)) or units.min(initial=0) < 0:
        raise DatasetError(f"cannot write {path}: depth must be finite and >= 0 mm (use 0 for no measurement)")
    if units.max(initial=0) > 65535.49:
        raise DatasetError(
            f"cannot write {path}: max depth {float(np.max(depth_mm)):.1f} mm exceeds 16 bits at depth_scale "
            f"{depth_scale}; use depth_scale >= {float(np.max(depth_mm)) / 65535:.3g}"
        )
    ok, buf = _cv2().imencode(".png", np.round(units).astype(np.uint16))
    if not ok:
        raise DatasetError(f"cannot encode {path} as png")
    write_bytes_atomic(path, buf.tobytes())


def load_mask(path: str | os.PathLike) -> np.ndarray:
    """Read a BOP mask (``mask/`` or ``mask_visib/``) -> (H, W) bool, True where the png is nonzero.

    Raises:
        DatasetError: missing or undecodable file.
    """
    raw = _read(Path(path), "an object mask; masks come with the BOP split archive")
    if raw.ndim == 3:
        raw = raw.max(axis=2)
    return raw > 0


def save_mask(path: str | os.PathLike, mask: np.ndarray) -> None:
    """Write an (H, W) boolean mask as an 8-bit png with 255 for True, 0 for False (atomic)."""
    mask = np.asarray(mask)
    check_shape(mask, "H W", "mask")
    ok, buf = _cv2().imencode(".png", np.where(mask > 0, 255, 0).astype(np.uint8))
    if not ok:
        raise DatasetError(f"cannot encode {path} as png")
    write_bytes_atomic(path, buf.tobytes())


def mask_bbox_xywh(mask: np.ndarray) -> np.ndarray:
    """Box of the True pixels in bop_toolkit's convention (as in ``scene_gt_info.json``).

    Args:
        mask: (H, W) bool.
    Returns:
        (4,) int64 ``(x_min, y_min, x_max - x_min, y_max - y_min)``, or ``(-1, -1, -1, -1)`` when empty.

    >>> m = np.zeros((4, 5), bool); m[1:3, 2:5] = True
    >>> mask_bbox_xywh(m).tolist()
    [2, 1, 2, 1]
    """
    check_shape(np.asarray(mask), "H W", "mask")
    ys = np.flatnonzero(np.any(mask, axis=1))
    xs = np.flatnonzero(np.any(mask, axis=0))
    if len(xs) == 0:
        return np.array([-1, -1, -1, -1], np.int64)
    return np.array([xs[0], ys[0], xs[-1] - xs[0], ys[-1] - ys[0]], np.int64)

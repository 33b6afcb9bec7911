"""Image bytes -> a usable RGB image, or the reason it is not usable; and the level-0 square every model input
starts from. Shared by the readers (validation), the datasets, the crops and the loop's evaluation."""

from __future__ import annotations

import io
import os
import re
import struct
import warnings

import numpy as np
from PIL import Image, UnidentifiedImageError

BAD_IMAGE_REASONS = ("zero_byte", "undecodable", "truncated", "unsupported_mode", "too_large")
# Images with more pixels than this are refused before they are decoded: the `data.max_image_pixels` setting,
# which the command line passes on in this variable (the trainer reads no settings). 12-megapixel camera frames
# pass, a 144-megapixel decompression bomb does not.
DEFAULT_MAX_IMAGE_PIXELS = 100_000_000
MAX_IMAGE_PIXELS_ENV = "ROADWORK_DATA__MAX_IMAGE_PIXELS"
# words in Pillow's errors for data that ends early
_TRUNCATION_HINTS = ("truncated", "broken data stream", "premature end", "end of file")


class RowSkipped(ValueError):
    """A row that cannot become a :class:`Record`; ``reason`` is its :attr:`ReadReport.skipped` key."""

    def __init__(self, reason: str, detail: str = "") -> None:
        self.reason = reason
        self.detail = detail
        super().__init__(f"{reason}: {detail}" if detail else reason)


class BadImageError(RowSkipped):
    """An image that cannot be used; ``reason`` is one of :data:`BAD_IMAGE_REASONS`."""



def max_image_pixels() -> int:
    """The pixel limit in force: $ROADWORK_DATA__MAX_IMAGE_PIXELS (validated with the settings), else the default."""
    text = os.environ.get(MAX_IMAGE_PIXELS_ENV, "").strip()
    return int(text) if text.isdigit() and int(text) > 0 else DEFAULT_MAX_IMAGE_PIXELS


def check_pixels(size: tuple[int, int], limit: int | None = None) -> None:
    """BadImageError ``too_large`` when an image of ``size`` (W, H) has more pixels than the limit."""
    limit = max_image_pixels() if limit is None else limit
    pixels = size[0] * size[1]
    if pixels > limit:
        raise BadImageError("too_large", f"image has {pixels} pixels, over the limit of {limit} "
                                         "(data.max_image_pixels)")


def open_image(data: bytes, limit: int | None = None) -> Image.Image:
    """Pillow's lazy open of ``data`` (the header only), refused with ``too_large`` over the pixel limit.

    Pillow's own decompression-bomb check is replaced by ours here, in this call only: its warning is not
    silenced anywhere else, and its hard error (at twice its limit) is reported as ``too_large`` too."""
    limit = max_image_pixels() if limit is None else limit
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)  # our own limit is checked below
            img = Image.open(io.BytesIO(bytes(data)))
    except Image.DecompressionBombError as e:
        found = re.search(r"\((\d+) pixels\)", str(e))
        pixels = found.group(1) if found else "too many"
        raise BadImageError("too_large", f"image has {pixels} pixels, over the limit of {limit} "
                                         "(data.max_image_pixels)") from None
    check_pixels(img.size, limit)
    return img


def _scaled_to_uint8(img: Image.Image) -> Image.Image:
    """High-bit-depth / float greyscale -> 8-bit L, scaling instead of clipping."""
    a = np.asarray(img)
    if a.dtype.kind == "f":
        a = a.astype(np.float64)
        finite = np.isfinite(a)
        if not finite.any():
            a = np.zeros(a.shape)
        else:
            a = np.where(finite, a, 0.0)
            lo, hi = float(a.min()), float(a.max())
            if lo >= 0.0 and hi <= 1.0:
                a = a * 255.0
            elif hi > lo:
                a = (a - lo) / (hi - lo) * 255.0
    else:
        a = a.astype(np.int64)
        lo, hi = int(a.min()), int(a.max())
        if img.mode.startswith("I;16") or (lo >= 0 and hi <= 65535 and hi > 255):
            a = a / 257.0
        elif lo < 0 or hi > 255:
            a = (a - lo) / max(1, hi - lo) * 255.0
    return Image.fromarray(np.clip(np.rint(a), 0, 255).astype(np.uint8), mode="L")


def to_rgb(img: Image.Image) -> Image.Image:
    """Any Pillow mode -> RGB; high-bit-depth and float greyscale are scaled to 8 bits, not clipped."""
    mode = img.mode
    if mode == "RGB":
        return img
    if mode in ("I", "F") or mode.startswith("I;16"):
        return _scaled_to_uint8(img).convert("RGB")
    if mode == "P" and "transparency" in img.info:
        return img.convert("RGBA").convert("RGB")
    return img.convert("RGB")


def decode_image(data: bytes, max_pixels: int | None = None) -> Image.Image:
    """Fully decode ``data`` and return an RGB image.

    Raises :class:`BadImageError` with reason ``zero_byte`` (empty),
    ``undecodable`` (not an image Pillow can read), ``truncated`` (the data
    ends early), ``unsupported_mode`` (decoded, but cannot become RGB) or
    ``too_large`` (more pixels than ``max_pixels``, default: the process-wide
    limit, refused before the pixels are decoded).
    """
    if data is None or len(data) == 0:
        raise BadImageError("zero_byte")
    try:
        img = open_image(data, max_pixels)
    except BadImageError:
        raise
    except UnidentifiedImageError as e:
        raise BadImageError("undecodable", str(e)) from None
    except Exception as e:  # Pillow raises many types for malformed headers
        msg = str(e)
        reason = "truncated" if "truncated" in msg.lower() or isinstance(e, EOFError) else "undecodable"
        raise BadImageError(reason, f"{type(e).__name__}: {msg}") from None
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            img.load()
    except (EOFError, OSError, SyntaxError, ValueError, IndexError, struct.error) as e:
        msg = str(e).lower()
        truncated = isinstance(e, EOFError) or any(k in msg for k in _TRUNCATION_HINTS)
        raise BadImageError("truncated" if truncated else "undecodable", f"{type(e).__name__}: {e}") from None
    except Exception as e:
        raise BadImageError("undecodable", f"{type(e).__name__}: {e}") from None
    try:
        rgb = to_rgb(img)
        if rgb.mode != "RGB":
            raise ValueError(f"conversion produced mode {rgb.mode}")
        rgb.load()
    except Exception as e:
        raise BadImageError("unsupported_mode", f"mode {img.mode}: {type(e).__name__}: {e}") from None
    return rgb



def center_square(img: Image.Image, size: int) -> Image.Image:
    """The centred square on the shorter side, resized (bilinear) to `size` x `size`: level-0 preprocessing."""
    w, h = img.size
    side = min(w, h)
    left, top = (w - side) // 2, (h - side) // 2
    square = img.crop((left, top, left + side, top + side))  # crop first: no filter bleed from outside
    return square.resize((size, size), Image.Resampling.BILINEAR)

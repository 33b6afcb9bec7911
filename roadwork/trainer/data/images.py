"""Image bytes -> a usable RGB image, or the reason it is not usable; and the level-0 square every model input
starts from. Shared by the readers (validation), the datasets, the crops and the loop's evaluation."""

from __future__ import annotations

import io
import struct
import warnings

import numpy as np
from PIL import Image, UnidentifiedImageError

BAD_IMAGE_REASONS = ("zero_byte", "undecodable", "truncated", "unsupported_mode")
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


def decode_image(data: bytes) -> Image.Image:
    """Fully decode ``data`` and return an RGB image.

    Raises :class:`BadImageError` with reason ``zero_byte`` (empty),
    ``undecodable`` (not an image Pillow can read), ``truncated`` (the data
    ends early) or ``unsupported_mode`` (decoded, but cannot become RGB).
    """
    if data is None or len(data) == 0:
        raise BadImageError("zero_byte")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            img = Image.open(io.BytesIO(bytes(data)))
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

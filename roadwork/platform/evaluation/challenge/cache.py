"""The validator's image cache: every real row is re-saved through Pillow before the challenge transforms see it.

The validator does not hand a dataset row's original bytes to its transforms. Its cache opens each sampled
row with Pillow and stores it with ``img.save(path)`` as JPEG at Pillow's defaults: quality 75, 4:2:0 chroma
subsampling, no ``exif=`` (so EXIF is dropped) and no ``ImageOps.exif_transpose`` (so the EXIF orientation is
not applied). The challenge is then rendered from that stored JPEG. Skipping this second lossy encoding makes
a replay differ from what validators send by 37-43 dB median PSNR (COMPETITION.md), so the replay applies it
to real rows by default; synthetic rows reach the validator through a different path and are left as they are.

A mode JPEG cannot store (RGBA, P, LA, I;16, ...) would make the validator's save fail; such rows never come
from the NATIX dataset, and here they are converted to RGB first so that a local dataset still renders.
"""

from __future__ import annotations

import io
import warnings

from PIL import Image

from roadwork.trainer.data.records import BadImageError, decode_image

__all__ = ["JPEG_MODES", "resave_image", "resave_jpeg"]

JPEG_MODES = frozenset({"RGB", "L", "CMYK"})  # modes Pillow's JPEG encoder writes as they are


def resave_jpeg(data: bytes) -> bytes:
    """``data`` opened with Pillow and saved as JPEG at Pillow's defaults, as the validator's cache stores a row.

    Raises :class:`BadImageError` (a ``ValueError``, with :func:`decode_image`'s reasons) when ``data`` does
    not decode or cannot be encoded.
    """
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # e.g. Pillow's decompression-bomb warning, as decode_image does
            with Image.open(io.BytesIO(bytes(data))) as img:
                if img.mode not in JPEG_MODES:
                    img = img.convert("RGB")
                buf = io.BytesIO()
                img.save(buf, format="JPEG")  # Pillow's defaults: quality 75, 4:2:0, no EXIF, orientation as is
    except Exception as exc:  # noqa: BLE001 - Pillow raises many types; decode_image names the reason
        decode_image(data)  # raises BadImageError for an image that does not decode
        raise BadImageError("unsupported_mode", f"cannot re-save as JPEG: {type(exc).__name__}: {exc}") from None
    return buf.getvalue()


def resave_image(image: Image.Image) -> Image.Image:
    """What the transforms read back from the cache for a decoded ``image``: its JPEG save at Pillow's defaults.

    The same bytes as :func:`resave_jpeg` of the file ``image`` was decoded from whenever that file decodes to
    an RGB image (every NATIX row), since Pillow's encoder sees only the pixels; a greyscale or CMYK file is
    stored by the validator in its own mode, which an image already converted to RGB no longer has.
    """
    if image.mode not in JPEG_MODES:
        image = image.convert("RGB")
    buf = io.BytesIO()
    image.save(buf, format="JPEG")
    with Image.open(io.BytesIO(buf.getvalue())) as im:
        return im.convert("RGB")

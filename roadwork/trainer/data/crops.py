"""The 12 views of one image for the multi-view model, from an image of any size.

Geometry, for an image W x H (boxes are ``(left, top, right, bottom)`` in original pixels, right/bottom
exclusive) and the backbone's input side S:

- ``global``: the whole image ``(0, 0, W, H)``, squashed to S x S (aspect not kept).
- ``tile_r{i}_c{j}`` (i = row, j = column, 0..2, row-major): a 3 x 3 grid of tiles with 25% overlap that
  covers the image edge to edge. Along an axis of length L the tile side is ``t = round(L / (1 + 2 * 0.75))``
  = round(L / 2.5) and the starts are ``round(k * (L - t) / 2)`` for k = 0, 1, 2, so the first tile starts
  at 0, the last ends at L, and neighbours share ``2t - (L - t) / 2`` pixels, 25% of t up to rounding.
  Tiles therefore have the image's aspect ratio and are squashed to S x S like the global view.
  At 224 x 224 (a network challenge): side 90, stride 67, starts 0 / 67 / 134, overlap 23 px (the same grid
  as ``tta.py``). At 4032 x 3024: 1613 x 1210 px tiles, starts 0 / 1210 / 2419 and 0 / 907 / 1814.
- ``centre``: the centred square of side min(W, H): ``((W - s) // 2, (H - s) // 2, + s, + s)``, exactly the
  square that level-0 preprocessing (and the validator's level 0) crops.
- ``right``: the square of side s = min(W, H) flush with the right edge, vertically centred:
  ``(W - s, (H - s) // 2, W, (H - s) // 2 + s)``. For a landscape image that is the right-hand H x H square at
  full height (where US roadwork usually sits: the right shoulder and lanes); for a square or portrait image
  it coincides with the centre square.

Every view is cropped, then resized with Pillow's bilinear filter (antialiased when shrinking, as the
validator's level 0), so nothing outside a box bleeds in: the centre view equals level-0 preprocessing exactly.
Output: ``(12, 3, S, S)`` float32 in [0, 1].

Fast path (:func:`views_from_bytes` with ``fast=True``): JPEG supports decoding at 1/2, 1/4 or 1/8 of the
size directly in the DCT (libjpeg scaling, Pillow's ``Image.draft``), several times cheaper than a full decode
followed by a shrink. The reduction r is the largest of 8, 4, 2, 1 such that every view's box, divided by r,
is still at least S pixels on its shorter side (:func:`draft_reduction`): no view is ever upsampled because
of the fast path. The tiles are the smallest boxes, so they decide: at S = 224 a 4032 x 3024 photo decodes at
1/4 (1008 x 756; tiles 403 x 302), a 2000 x 1500 one at 1/2. In the reduced image a box is the original box
divided by r (float coordinates: libjpeg maps the original image onto exactly W / r x H / r).
"""

from __future__ import annotations

import logging
import math
import warnings
from dataclasses import dataclass

import numpy as np
import torch
from PIL import Image

from roadwork.trainer.data.images import BadImageError, decode_image, open_image, to_rgb
from roadwork.trainer.model.view_geometry import (  # noqa: F401  (re-exported: the geometry lives there)
    GRID,
    N_VIEWS,
    OVERLAP,
    VIEW_NAMES,
    Box,
    axis_tiles,
    view_boxes,
)

__all__ = ["N_VIEWS", "VIEW_NAMES", "Views", "draft_reduction", "extract_views", "view_boxes", "views_from_bytes"]

log = logging.getLogger(__name__)

REDUCTIONS = (8, 4, 2, 1)  # the scales libjpeg can decode at


@dataclass(frozen=True)
class Views:
    """The views of one image."""

    pixels: torch.Tensor  # (12, 3, S, S) float32 in [0, 1]
    names: tuple[str, ...]  # VIEW_NAMES
    boxes: tuple[Box, ...]  # in the original image's pixels
    image_size: tuple[int, int]  # original (W, H)
    decoded_size: tuple[int, int]  # (w, h) of the image actually decoded: (W, H) unless reduced
    reduction: int  # 1, 2, 4 or 8: original pixels per decoded pixel


def draft_reduction(width: int, height: int, size: int) -> int:
    """The largest r in 8, 4, 2, 1 that keeps every view box at least ``size`` px on its shorter side after
    dividing by r (1 when even the full-resolution boxes are smaller than that)."""
    shortest = min(min(x1 - x0, y1 - y0) for x0, y0, x1, y1 in view_boxes(width, height))
    return next(r for r in REDUCTIONS if shortest / r >= size or r == 1)


def _crop_resize(img: Image.Image, box: tuple[float, float, float, float], size: int) -> np.ndarray:
    """Crop to the whole pixels ``box`` touches, then resize exactly ``box`` (sub-pixel) to size x size.

    Cropping first keeps the filter from reading pixels outside the box (Pillow's ``resize(box=...)`` alone
    reads up to the filter's support beyond it); for an integer box this equals ``crop(box).resize(...)``.
    """
    x0, y0, x1, y1 = box
    ix0, iy0 = math.floor(x0), math.floor(y0)
    ix1, iy1 = max(ix0 + 1, math.ceil(x1)), max(iy0 + 1, math.ceil(y1))
    whole = (ix0, iy0, ix1, iy1) == (0, 0, *img.size)
    crop = img if whole else img.crop((ix0, iy0, ix1, iy1))  # no copy of the whole image for the global view
    sub = (x0 - ix0, y0 - iy0, x1 - ix0, y1 - iy0)
    return np.asarray(crop.resize((size, size), Image.Resampling.BILINEAR, box=sub))  # (S, S, 3) uint8


def _resize_views(img: Image.Image, boxes: list[tuple[float, float, float, float]], size: int) -> torch.Tensor:
    arr = np.stack([_crop_resize(img, b, size) for b in boxes])  # (V, S, S, 3) uint8
    return torch.from_numpy(arr).permute(0, 3, 1, 2).to(torch.float32).div_(255.0).contiguous()  # (V, 3, S, S)


def _views(img: Image.Image, size: int, original: tuple[int, int], reduction: int) -> Views:
    """Views of ``img``, which holds an ``original``-sized image decoded at 1 / ``reduction``."""
    if size < 1:
        raise ValueError(f"size must be positive, got {size}")
    img = to_rgb(img)
    w, h = img.size
    boxes = view_boxes(*original)
    # libjpeg maps the original onto exactly W / r x H / r decoded pixels (the last one may be partial)
    scaled = [(x0 / reduction, y0 / reduction, min(x1 / reduction, w), min(y1 / reduction, h))
              for x0, y0, x1, y1 in boxes]
    return Views(
        pixels=_resize_views(img, scaled, size),
        names=VIEW_NAMES,
        boxes=boxes,
        image_size=original,
        decoded_size=(w, h),
        reduction=reduction,
    )


def extract_views(img: Image.Image, size: int) -> Views:
    """The 12 views of an image decoded at full resolution, each resized to ``size`` x ``size``."""
    return _views(img, size, img.size, 1)


def _decode_reduced(data: bytes, size: int) -> tuple[Image.Image, tuple[int, int], int]:
    """Decode a JPEG at the largest libjpeg reduction :func:`draft_reduction` allows; other formats in full.
    Returns (RGB image, original (W, H), reduction). Bad data raises :class:`BadImageError` as ``decode_image``
    does (any failure of the reduced decode falls back to it)."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            img = open_image(data)  # over the pixel limit: the full decoder below refuses it by name
            original = img.size
            r = draft_reduction(*original, size)
            if img.format == "JPEG" and r > 1:
                # Pillow picks the largest scale <= min(W // req_w, H // req_h), which is r for req = (W//r, H//r)
                drafted = img.draft("RGB", (original[0] // r, original[1] // r))
                if drafted is not None:
                    img.load()
                    return to_rgb(img), original, round(original[0] / drafted[1][2])
    except Exception as e:  # noqa: BLE001 - anything odd: let the full decoder classify the failure
        log.debug("reduced decode failed (%s: %s); decoding in full", type(e).__name__, e)
    img = decode_image(data)
    return img, img.size, 1


def views_from_bytes(data: bytes, size: int, fast: bool = True) -> Views:
    """Encoded image bytes -> its 12 views at ``size``. ``fast``: reduced JPEG decode (module docstring);
    otherwise a full-resolution decode. Raises :class:`BadImageError` for data that does not decode."""
    if not data:
        raise BadImageError("zero_byte")
    if not fast:
        return extract_views(decode_image(data), size)
    img, original, reduction = _decode_reduced(data, size)
    return _views(img, size, original, reduction)

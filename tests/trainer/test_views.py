"""The 12 views: geometry, shapes at any input size, and the reduced-decode fast path."""

from __future__ import annotations

import io

import numpy as np
import pytest
import torch
from PIL import Image

from roadwork.trainer.data import crops as views_mod
from roadwork.trainer.data.images import center_square
from roadwork.trainer.data.records import BadImageError
from roadwork.trainer.data.crops import (
    N_VIEWS,
    VIEW_NAMES,
    draft_reduction,
    extract_views,
    view_boxes,
    views_from_bytes,
)

S = 224
# fast path vs full decode, mean |difference| over all 12 views on the textured 2000 x 1500 test JPEG below:
# measured about 0.0047 (1.2 / 255); the DCT-domain 1/2 decode averages pixels where Pillow's bilinear
# shrink weights them, so a little difference is expected, a broken box scaling would give ~0.1.
FAST_PATH_MEAN_ABS_BOUND = 3.0 / 255
FAST_PATH_VIEW_MEAN_ABS_BOUND = 5.0 / 255  # the worst single view


def _textured(width: int, height: int, seed: int = 0) -> Image.Image:
    """Smooth colour blobs plus fine noise, like an upscaled photo with sensor noise."""
    rng = np.random.default_rng(seed)
    base = Image.fromarray(rng.integers(0, 256, (max(2, height // 10), max(2, width // 10), 3), dtype=np.uint8))
    arr = np.asarray(base.resize((width, height), Image.Resampling.BICUBIC), dtype=np.float32)
    arr = arr + rng.normal(0.0, 4.0, arr.shape)
    return Image.fromarray(arr.clip(0, 255).astype(np.uint8))


def _jpeg(img: Image.Image, quality: int = 90) -> bytes:
    buf = io.BytesIO()
    img.save(buf, format="JPEG", quality=quality)
    return buf.getvalue()


@pytest.mark.parametrize("size", [(224, 224), (640, 480), (480, 640), (1000, 200), (7, 5), (1, 1)])
def test_shapes_any_input_size(size: tuple[int, int]) -> None:
    v = extract_views(_textured(*size), S)
    assert v.pixels.shape == (N_VIEWS, 3, S, S) == (12, 3, S, S)
    assert v.pixels.dtype == torch.float32
    assert 0.0 <= float(v.pixels.min()) and float(v.pixels.max()) <= 1.0
    assert v.names == VIEW_NAMES and len(v.boxes) == 12
    assert v.image_size == v.decoded_size == size and v.reduction == 1
    for x0, y0, x1, y1 in v.boxes:
        assert 0 <= x0 < x1 <= size[0] and 0 <= y0 < y1 <= size[1]


def test_view_names_order() -> None:
    assert VIEW_NAMES[0] == "global" and VIEW_NAMES[-2:] == ("centre", "right")
    assert VIEW_NAMES[1:10] == tuple(f"tile_r{i}_c{j}" for i in range(3) for j in range(3))


@pytest.mark.parametrize("length", [1, 2, 3, 5, 7, 100, 224, 225, 1500, 2000, 3024, 4032])
def test_tiles_cover_edge_to_edge_with_quarter_overlap(length: int) -> None:
    tiles = views_mod.axis_tiles(length)
    (a0, a1), (b0, b1), (c0, c1) = tiles
    side = a1 - a0
    assert b1 - b0 == c1 - c0 == side
    assert a0 == 0 and c1 == length  # edge to edge
    assert b0 <= a1 and c0 <= b1  # no gap
    if length >= 20:  # 3 tiles at 25% overlap: L = t + 2 * 0.75 t = 2.5 t
        assert abs(side - length / 2.5) <= 0.5
        for overlap in (a1 - b0, b1 - c0):
            assert abs(overlap / side - 0.25) <= 1.5 / side  # 25% of the side, up to rounding


def test_box_arithmetic_at_224_and_4032x3024() -> None:
    b = dict(zip(VIEW_NAMES, view_boxes(224, 224)))
    assert b["tile_r0_c0"] == (0, 0, 90, 90) and b["tile_r0_c1"] == (67, 0, 157, 90)
    assert b["tile_r2_c2"] == (134, 134, 224, 224)  # side 90, stride 67, overlap 23 px
    assert b["global"] == b["centre"] == b["right"] == (0, 0, 224, 224)
    b = dict(zip(VIEW_NAMES, view_boxes(4032, 3024)))
    assert b["tile_r0_c0"] == (0, 0, 1613, 1210)
    assert b["tile_r1_c1"] == (1210, 907, 2823, 2117) and b["tile_r2_c2"] == (2419, 1814, 4032, 3024)
    assert b["centre"] == (504, 0, 3528, 3024)
    assert b["right"] == (1008, 0, 4032, 3024)  # the full-height square on the right edge
    b = dict(zip(VIEW_NAMES, view_boxes(1500, 2000)))  # portrait: right square = centre square
    assert b["right"] == b["centre"] == (0, 250, 1500, 1750)


def test_global_view_equals_direct_resize() -> None:
    img = _textured(333, 250)
    v = extract_views(img, S)
    direct = np.asarray(img.resize((S, S), Image.Resampling.BILINEAR))
    assert torch.equal(v.pixels[0], torch.from_numpy(direct.copy()).permute(2, 0, 1).float() / 255)
    # and the centre view is level-0 preprocessing's centre square
    centre = np.asarray(center_square(img, S))
    assert torch.equal(v.pixels[VIEW_NAMES.index("centre")], torch.from_numpy(centre.copy()).permute(2, 0, 1).float() / 255)


def test_tile_view_shows_its_box() -> None:
    arr = np.zeros((300, 400, 3), dtype=np.uint8)
    arr[:, 240:] = 255  # right part white: the last tile column (starts at 240) is all white
    v = extract_views(Image.fromarray(arr), 32)
    names = list(VIEW_NAMES)
    assert float(v.pixels[names.index("tile_r1_c2")].min()) == 1.0
    assert float(v.pixels[names.index("tile_r1_c0")].max()) == 0.0
    assert float(v.pixels[names.index("right")].mean()) > float(v.pixels[names.index("centre")].mean())


def test_draft_reduction_rule() -> None:
    assert draft_reduction(4032, 3024, 224) == 4  # tiles 1613 x 1210: /4 -> 302 px >= 224, /8 -> 151 < 224
    assert draft_reduction(2000, 1500, 224) == 2  # tiles 600 px tall: /2 -> 300, /4 -> 150
    assert draft_reduction(4032, 3024, 518) == 2
    assert draft_reduction(4032, 3024, 100) == 8
    assert draft_reduction(640, 480, 224) == 1 and draft_reduction(224, 224, 224) == 1 and draft_reduction(1, 1, 224) == 1


def test_fast_path_matches_full_decode_on_2000x1500_jpeg() -> None:
    data = _jpeg(_textured(2000, 1500))
    full = views_from_bytes(data, S, fast=False)
    fast = views_from_bytes(data, S, fast=True)
    assert full.pixels.shape == fast.pixels.shape == (12, 3, S, S)
    assert full.decoded_size == (2000, 1500) and full.reduction == 1
    assert fast.decoded_size == (1000, 750) and fast.reduction == 2  # draft really decoded at half size
    assert fast.boxes == full.boxes and fast.image_size == (2000, 1500)
    diff = (fast.pixels - full.pixels).abs()
    assert float(diff.mean()) < FAST_PATH_MEAN_ABS_BOUND
    assert float(diff.mean(dim=(1, 2, 3)).max()) < FAST_PATH_VIEW_MEAN_ABS_BOUND


def test_fast_path_decodes_at_reduced_size() -> None:
    data = _jpeg(_textured(2000, 1500), quality=75)
    img = Image.open(io.BytesIO(data))
    img.draft("RGB", (1000, 750))
    img.load()
    assert img.size == (1000, 750)  # libjpeg DCT scaling is available in this Pillow
    img, original, reduction = views_mod._decode_reduced(data, S)
    assert (img.size, original, reduction) == ((1000, 750), (2000, 1500), 2)


def test_fast_path_odd_sizes_non_jpeg_and_small_images() -> None:
    data = _jpeg(_textured(1203, 901))  # not a multiple of the reduction: the last decoded pixel is partial
    fast, full = views_from_bytes(data, 112), views_from_bytes(data, 112, fast=False)
    assert fast.reduction == 2 and fast.decoded_size == (602, 451)
    assert float((fast.pixels - full.pixels).abs().mean()) < FAST_PATH_MEAN_ABS_BOUND
    buf = io.BytesIO()
    _textured(2000, 1500).save(buf, format="PNG")  # no DCT scaling: decoded in full
    png = views_from_bytes(buf.getvalue(), S)
    assert png.reduction == 1 and png.decoded_size == (2000, 1500)
    small = views_from_bytes(_jpeg(_textured(320, 240)), S)  # already below S: never reduced
    assert small.reduction == 1 and small.pixels.shape == (12, 3, S, S)
    grey = views_from_bytes(_jpeg(_textured(2000, 1500).convert("L")), S)
    assert grey.pixels.shape == (12, 3, S, S) and grey.reduction == 2


def test_bad_bytes_raise_bad_image_error() -> None:
    data = _jpeg(_textured(800, 600))
    with pytest.raises(BadImageError) as e:
        views_from_bytes(b"", S)
    assert e.value.reason == "zero_byte"
    with pytest.raises(BadImageError):
        views_from_bytes(b"\x13\x37GARBAGE" * 10, S)
    with pytest.raises(BadImageError) as e:
        views_from_bytes(data[: len(data) // 3], S)
    assert e.value.reason == "truncated"
    with pytest.raises(ValueError):
        extract_views(_textured(10, 10), 0)

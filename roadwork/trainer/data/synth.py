"""Synthetic roadwork dataset generator.

Writes a parquet file with the same schema as the NATIX
``natix-network-org/roadwork`` Hugging Face dataset, filled with procedurally
drawn road scenes (Pillow only).  Label 1 images contain roadwork objects
(traffic cones, drums, striped barriers, diamond road-work signs, workers in
hi-vis vests); label 0 images contain none, but some carry deliberate orange
or red distractors so that "any orange pixel" is not a sufficient rule.

Metadata is realistic but deliberately imperfect: GPS, weather, daytime,
scene, city and description are missing on a few percent of rows, GPS comes
in several string formats, and ``corrupt_fraction`` of the rows get broken
image bytes (zero-length, truncated JPEG, random garbage).

Everything is deterministic given ``(n, seed, corrupt_fraction)``: every row
uses its own generator seeded from ``(seed, row index)``, so rows do not
depend on each other and the metadata of a row does not depend on
``corrupt_fraction`` either.
"""

from __future__ import annotations

import io
import json
import math
import os
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from PIL import Image, ImageDraw

__all__ = ["SynthReport", "synthesize", "PARQUET_SCHEMA", "CITIES", "OUTPUT_RELPATH"]

OUTPUT_RELPATH = Path("data") / "train-00000-of-00001.parquet"
ROW_GROUP_SIZE = 100
JPEG_QUALITY = 90

# 14 US cities with their real coordinates (lat, lon).
CITIES: tuple[tuple[str, float, float], ...] = (
    ("New York", 40.7128, -74.0060),
    ("Los Angeles", 34.0522, -118.2437),
    ("Chicago", 41.8781, -87.6298),
    ("Houston", 29.7604, -95.3698),
    ("Phoenix", 33.4484, -112.0740),
    ("Philadelphia", 39.9526, -75.1652),
    ("San Antonio", 29.4241, -98.4936),
    ("San Diego", 32.7157, -117.1611),
    ("Dallas", 32.7767, -96.7970),
    ("Austin", 30.2672, -97.7431),
    ("Seattle", 47.6062, -122.3321),
    ("Denver", 39.7392, -104.9903),
    ("Boston", 42.3601, -71.0589),
    ("Atlanta", 33.7490, -84.3880),
)

_IMAGE_TYPE = pa.struct([("bytes", pa.binary()), ("path", pa.string())])
_VIDEO_TYPE = pa.struct([("frame_id", pa.int64()), ("seq_id", pa.string()), ("vid_id", pa.string())])
_TAGS_TYPE = pa.struct(
    [
        ("daytime", pa.string()),
        ("scene_environment", pa.string()),
        ("travel_alteration", pa.string()),
        ("weather", pa.string()),
    ]
)

_HF_FEATURES = {
    "image": {"_type": "Image"},
    "id": {"dtype": "string", "_type": "Value"},
    "width": {"dtype": "int64", "_type": "Value"},
    "height": {"dtype": "int64", "_type": "Value"},
    "license": {"dtype": "string", "_type": "Value"},
    "flickr_url": {"dtype": "string", "_type": "Value"},
    "coco_url": {"dtype": "string", "_type": "Value"},
    "date_captured": {"dtype": "string", "_type": "Value"},
    "gps": {"dtype": "string", "_type": "Value"},
    "city_name": {"dtype": "string", "_type": "Value"},
    "scene_description": {"dtype": "string", "_type": "Value"},
    "video_info": {
        "frame_id": {"dtype": "int64", "_type": "Value"},
        "seq_id": {"dtype": "string", "_type": "Value"},
        "vid_id": {"dtype": "string", "_type": "Value"},
    },
    "scene_level_tags": {
        "daytime": {"dtype": "string", "_type": "Value"},
        "scene_environment": {"dtype": "string", "_type": "Value"},
        "travel_alteration": {"dtype": "string", "_type": "Value"},
        "weather": {"dtype": "string", "_type": "Value"},
    },
    "label": {"dtype": "int64", "_type": "Value"},
}

PARQUET_SCHEMA = pa.schema(
    [
        ("image", _IMAGE_TYPE),
        ("id", pa.string()),
        ("width", pa.int64()),
        ("height", pa.int64()),
        ("license", pa.string()),
        ("flickr_url", pa.string()),
        ("coco_url", pa.string()),
        ("date_captured", pa.string()),
        ("gps", pa.string()),
        ("city_name", pa.string()),
        ("scene_description", pa.string()),
        ("video_info", _VIDEO_TYPE),
        ("scene_level_tags", _TAGS_TYPE),
        ("label", pa.int64()),
    ],
    metadata={"huggingface": json.dumps({"info": {"features": _HF_FEATURES}})},
)


@dataclass(frozen=True)
class SynthReport:
    """What :func:`synthesize` wrote."""

    path: Path  # the parquet file written
    n_rows: int
    n_positive: int
    n_corrupt: int  # rows whose image bytes were deliberately corrupted


# --------------------------------------------------------------------------
# small rng helpers (plain Python values out, so nothing numpy leaks into rows)
# --------------------------------------------------------------------------

Color = tuple[int, int, int]


def _u(rng: np.random.Generator, lo: float, hi: float) -> float:
    return float(lo + (hi - lo) * rng.random())


def _i(rng: np.random.Generator, lo: int, hi: int) -> int:
    """Integer in [lo, hi] inclusive."""
    return int(rng.integers(lo, hi + 1))


def _chance(rng: np.random.Generator, p: float) -> bool:
    return bool(rng.random() < p)


def _pick(rng: np.random.Generator, seq: Sequence[Any]) -> Any:
    return seq[int(rng.integers(len(seq)))]


def _pick_w(rng: np.random.Generator, items: Sequence[tuple[Any, float]]) -> Any:
    total = sum(w for _, w in items)
    r = rng.random() * total
    for item, w in items:
        r -= w
        if r < 0:
            return item
    return items[-1][0]


def _jit(rng: np.random.Generator, c: Color, amount: int = 12) -> Color:
    return tuple(max(0, min(255, v + _i(rng, -amount, amount))) for v in c)  # type: ignore[return-value]


def _shade(c: Color, f: float) -> Color:
    return tuple(max(0, min(255, int(v * f))) for v in c)  # type: ignore[return-value]


def _mix(a: Color, b: Color, t: float) -> Color:
    return tuple(int(round(x + (y - x) * t)) for x, y in zip(a, b))  # type: ignore[return-value]


# --------------------------------------------------------------------------
# palettes
# --------------------------------------------------------------------------

_ORANGES: tuple[Color, ...] = ((255, 110, 0), (250, 90, 10), (255, 130, 20), (240, 100, 0), (255, 120, 40))
_WHITE: Color = (242, 242, 238)
_CAR_COLORS: tuple[Color, ...] = (
    (235, 235, 235), (30, 30, 32), (160, 162, 168), (25, 45, 110), (150, 20, 25),
    (35, 70, 45), (95, 100, 108), (60, 90, 150), (200, 200, 190), (110, 20, 30),
)
_BUILDING_COLORS: tuple[Color, ...] = (
    (150, 150, 155), (182, 172, 152), (125, 92, 82), (205, 198, 188), (110, 116, 126),
    (170, 160, 140), (90, 95, 105), (196, 186, 170),
)
_ROOF_COLORS: tuple[Color, ...] = ((70, 60, 55), (55, 58, 64), (100, 70, 60), (80, 80, 85))
_VEST_COLORS: tuple[Color, ...] = ((255, 120, 0), (255, 95, 10), (205, 250, 20), (225, 255, 40))
_HAT_COLORS: tuple[Color, ...] = ((255, 205, 0), (255, 130, 0), (245, 245, 245), (255, 225, 30))
_SKIN: tuple[Color, ...] = ((230, 190, 160), (198, 150, 110), (140, 95, 65), (95, 65, 45))


# --------------------------------------------------------------------------
# scene geometry
# --------------------------------------------------------------------------


@dataclass
class _Scene:
    W: int
    H: int
    hy: int  # horizon row
    vx: float  # vanishing point x
    top_l: float  # road edges at the horizon
    top_r: float
    bot_l: float  # road edges at the bottom row
    bot_r: float
    lanes: int
    light: float  # colour multiplier for foreground objects (night < 1)

    def s_of(self, y: float) -> float:
        """Depth scale in (0, 1]: 0 at the horizon, 1 at the bottom row."""
        return max(1e-3, (y - self.hy) / max(1.0, self.H - self.hy))

    def y_of(self, s: float) -> float:
        return self.hy + s * (self.H - self.hy)

    def road_x(self, t: float, s: float) -> float:
        """x of the point at fraction t across the road (0=left edge, 1=right edge) at depth s."""
        left = self.top_l + (self.bot_l - self.top_l) * s
        right = self.top_r + (self.bot_r - self.top_r) * s
        return left + t * (right - left)

    def lit(self, c: Color) -> Color:
        return _shade(c, self.light)

    def central(self, x: float, margin: float = 0.85) -> float:
        """Clamp x into the centre square that a centre crop keeps."""
        half = min(self.W, self.H) / 2 * margin
        return min(max(x, self.W / 2 - half), self.W / 2 + half)


def _sky_ground(rng: np.random.Generator, W: int, H: int, hy: int, daytime: str, weather: str, scene: str) -> np.ndarray:
    if daytime == "Dark":
        top = _jit(rng, (8, 12, 32), 6)
        hor = _jit(rng, (38, 44, 72), 10)
    elif weather in ("cloudy", "rain", "fog"):
        g = _i(rng, 120, 175)
        top = _jit(rng, (g, g + 4, g + 10), 8)
        hor = _jit(rng, (g + 40, g + 42, g + 46), 8)
    else:
        top = _jit(rng, (80, 140, 215), 20)
        hor = _jit(rng, (195, 212, 235), 12)
    if scene == "Urban":
        ground = _jit(rng, (150, 150, 148), 18)
    elif _chance(rng, 0.25):
        ground = _jit(rng, (150, 145, 100), 15)  # dry grass
    else:
        ground = _jit(rng, (85, 125, 55), 18)
    arr = np.empty((H, W, 3), dtype=np.float32)
    t = np.linspace(0.0, 1.0, hy, dtype=np.float32)[:, None]
    arr[:hy, :, :] = (np.array(top, np.float32) * (1 - t) + np.array(hor, np.float32) * t)[:, None, :]
    gy = np.linspace(0.85, 1.1, H - hy, dtype=np.float32)[:, None, None]
    arr[hy:, :, :] = np.array(ground, np.float32)[None, None, :] * gy
    return arr


def _draw_clouds(rng: np.random.Generator, d: ImageDraw.ImageDraw, sc: _Scene, n: int, dark: bool) -> None:
    for _ in range(n):
        cx, cy = _u(rng, 0, sc.W), _u(rng, 0, sc.hy * 0.8)
        w, h = _u(rng, 0.08, 0.25) * sc.W, _u(rng, 0.03, 0.08) * sc.H
        g = _i(rng, 40, 70) if dark else _i(rng, 215, 250)
        for _k in range(3):
            ox, oy = _u(rng, -w / 2, w / 2), _u(rng, -h / 3, h / 3)
            d.ellipse([cx + ox - w / 2, cy + oy - h / 2, cx + ox + w / 2, cy + oy + h / 2], fill=(g, g, g + 4))


def _draw_hills(rng: np.random.Generator, d: ImageDraw.ImageDraw, sc: _Scene) -> None:
    col = _jit(rng, (90, 110, 120), 15)
    pts = [(0.0, float(sc.hy))]
    x = 0.0
    while x < sc.W:
        pts.append((x, sc.hy - _u(rng, 0.02, 0.12) * sc.H))
        x += _u(rng, 0.08, 0.2) * sc.W
    pts += [(float(sc.W), sc.hy - _u(rng, 0.02, 0.1) * sc.H), (float(sc.W), float(sc.hy))]
    d.polygon(pts, fill=col)


def _draw_building(rng: np.random.Generator, d: ImageDraw.ImageDraw, x0: float, x1: float, yb: float, h: float,
                   col: Color, dark: bool, house: bool) -> None:
    d.rectangle([x0, yb - h, x1, yb], fill=col)
    if house:
        roof = _pick(rng, _ROOF_COLORS)
        eave = 0.05 * (x1 - x0)
        d.polygon([(x0 - eave, yb - h), (x1 + eave, yb - h), ((x0 + x1) / 2, yb - h * 1.45)], fill=roof)
    w = x1 - x0
    nx = max(1, int(w / max(6.0, h * 0.18)))
    ny = max(1, int(h / max(6.0, h * 0.2)))
    if w < 8 or h < 10:
        return
    cw, ch = w / nx, h / ny
    for ix in range(nx):
        for iy in range(ny - (1 if house else 0)):
            if dark:
                win = (235, 215, 140) if _chance(rng, 0.35) else (25, 28, 40)
            else:
                win = (70, 90, 115) if _chance(rng, 0.8) else (150, 170, 190)
            wx0, wy0 = x0 + ix * cw + cw * 0.22, yb - h + iy * ch + ch * 0.22
            d.rectangle([wx0, wy0, wx0 + cw * 0.56, wy0 + ch * 0.5], fill=win)


def _draw_tree(rng: np.random.Generator, d: ImageDraw.ImageDraw, x: float, yb: float, h: float,
               canopy: Color | None = None) -> None:
    trunk_w = max(2.0, h * 0.07)
    d.rectangle([x - trunk_w / 2, yb - h * 0.45, x + trunk_w / 2, yb], fill=_jit(rng, (85, 62, 40), 10))
    col = canopy if canopy is not None else _jit(rng, (45, 100, 45), 20)
    if _chance(rng, 0.4):  # conifer
        d.polygon([(x, yb - h), (x - h * 0.28, yb - h * 0.3), (x + h * 0.28, yb - h * 0.3)], fill=col)
    else:
        r = h * _u(rng, 0.25, 0.35)
        d.ellipse([x - r, yb - h, x + r, yb - h + 2 * r], fill=col)
        d.ellipse([x - r * 0.9 + r * 0.4, yb - h + r * 0.5, x + r * 0.7, yb - h + 2.1 * r], fill=_shade(col, 0.85))


def _draw_pole(d: ImageDraw.ImageDraw, x: float, yb: float, h: float, dark: bool) -> tuple[float, float]:
    w = max(1.5, h * 0.025)
    d.rectangle([x - w / 2, yb - h, x + w / 2, yb], fill=(95, 95, 100))
    d.rectangle([x - w / 2, yb - h, x + h * 0.15, yb - h + w], fill=(95, 95, 100))
    lamp = (250, 240, 190) if dark else (200, 200, 190)
    d.rectangle([x + h * 0.1, yb - h + w, x + h * 0.17, yb - h + 2.2 * w], fill=lamp)
    return x + h * 0.135, yb - h + 1.6 * w


def _draw_car(rng: np.random.Generator, d: ImageDraw.ImageDraw, sc: _Scene, x: float, yb: float, w: float,
              body: Color, glows: list[tuple[float, float, float, Color]], dark: bool) -> None:
    h = w * _u(rng, 0.55, 0.75)
    body = sc.lit(body)
    d.rounded_rectangle([x - w / 2, yb - h * 0.62, x + w / 2, yb - h * 0.1], radius=max(1, int(w * 0.06)), fill=body)
    d.polygon([(x - w * 0.38, yb - h * 0.62), (x - w * 0.3, yb - h), (x + w * 0.3, yb - h), (x + w * 0.38, yb - h * 0.62)],
              fill=_shade(body, 0.9))
    d.rectangle([x - w * 0.3, yb - h * 0.92, x + w * 0.3, yb - h * 0.66], fill=sc.lit((55, 65, 80)))
    for side in (-1, 1):
        cx = x + side * w * 0.32
        r = w * 0.1
        d.ellipse([cx - r, yb - 2 * r, cx + r, yb], fill=(18, 18, 18))
        tl = (x + side * w * 0.42, yb - h * 0.45)
        d.rectangle([tl[0] - w * 0.05, tl[1] - h * 0.05, tl[0] + w * 0.05, tl[1] + h * 0.05],
                    fill=(235, 30, 30) if dark else (170, 25, 25))
        if dark:
            glows.append((tl[0], tl[1], w * 0.12, (255, 40, 30)))
    d.rectangle([x - w * 0.12, yb - h * 0.3, x + w * 0.12, yb - h * 0.2], fill=(225, 225, 215))


# --------------------------------------------------------------------------
# roadwork objects
# --------------------------------------------------------------------------


def _draw_cone(rng: np.random.Generator, d: ImageDraw.ImageDraw, sc: _Scene, x: float, yb: float, h: float) -> None:
    orange = sc.lit(_jit(rng, _pick(rng, _ORANGES), 8))
    white = sc.lit(_WHITE)
    base_h = h * 0.09
    bw = h * _u(rng, 0.62, 0.78)
    d.rectangle([x - bw / 2, yb - base_h, x + bw / 2, yb], fill=_pick(rng, ((35, 35, 35), orange)))
    top_w, bot_w = h * 0.1, h * _u(rng, 0.5, 0.6)

    def half(yf: float) -> float:  # half width at fraction yf of the body height (0 = bottom)
        return (bot_w + (top_w - bot_w) * yf) / 2

    y0, ytop = yb - base_h, yb - h
    body_h = y0 - ytop
    d.polygon([(x - half(0), y0), (x - half(1), ytop), (x + half(1), ytop), (x + half(0), y0)], fill=orange)
    bands = ((0.32, 0.47), (0.6, 0.7)) if _chance(rng, 0.7) else ((0.45, 0.62),)
    for a, b in bands:
        ya, yb2 = y0 - a * body_h, y0 - b * body_h
        d.polygon([(x - half(a), ya), (x - half(b), yb2), (x + half(b), yb2), (x + half(a), ya)], fill=white)


def _draw_drum(rng: np.random.Generator, d: ImageDraw.ImageDraw, sc: _Scene, x: float, yb: float, h: float) -> None:
    orange = sc.lit(_jit(rng, _pick(rng, _ORANGES), 8))
    white = sc.lit(_WHITE)
    w = h * _u(rng, 0.55, 0.68)
    d.rectangle([x - w * 0.6, yb - h * 0.08, x + w * 0.6, yb], fill=(30, 30, 30))
    n = 5
    bh = (h * 0.92) / n
    for k in range(n):
        ya = yb - h * 0.08 - k * bh
        d.rectangle([x - w / 2, ya - bh, x + w / 2, ya], fill=orange if k % 2 == 0 else white)
    d.ellipse([x - w / 2, yb - h - bh * 0.3, x + w / 2, yb - h + bh * 0.3], fill=_shade(orange, 0.85))


def _striped_board(rng: np.random.Generator, sc: _Scene, w: int, h: int) -> Image.Image:
    orange = sc.lit(_jit(rng, _pick(rng, _ORANGES), 8))
    board = Image.new("RGB", (w, h), sc.lit(_WHITE))
    bd = ImageDraw.Draw(board)
    period = max(4.0, h * _u(rng, 1.4, 2.0))
    direction = _pick(rng, (-1, 1))
    x = -2.0 * h
    while x < w + 2 * h:
        p = [(x, 0), (x + period / 2, 0), (x + period / 2 + direction * h, h), (x + direction * h, h)]
        bd.polygon(p, fill=orange)
        x += period
    return board


def _draw_barrier(rng: np.random.Generator, img: Image.Image, d: ImageDraw.ImageDraw, sc: _Scene,
                  x: float, yb: float, h: float) -> None:
    w = h * _u(rng, 1.5, 2.4)
    legs = sc.lit((225, 225, 220))
    lw = max(1.5, h * 0.06)
    for lx in (x - w * 0.42, x + w * 0.42):
        d.rectangle([lx - lw / 2, yb - h, lx + lw / 2, yb], fill=legs)
        d.rectangle([lx - lw * 2, yb - lw, lx + lw * 2, yb], fill=sc.lit((60, 60, 60)))
    n_boards = _pick(rng, (1, 2, 2, 3))
    bh = max(3, int(h * (0.24 if n_boards > 1 else 0.32)))
    bw = max(4, int(w))
    for k in range(n_boards):
        top = yb - h + k * (h * 0.82 / n_boards)
        board = _striped_board(rng, sc, bw, bh)
        img.paste(board, (int(round(x - bw / 2)), int(round(top))))


def _draw_sign(rng: np.random.Generator, d: ImageDraw.ImageDraw, sc: _Scene, x: float, yb: float, h: float) -> None:
    orange = sc.lit(_jit(rng, _pick(rng, _ORANGES), 8))
    r = h * _u(rng, 0.2, 0.26)  # half diagonal of the diamond
    cy = yb - h + r
    pw = max(1.5, h * 0.03)
    if _chance(rng, 0.5):
        d.rectangle([x - pw / 2, cy, x + pw / 2, yb], fill=sc.lit((120, 120, 125)))
    else:  # folding stand
        d.line([(x, cy + r * 0.8), (x - r * 0.8, yb)], fill=sc.lit((60, 60, 60)), width=max(1, int(pw)))
        d.line([(x, cy + r * 0.8), (x + r * 0.8, yb)], fill=sc.lit((60, 60, 60)), width=max(1, int(pw)))
    border = max(1, int(r * 0.09))
    d.polygon([(x, cy - r), (x + r, cy), (x, cy + r), (x - r, cy)], fill=(20, 20, 20))
    ri = r - border * 1.4
    d.polygon([(x, cy - ri), (x + ri, cy), (x, cy + ri), (x - ri, cy)], fill=orange)
    glyph = _pick(rng, ("worker", "bang", "arrow"))
    lw = max(1, int(r * 0.1))
    k = (20, 20, 20)
    if glyph == "worker":
        d.ellipse([x - r * 0.22, cy - r * 0.5, x - r * 0.06, cy - r * 0.34], fill=k)
        d.line([(x - r * 0.12, cy - r * 0.3), (x + r * 0.05, cy + r * 0.15)], fill=k, width=lw)
        d.line([(x + r * 0.05, cy + r * 0.15), (x - r * 0.15, cy + r * 0.5)], fill=k, width=lw)
        d.line([(x + r * 0.05, cy + r * 0.15), (x + r * 0.25, cy + r * 0.5)], fill=k, width=lw)
        d.line([(x - r * 0.08, cy - r * 0.15), (x + r * 0.35, cy - r * 0.25)], fill=k, width=lw)
        d.polygon([(x + r * 0.1, cy + r * 0.5), (x + r * 0.45, cy + r * 0.5), (x + r * 0.3, cy + r * 0.3)], fill=k)
    elif glyph == "bang":
        d.rectangle([x - r * 0.07, cy - r * 0.5, x + r * 0.07, cy + r * 0.15], fill=k)
        d.rectangle([x - r * 0.07, cy + r * 0.28, x + r * 0.07, cy + r * 0.42], fill=k)
    else:
        d.line([(x - r * 0.4, cy + r * 0.1), (x + r * 0.3, cy + r * 0.1)], fill=k, width=lw)
        d.polygon([(x + r * 0.45, cy + r * 0.1), (x + r * 0.2, cy - r * 0.15), (x + r * 0.2, cy + r * 0.35)], fill=k)


def _draw_worker(rng: np.random.Generator, d: ImageDraw.ImageDraw, sc: _Scene, x: float, yb: float, h: float) -> None:
    vest = sc.lit(_jit(rng, _pick(rng, _VEST_COLORS), 8))
    trousers = sc.lit(_jit(rng, _pick(rng, ((45, 50, 70), (60, 60, 60), (70, 80, 110), (40, 40, 45))), 8))
    shirt = sc.lit(_jit(rng, _pick(rng, ((60, 80, 130), (90, 90, 95), (230, 230, 230), (40, 40, 40))), 8))
    stripe = sc.lit((222, 224, 215))
    skin = sc.lit(_pick(rng, _SKIN))
    hat = sc.lit(_pick(rng, _HAT_COLORS))
    lean = _u(rng, -0.06, 0.06) * h
    # legs
    lw = h * 0.085
    for side in (-1, 1):
        lx = x + side * h * 0.06 + (side * _u(rng, 0, 0.04) * h)
        hip = x + side * h * 0.02 + lean * 0.2
        d.polygon([(hip - lw / 2, yb - h * 0.5), (hip + lw / 2, yb - h * 0.5), (lx + lw / 2, yb), (lx - lw / 2, yb)],
                  fill=trousers)
        d.rectangle([lx - lw / 2, yb - h * 0.03, lx + lw / 2 + h * 0.03 * side, yb], fill=(30, 25, 20))
    # arms
    aw = max(2, int(h * 0.06))
    for side in (-1, 1):
        sx, sy = x + side * h * 0.14 + lean, yb - h * 0.76
        ex, ey = sx + side * _u(rng, 0.02, 0.14) * h, sy + _u(rng, 0.18, 0.3) * h
        d.line([(sx, sy), (ex, ey)], fill=shirt, width=aw)
    # torso / vest
    tx0, tx1 = x - h * 0.14 + lean, x + h * 0.14 + lean
    d.rounded_rectangle([tx0, yb - h * 0.8, tx1, yb - h * 0.47], radius=max(1, int(h * 0.04)), fill=vest)
    for yy in (0.6, 0.69):
        d.rectangle([tx0, yb - h * (yy + 0.025), tx1, yb - h * yy], fill=stripe)
    # head + hard hat
    hr = h * 0.075
    hx, hyc = x + lean * 1.1, yb - h * 0.88
    d.ellipse([hx - hr, hyc - hr, hx + hr, hyc + hr], fill=skin)
    d.chord([hx - hr * 1.25, hyc - hr * 1.35, hx + hr * 1.25, hyc + hr * 0.45], 180, 360, fill=hat)
    if _chance(rng, 0.25):  # holding a stop/slow paddle
        px, py = tx1 + h * 0.12, yb - h * 0.55
        d.line([(px, py), (px, py - h * 0.25)], fill=(80, 80, 80), width=max(1, int(h * 0.02)))
        r = h * 0.08
        d.regular_polygon((px, py - h * 0.25 - r, r), 8, fill=sc.lit(_pick(rng, ((200, 25, 25), (255, 120, 0)))))


_ROADWORK_KINDS: tuple[tuple[str, float], ...] = (
    ("cone", 0.34), ("drum", 0.12), ("barrier", 0.2), ("sign", 0.17), ("worker", 0.17),
)
# object height relative to the image height at depth scale s = 1
_REL_HEIGHT = {
    "cone": (0.24, 0.34), "drum": (0.28, 0.36), "barrier": (0.24, 0.32), "sign": (0.5, 0.66), "worker": (0.52, 0.66),
}


def _place_roadwork(rng: np.random.Generator, sc: _Scene) -> list[tuple[str, float, float, float, str]]:
    """Choose 1-6 roadwork objects: (kind, x, y_base, height, side)."""
    n = _pick_w(rng, ((1, 0.14), (2, 0.2), (3, 0.22), (4, 0.18), (5, 0.14), (6, 0.12)))
    side = _pick(rng, ("right", "left"))
    out: list[tuple[str, float, float, float, str]] = []
    for k in range(n):
        kind = _pick_w(rng, _ROADWORK_KINDS)
        if k == 0:  # the clearly visible one: near, large and inside the centre crop
            s = _u(rng, 0.55, 0.95)
        else:
            s = _u(rng, 0.2, 0.95)
        h = _u(rng, *_REL_HEIGHT[kind]) * s * sc.H
        h = max(h, 0.07 * sc.H)
        where = _pick_w(rng, (("edge", 0.45), ("lane", 0.35), ("shoulder", 0.2)))
        if where == "edge":
            t = _u(rng, 0.03, 0.18)
        elif where == "lane":
            t = _pick(rng, [j / sc.lanes for j in range(1, sc.lanes)] or [0.5]) + _u(rng, -0.06, 0.06)
        else:
            t = -_u(rng, 0.05, 0.2)
        if side == "right":
            t = 1.0 - t
        x = sc.road_x(t, s)
        if k == 0:
            x = sc.central(x, 0.8)
        x = min(max(x, 0.03 * sc.W), 0.97 * sc.W)
        out.append((kind, x, sc.y_of(s), h, side))
    return out


def _draw_roadwork(rng: np.random.Generator, img: Image.Image, d: ImageDraw.ImageDraw, sc: _Scene,
                   objs: list[tuple[str, float, float, float, str]]) -> None:
    for kind, x, yb, h, _side in sorted(objs, key=lambda o: o[2]):  # far objects first
        if kind == "cone":
            _draw_cone(rng, d, sc, x, yb, h)
        elif kind == "drum":
            _draw_drum(rng, d, sc, x, yb, h)
        elif kind == "barrier":
            _draw_barrier(rng, img, d, sc, x, yb, h)
        elif kind == "sign":
            _draw_sign(rng, d, sc, x, yb, h)
        else:
            _draw_worker(rng, d, sc, x, yb, h)


def _draw_distractor(rng: np.random.Generator, img: Image.Image, d: ImageDraw.ImageDraw, sc: _Scene,
                     glows: list[tuple[float, float, float, Color]], dark: bool) -> str:
    kind = _pick(rng, ("orange_car", "round_sign", "rect_sign", "orange_building", "autumn_tree", "red_person"))
    s = _u(rng, 0.5, 0.95)
    yb = sc.y_of(s)
    orange = _jit(rng, _pick(rng, _ORANGES + ((220, 70, 20), (200, 40, 30))), 10)
    if kind == "orange_car":
        x = sc.central(sc.road_x(_u(rng, 0.2, 0.8), s), 0.8)
        _draw_car(rng, d, sc, x, yb, (sc.road_x(1, s) - sc.road_x(0, s)) / sc.lanes * 0.8, orange, glows, dark)
    elif kind in ("round_sign", "rect_sign"):
        side = _pick(rng, (0.0, 1.0))
        x = sc.central(sc.road_x(-0.1 if side == 0 else 1.1, s), 0.85)
        h = _u(rng, 0.45, 0.6) * s * sc.H
        r = h * 0.2
        cy = yb - h + r
        d.rectangle([x - max(1, h * 0.015), cy, x + max(1, h * 0.015), yb], fill=sc.lit((120, 120, 125)))
        if kind == "round_sign":
            col = sc.lit(_pick(rng, ((200, 25, 25), orange)))
            sides = _pick(rng, (8, 0))
            if sides:
                d.regular_polygon((x, cy, r), 8, rotation=22.5, fill=sc.lit(_WHITE))
                d.regular_polygon((x, cy, r * 0.88), 8, rotation=22.5, fill=col)
            else:
                d.ellipse([x - r, cy - r, x + r, cy + r], fill=sc.lit(_WHITE))
                d.ellipse([x - r * 0.85, cy - r * 0.85, x + r * 0.85, cy + r * 0.85], fill=col)
            d.rectangle([x - r * 0.55, cy - r * 0.12, x + r * 0.55, cy + r * 0.12], fill=sc.lit(_WHITE))
        else:
            col = sc.lit(orange)
            d.rectangle([x - r * 1.5, cy - r * 0.8, x + r * 1.5, cy + r * 0.8], fill=col)
            d.rectangle([x - r * 1.1, cy - r * 0.2, x + r * 1.1, cy + r * 0.05], fill=sc.lit((30, 30, 30)))
    elif kind == "orange_building":
        h = _u(rng, 0.45, 0.75) * sc.H * max(s, 0.6)
        w = h * _u(rng, 0.8, 1.4)
        left = _chance(rng, 0.5)
        x0 = sc.road_x(-0.05, s) - w if left else sc.road_x(1.05, s)
        x0 = sc.central(x0 + w / 2, 0.9) - w / 2
        _draw_building(rng, d, x0, x0 + w, yb, h, sc.lit(orange), dark, house=_chance(rng, 0.4))
    elif kind == "autumn_tree":
        x = sc.central(sc.road_x(_pick(rng, (-0.15, 1.15)), s), 0.85)
        _draw_tree(rng, d, x, yb, _u(rng, 0.6, 0.9) * s * sc.H, canopy=sc.lit(orange))
    else:  # pedestrian in a plain red/orange jacket: no vest stripes, no hard hat
        x = sc.central(sc.road_x(_pick(rng, (-0.1, 1.1)), s), 0.85)
        h = _u(rng, 0.5, 0.62) * s * sc.H
        jacket = sc.lit(orange)
        d.rectangle([x - h * 0.1, yb - h * 0.5, x - h * 0.02, yb], fill=sc.lit((40, 45, 70)))
        d.rectangle([x + h * 0.02, yb - h * 0.5, x + h * 0.1, yb], fill=sc.lit((40, 45, 70)))
        d.rounded_rectangle([x - h * 0.15, yb - h * 0.82, x + h * 0.15, yb - h * 0.45], radius=max(1, int(h * 0.05)),
                            fill=jacket)
        hr = h * 0.075
        d.ellipse([x - hr, yb - h * 0.88 - hr, x + hr, yb - h * 0.88 + hr], fill=sc.lit(_pick(rng, _SKIN)))
        d.chord([x - hr, yb - h * 0.88 - hr * 1.1, x + hr, yb - h * 0.88 + hr * 0.2], 180, 360, fill=(40, 30, 25))
    return kind


# --------------------------------------------------------------------------
# global effects
# --------------------------------------------------------------------------


def _add_glows(arr: np.ndarray, glows: list[tuple[float, float, float, Color]]) -> None:
    H, W, _ = arr.shape
    for gx, gy, r, col in glows:
        rr = max(2.0, r)
        x0, x1 = max(0, int(gx - 3 * rr)), min(W, int(gx + 3 * rr) + 1)
        y0, y1 = max(0, int(gy - 3 * rr)), min(H, int(gy + 3 * rr) + 1)
        if x0 >= x1 or y0 >= y1:
            continue
        yy, xx = np.mgrid[y0:y1, x0:x1].astype(np.float32)
        g = np.exp(-((xx - gx) ** 2 + (yy - gy) ** 2) / (2 * rr * rr))[:, :, None]
        arr[y0:y1, x0:x1] += g * np.array(col, np.float32) * 0.9


def _apply_weather(rng: np.random.Generator, arr: np.ndarray, sc: _Scene, weather: str) -> None:
    H, W, _ = arr.shape
    if weather == "cloudy":
        grey = arr.mean(axis=2, keepdims=True)
        t = _u(rng, 0.2, 0.4)
        arr *= 1 - t
        arr += grey * t
        arr *= _u(rng, 0.82, 0.95)
    elif weather == "fog":
        fog = np.array(_jit(rng, (190, 192, 196), 10), np.float32)
        a_far, a_near = _u(rng, 0.55, 0.8), _u(rng, 0.1, 0.3)
        ys = np.arange(H, dtype=np.float32)
        s = np.clip((ys - sc.hy) / max(1, H - sc.hy), 0, 1)
        alpha = np.where(ys < sc.hy, a_far * 0.9, a_far + (a_near - a_far) * s)[:, None, None]
        arr *= 1 - alpha
        arr += fog * alpha
    elif weather == "rain":
        arr *= _u(rng, 0.7, 0.85)
        mask = Image.new("L", (W, H), 0)
        md = ImageDraw.Draw(mask)
        dx = _u(rng, -0.35, 0.35)
        for _ in range(_i(rng, 120, 320)):
            x, y = _u(rng, 0, W), _u(rng, 0, H)
            ln = _u(rng, 0.03, 0.07) * H
            md.line([(x, y), (x + dx * ln, y + ln)], fill=_i(rng, 70, 140), width=1)
        m = np.asarray(mask, dtype=np.float32)[:, :, None] / 255.0
        arr *= 1 - m
        arr += 215.0 * m


# --------------------------------------------------------------------------
# one image
# --------------------------------------------------------------------------


def _render(rng: np.random.Generator, label: int, daytime: str, scene: str,
            weather: str) -> tuple[bytes, int, int, list[str]]:
    """Draw one road scene; returns (jpeg bytes, width, height, roadwork object kinds)."""
    W = 320 + 16 * _i(rng, 0, 12)
    H = int(round(W * (3 / 4 if _chance(rng, 0.5) else 9 / 16)))
    hy = int(H * _u(rng, 0.36, 0.5))
    dark = daytime == "Dark"
    vx = W * _u(rng, 0.38, 0.62)
    lanes = {"Highway": _i(rng, 3, 4), "Urban": _i(rng, 2, 4), "Residential": 2, "Rural": 2}[scene]
    bot_w = W * _u(rng, 1.0, 1.6) * (lanes / 3) ** 0.4
    bot_c = W / 2 + (vx - W / 2) * _u(rng, -0.4, 0.4)
    top_w = W * _u(rng, 0.01, 0.04)
    sc = _Scene(W, H, hy, vx, vx - top_w / 2, vx + top_w / 2, bot_c - bot_w / 2, bot_c + bot_w / 2, lanes,
                light=_u(rng, 0.7, 0.9) if dark else 1.0)

    # ---- pass 1: background (darkened as a whole at night)
    arr = _sky_ground(rng, W, H, hy, daytime, weather, scene)
    img = Image.fromarray(arr.clip(0, 255).astype(np.uint8))
    d = ImageDraw.Draw(img)
    if weather in ("partly_cloudy", "cloudy") or (weather == "clear" and _chance(rng, 0.3)):
        _draw_clouds(rng, d, sc, _i(rng, 2, 6) if weather != "cloudy" else _i(rng, 6, 10), dark)
    if scene in ("Rural", "Highway") and _chance(rng, 0.7):
        _draw_hills(rng, d, sc)
    # road surface
    g = _i(rng, 70, 110)
    asphalt = _jit(rng, (g, g, g + 3), 4)
    d.polygon([(sc.top_l, hy), (sc.top_r, hy), (sc.bot_r, H), (sc.bot_l, H)], fill=asphalt)
    if scene == "Urban":  # sidewalks/curbs
        for t0, t1 in ((-0.12, 0.0), (1.0, 1.12)):
            d.polygon([(sc.road_x(t0, 0.001), hy), (sc.road_x(t1, 0.001), hy), (sc.road_x(t1, 1), H), (sc.road_x(t0, 1), H)],
                      fill=_jit(rng, (170, 168, 160), 10))
    # edge lines + lane dividers
    edge_col = _pick(rng, ((235, 235, 230), (230, 230, 225), (225, 195, 60)))
    for t in (0.02, 0.98):
        w0 = max(1.0, 0.012 * W)
        d.polygon([(sc.road_x(t, 0.001), hy), (sc.road_x(t, 0.001) + 0.5, hy),
                   (sc.road_x(t, 1) + w0 / 2, H), (sc.road_x(t, 1) - w0 / 2, H)],
                  fill=edge_col if t < 0.5 else (235, 235, 230))
    center_yellow = scene in ("Residential", "Rural") and _chance(rng, 0.6)
    for j in range(1, lanes):
        t = j / lanes
        col = (230, 200, 60) if (center_yellow and j == lanes // 2) else (235, 235, 230)
        s = 0.04
        while s < 1.0:
            s2 = min(1.0, s * 1.18)
            w1, w2 = max(1.0, 0.012 * W * s), max(1.0, 0.012 * W * s2)
            x1, x2 = sc.road_x(t, s), sc.road_x(t, s2)
            ya, yb_ = sc.y_of(s), sc.y_of(s2)
            d.polygon([(x1 - w1 / 2, ya), (x1 + w1 / 2, ya), (x2 + w2 / 2, yb_), (x2 - w2 / 2, yb_)], fill=col)
            s = s2 * 1.25
    # roadside scenery, far to near
    items: list[tuple[float, str, float]] = []
    n_side = {"Urban": _i(rng, 4, 8), "Residential": _i(rng, 3, 7), "Highway": _i(rng, 2, 5), "Rural": _i(rng, 2, 6)}[scene]
    for _ in range(n_side):
        items.append((_u(rng, 0.05, 0.9), _pick(rng, ("left", "right")), _u(rng, 0.0, 1.0)))
    lamp_glows: list[tuple[float, float, float, Color]] = []
    for s, side, r in sorted(items):
        yb = sc.y_of(s)
        if side == "left":
            x = sc.road_x(-_u(rng, 0.08, 0.5), s)
        else:
            x = sc.road_x(1 + _u(rng, 0.08, 0.5), s)
        if scene == "Urban" and r < 0.6:
            h = _u(rng, 0.6, 1.4) * s * H
            w = h * _u(rng, 0.5, 1.1)
            x0 = x - w if side == "left" else x
            _draw_building(rng, d, x0, x0 + w, yb, h, _jit(rng, _pick(rng, _BUILDING_COLORS), 10), dark, house=False)
        elif scene == "Residential" and r < 0.4:
            h = _u(rng, 0.35, 0.55) * s * H
            w = h * _u(rng, 1.1, 1.6)
            x0 = x - w if side == "left" else x
            _draw_building(rng, d, x0, x0 + w, yb, h, _jit(rng, _pick(rng, _BUILDING_COLORS), 10), dark, house=True)
        elif r < 0.8:
            _draw_tree(rng, d, x, yb, _u(rng, 0.5, 0.9) * s * H)
        else:
            gx, gy = _draw_pole(d, x, yb, _u(rng, 0.7, 1.0) * s * H, dark)
            if dark:
                lamp_glows.append((gx, gy, 0.06 * s * H + 2, (255, 225, 150)))
    if scene == "Highway" and _chance(rng, 0.6):  # guardrail
        t = _pick(rng, (-0.03, 1.03))
        p1, p2 = (sc.road_x(t, 0.001), hy), (sc.road_x(t, 1.0), H)
        d.line([(p1[0], p1[1] - 1), (p2[0], p2[1] - 0.08 * H)], fill=(175, 175, 178), width=max(2, int(0.012 * H)))
    if dark:
        arr = np.asarray(img, dtype=np.float32) * _u(rng, 0.3, 0.45)
        img = Image.fromarray(arr.clip(0, 255).astype(np.uint8))
        d = ImageDraw.Draw(img)

    # ---- pass 2: foreground (cars, roadwork objects, distractors)
    glows: list[tuple[float, float, float, Color]] = list(lamp_glows)
    fg: list[tuple[float, str]] = []
    for _ in range(_pick_w(rng, ((0, 0.35), (1, 0.35), (2, 0.2), (3, 0.1)))):
        fg.append((_u(rng, 0.1, 0.8), "car"))
    placed: list[tuple[int, float]] = []
    for s, _kind in sorted(fg):
        lane = _i(rng, 0, lanes - 1)
        if any(lane == pl and abs(s - ps) < 0.2 for pl, ps in placed):
            continue  # would overlap a car already drawn in that lane
        placed.append((lane, s))
        x = sc.road_x((lane + 0.5) / lanes, s)
        w = (sc.road_x(1, s) - sc.road_x(0, s)) / lanes * _u(rng, 0.6, 0.8)
        _draw_car(rng, d, sc, x, sc.y_of(s), w, _jit(rng, _pick(rng, _CAR_COLORS), 8), glows, dark)
    kinds: list[str] = []
    if label == 1:
        objs = _place_roadwork(rng, sc)
        _draw_roadwork(rng, img, d, sc, objs)
        kinds = [o[0] for o in objs]
        side = objs[0][4]
        kinds.append("side:" + side)
    elif _chance(rng, 0.15):
        _draw_distractor(rng, img, d, sc, glows, dark)
    if dark:  # oncoming headlights near the horizon / on the road
        for _ in range(_i(rng, 1, 3)):
            s = _u(rng, 0.05, 0.4)
            cx = sc.road_x(_u(rng, 0.1, 0.9), s)
            sep = (sc.road_x(1, s) - sc.road_x(0, s)) / lanes * 0.35
            for dx in (-sep, sep):
                glows.append((cx + dx, sc.y_of(s) - 0.01 * H, 0.03 * H * (0.5 + s), (255, 245, 215)))

    # ---- pass 3: global effects, sensor noise, encode
    arr = np.asarray(img, dtype=np.float32).copy()
    _add_glows(arr, glows)
    _apply_weather(rng, arr, sc, weather)
    arr *= _u(rng, 0.9, 1.1)  # exposure
    noise_sigma = _u(rng, 1.5, 5.0)
    arr += rng.standard_normal((H, W, 1), dtype=np.float32) * noise_sigma
    out = Image.fromarray(arr.clip(0, 255).astype(np.uint8))
    if _chance(rng, 0.5):
        out = out.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
        kinds = [("side:" + ("left" if k == "side:right" else "right")) if k.startswith("side:") else k for k in kinds]
    buf = io.BytesIO()
    out.save(buf, format="JPEG", quality=JPEG_QUALITY)
    return buf.getvalue(), W, H, kinds


# --------------------------------------------------------------------------
# metadata
# --------------------------------------------------------------------------

_WEATHER_KINDS: tuple[tuple[str, float], ...] = (
    ("clear", 0.33), ("partly_cloudy", 0.2), ("cloudy", 0.2), ("rain", 0.14), ("fog", 0.13),
)
_WEATHER_STRINGS = {
    "clear": ("['Clear']", "['Sunny']"),
    "partly_cloudy": ("['Partly Cloudy']",),
    "cloudy": ("['Cloudy']", "['Overcast']"),
    "rain": ("['Rain']", "['Cloudy', 'Rain']", "['Light Rain']"),
    "fog": ("['Fog']", "['Cloudy', 'Fog']"),
}
_ALTERATIONS = ("Lane Closure", "Shoulder Work", "Lane Shift", "Detour", "Road Closure", "Flagger Control", "Reduced Speed")


def _join(parts: list[str]) -> str:
    return parts[0] if len(parts) == 1 else ", ".join(parts[:-1]) + " and " + parts[-1]


def _describe(rng: np.random.Generator, kinds: list[str], scene: str, daytime: str, weather: str) -> str:
    side = next((k[5:] for k in kinds if k.startswith("side:")), "right")
    counts: dict[str, int] = {}
    for k in kinds:
        if not k.startswith("side:"):
            counts[k] = counts.get(k, 0) + 1
    phrases = {
        "cone": ("an orange traffic cone", "orange traffic cones"),
        "drum": ("an orange-and-white channelizing drum", "orange-and-white drums"),
        "barrier": ("an orange-and-white striped barrier", "striped barricades"),
        "sign": ("a diamond road work sign", "orange diamond road work signs"),
        "worker": ("a worker in a hi-vis vest", "road crew in hi-vis vests"),
    }
    parts = [phrases[k][0 if c == 1 else 1] for k, c in sorted(counts.items(), key=lambda kv: -kv[1])]
    main, rest = parts[0], parts[1:]
    verb_pl = not main.startswith(("a ", "an "))
    tmpl = _i(rng, 0, 3)
    road = {"Highway": "highway", "Urban": "city street", "Residential": "residential street", "Rural": "rural road"}[scene]
    if tmpl == 0:
        verbs = ("narrow", "block", "close off", "line") if verb_pl else ("narrows", "blocks", "sits in", "marks")
        verb = _pick(rng, verbs)
        sent = f"{main} {verb} the {side} lane"
        if rest:
            sent += " next to " + _join(rest)
    elif tmpl == 1:
        sent = f"road work zone on a {road} with " + _join(parts)
    elif tmpl == 2:
        sent = _join(parts) + f" on the {side} side of a {road}"
    else:
        sent = f"construction ahead: {main} in the {side} lane" + ("; also " + _join(rest) if rest else "")
    if daytime == "Dark" and _chance(rng, 0.5):
        sent += " at night"
    elif weather in ("rain", "fog") and _chance(rng, 0.5):
        sent += " in the " + ("rain" if weather == "rain" else "fog")
    return sent[0].upper() + sent[1:] + "."


def _gps(rng: np.random.Generator, lat0: float, lon0: float) -> str:
    lat = lat0 + _u(rng, -0.03, 0.03)
    lon = lon0 + _u(rng, -0.03, 0.03) / max(0.2, math.cos(math.radians(lat0)))
    fmt = _pick_w(rng, (("plain", 0.82), ("space", 0.06), ("paren", 0.06), ("wkt", 0.06)))
    if fmt == "plain":
        return f"{lat:.{_i(rng, 4, 6)}f},{lon:.{_i(rng, 4, 6)}f}"
    if fmt == "space":
        return f"{lat:.5f}, {lon:.5f}"
    if fmt == "paren":
        return f"({lat:.4f}, {lon:.4f})"
    return f"POINT({lon:.6f} {lat:.6f})"


def _make_row(seed: int, i: int) -> dict[str, Any]:
    rng = np.random.default_rng([seed, i])
    label = int(rng.random() < 0.5)
    daytime = "Dark" if _chance(rng, 0.22) else "Light"
    scene = _pick_w(rng, (("Highway", 0.3), ("Urban", 0.3), ("Residential", 0.22), ("Rural", 0.18)))
    weather = _pick_w(rng, _WEATHER_KINDS)
    city, lat0, lon0 = _pick(rng, CITIES)
    jpeg, W, H, kinds = _render(rng, label, daytime, scene, weather)

    # metadata (drawn after rendering; the true scene attributes drive the picture)
    desc: str | None
    if label == 1:
        desc = _describe(rng, kinds, scene, daytime, weather)
    else:
        desc = "" if _chance(rng, 0.6) else None
    if _chance(rng, 0.04):
        desc = None  # deliberately missing, either label
    alteration: str | None = _pick(rng, _ALTERATIONS) if label == 1 and not _chance(rng, 0.1) else "None"
    tags: dict[str, Any] = {
        "daytime": daytime,
        "scene_environment": scene,
        "travel_alteration": alteration,
        "weather": "['Clear']" if (daytime == "Dark" and weather == "clear") else _pick(rng, _WEATHER_STRINGS[weather]),
    }
    if _chance(rng, 0.08):
        tags["daytime"] = _pick(rng, (None, ""))
    if _chance(rng, 0.08):
        tags["scene_environment"] = _pick(rng, (None, ""))
    if _chance(rng, 0.1):
        tags["weather"] = _pick(rng, ("[]", "[]", None))
    if _chance(rng, 0.05):
        tags["travel_alteration"] = None
    gps: str | None = _gps(rng, lat0, lon0)
    if _chance(rng, 0.1):
        gps = _pick(rng, (None, None, ""))
    city_name: str | None = city
    if _chance(rng, 0.07):
        city_name = _pick(rng, (None, ""))
    tags_col: dict[str, Any] | None = None if _chance(rng, 0.02) else tags  # whole struct missing sometimes

    if daytime == "Dark":
        hour = _pick(rng, (0, 1, 2, 3, 4, 5, 19, 20, 21, 22, 23))
    else:
        hour = _i(rng, 7, 17)
    captured = datetime(2024, 1, 1) + timedelta(
        days=_i(rng, 0, 545), hours=hour, minutes=_i(rng, 0, 59), seconds=_i(rng, 0, 59)
    )
    row_id = f"synth-{seed}-{i:06d}-{rng.integers(0, 2**32):08x}"
    vid = f"vid_{seed:x}_{int(rng.integers(0, 2**24)):06x}"
    return {
        "image": {"bytes": jpeg, "path": f"{row_id}.jpg"},
        "id": row_id,
        "width": W,
        "height": H,
        "license": "CC BY 4.0",
        "flickr_url": "",
        "coco_url": "",
        "date_captured": captured.isoformat(),
        "gps": gps,
        "city_name": city_name,
        "scene_description": desc,
        "video_info": {"frame_id": _i(rng, 0, 3000), "seq_id": f"seq_{int(rng.integers(0, 2**24)):06x}", "vid_id": vid},
        "scene_level_tags": tags_col,
        "label": label,
    }


def _corrupt(seed: int, i: int, kind: int, data: bytes) -> bytes:
    """Break a row's image bytes: 0 = zero-length, 1 = truncated JPEG, 2 = garbage."""
    rng = np.random.default_rng([seed, i, 0xBAD])
    if kind == 0:
        return b""
    if kind == 1:
        return data[: max(1, int(len(data) * 0.4))]
    garbage = rng.integers(0, 256, size=_i(rng, 64, 4096), dtype=np.uint8).tobytes()
    return b"\x13\x37GARBAGE" + garbage  # a prefix no image format claims


def _corrupt_plan(n: int, seed: int, corrupt_fraction: float) -> dict[int, int]:
    n_corrupt = int(round(corrupt_fraction * n))
    if n_corrupt <= 0:
        return {}
    rng = np.random.default_rng([seed, n, 0xC0EEC7])
    idx = sorted(int(v) for v in rng.choice(n, size=n_corrupt, replace=False))
    return {row: k % 3 for k, row in enumerate(idx)}


def synthesize(
    out_dir: Path,
    n: int,
    seed: int = 0,
    corrupt_fraction: float = 0.0,
    progress: Callable[[int], None] | None = None,
) -> SynthReport:
    """Generate ``n`` synthetic rows into ``out_dir/data/train-00000-of-00001.parquet``.

    The file is written to a temporary name in the same directory and moved
    into place with :func:`os.replace`, so readers never see a partial file.
    ``progress(k)`` is called with the number of rows done after every row.
    """
    if n < 0:
        raise ValueError(f"n must be >= 0, got {n}")
    if seed < 0:
        raise ValueError(f"seed must be >= 0, got {seed}")
    if not 0.0 <= corrupt_fraction <= 1.0:
        raise ValueError(f"corrupt_fraction must be in [0, 1], got {corrupt_fraction}")
    out_dir = Path(out_dir)
    final = out_dir / OUTPUT_RELPATH
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = final.with_name(f".{final.name}.{os.getpid()}.tmp")
    plan = _corrupt_plan(n, seed, corrupt_fraction)
    n_pos = 0
    try:
        with pq.ParquetWriter(tmp, PARQUET_SCHEMA, compression="snappy") as writer:
            batch: list[dict[str, Any]] = []
            for i in range(n):
                row = _make_row(seed, i)
                if i in plan:
                    row["image"]["bytes"] = _corrupt(seed, i, plan[i], row["image"]["bytes"])
                n_pos += row["label"]
                batch.append(row)
                if len(batch) >= ROW_GROUP_SIZE:
                    writer.write_table(pa.Table.from_pylist(batch, schema=PARQUET_SCHEMA))
                    batch = []
                if progress is not None:
                    progress(i + 1)
            if batch or n == 0:
                writer.write_table(pa.Table.from_pylist(batch, schema=PARQUET_SCHEMA))
        os.replace(tmp, final)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return SynthReport(path=final, n_rows=n, n_positive=n_pos, n_corrupt=len(plan))

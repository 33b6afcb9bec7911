"""Drawing the synthetic road scenes of :mod:`roadwork.trainer.data.synth`: seeded random helpers, palettes,
the scene's perspective geometry, scenery (sky, hills, buildings, trees, poles, cars), the roadwork objects
(cones, drums, striped barriers, diamond signs, workers in hi-vis vests), orange and red distractors, and the
global effects (night glows, weather). :mod:`roadwork.trainer.data.synth_scene` composes them into an image."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from PIL import Image, ImageDraw

# --------------------------------------------------------------------------
# small rng helpers (plain Python values out, so nothing numpy leaks into rows)
# --------------------------------------------------------------------------

Color = tuple[int, int, int]


def uniform(rng: np.random.Generator, lo: float, hi: float) -> float:
    return float(lo + (hi - lo) * rng.random())


def randint(rng: np.random.Generator, lo: int, hi: int) -> int:
    """Integer in [lo, hi] inclusive."""
    return int(rng.integers(lo, hi + 1))


def chance(rng: np.random.Generator, p: float) -> bool:
    return bool(rng.random() < p)


def pick(rng: np.random.Generator, seq: Sequence[Any]) -> Any:
    return seq[int(rng.integers(len(seq)))]


def pick_weighted(rng: np.random.Generator, items: Sequence[tuple[Any, float]]) -> Any:
    total = sum(w for _, w in items)
    r = rng.random() * total
    for item, w in items:
        r -= w
        if r < 0:
            return item
    return items[-1][0]


def jitter(rng: np.random.Generator, c: Color, amount: int = 12) -> Color:
    return tuple(max(0, min(255, v + randint(rng, -amount, amount))) for v in c)  # type: ignore[return-value]


def _shade(c: Color, f: float) -> Color:
    return tuple(max(0, min(255, int(v * f))) for v in c)  # type: ignore[return-value]


def _mix(a: Color, b: Color, t: float) -> Color:
    return tuple(int(round(x + (y - x) * t)) for x, y in zip(a, b))  # type: ignore[return-value]


# --------------------------------------------------------------------------
# palettes
# --------------------------------------------------------------------------

_ORANGES: tuple[Color, ...] = ((255, 110, 0), (250, 90, 10), (255, 130, 20), (240, 100, 0), (255, 120, 40))
_WHITE: Color = (242, 242, 238)
CAR_COLORS: tuple[Color, ...] = (
    (235, 235, 235), (30, 30, 32), (160, 162, 168), (25, 45, 110), (150, 20, 25),
    (35, 70, 45), (95, 100, 108), (60, 90, 150), (200, 200, 190), (110, 20, 30),
)
BUILDING_COLORS: tuple[Color, ...] = (
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
class Scene:
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


def sky_ground(rng: np.random.Generator, W: int, H: int, hy: int, daytime: str, weather: str, scene: str) -> np.ndarray:
    if daytime == "Dark":
        top = jitter(rng, (8, 12, 32), 6)
        hor = jitter(rng, (38, 44, 72), 10)
    elif weather in ("cloudy", "rain", "fog"):
        g = randint(rng, 120, 175)
        top = jitter(rng, (g, g + 4, g + 10), 8)
        hor = jitter(rng, (g + 40, g + 42, g + 46), 8)
    else:
        top = jitter(rng, (80, 140, 215), 20)
        hor = jitter(rng, (195, 212, 235), 12)
    if scene == "Urban":
        ground = jitter(rng, (150, 150, 148), 18)
    elif chance(rng, 0.25):
        ground = jitter(rng, (150, 145, 100), 15)  # dry grass
    else:
        ground = jitter(rng, (85, 125, 55), 18)
    arr = np.empty((H, W, 3), dtype=np.float32)
    t = np.linspace(0.0, 1.0, hy, dtype=np.float32)[:, None]
    arr[:hy, :, :] = (np.array(top, np.float32) * (1 - t) + np.array(hor, np.float32) * t)[:, None, :]
    gy = np.linspace(0.85, 1.1, H - hy, dtype=np.float32)[:, None, None]
    arr[hy:, :, :] = np.array(ground, np.float32)[None, None, :] * gy
    return arr


def draw_clouds(rng: np.random.Generator, d: ImageDraw.ImageDraw, sc: Scene, n: int, dark: bool) -> None:
    for _ in range(n):
        cx, cy = uniform(rng, 0, sc.W), uniform(rng, 0, sc.hy * 0.8)
        w, h = uniform(rng, 0.08, 0.25) * sc.W, uniform(rng, 0.03, 0.08) * sc.H
        g = randint(rng, 40, 70) if dark else randint(rng, 215, 250)
        for _k in range(3):
            ox, oy = uniform(rng, -w / 2, w / 2), uniform(rng, -h / 3, h / 3)
            d.ellipse([cx + ox - w / 2, cy + oy - h / 2, cx + ox + w / 2, cy + oy + h / 2], fill=(g, g, g + 4))


def draw_hills(rng: np.random.Generator, d: ImageDraw.ImageDraw, sc: Scene) -> None:
    col = jitter(rng, (90, 110, 120), 15)
    pts = [(0.0, float(sc.hy))]
    x = 0.0
    while x < sc.W:
        pts.append((x, sc.hy - uniform(rng, 0.02, 0.12) * sc.H))
        x += uniform(rng, 0.08, 0.2) * sc.W
    pts += [(float(sc.W), sc.hy - uniform(rng, 0.02, 0.1) * sc.H), (float(sc.W), float(sc.hy))]
    d.polygon(pts, fill=col)


def draw_building(rng: np.random.Generator, d: ImageDraw.ImageDraw, x0: float, x1: float, yb: float, h: float,
                   col: Color, dark: bool, house: bool) -> None:
    d.rectangle([x0, yb - h, x1, yb], fill=col)
    if house:
        roof = pick(rng, _ROOF_COLORS)
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
                win = (235, 215, 140) if chance(rng, 0.35) else (25, 28, 40)
            else:
                win = (70, 90, 115) if chance(rng, 0.8) else (150, 170, 190)
            wx0, wy0 = x0 + ix * cw + cw * 0.22, yb - h + iy * ch + ch * 0.22
            d.rectangle([wx0, wy0, wx0 + cw * 0.56, wy0 + ch * 0.5], fill=win)


def draw_tree(rng: np.random.Generator, d: ImageDraw.ImageDraw, x: float, yb: float, h: float,
               canopy: Color | None = None) -> None:
    trunk_w = max(2.0, h * 0.07)
    d.rectangle([x - trunk_w / 2, yb - h * 0.45, x + trunk_w / 2, yb], fill=jitter(rng, (85, 62, 40), 10))
    col = canopy if canopy is not None else jitter(rng, (45, 100, 45), 20)
    if chance(rng, 0.4):  # conifer
        d.polygon([(x, yb - h), (x - h * 0.28, yb - h * 0.3), (x + h * 0.28, yb - h * 0.3)], fill=col)
    else:
        r = h * uniform(rng, 0.25, 0.35)
        d.ellipse([x - r, yb - h, x + r, yb - h + 2 * r], fill=col)
        d.ellipse([x - r * 0.9 + r * 0.4, yb - h + r * 0.5, x + r * 0.7, yb - h + 2.1 * r], fill=_shade(col, 0.85))


def draw_pole(d: ImageDraw.ImageDraw, x: float, yb: float, h: float, dark: bool) -> tuple[float, float]:
    w = max(1.5, h * 0.025)
    d.rectangle([x - w / 2, yb - h, x + w / 2, yb], fill=(95, 95, 100))
    d.rectangle([x - w / 2, yb - h, x + h * 0.15, yb - h + w], fill=(95, 95, 100))
    lamp = (250, 240, 190) if dark else (200, 200, 190)
    d.rectangle([x + h * 0.1, yb - h + w, x + h * 0.17, yb - h + 2.2 * w], fill=lamp)
    return x + h * 0.135, yb - h + 1.6 * w


def draw_car(rng: np.random.Generator, d: ImageDraw.ImageDraw, sc: Scene, x: float, yb: float, w: float,
              body: Color, glows: list[tuple[float, float, float, Color]], dark: bool) -> None:
    h = w * uniform(rng, 0.55, 0.75)
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


def _draw_cone(rng: np.random.Generator, d: ImageDraw.ImageDraw, sc: Scene, x: float, yb: float, h: float) -> None:
    orange = sc.lit(jitter(rng, pick(rng, _ORANGES), 8))
    white = sc.lit(_WHITE)
    base_h = h * 0.09
    bw = h * uniform(rng, 0.62, 0.78)
    d.rectangle([x - bw / 2, yb - base_h, x + bw / 2, yb], fill=pick(rng, ((35, 35, 35), orange)))
    top_w, bot_w = h * 0.1, h * uniform(rng, 0.5, 0.6)

    def half(yf: float) -> float:  # half width at fraction yf of the body height (0 = bottom)
        return (bot_w + (top_w - bot_w) * yf) / 2

    y0, ytop = yb - base_h, yb - h
    body_h = y0 - ytop
    d.polygon([(x - half(0), y0), (x - half(1), ytop), (x + half(1), ytop), (x + half(0), y0)], fill=orange)
    bands = ((0.32, 0.47), (0.6, 0.7)) if chance(rng, 0.7) else ((0.45, 0.62),)
    for a, b in bands:
        ya, yb2 = y0 - a * body_h, y0 - b * body_h
        d.polygon([(x - half(a), ya), (x - half(b), yb2), (x + half(b), yb2), (x + half(a), ya)], fill=white)


def _draw_drum(rng: np.random.Generator, d: ImageDraw.ImageDraw, sc: Scene, x: float, yb: float, h: float) -> None:
    orange = sc.lit(jitter(rng, pick(rng, _ORANGES), 8))
    white = sc.lit(_WHITE)
    w = h * uniform(rng, 0.55, 0.68)
    d.rectangle([x - w * 0.6, yb - h * 0.08, x + w * 0.6, yb], fill=(30, 30, 30))
    n = 5
    bh = (h * 0.92) / n
    for k in range(n):
        ya = yb - h * 0.08 - k * bh
        d.rectangle([x - w / 2, ya - bh, x + w / 2, ya], fill=orange if k % 2 == 0 else white)
    d.ellipse([x - w / 2, yb - h - bh * 0.3, x + w / 2, yb - h + bh * 0.3], fill=_shade(orange, 0.85))


def _striped_board(rng: np.random.Generator, sc: Scene, w: int, h: int) -> Image.Image:
    orange = sc.lit(jitter(rng, pick(rng, _ORANGES), 8))
    board = Image.new("RGB", (w, h), sc.lit(_WHITE))
    bd = ImageDraw.Draw(board)
    period = max(4.0, h * uniform(rng, 1.4, 2.0))
    direction = pick(rng, (-1, 1))
    x = -2.0 * h
    while x < w + 2 * h:
        p = [(x, 0), (x + period / 2, 0), (x + period / 2 + direction * h, h), (x + direction * h, h)]
        bd.polygon(p, fill=orange)
        x += period
    return board


def _draw_barrier(rng: np.random.Generator, img: Image.Image, d: ImageDraw.ImageDraw, sc: Scene,
                  x: float, yb: float, h: float) -> None:
    w = h * uniform(rng, 1.5, 2.4)
    legs = sc.lit((225, 225, 220))
    lw = max(1.5, h * 0.06)
    for lx in (x - w * 0.42, x + w * 0.42):
        d.rectangle([lx - lw / 2, yb - h, lx + lw / 2, yb], fill=legs)
        d.rectangle([lx - lw * 2, yb - lw, lx + lw * 2, yb], fill=sc.lit((60, 60, 60)))
    n_boards = pick(rng, (1, 2, 2, 3))
    bh = max(3, int(h * (0.24 if n_boards > 1 else 0.32)))
    bw = max(4, int(w))
    for k in range(n_boards):
        top = yb - h + k * (h * 0.82 / n_boards)
        board = _striped_board(rng, sc, bw, bh)
        img.paste(board, (int(round(x - bw / 2)), int(round(top))))


def _draw_sign(rng: np.random.Generator, d: ImageDraw.ImageDraw, sc: Scene, x: float, yb: float, h: float) -> None:
    orange = sc.lit(jitter(rng, pick(rng, _ORANGES), 8))
    r = h * uniform(rng, 0.2, 0.26)  # half diagonal of the diamond
    cy = yb - h + r
    pw = max(1.5, h * 0.03)
    if chance(rng, 0.5):
        d.rectangle([x - pw / 2, cy, x + pw / 2, yb], fill=sc.lit((120, 120, 125)))
    else:  # folding stand
        d.line([(x, cy + r * 0.8), (x - r * 0.8, yb)], fill=sc.lit((60, 60, 60)), width=max(1, int(pw)))
        d.line([(x, cy + r * 0.8), (x + r * 0.8, yb)], fill=sc.lit((60, 60, 60)), width=max(1, int(pw)))
    border = max(1, int(r * 0.09))
    d.polygon([(x, cy - r), (x + r, cy), (x, cy + r), (x - r, cy)], fill=(20, 20, 20))
    ri = r - border * 1.4
    d.polygon([(x, cy - ri), (x + ri, cy), (x, cy + ri), (x - ri, cy)], fill=orange)
    glyph = pick(rng, ("worker", "bang", "arrow"))
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


def _draw_worker(rng: np.random.Generator, d: ImageDraw.ImageDraw, sc: Scene, x: float, yb: float, h: float) -> None:
    vest = sc.lit(jitter(rng, pick(rng, _VEST_COLORS), 8))
    trousers = sc.lit(jitter(rng, pick(rng, ((45, 50, 70), (60, 60, 60), (70, 80, 110), (40, 40, 45))), 8))
    shirt = sc.lit(jitter(rng, pick(rng, ((60, 80, 130), (90, 90, 95), (230, 230, 230), (40, 40, 40))), 8))
    stripe = sc.lit((222, 224, 215))
    skin = sc.lit(pick(rng, _SKIN))
    hat = sc.lit(pick(rng, _HAT_COLORS))
    lean = uniform(rng, -0.06, 0.06) * h
    # legs
    lw = h * 0.085
    for side in (-1, 1):
        lx = x + side * h * 0.06 + (side * uniform(rng, 0, 0.04) * h)
        hip = x + side * h * 0.02 + lean * 0.2
        d.polygon([(hip - lw / 2, yb - h * 0.5), (hip + lw / 2, yb - h * 0.5), (lx + lw / 2, yb), (lx - lw / 2, yb)],
                  fill=trousers)
        d.rectangle([lx - lw / 2, yb - h * 0.03, lx + lw / 2 + h * 0.03 * side, yb], fill=(30, 25, 20))
    # arms
    aw = max(2, int(h * 0.06))
    for side in (-1, 1):
        sx, sy = x + side * h * 0.14 + lean, yb - h * 0.76
        ex, ey = sx + side * uniform(rng, 0.02, 0.14) * h, sy + uniform(rng, 0.18, 0.3) * h
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
    if chance(rng, 0.25):  # holding a stop/slow paddle
        px, py = tx1 + h * 0.12, yb - h * 0.55
        d.line([(px, py), (px, py - h * 0.25)], fill=(80, 80, 80), width=max(1, int(h * 0.02)))
        r = h * 0.08
        d.regular_polygon((px, py - h * 0.25 - r, r), 8, fill=sc.lit(pick(rng, ((200, 25, 25), (255, 120, 0)))))


_ROADWORK_KINDS: tuple[tuple[str, float], ...] = (
    ("cone", 0.34), ("drum", 0.12), ("barrier", 0.2), ("sign", 0.17), ("worker", 0.17),
)
# object height relative to the image height at depth scale s = 1
_REL_HEIGHT = {
    "cone": (0.24, 0.34), "drum": (0.28, 0.36), "barrier": (0.24, 0.32), "sign": (0.5, 0.66), "worker": (0.52, 0.66),
}


def place_roadwork(rng: np.random.Generator, sc: Scene) -> list[tuple[str, float, float, float, str]]:
    """Choose 1-6 roadwork objects: (kind, x, y_base, height, side)."""
    n = pick_weighted(rng, ((1, 0.14), (2, 0.2), (3, 0.22), (4, 0.18), (5, 0.14), (6, 0.12)))
    side = pick(rng, ("right", "left"))
    out: list[tuple[str, float, float, float, str]] = []
    for k in range(n):
        kind = pick_weighted(rng, _ROADWORK_KINDS)
        if k == 0:  # the clearly visible one: near, large and inside the centre crop
            s = uniform(rng, 0.55, 0.95)
        else:
            s = uniform(rng, 0.2, 0.95)
        h = uniform(rng, *_REL_HEIGHT[kind]) * s * sc.H
        h = max(h, 0.07 * sc.H)
        where = pick_weighted(rng, (("edge", 0.45), ("lane", 0.35), ("shoulder", 0.2)))
        if where == "edge":
            t = uniform(rng, 0.03, 0.18)
        elif where == "lane":
            t = pick(rng, [j / sc.lanes for j in range(1, sc.lanes)] or [0.5]) + uniform(rng, -0.06, 0.06)
        else:
            t = -uniform(rng, 0.05, 0.2)
        if side == "right":
            t = 1.0 - t
        x = sc.road_x(t, s)
        if k == 0:
            x = sc.central(x, 0.8)
        x = min(max(x, 0.03 * sc.W), 0.97 * sc.W)
        out.append((kind, x, sc.y_of(s), h, side))
    return out


def draw_roadwork(rng: np.random.Generator, img: Image.Image, d: ImageDraw.ImageDraw, sc: Scene,
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


def draw_distractor(rng: np.random.Generator, img: Image.Image, d: ImageDraw.ImageDraw, sc: Scene,
                     glows: list[tuple[float, float, float, Color]], dark: bool) -> str:
    kind = pick(rng, ("orange_car", "round_sign", "rect_sign", "orange_building", "autumn_tree", "red_person"))
    s = uniform(rng, 0.5, 0.95)
    yb = sc.y_of(s)
    orange = jitter(rng, pick(rng, _ORANGES + ((220, 70, 20), (200, 40, 30))), 10)
    if kind == "orange_car":
        x = sc.central(sc.road_x(uniform(rng, 0.2, 0.8), s), 0.8)
        draw_car(rng, d, sc, x, yb, (sc.road_x(1, s) - sc.road_x(0, s)) / sc.lanes * 0.8, orange, glows, dark)
    elif kind in ("round_sign", "rect_sign"):
        side = pick(rng, (0.0, 1.0))
        x = sc.central(sc.road_x(-0.1 if side == 0 else 1.1, s), 0.85)
        h = uniform(rng, 0.45, 0.6) * s * sc.H
        r = h * 0.2
        cy = yb - h + r
        d.rectangle([x - max(1, h * 0.015), cy, x + max(1, h * 0.015), yb], fill=sc.lit((120, 120, 125)))
        if kind == "round_sign":
            col = sc.lit(pick(rng, ((200, 25, 25), orange)))
            sides = pick(rng, (8, 0))
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
        h = uniform(rng, 0.45, 0.75) * sc.H * max(s, 0.6)
        w = h * uniform(rng, 0.8, 1.4)
        left = chance(rng, 0.5)
        x0 = sc.road_x(-0.05, s) - w if left else sc.road_x(1.05, s)
        x0 = sc.central(x0 + w / 2, 0.9) - w / 2
        draw_building(rng, d, x0, x0 + w, yb, h, sc.lit(orange), dark, house=chance(rng, 0.4))
    elif kind == "autumn_tree":
        x = sc.central(sc.road_x(pick(rng, (-0.15, 1.15)), s), 0.85)
        draw_tree(rng, d, x, yb, uniform(rng, 0.6, 0.9) * s * sc.H, canopy=sc.lit(orange))
    else:  # pedestrian in a plain red/orange jacket: no vest stripes, no hard hat
        x = sc.central(sc.road_x(pick(rng, (-0.1, 1.1)), s), 0.85)
        h = uniform(rng, 0.5, 0.62) * s * sc.H
        jacket = sc.lit(orange)
        d.rectangle([x - h * 0.1, yb - h * 0.5, x - h * 0.02, yb], fill=sc.lit((40, 45, 70)))
        d.rectangle([x + h * 0.02, yb - h * 0.5, x + h * 0.1, yb], fill=sc.lit((40, 45, 70)))
        d.rounded_rectangle([x - h * 0.15, yb - h * 0.82, x + h * 0.15, yb - h * 0.45], radius=max(1, int(h * 0.05)),
                            fill=jacket)
        hr = h * 0.075
        d.ellipse([x - hr, yb - h * 0.88 - hr, x + hr, yb - h * 0.88 + hr], fill=sc.lit(pick(rng, _SKIN)))
        d.chord([x - hr, yb - h * 0.88 - hr * 1.1, x + hr, yb - h * 0.88 + hr * 0.2], 180, 360, fill=(40, 30, 25))
    return kind


# --------------------------------------------------------------------------
# global effects
# --------------------------------------------------------------------------


def add_glows(arr: np.ndarray, glows: list[tuple[float, float, float, Color]]) -> None:
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


def apply_weather(rng: np.random.Generator, arr: np.ndarray, sc: Scene, weather: str) -> None:
    H, W, _ = arr.shape
    if weather == "cloudy":
        grey = arr.mean(axis=2, keepdims=True)
        t = uniform(rng, 0.2, 0.4)
        arr *= 1 - t
        arr += grey * t
        arr *= uniform(rng, 0.82, 0.95)
    elif weather == "fog":
        fog = np.array(jitter(rng, (190, 192, 196), 10), np.float32)
        a_far, a_near = uniform(rng, 0.55, 0.8), uniform(rng, 0.1, 0.3)
        ys = np.arange(H, dtype=np.float32)
        s = np.clip((ys - sc.hy) / max(1, H - sc.hy), 0, 1)
        alpha = np.where(ys < sc.hy, a_far * 0.9, a_far + (a_near - a_far) * s)[:, None, None]
        arr *= 1 - alpha
        arr += fog * alpha
    elif weather == "rain":
        arr *= uniform(rng, 0.7, 0.85)
        mask = Image.new("L", (W, H), 0)
        md = ImageDraw.Draw(mask)
        dx = uniform(rng, -0.35, 0.35)
        for _ in range(randint(rng, 120, 320)):
            x, y = uniform(rng, 0, W), uniform(rng, 0, H)
            ln = uniform(rng, 0.03, 0.07) * H
            md.line([(x, y), (x + dx * ln, y + ln)], fill=randint(rng, 70, 140), width=1)
        m = np.asarray(mask, dtype=np.float32)[:, :, None] / 255.0
        arr *= 1 - m
        arr += 215.0 * m

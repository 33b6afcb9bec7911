"""One synthetic road scene composed from the drawing primitives of :mod:`roadwork.trainer.data.synth_draw`:
road, scenery, roadwork objects (label 1) or distractors, weather, noise, a random mirror, then JPEG bytes."""

from __future__ import annotations

import io

import numpy as np
from PIL import Image, ImageDraw

from roadwork.trainer.data.synth_draw import (
    BUILDING_COLORS,
    CAR_COLORS,
    Color,
    Scene,
    add_glows,
    apply_weather,
    chance,
    draw_building,
    draw_car,
    draw_clouds,
    draw_distractor,
    draw_hills,
    draw_pole,
    draw_roadwork,
    draw_tree,
    jitter,
    pick,
    pick_weighted,
    place_roadwork,
    randint,
    sky_ground,
    uniform,
)

JPEG_QUALITY = 90


# --------------------------------------------------------------------------
# one image
# --------------------------------------------------------------------------


def render(rng: np.random.Generator, label: int, daytime: str, scene: str,
            weather: str) -> tuple[bytes, int, int, list[str]]:
    """Draw one road scene; returns (jpeg bytes, width, height, roadwork object kinds)."""
    W = 320 + 16 * randint(rng, 0, 12)
    H = int(round(W * (3 / 4 if chance(rng, 0.5) else 9 / 16)))
    hy = int(H * uniform(rng, 0.36, 0.5))
    dark = daytime == "Dark"
    vx = W * uniform(rng, 0.38, 0.62)
    lanes = {"Highway": randint(rng, 3, 4), "Urban": randint(rng, 2, 4), "Residential": 2, "Rural": 2}[scene]
    bot_w = W * uniform(rng, 1.0, 1.6) * (lanes / 3) ** 0.4
    bot_c = W / 2 + (vx - W / 2) * uniform(rng, -0.4, 0.4)
    top_w = W * uniform(rng, 0.01, 0.04)
    sc = Scene(W, H, hy, vx, vx - top_w / 2, vx + top_w / 2, bot_c - bot_w / 2, bot_c + bot_w / 2, lanes,
                light=uniform(rng, 0.7, 0.9) if dark else 1.0)

    # ---- pass 1: background (darkened as a whole at night)
    arr = sky_ground(rng, W, H, hy, daytime, weather, scene)
    img = Image.fromarray(arr.clip(0, 255).astype(np.uint8))
    d = ImageDraw.Draw(img)
    if weather in ("partly_cloudy", "cloudy") or (weather == "clear" and chance(rng, 0.3)):
        draw_clouds(rng, d, sc, randint(rng, 2, 6) if weather != "cloudy" else randint(rng, 6, 10), dark)
    if scene in ("Rural", "Highway") and chance(rng, 0.7):
        draw_hills(rng, d, sc)
    # road surface
    g = randint(rng, 70, 110)
    asphalt = jitter(rng, (g, g, g + 3), 4)
    d.polygon([(sc.top_l, hy), (sc.top_r, hy), (sc.bot_r, H), (sc.bot_l, H)], fill=asphalt)
    if scene == "Urban":  # sidewalks/curbs
        for t0, t1 in ((-0.12, 0.0), (1.0, 1.12)):
            d.polygon([(sc.road_x(t0, 0.001), hy), (sc.road_x(t1, 0.001), hy), (sc.road_x(t1, 1), H), (sc.road_x(t0, 1), H)],
                      fill=jitter(rng, (170, 168, 160), 10))
    # edge lines + lane dividers
    edge_col = pick(rng, ((235, 235, 230), (230, 230, 225), (225, 195, 60)))
    for t in (0.02, 0.98):
        w0 = max(1.0, 0.012 * W)
        d.polygon([(sc.road_x(t, 0.001), hy), (sc.road_x(t, 0.001) + 0.5, hy),
                   (sc.road_x(t, 1) + w0 / 2, H), (sc.road_x(t, 1) - w0 / 2, H)],
                  fill=edge_col if t < 0.5 else (235, 235, 230))
    center_yellow = scene in ("Residential", "Rural") and chance(rng, 0.6)
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
    n_side = {"Urban": randint(rng, 4, 8), "Residential": randint(rng, 3, 7), "Highway": randint(rng, 2, 5), "Rural": randint(rng, 2, 6)}[scene]
    for _ in range(n_side):
        items.append((uniform(rng, 0.05, 0.9), pick(rng, ("left", "right")), uniform(rng, 0.0, 1.0)))
    lamp_glows: list[tuple[float, float, float, Color]] = []
    for s, side, r in sorted(items):
        yb = sc.y_of(s)
        if side == "left":
            x = sc.road_x(-uniform(rng, 0.08, 0.5), s)
        else:
            x = sc.road_x(1 + uniform(rng, 0.08, 0.5), s)
        if scene == "Urban" and r < 0.6:
            h = uniform(rng, 0.6, 1.4) * s * H
            w = h * uniform(rng, 0.5, 1.1)
            x0 = x - w if side == "left" else x
            draw_building(rng, d, x0, x0 + w, yb, h, jitter(rng, pick(rng, BUILDING_COLORS), 10), dark, house=False)
        elif scene == "Residential" and r < 0.4:
            h = uniform(rng, 0.35, 0.55) * s * H
            w = h * uniform(rng, 1.1, 1.6)
            x0 = x - w if side == "left" else x
            draw_building(rng, d, x0, x0 + w, yb, h, jitter(rng, pick(rng, BUILDING_COLORS), 10), dark, house=True)
        elif r < 0.8:
            draw_tree(rng, d, x, yb, uniform(rng, 0.5, 0.9) * s * H)
        else:
            gx, gy = draw_pole(d, x, yb, uniform(rng, 0.7, 1.0) * s * H, dark)
            if dark:
                lamp_glows.append((gx, gy, 0.06 * s * H + 2, (255, 225, 150)))
    if scene == "Highway" and chance(rng, 0.6):  # guardrail
        t = pick(rng, (-0.03, 1.03))
        p1, p2 = (sc.road_x(t, 0.001), hy), (sc.road_x(t, 1.0), H)
        d.line([(p1[0], p1[1] - 1), (p2[0], p2[1] - 0.08 * H)], fill=(175, 175, 178), width=max(2, int(0.012 * H)))
    if dark:
        arr = np.asarray(img, dtype=np.float32) * uniform(rng, 0.3, 0.45)
        img = Image.fromarray(arr.clip(0, 255).astype(np.uint8))
        d = ImageDraw.Draw(img)

    # ---- pass 2: foreground (cars, roadwork objects, distractors)
    glows: list[tuple[float, float, float, Color]] = list(lamp_glows)
    fg: list[tuple[float, str]] = []
    for _ in range(pick_weighted(rng, ((0, 0.35), (1, 0.35), (2, 0.2), (3, 0.1)))):
        fg.append((uniform(rng, 0.1, 0.8), "car"))
    placed: list[tuple[int, float]] = []
    for s, _kind in sorted(fg):
        lane = randint(rng, 0, lanes - 1)
        if any(lane == pl and abs(s - ps) < 0.2 for pl, ps in placed):
            continue  # would overlap a car already drawn in that lane
        placed.append((lane, s))
        x = sc.road_x((lane + 0.5) / lanes, s)
        w = (sc.road_x(1, s) - sc.road_x(0, s)) / lanes * uniform(rng, 0.6, 0.8)
        draw_car(rng, d, sc, x, sc.y_of(s), w, jitter(rng, pick(rng, CAR_COLORS), 8), glows, dark)
    kinds: list[str] = []
    if label == 1:
        objs = place_roadwork(rng, sc)
        draw_roadwork(rng, img, d, sc, objs)
        kinds = [o[0] for o in objs]
        side = objs[0][4]
        kinds.append("side:" + side)
    elif chance(rng, 0.15):
        draw_distractor(rng, img, d, sc, glows, dark)
    if dark:  # oncoming headlights near the horizon / on the road
        for _ in range(randint(rng, 1, 3)):
            s = uniform(rng, 0.05, 0.4)
            cx = sc.road_x(uniform(rng, 0.1, 0.9), s)
            sep = (sc.road_x(1, s) - sc.road_x(0, s)) / lanes * 0.35
            for dx in (-sep, sep):
                glows.append((cx + dx, sc.y_of(s) - 0.01 * H, 0.03 * H * (0.5 + s), (255, 245, 215)))

    # ---- pass 3: global effects, sensor noise, encode
    arr = np.asarray(img, dtype=np.float32).copy()
    add_glows(arr, glows)
    apply_weather(rng, arr, sc, weather)
    arr *= uniform(rng, 0.9, 1.1)  # exposure
    noise_sigma = uniform(rng, 1.5, 5.0)
    arr += rng.standard_normal((H, W, 1), dtype=np.float32) * noise_sigma
    out = Image.fromarray(arr.clip(0, 255).astype(np.uint8))
    if chance(rng, 0.5):
        out = out.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
        kinds = [("side:" + ("left" if k == "side:right" else "right")) if k.startswith("side:") else k for k in kinds]
    buf = io.BytesIO()
    out.save(buf, format="JPEG", quality=JPEG_QUALITY)
    return buf.getvalue(), W, H, kinds

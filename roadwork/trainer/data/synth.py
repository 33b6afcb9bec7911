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

This module writes the rows (schema, metadata, corruption, the parquet file);
one image is composed in :mod:`roadwork.trainer.data.synth_scene` from the
drawing primitives of :mod:`roadwork.trainer.data.synth_draw`.
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, Callable

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from roadwork.trainer.data.synth_draw import (
    chance,
    pick,
    pick_weighted,
    randint,
    uniform,
)
from roadwork.trainer.data.synth_scene import render

__all__ = ["SynthReport", "synthesize", "PARQUET_SCHEMA", "CITIES", "OUTPUT_RELPATH"]

OUTPUT_RELPATH = Path("data") / "train-00000-of-00001.parquet"
ROW_GROUP_SIZE = 100

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
    tmpl = randint(rng, 0, 3)
    road = {"Highway": "highway", "Urban": "city street", "Residential": "residential street", "Rural": "rural road"}[scene]
    if tmpl == 0:
        verbs = ("narrow", "block", "close off", "line") if verb_pl else ("narrows", "blocks", "sits in", "marks")
        verb = pick(rng, verbs)
        sent = f"{main} {verb} the {side} lane"
        if rest:
            sent += " next to " + _join(rest)
    elif tmpl == 1:
        sent = f"road work zone on a {road} with " + _join(parts)
    elif tmpl == 2:
        sent = _join(parts) + f" on the {side} side of a {road}"
    else:
        sent = f"construction ahead: {main} in the {side} lane" + ("; also " + _join(rest) if rest else "")
    if daytime == "Dark" and chance(rng, 0.5):
        sent += " at night"
    elif weather in ("rain", "fog") and chance(rng, 0.5):
        sent += " in the " + ("rain" if weather == "rain" else "fog")
    return sent[0].upper() + sent[1:] + "."


def _gps(rng: np.random.Generator, lat0: float, lon0: float) -> str:
    lat = lat0 + uniform(rng, -0.03, 0.03)
    lon = lon0 + uniform(rng, -0.03, 0.03) / max(0.2, math.cos(math.radians(lat0)))
    fmt = pick_weighted(rng, (("plain", 0.82), ("space", 0.06), ("paren", 0.06), ("wkt", 0.06)))
    if fmt == "plain":
        return f"{lat:.{randint(rng, 4, 6)}f},{lon:.{randint(rng, 4, 6)}f}"
    if fmt == "space":
        return f"{lat:.5f}, {lon:.5f}"
    if fmt == "paren":
        return f"({lat:.4f}, {lon:.4f})"
    return f"POINT({lon:.6f} {lat:.6f})"


def _make_row(seed: int, i: int) -> dict[str, Any]:
    rng = np.random.default_rng([seed, i])
    label = int(rng.random() < 0.5)
    daytime = "Dark" if chance(rng, 0.22) else "Light"
    scene = pick_weighted(rng, (("Highway", 0.3), ("Urban", 0.3), ("Residential", 0.22), ("Rural", 0.18)))
    weather = pick_weighted(rng, _WEATHER_KINDS)
    city, lat0, lon0 = pick(rng, CITIES)
    jpeg, W, H, kinds = render(rng, label, daytime, scene, weather)

    # metadata (drawn after rendering; the true scene attributes drive the picture)
    desc: str | None
    if label == 1:
        desc = _describe(rng, kinds, scene, daytime, weather)
    else:
        desc = "" if chance(rng, 0.6) else None
    if chance(rng, 0.04):
        desc = None  # deliberately missing, either label
    alteration: str | None = pick(rng, _ALTERATIONS) if label == 1 and not chance(rng, 0.1) else "None"
    tags: dict[str, Any] = {
        "daytime": daytime,
        "scene_environment": scene,
        "travel_alteration": alteration,
        "weather": "['Clear']" if (daytime == "Dark" and weather == "clear") else pick(rng, _WEATHER_STRINGS[weather]),
    }
    if chance(rng, 0.08):
        tags["daytime"] = pick(rng, (None, ""))
    if chance(rng, 0.08):
        tags["scene_environment"] = pick(rng, (None, ""))
    if chance(rng, 0.1):
        tags["weather"] = pick(rng, ("[]", "[]", None))
    if chance(rng, 0.05):
        tags["travel_alteration"] = None
    gps: str | None = _gps(rng, lat0, lon0)
    if chance(rng, 0.1):
        gps = pick(rng, (None, None, ""))
    city_name: str | None = city
    if chance(rng, 0.07):
        city_name = pick(rng, (None, ""))
    tags_col: dict[str, Any] | None = None if chance(rng, 0.02) else tags  # whole struct missing sometimes

    if daytime == "Dark":
        hour = pick(rng, (0, 1, 2, 3, 4, 5, 19, 20, 21, 22, 23))
    else:
        hour = randint(rng, 7, 17)
    captured = datetime(2024, 1, 1) + timedelta(
        days=randint(rng, 0, 545), hours=hour, minutes=randint(rng, 0, 59), seconds=randint(rng, 0, 59)
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
        "video_info": {"frame_id": randint(rng, 0, 3000), "seq_id": f"seq_{int(rng.integers(0, 2**24)):06x}", "vid_id": vid},
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
    garbage = rng.integers(0, 256, size=randint(rng, 64, 4096), dtype=np.uint8).tobytes()
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

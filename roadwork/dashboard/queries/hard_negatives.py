"""What the Hard negatives page reads: the sets with their items per reason, a set's items, and thumbnails of
the items found in the set's pool.

The sets are read through `roadwork.db.repo` (not `platform.mining`, which imports the model's data pipeline); the
pool's images are read only when thumbnails are drawn.
"""

from __future__ import annotations

import datetime as dt
import io
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import streamlit as st

from roadwork.dashboard.context import CACHE_TTL_S, db_url, engine_for, settings
from roadwork.dashboard.formatting import local
from roadwork.db import repo
from roadwork.db.engine import read_session
from roadwork.db.repo import HardNegativeItemInfo

THUMB_PX = 192


@dataclass(frozen=True)
class HardNegativeSetRow:
    id: int
    name: str
    source_version: str | None  # label
    pool: str
    n_items: int
    created_at: dt.datetime  # local
    reasons: dict[str, int]  # reason -> items
    pool_found: bool


@dataclass(frozen=True)
class ConditionCount:
    condition: str
    value: str
    reason: str
    n: int


def condition_counts(items: list[HardNegativeItemInfo]) -> list[ConditionCount]:
    """Items per (condition, value, reason), sorted; items without known conditions count as `unknown` (pure)."""
    counts: Counter[tuple[str, str, str]] = Counter()
    for item in items:
        for condition, value in (item.conditions or {"conditions": "unknown"}).items():
            counts[(condition, str(value), item.reason)] += 1
    return [ConditionCount(c, v, r, n) for (c, v, r), n in sorted(counts.items())]


@st.cache_data(ttl=CACHE_TTL_S, show_spinner=False)
def _hard_negative_sets(url: str, limit: int) -> list[HardNegativeSetRow]:
    with read_session(engine_for(url)) as session:
        sets = repo.list_hard_negative_sets(session, limit=limit)
        reasons = repo.hard_negative_reason_counts(session, [s.id for s in sets])
        versions = repo.versions_by_id(session, {s.source_version_id for s in sets if s.source_version_id})
    return [
        HardNegativeSetRow(s.id, s.name, versions[s.source_version_id].label if s.source_version_id in versions
                           else None, s.pool, s.n_items, local(s.created_at), reasons.get(s.id, {}),
                           Path(s.pool).exists())
        for s in sets
    ]


def hard_negative_sets(limit: int = 50) -> list[HardNegativeSetRow]:
    """The newest hard-negative sets with their item counts per reason."""
    return _hard_negative_sets(db_url(), limit)


@st.cache_data(ttl=CACHE_TTL_S, show_spinner=False)
def _set_items(url: str, set_id: int) -> list[HardNegativeItemInfo]:
    with read_session(engine_for(url)) as session:
        return repo.hard_negative_items(session, set_id)


def hard_negative_items(set_id: int) -> list[HardNegativeItemInfo]:
    """The items of a set, in chosen order."""
    return _set_items(db_url(), set_id)


def _thumbnail(data: bytes) -> bytes | None:
    """A small JPEG of an image; None for one that does not decode or is over `data.max_image_pixels`."""
    from PIL import UnidentifiedImageError

    from roadwork.trainer.data.images import open_image

    try:
        with open_image(data, settings().data.max_image_pixels) as img:
            img = img.convert("RGB")
            img.thumbnail((THUMB_PX, THUMB_PX))
            out = io.BytesIO()
            img.save(out, format="JPEG", quality=85)
            return out.getvalue()
    except (UnidentifiedImageError, OSError, ValueError):
        return None


def _pool_images(pool: Path, ids: set[str]) -> dict[str, bytes]:
    """Image bytes of the wanted ids: rows of a parquet pool, or files under a folder pool."""
    from roadwork.platform.mining import is_parquet_pool
    from roadwork.trainer.data.records import read_records

    if is_parquet_pool(pool):
        records, _ = read_records(pool, validate_images=False)
        return {r.id[:255]: r.image_bytes for r in records if r.id[:255] in ids}
    found = {}
    root = pool.resolve()
    for rid in ids:
        path = (root / rid).resolve()
        if path.is_relative_to(root) and path.is_file():  # an id never reaches outside its pool
            found[rid] = path.read_bytes()
    return found


@st.cache_data(ttl=600, max_entries=4, show_spinner="Reading the pool...")
def _thumbnails(url: str, set_id: int, pool: str, pool_mtime: float) -> dict[str, bytes]:
    ids = {i.record_id for i in _set_items(url, set_id)}
    try:
        images = _pool_images(Path(pool), ids)
    except (OSError, ValueError):  # an unreadable pool shows ids, like a missing one
        return {}
    thumbs = {rid: _thumbnail(data) for rid, data in images.items()}
    return {rid: t for rid, t in thumbs.items() if t is not None}


def thumbnails(set_id: int, pool: str) -> dict[str, bytes]:
    """JPEG thumbnails of a set's items found in its pool (record id -> bytes); empty when the pool is gone."""
    path = Path(pool)
    if not path.exists():
        return {}
    return _thumbnails(db_url(), set_id, pool, path.stat().st_mtime)

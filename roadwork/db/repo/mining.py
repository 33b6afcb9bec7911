"""Hard-negative sets (what a version got most wrong in a pool) and their items: the readers and the writer.

Here rather than in `platform.mining` so that showing a set needs neither the model nor the image readers.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from roadwork.db import models as m
from roadwork.db.repo.base import NotFoundError


@dataclass(frozen=True)
class HardNegativeSetInfo:
    id: int
    name: str
    source_version_id: int | None
    pool: str
    n_items: int
    created_at: dt.datetime
    n_confident_mistakes: int = 0  # these counts are known when mined, not stored separately
    n_uncertain: int = 0
    n_scored: int = 0  # pool images the model answered
    skipped: int = 0  # pool rows or images that could not be read


@dataclass(frozen=True)
class HardNegativeItemInfo:
    id: int
    set_id: int
    record_id: str
    label: int | None
    score: float  # the calibrated answer
    reason: str  # confident_mistake | uncertain
    conditions: dict[str, Any] | None


def _set_info(row: m.HardNegativeSet) -> HardNegativeSetInfo:
    return HardNegativeSetInfo(row.id, row.name, row.source_version_id, row.pool, row.n_items, row.created_at)


def list_hard_negative_sets(session: Session, *, source_version_id: int | None = None, limit: int | None = None
                            ) -> list[HardNegativeSetInfo]:
    """Hard-negative sets, newest first (optionally only those mined with one version)."""
    query = select(m.HardNegativeSet).order_by(m.HardNegativeSet.id.desc()).limit(limit)
    if source_version_id is not None:
        query = query.where(m.HardNegativeSet.source_version_id == source_version_id)
    return [_set_info(r) for r in session.scalars(query)]


def get_hard_negative_set(session: Session, set_id: int) -> HardNegativeSetInfo:
    row = session.get(m.HardNegativeSet, set_id)
    if row is None:
        raise NotFoundError(f"no hard-negative set {set_id}")
    return _set_info(row)


def hard_negative_items(session: Session, set_id: int) -> list[HardNegativeItemInfo]:
    """The items of a set in the order they were chosen (confident mistakes first). Raises NotFoundError."""
    get_hard_negative_set(session, set_id)
    rows = session.scalars(select(m.HardNegativeItem).where(m.HardNegativeItem.set_id == set_id)
                           .order_by(m.HardNegativeItem.id))
    return [HardNegativeItemInfo(r.id, r.set_id, r.record_id, r.label, r.score, r.reason, r.conditions) for r in rows]


def hard_negative_reason_counts(session: Session, set_ids: list[int]) -> dict[int, dict[str, int]]:
    """Items per reason of each set, counted in SQL (one query, not every item of every set); reasons in the order
    of their first item, like a `Counter` over the set's items."""
    if not set_ids:
        return {}
    i = m.HardNegativeItem
    query = (select(i.set_id, i.reason, func.count()).where(i.set_id.in_(set_ids))
             .group_by(i.set_id, i.reason).order_by(func.min(i.id)))
    counts: dict[int, dict[str, int]] = {}
    for set_id, reason, n in session.execute(query):
        counts.setdefault(set_id, {})[reason] = n
    return counts


class NewHardNegativeItem(NamedTuple):
    """One item of a set being stored (its id and set id are given by the database)."""

    record_id: str
    label: int | None
    score: float
    reason: str
    conditions: dict[str, Any] | None


def add_hard_negative_set(session: Session, *, name: str, source_version_id: int | None, pool: str,
                          items: Sequence[NewHardNegativeItem]) -> HardNegativeSetInfo:
    """Insert a set with its items, in their order; `n_items` is their number."""
    row = m.HardNegativeSet(name=name, source_version_id=source_version_id, pool=pool, n_items=len(items))
    row.items = [m.HardNegativeItem(**item._asdict()) for item in items]
    session.add(row)
    session.flush()
    return _set_info(row)

"""Leaderboard snapshots: written by a poll, read whole (every column of every row, with its JSON) or, for
trends, only the columns a standing needs, as tuples.

`platform.standings.store` writes and reads whole snapshots through `add_snapshot`, `newest_snapshots`,
`leaderboard_entries` and `uid_history`; a trend over 96 snapshots of 250 miners needs six columns of each row,
read once for every uid charted (`good_snapshot_heads`, `snapshot_miner_cells`).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple

from sqlalchemy import select
from sqlalchemy.orm import Session

from roadwork.db import models as m

# Where a leaderboard row keeps the owner flag: in `extra`, under Taostats' own name for it (no column of its own).
OWNER_KEY = "is_owner_hotkey"


class SnapshotHead(NamedTuple):
    id: int
    taken_at: dt.datetime
    block: int | None


class MinerCells(NamedTuple):
    """The columns of a leaderboard row that a standing is derived from (a tuple: thousands are read at once)."""

    uid: int
    hotkey: str | None
    incentive: float | None
    emission: float | None
    trust: float | None
    stake: float | None
    validator_permit: bool | None
    dividends: float | None
    owner: bool | None  # the subnet owner's hotkey (kept in the row's `extra` under OWNER_KEY)


def good_snapshot_heads(session: Session, n: int) -> list[SnapshotHead]:
    """The newest `n` good (not stale) snapshots, newest first, without their rows."""
    s = m.LeaderboardSnapshot
    query = select(s.id, s.taken_at, s.block).where(s.stale.is_(False)).order_by(s.taken_at.desc(), s.id.desc())
    return [SnapshotHead(*row) for row in session.execute(query.limit(n))]


def snapshot_miner_cells(session: Session, snapshot_ids: list[int]) -> dict[int, list[MinerCells]]:
    """The rows of these snapshots by snapshot id, each ordered by uid, in one query."""
    if not snapshot_ids:
        return {}
    r = m.LeaderboardRow
    query = (select(r.snapshot_id, r.uid, r.hotkey, r.incentive, r.emission, r.trust, r.stake, r.validator_permit,
                    r.dividends, r.extra[OWNER_KEY].as_boolean())
             .where(r.snapshot_id.in_(snapshot_ids)).order_by(r.snapshot_id, r.uid))
    rows: dict[int, list[MinerCells]] = {}
    for row in session.execute(query):
        rows.setdefault(row[0], []).append(MinerCells._make(row[1:]))
    return rows


# --- whole snapshots -------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class SnapshotInfo:
    """A snapshot without its rows."""

    id: int
    source: str
    netuid: int
    block: int | None
    stale: bool
    error: str | None
    taken_at: dt.datetime


class LeaderboardEntry(NamedTuple):
    """Every column of one leaderboard row (the owner flag is in `extra` under OWNER_KEY)."""

    uid: int
    hotkey: str | None = None
    coldkey: str | None = None
    rank: float | None = None
    incentive: float | None = None
    emission: float | None = None
    trust: float | None = None
    consensus: float | None = None
    dividends: float | None = None
    stake: float | None = None
    active: bool | None = None
    validator_permit: bool | None = None
    extra: dict[str, Any] | None = None


def _snapshot_info(row: m.LeaderboardSnapshot) -> SnapshotInfo:
    return SnapshotInfo(row.id, row.source, row.netuid, row.block, row.stale, row.error, row.taken_at)


def _entry(row: m.LeaderboardRow) -> LeaderboardEntry:
    return LeaderboardEntry(**{f: getattr(row, f) for f in LeaderboardEntry._fields})


def add_snapshot(
    session: Session,
    *,
    source: str,
    netuid: int,
    taken_at: dt.datetime,
    stale: bool = False,
    error: str | None = None,
    block: int | None = None,
    rows: Sequence[LeaderboardEntry] = (),
) -> int:
    """Insert a snapshot with its rows; returns its id."""
    snapshot = m.LeaderboardSnapshot(source=source, netuid=netuid, block=block, stale=stale, error=error,
                                     taken_at=taken_at, rows=[m.LeaderboardRow(**r._asdict()) for r in rows])
    session.add(snapshot)
    session.flush()
    return snapshot.id


def newest_snapshots(session: Session, limit: int | None, good_only: bool = True) -> list[SnapshotInfo]:
    """The newest `limit` snapshots, newest first, without their rows; `good_only=False` includes stale ones."""
    s = m.LeaderboardSnapshot
    query = select(s).order_by(s.taken_at.desc(), s.id.desc())
    if good_only:
        query = query.where(s.stale.is_(False))
    return [_snapshot_info(row) for row in session.scalars(query.limit(limit))]


def leaderboard_entries(session: Session, snapshot_ids: list[int]) -> dict[int, list[LeaderboardEntry]]:
    """The rows of these snapshots by snapshot id, each ordered by uid (a snapshot without rows is absent)."""
    rows: dict[int, list[LeaderboardEntry]] = {}
    if snapshot_ids:
        r = m.LeaderboardRow
        query = select(r).where(r.snapshot_id.in_(snapshot_ids)).order_by(r.snapshot_id, r.uid)
        for row in session.scalars(query):
            rows.setdefault(row.snapshot_id, []).append(_entry(row))
    return rows


def uid_history(session: Session, uid: int, limit: int) -> list[tuple[SnapshotHead, LeaderboardEntry]]:
    """`uid`'s rows in the newest `limit` good snapshots that hold it, newest first."""
    r, s = m.LeaderboardRow, m.LeaderboardSnapshot
    query = (
        select(r, s)
        .join(s, r.snapshot_id == s.id)
        .where(r.uid == uid, s.stale.is_(False))
        .order_by(s.taken_at.desc(), s.id.desc())
        .limit(limit)
    )
    return [(SnapshotHead(snap.id, snap.taken_at, snap.block), _entry(row)) for row, snap in session.execute(query)]

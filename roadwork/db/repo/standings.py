"""Leaderboard snapshots, read for trends: only the columns a standing needs, as tuples.

`platform.standings` reads whole snapshots (every row as an ORM object with its JSON); a trend over 96 snapshots
of 250 miners needs six columns of each row, read once for every uid charted.
"""

from __future__ import annotations

import datetime as dt
from typing import NamedTuple

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

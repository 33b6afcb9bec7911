"""What the Leaderboard page reads: the latest good snapshot with every miner's place, our standing in it, whether
the latest poll failed, and chosen miners' places and incentive over time."""

from __future__ import annotations

import dataclasses
import datetime as dt
from dataclasses import dataclass

import streamlit as st

from roadwork.dashboard.context import CACHE_TTL_S, db_url, engine_for, settings
from roadwork.dashboard.formatting import local
from roadwork.dashboard.queries.common import TREND_POINTS, standing_trends
from roadwork.db.engine import read_session
from roadwork.platform.standings import (
    MinerRow,
    Snapshot,
    Standing,
    TrendPoint,
    derive_standing,
    latest_snapshot,
)


@dataclass(frozen=True)
class MinerView:
    uid: int
    place: int | None  # among miners by incentive ("1224" ranking), None for validators
    validator: bool
    incentive: float | None
    emission: float | None
    trust: float | None
    consensus: float | None
    stake: float | None
    chain_rank: float | None  # the chain's `rank` field: a consensus weight, not a place
    hotkey: str | None
    active: bool | None
    ours: bool


@dataclass(frozen=True)
class Leaderboard:
    our_uid: int | None
    good: Snapshot | None  # the latest good snapshot (taken_at local)
    stale: bool  # the latest poll failed
    stale_error: str | None
    stale_at: dt.datetime | None  # local time of the failed poll
    standing: Standing | None
    miners: list[MinerView]


def miner_views(rows: tuple[MinerRow, ...] | list[MinerRow], our_uid: int | None) -> list[MinerView]:
    """Rows with their place among miners (the rules of `derive_standing`), best first (pure)."""
    miners = {r.uid for r in rows if r.uid == our_uid or r.validator_permit is not True}
    incentives = [r.incentive or 0.0 for r in rows if r.uid in miners]

    def place(row: MinerRow) -> int | None:
        if row.uid not in miners:
            return None
        return 1 + sum(1 for v in incentives if v > (row.incentive or 0.0))

    views = [MinerView(r.uid, place(r), r.validator_permit is True and r.uid != our_uid, r.incentive, r.emission,
                       r.trust, r.consensus, r.stake, r.rank, r.hotkey, r.active, r.uid == our_uid) for r in rows]
    return sorted(views, key=lambda v: (v.place is None, v.place or 0, v.uid))


@st.cache_data(ttl=CACHE_TTL_S, show_spinner=False)
def _leaderboard(url: str, our_uid: int | None) -> Leaderboard:
    with read_session(engine_for(url)) as session:
        good = latest_snapshot(session, good_only=True)
        newest = latest_snapshot(session, good_only=False)
    stale = newest is not None and newest.stale
    return Leaderboard(
        our_uid=our_uid,
        good=dataclasses.replace(good, taken_at=local(good.taken_at)) if good else None,
        stale=stale,
        stale_error=newest.error if stale else None,
        stale_at=local(newest.taken_at) if stale else None,
        standing=derive_standing(good.rows, our_uid) if good else None,
        miners=miner_views(good.rows, our_uid) if good else [],
    )


def leaderboard() -> Leaderboard:
    """The latest good snapshot, our standing in it, and whether the latest poll failed."""
    return _leaderboard(db_url(), settings().uid)


@st.cache_data(ttl=CACHE_TTL_S, show_spinner=False)
def _trends(url: str, uids: tuple[int, ...], n: int) -> dict[int, list[TrendPoint]]:
    with read_session(engine_for(url)) as session:
        points = standing_trends(session, uids, n)  # one read for every uid
    return {uid: [dataclasses.replace(p, taken_at=local(p.taken_at)) for p in points[uid]] for uid in uids}


def trends(uids: list[int], n: int = TREND_POINTS) -> dict[int, list[TrendPoint]]:
    """Each uid's place and incentive over the last `n` good snapshots, oldest first (`standings.TrendPoint`)."""
    return _trends(db_url(), tuple(sorted(set(uids))), n)

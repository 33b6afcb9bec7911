"""Our standing as `roadwork standings` reports it: from the latest good snapshot, optionally polled first."""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import Engine

from roadwork.db.engine import read_session
from roadwork.platform.standings.analysis import derive_standing
from roadwork.platform.standings.parsing import StandingsError
from roadwork.platform.standings.sources import Source
from roadwork.platform.standings.store import latest_snapshot, poll_standings
from roadwork.settings import Settings

REPORT_KEYS = ("uid", "rank", "miners", "percentile", "incentive", "emission_alpha", "stake_alpha", "trust", "block",
               "source", "taken_at", "stale")


def iso_utc(value: dt.datetime) -> str:
    """A stored (naive UTC) time as ISO 8601 with a `Z`."""
    return (value if value.tzinfo else value.replace(tzinfo=dt.UTC)).isoformat().replace("+00:00", "Z")


def standings_report(
    engine: Engine, settings: Settings, *, refresh: bool = False, source: Source | None = None,
    now: dt.datetime | None = None,
) -> dict[str, Any]:
    """Our standing in the latest good snapshot, as a JSON-able dict with the keys `REPORT_KEYS`.

    `rank`, `miners` and `percentile` count miners only (`analysis.derive_standing`); `emission_alpha` (per
    epoch) and `stake_alpha` are in alpha; `stale` is True when the latest poll failed. With `refresh`, the
    configured source (or `source`) is polled and the snapshot stored first. Raises `StandingsError` with one
    line naming the problem when that poll fails (stored as a stale snapshot: the last good one is kept), when
    no source is configured for a refresh, or when no good snapshot exists."""
    if refresh:
        if source is None and settings.leaderboard.source == "none":
            raise StandingsError("leaderboard.source is none: set it to taostats, btcli or json to poll standings")
        result = poll_standings(engine, settings, source, now)
        if result.stale:
            with read_session(engine) as session:
                kept = latest_snapshot(session)
            what = (f"the last good snapshot ({iso_utc(kept.taken_at)}) is kept" if kept is not None
                    else "no good snapshot is stored yet")
            raise StandingsError(" ".join(f"{result.error}; {what}".split()))
    with read_session(engine) as session:
        good = latest_snapshot(session)
        newest = latest_snapshot(session, good_only=False)
    if good is None:
        failed = f" (the last poll failed: {newest.error})" if newest is not None else ""
        raise StandingsError(" ".join(f"no standings stored yet{failed}: run `roadwork standings --refresh` "
                                      "or the leaderboard job".split()))
    standing = derive_standing(good.rows, settings.uid)
    return {
        "uid": settings.uid,
        "rank": standing.rank,
        "miners": standing.miners,
        "percentile": standing.percentile,
        "incentive": standing.incentive,
        "emission_alpha": standing.emission,
        "stake_alpha": standing.stake,
        "trust": standing.trust,
        "block": good.block,
        "source": good.source,
        "taken_at": iso_utc(good.taken_at),
        "stale": newest is not None and newest.stale,
    }

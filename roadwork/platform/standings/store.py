"""Polling into snapshots, and reading them back as frozen dataclasses.

A poll fetches outside any transaction, then writes the snapshot and its rows in one short write
transaction. A failed poll writes a snapshot marked `stale` with the reason in `error` and no rows; readers
that want numbers ask for the latest good snapshot (`good_only=True`), so bad input never replaces good data.

Units: the `stake` and `emission` columns hold alpha (the subnet's token), not TAO; the names never said TAO,
so no migration was needed, only the meaning fixed. `MinerRow.owner` is stored in the row's `extra` under
`OWNER_KEY` (Taostats' own name for it), so that no column is added. A snapshot of the demo's sample data is
stored with the source name ending in `SAMPLE_SUFFIX`.
"""

from __future__ import annotations

import datetime as dt
import logging
from dataclasses import dataclass

from sqlalchemy import Engine
from sqlalchemy.orm import Session

from roadwork.clock import utcnow
from roadwork.db import repo
from roadwork.db.engine import write_session
from roadwork.db.repo.standings import OWNER_KEY
from roadwork.platform.standings.analysis import derive_standing
from roadwork.platform.standings.http import redact
from roadwork.platform.standings.parsing import MinerRow, StandingsError, to_bool
from roadwork.platform.standings.sources import Source, source_from_settings
from roadwork.settings import Settings

log = logging.getLogger(__name__)

MAX_ERROR_CHARS = 1000
SAMPLE_SUFFIX = " (sample)"
ROW_FIELDS = ("uid", "hotkey", "coldkey", "rank", "incentive", "emission", "trust", "consensus", "dividends",
              "stake", "active", "validator_permit")


@dataclass(frozen=True)
class PollResult:
    snapshot_id: int
    source: str
    stale: bool
    error: str | None
    taken_at: dt.datetime
    block: int | None = None
    rows: tuple[MinerRow, ...] = ()
    skipped: int = 0


@dataclass(frozen=True)
class Snapshot:
    id: int
    source: str
    netuid: int
    block: int | None
    stale: bool
    error: str | None
    taken_at: dt.datetime
    rows: tuple[MinerRow, ...]


@dataclass(frozen=True)
class HistoryPoint:
    """One uid's row in one good snapshot."""

    snapshot_id: int
    taken_at: dt.datetime
    block: int | None
    row: MinerRow


@dataclass(frozen=True)
class TrendPoint:
    """Our numbers in one good snapshot; None where the uid was absent from it."""

    snapshot_id: int
    taken_at: dt.datetime
    block: int | None
    incentive: float | None
    emission: float | None  # alpha per epoch
    rank: int | None
    miners: int


def poll_standings(
    engine: Engine, settings: Settings, source: Source | None = None, now: dt.datetime | None = None
) -> PollResult:
    """Fetch standings from `source` (default: the one `settings.leaderboard` names) and store a snapshot.

    Never raises for a network, parse or configuration failure of the source: that becomes a stale snapshot
    with the reason. Raises ValueError when no source is given and `leaderboard.source` is none."""
    if source is None and settings.leaderboard.source == "none":
        raise ValueError("leaderboard.source is none: nothing to poll")
    taken_at = now or utcnow()
    secret = settings.leaderboard_api_key.get_secret_value() if settings.leaderboard_api_key else None
    name = source.name if source is not None else settings.leaderboard.source
    netuid = settings.leaderboard.netuid
    try:
        source = source or source_from_settings(settings)
        fetched = source.fetch()
    except Exception as exc:  # noqa: BLE001 - every failure of a source becomes a stale snapshot
        reason = str(exc) if isinstance(exc, StandingsError) else f"{type(exc).__name__}: {exc}"
        reason = redact(reason, [secret])[:MAX_ERROR_CHARS]
        log.warning("standings poll from %s failed, keeping the last good snapshot: %s", name, reason)
        with write_session(engine) as session:
            snapshot_id = repo.add_snapshot(session, source=name, netuid=netuid, stale=True, error=reason,
                                            taken_at=taken_at)
        return PollResult(snapshot_id, name, True, reason, taken_at)

    name += SAMPLE_SUFFIX if fetched.sample else ""
    with write_session(engine) as session:
        snapshot_id = repo.add_snapshot(
            session, source=name, netuid=netuid, block=fetched.block, stale=False, error=None, taken_at=taken_at,
            rows=[repo.LeaderboardEntry(**{f: getattr(row, f) for f in ROW_FIELDS}, extra=_extra(row) or None)
                  for row in fetched.rows],
        )
    log.info("standings from %s: %d rows (%d skipped), block %s", name, len(fetched.rows), fetched.skipped,
             fetched.block)
    return PollResult(snapshot_id, name, False, None, taken_at, fetched.block, fetched.rows, fetched.skipped)


# --- readers -------------------------------------------------------------------------------------------------


def is_sample(source: str) -> bool:
    """Whether a snapshot's source name says it holds sample data (the demo's), not the network's."""
    return source.endswith(SAMPLE_SUFFIX)


def _extra(row: MinerRow) -> dict:
    return row.extra if row.owner is None else {**row.extra, OWNER_KEY: row.owner}


def _row(row: repo.LeaderboardEntry) -> MinerRow:
    extra = dict(row.extra or {})
    owner = to_bool(extra.pop(OWNER_KEY, None))
    return MinerRow(**{f: getattr(row, f) for f in ROW_FIELDS}, owner=owner, extra=extra)


def _rows_of(session: Session, snapshot_ids: list[int]) -> dict[int, list[MinerRow]]:
    entries = repo.leaderboard_entries(session, snapshot_ids)
    return {snapshot_id: [_row(e) for e in rows] for snapshot_id, rows in entries.items()}


def latest_snapshot(session: Session, good_only: bool = True) -> Snapshot | None:
    """The newest snapshot with its rows (ordered by uid); `good_only=False` includes stale ones."""
    snaps = repo.newest_snapshots(session, 1, good_only)
    if not snaps:
        return None
    snap = snaps[0]
    rows = _rows_of(session, [snap.id]).get(snap.id, [])
    return Snapshot(snap.id, snap.source, snap.netuid, snap.block, snap.stale, snap.error, snap.taken_at,
                    tuple(rows))


def history_for(session: Session, uid: int, limit: int = 100) -> list[HistoryPoint]:
    """`uid`'s rows in the newest `limit` good snapshots that hold it, newest first."""
    return [HistoryPoint(head.id, head.taken_at, head.block, _row(entry))
            for head, entry in repo.uid_history(session, uid, limit)]


def trend(session: Session, uid: int, n: int = 96) -> list[TrendPoint]:
    """Our incentive, emission and miner rank over the last `n` good snapshots, oldest first."""
    snaps = repo.newest_snapshots(session, n, good_only=True)
    rows = _rows_of(session, [s.id for s in snaps])
    points = []
    for snap in reversed(snaps):
        standing = derive_standing(rows.get(snap.id, []), uid)
        points.append(TrendPoint(snap.id, snap.taken_at, snap.block, standing.incentive, standing.emission,
                                 standing.rank, standing.miners))
    return points

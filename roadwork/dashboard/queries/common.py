"""Rows and reads that more than one page shows: job runs, scheduler commands, standings over time."""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Iterable
from dataclasses import dataclass

import streamlit as st
from sqlalchemy.orm import Session

from roadwork.dashboard.context import CACHE_TTL_S, db_url, engine_for
from roadwork.dashboard.formatting import local
from roadwork.db import repo
from roadwork.db.engine import read_session
from roadwork.platform.standings import TrendPoint, derive_standing

COMMANDS_SCANNED = 200  # newest commands searched for the kinds a page shows
TREND_POINTS = 96


@dataclass(frozen=True)
class RunRow:
    """A job run with its times in local time."""

    id: int
    job_id: str
    status: str
    trigger: str
    scheduled_at: dt.datetime | None  # local
    started_at: dt.datetime | None
    finished_at: dt.datetime | None
    duration_s: float | None
    error: str | None
    log_path: str | None


def run_row(run: repo.JobRun) -> RunRow:
    return RunRow(run.id, run.job_id, run.status, run.trigger, local(run.scheduled_at), local(run.started_at),
                  local(run.finished_at), run.duration_s, run.error, run.log_path)


# A scheduler command with its times in local time (a `repo.Command` with `created_at`/`applied_at` shifted).
CommandRow = repo.Command


def local_command(command: repo.Command) -> CommandRow:
    return dataclasses.replace(command, payload=dict(command.payload or {}), created_at=local(command.created_at),
                               applied_at=local(command.applied_at))


@st.cache_data(ttl=CACHE_TTL_S, show_spinner=False)
def _commands(url: str, kinds: tuple[str, ...] | None, limit: int) -> list[CommandRow]:
    with read_session(engine_for(url)) as session:
        commands = repo.list_commands(session, limit=limit if kinds is None else COMMANDS_SCANNED)
    return [local_command(c) for c in commands if kinds is None or c.kind in kinds][:limit]


def recent_commands(kinds: Iterable[str] | None = None, limit: int = 20) -> list[CommandRow]:
    """The newest scheduler commands (of these kinds, among the newest `COMMANDS_SCANNED`), with status and
    outcome."""
    return _commands(db_url(), None if kinds is None else tuple(kinds), limit)


def standing_trends(session: Session, uids: Iterable[int], n: int = TREND_POINTS) -> dict[int, list[TrendPoint]]:
    """`standings.trend(session, uid, n)` of each uid (oldest first), from one read of the last `n` good snapshots.

    Only the columns a standing needs are read, as tuples: `trend` loads every row of those snapshots as an ORM
    row with its JSON, for each uid again (96 snapshots x 250 miners took about a second per uid)."""
    snaps = repo.good_snapshot_heads(session, n)
    # `derive_standing` reads uid, hotkey, incentive, emission, trust and validator_permit, which `MinerCells` has:
    # a `MinerRow` per row (a frozen dataclass of 13 fields) would cost about 10 us each, 0.2 s for 96 x 250 rows.
    rows = repo.snapshot_miner_cells(session, [snap.id for snap in snaps])
    out = {}
    for uid in uids:
        at = [(snap, derive_standing(rows.get(snap.id, []), uid)) for snap in reversed(snaps)]
        out[uid] = [TrendPoint(snap.id, snap.taken_at, snap.block, std.incentive, std.emission, std.rank, std.miners)
                    for snap, std in at]
    return out

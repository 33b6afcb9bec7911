"""What the Jobs page reads: the scheduler's stored jobs with their crons, runs, running jobs with their log's last
line, log tails, cron previews, and the job commands with their outcome."""

from __future__ import annotations

import datetime as dt
import io
import re
from dataclasses import dataclass
from pathlib import Path

import streamlit as st

from roadwork.clock import utcnow
from roadwork.cron import next_fire_times
from roadwork.dashboard.context import CACHE_TTL_S, db_url, engine, engine_for, settings
from roadwork.dashboard.formatting import local
from roadwork.dashboard.queries.common import (
    CommandRow,
    RunRow,
    recent_commands,
    run_row,
)
from roadwork.dashboard.services import RequestError
from roadwork.db import repo
from roadwork.db.engine import read_session
from roadwork.platform.jobs import catalog
from roadwork.platform.jobs.store import stored_jobs

JOB_COMMAND_KINDS = ("run_now", "pause", "resume", "reschedule", "cancel")
COMMANDS_SHOWN = 10
PREVIEW_RUNS = 5
LOG_TAIL_LINES = 200
LOG_TAIL_BYTES = 512 * 1024  # a log's tail is read from at most this many bytes at its end
RUNS_SHOWN = 50
_CRON = re.compile(r"^cron (\S+ \S+ \S+ \S+ \S+) \((.+)\)$")  # `jobstore.describe_trigger` of a cron trigger


@dataclass(frozen=True)
class ScheduleRow:
    job_id: str
    description: str
    trigger: str  # as stored, e.g. "cron 0 3 * * * (UTC)"
    cron: str | None  # the five crontab fields (UTC), None for other triggers
    next_run: dt.datetime | None  # local; None when paused
    upcoming: tuple[dt.datetime, ...]  # the cron's next fire times, local (none when paused)
    paused: bool
    error: str | None  # the stored row cannot be read


@dataclass(frozen=True)
class RunningJob:
    run_id: int
    job_id: str
    started_at: dt.datetime  # local
    elapsed_s: float
    timeout_s: float | None  # the subprocess limit of this job, if it has one
    last_log_line: str | None  # of the newest log file of the job started with this run


@dataclass(frozen=True)
class LogTail:
    path: str
    text: str  # the last lines
    shown: int
    truncated: bool  # there is more before what is shown
    error: str | None = None


def cron_of(trigger: str) -> str | None:
    """The five crontab fields of a stored trigger description, or None for a non-cron trigger (pure)."""
    match = _CRON.match(trigger)
    return match[1] if match else None


@st.cache_data(ttl=CACHE_TTL_S, show_spinner=False)
def _schedules(url: str) -> list[ScheduleRow]:
    rows = []
    for job in stored_jobs(engine_for(url)):
        cron = cron_of(job["trigger"])
        upcoming = () if job["paused"] or cron is None else tuple(local(t) for t in next_fire_times(cron, 3))
        spec = catalog.JOBS.get(job["id"])
        rows.append(ScheduleRow(job["id"], spec.description if spec else job["func"], job["trigger"], cron,
                                local(job["next_run_time"]), upcoming, job["paused"], job["error"]))
    return rows


def schedules() -> list[ScheduleRow]:
    """Every job in the scheduler's store, by id, with its cron and next fire times."""
    return _schedules(db_url())


def runnable_jobs() -> dict[str, str]:
    """Jobs a run-now command can start without arguments: id -> description (A/B tests start from their page)."""
    return {job_id: spec.description for job_id, spec in catalog.JOBS.items() if spec.runnable_without_arguments}


@st.cache_data(ttl=CACHE_TTL_S, show_spinner=False)
def _runs(url: str, job_id: str | None, limit: int) -> list[RunRow]:
    with read_session(engine_for(url)) as session:
        return [run_row(r) for r in repo.list_job_runs(session, job_id=job_id, limit=limit)]


def job_runs(job_id: str | None = None, limit: int = RUNS_SHOWN) -> list[RunRow]:
    """Newest runs first (of one job, or all)."""
    return _runs(db_url(), job_id, limit)


def _log_started_with(logs_dir: Path, job_id: str, started_at_utc: dt.datetime) -> Path | None:
    """The newest `<job>-<UTC stamp>.log` (see `subprocess_jobs.log_path_for`) begun after the run started."""
    newest = None
    for path in (logs_dir / "jobs").glob(f"{job_id}-*.log"):
        try:
            stamp = dt.datetime.strptime(path.stem[len(job_id) + 1:], "%Y%m%dT%H%M%S%fZ")
        except ValueError:
            continue
        if stamp >= started_at_utc - dt.timedelta(seconds=5) and (newest is None or stamp > newest[0]):
            newest = (stamp, path)
    return newest[1] if newest else None


def running_jobs() -> list[RunningJob]:
    """Runs started and not finished, oldest first, with how long they have run (not cached: it is progress)."""
    config = settings()
    now = utcnow()
    with read_session(engine()) as session:
        runs = [r for r in repo.list_job_runs(session, limit=RUNS_SHOWN) if r.status == "started" and r.started_at]
    out = []
    for run in reversed(runs):
        log = _log_started_with(config.logs_dir, run.job_id, run.started_at)
        tail = read_log_tail(str(log), 1).text.strip() if log else ""
        out.append(RunningJob(run.id, run.job_id, local(run.started_at), (now - run.started_at).total_seconds(),
                              catalog.timeout_s(config, run.job_id), tail or None))
    return out


def read_log_tail(path: str, lines: int = LOG_TAIL_LINES) -> LogTail:
    """The last `lines` lines of a log file (read from its end only); `error` says why there is none."""
    try:
        with open(path, "rb") as fh:
            size = fh.seek(0, io.SEEK_END)
            fh.seek(max(0, size - LOG_TAIL_BYTES))
            data = fh.read()
    except OSError as exc:
        return LogTail(path, "", 0, False, f"cannot read the log: {exc.strerror or exc}")
    text = data.decode("utf-8", errors="replace").splitlines()
    if size > LOG_TAIL_BYTES:
        text = text[1:]  # the first line read is probably cut
    shown = text[-lines:]
    return LogTail(path, "\n".join(shown), len(shown), size > LOG_TAIL_BYTES or len(text) > lines)


def preview_cron(cron: str, n: int = PREVIEW_RUNS) -> list[dt.datetime]:
    """The next `n` fire times (local) of a UTC cron expression; `RequestError` when it is not valid."""
    try:
        return [local(t) for t in next_fire_times((cron or "").strip(), n)]
    except ValueError as exc:
        raise RequestError(str(exc)) from None


def job_commands(limit: int = COMMANDS_SHOWN) -> list[CommandRow]:
    """The newest job commands (run now, pause, resume, reschedule, cancel) with status and outcome."""
    return recent_commands(JOB_COMMAND_KINDS, limit)

"""What the operations pages (Jobs, A/B tests, Hard negatives, Leaderboard) read and write.

The rules of `services` hold here too: pages hold no SQL; reads are cached for a few seconds keyed by the
database URL; times come back as naive local wall-clock datetimes. Writes never run anything: each one checks
that the actor is an operator (in the users table, first), requires a reason, and goes through
`roadwork.platform.commands.submit`: one scheduler command and one audit event in one transaction; the
scheduler applies the command and records its outcome, which the pages show.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import io
import re
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import streamlit as st
from sqlalchemy import Engine, func, select
from sqlalchemy.orm import Session

from roadwork.clock import utcnow
from roadwork.cron import next_fire_times
from roadwork.settings import load_settings
from roadwork.dashboard import services
from roadwork.dashboard.insights import standing_trends
from roadwork.dashboard.services import CACHE_TTL_S, RequestError, local
from roadwork.db import models as m
from roadwork.db import repo
from roadwork.db.engine import read_session
from roadwork.platform.ab import service as ab
from roadwork.platform.jobs import catalog
from roadwork.platform.jobs.store import stored_jobs
from roadwork.platform.standings import MinerRow, Snapshot, Standing, derive_standing, is_miner, latest_snapshot

JOB_COMMAND_KINDS = ("run_now", "pause", "resume", "reschedule", "cancel")
PREVIEW_RUNS = 5
LOG_TAIL_LINES = 200
LOG_TAIL_BYTES = 512 * 1024  # a log's tail is read from at most this many bytes at its end
RUNS_SHOWN = 50
COMMANDS_SCANNED = 200  # newest commands searched for the kinds a page shows
THUMB_PX = 192
_CRON = re.compile(r"^cron (\S+ \S+ \S+ \S+ \S+) \((.+)\)$")  # `jobstore.describe_trigger` of a cron trigger


def _engine(url: str) -> Engine:
    return services._engine_for(url)  # noqa: SLF001 - the one migrated, process-wide engine per URL


# --- writes: who may, and the one way they are written ------------------------------------------------------------


def _reason(reason: str | None) -> str:
    reason = (reason or "").strip()
    if not reason:
        raise RequestError("A reason is required.")
    return reason


# --- commands and their outcome ---------------------------------------------------------------------------------


@st.cache_data(ttl=CACHE_TTL_S, show_spinner=False)
def _commands_of(url: str, kinds: tuple[str, ...], limit: int) -> list[repo.Command]:
    with read_session(_engine(url)) as session:
        commands = repo.list_commands(session, limit=COMMANDS_SCANNED)
    return [dataclasses.replace(c, payload=dict(c.payload or {}), created_at=local(c.created_at),
                                applied_at=local(c.applied_at))
            for c in commands if c.kind in kinds][:limit]


def recent_commands(kinds: tuple[str, ...], limit: int = 10) -> list[repo.Command]:
    """The newest commands of these kinds, with status and outcome (times local)."""
    return _commands_of(services.db_url(), tuple(kinds), limit)


def command_rows(commands: list[repo.Command]) -> list[dict[str, Any]]:
    """Commands as table rows (pure)."""
    return [{"#": c.id, "kind": c.kind, "payload": str(c.payload), "status": c.status, "outcome": c.outcome or "",
             "requested by": c.requested_by, "reason": c.reason, "requested": c.created_at, "applied": c.applied_at}
            for c in commands]


def any_pending(commands: list[repo.Command]) -> bool:
    return any(c.status in ("pending", "applying") for c in commands)


# --- jobs -----------------------------------------------------------------------------------------------------------


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
class RunRow:
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
    for job in stored_jobs(_engine(url)):
        cron = cron_of(job["trigger"])
        upcoming = () if job["paused"] or cron is None else tuple(local(t) for t in next_fire_times(cron, 3))
        spec = catalog.JOBS.get(job["id"])
        rows.append(ScheduleRow(job["id"], spec.description if spec else job["func"], job["trigger"], cron,
                                local(job["next_run_time"]), upcoming, job["paused"], job["error"]))
    return rows


def schedules() -> list[ScheduleRow]:
    """Every job in the scheduler's store, by id, with its cron and next fire times."""
    return _schedules(services.db_url())


def runnable_jobs() -> dict[str, str]:
    """Jobs a run-now command can start without arguments: id -> description (A/B tests start from their page)."""
    return {job_id: spec.description for job_id, spec in catalog.JOBS.items() if spec.runnable_without_arguments}


def _run_row(run: repo.JobRun) -> RunRow:
    return RunRow(run.id, run.job_id, run.status, run.trigger, local(run.scheduled_at), local(run.started_at),
                  local(run.finished_at), run.duration_s, run.error, run.log_path)


@st.cache_data(ttl=CACHE_TTL_S, show_spinner=False)
def _runs(url: str, job_id: str | None, limit: int) -> list[RunRow]:
    with read_session(_engine(url)) as session:
        return [_run_row(r) for r in repo.list_job_runs(session, job_id=job_id, limit=limit)]


def job_runs(job_id: str | None = None, limit: int = RUNS_SHOWN) -> list[RunRow]:
    """Newest runs first (of one job, or all)."""
    return _runs(services.db_url(), job_id, limit)


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
    settings = load_settings()
    now = utcnow()
    with read_session(services.engine()) as session:
        runs = [r for r in repo.list_job_runs(session, limit=RUNS_SHOWN) if r.status == "started" and r.started_at]
    out = []
    for run in reversed(runs):
        log = _log_started_with(settings.logs_dir, run.job_id, run.started_at)
        tail = read_log_tail(str(log), 1).text.strip() if log else ""
        out.append(RunningJob(run.id, run.job_id, local(run.started_at), (now - run.started_at).total_seconds(),
                              catalog.timeout_s(settings, run.job_id), tail or None))
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


def _job_ids(engine: Engine) -> set[str]:
    return {j["id"] for j in stored_jobs(engine)}


def request_job_command(kind: str, job_id: str, reason: str, actor: str,
                        kwargs: dict[str, Any] | None = None) -> int:
    """Ask the scheduler to pause, resume, run now or cancel `job_id`; returns the command id.

    `kwargs`: the arguments of a run now, checked against the job catalog. Raises `RequestError` (nothing
    written) for a non-operator, an empty reason, a job the command cannot apply to or a bad argument."""
    engine = services.engine()
    services.authorize(actor)
    if kind not in ("run_now", "pause", "resume", "cancel"):
        raise RequestError(f"not a job command: {kind!r}")
    reason = _reason(reason)
    if kwargs and kind != "run_now":
        raise RequestError(f"only a run now takes arguments, not {kind.replace('_', ' ')}")
    runnable = set(catalog.JOBS) if kwargs else set(runnable_jobs())
    known = _job_ids(engine) if kind in ("pause", "resume") else runnable | _job_ids(engine)
    if job_id not in known:
        raise RequestError(f"no job {job_id!r} to {kind.replace('_', ' ')} (jobs: {', '.join(sorted(known))})")
    payload: dict[str, Any] = {"job_id": job_id} | ({"kwargs": dict(kwargs)} if kwargs else {})
    return services.queue_command(kind, payload, reason=reason, actor=actor, target=job_id)


def request_reschedule(job_id: str, cron: str, reason: str, actor: str) -> int:
    """Ask the scheduler to give `job_id` a new UTC cron; `RequestError` (nothing written) when invalid."""
    engine = services.engine()
    services.authorize(actor)
    cron = " ".join((cron or "").split())
    preview_cron(cron, 1)
    reason = _reason(reason)
    if job_id not in _job_ids(engine):
        raise RequestError(f"no scheduled job {job_id!r}")
    return services.queue_command("reschedule", {"job_id": job_id, "cron": cron}, reason=reason, actor=actor,
                                  target=job_id)


# --- A/B tests ------------------------------------------------------------------------------------------------------


@st.cache_data(ttl=CACHE_TTL_S, show_spinner=False)
def _ab_tests(url: str) -> list[ab.ABTest]:
    with read_session(_engine(url)) as session:
        return [dataclasses.replace(t, created_at=local(t.created_at)) for t in ab.list_ab_tests(session)]


def ab_tests() -> list[ab.ABTest]:
    """A/B tests, newest first, with their status and newest verdict."""
    return _ab_tests(services.db_url())


@st.cache_data(ttl=CACHE_TTL_S, show_spinner=False)
def _ab_result(url: str, test_id: int) -> ab.ABResult | None:
    with read_session(_engine(url)) as session:
        result = ab.latest_results(session, test_id)
    return None if result is None else dataclasses.replace(result, created_at=local(result.created_at))


def ab_result(test_id: int) -> ab.ABResult | None:
    """The newest result of a test, or None before its first run."""
    return _ab_result(services.db_url(), test_id)


def request_ab_test(version_a: int, version_b: int, sample_size: int, reason: str, actor: str) -> int:
    """Ask the scheduler to create and run an A/B test of two versions; returns the command id.

    Raises `RequestError` (nothing written) for a non-operator, an empty reason, the same or unknown versions, or
    a sample size below 2."""
    engine = services.engine()
    services.authorize(actor)
    reason = _reason(reason)
    if isinstance(sample_size, bool) or int(sample_size) != sample_size or sample_size < 2:
        raise RequestError(f"The sample size must be a whole number of at least 2, got {sample_size!r}.")
    with read_session(engine) as session:
        try:
            a, b = repo.get_version(session, int(version_a)), repo.get_version(session, int(version_b))
        except repo.NotFoundError as exc:
            raise RequestError(str(exc)) from None
    if a.id == b.id:
        raise RequestError(f"An A/B test needs two different versions, got {a.label} twice.")
    payload = {"a": a.id, "b": b.id, "sample_size": int(sample_size)}
    return services.queue_command("create_ab_test", payload, reason=reason, actor=actor,
                                  target=f"{a.label} vs {b.label}")


# --- hard negatives -------------------------------------------------------------------------------------------------
# `roadwork.platform.mining` imports the trainer's data module, and with it torch: imported here only when used.


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


def condition_counts(items: list[Any]) -> list[ConditionCount]:
    """Items per (condition, value, reason), sorted; items without known conditions count as `unknown` (pure)."""
    counts: Counter[tuple[str, str, str]] = Counter()
    for item in items:
        for condition, value in (item.conditions or {"conditions": "unknown"}).items():
            counts[(condition, str(value), item.reason)] += 1
    return [ConditionCount(c, v, r, n) for (c, v, r), n in sorted(counts.items())]


@st.cache_data(ttl=CACHE_TTL_S, show_spinner=False)
def _hard_negative_sets(url: str, limit: int) -> list[HardNegativeSetRow]:
    from roadwork.platform import mining

    with read_session(_engine(url)) as session:
        sets = mining.list_sets(session, limit=limit)
        reasons = _reason_counts(session, [s.id for s in sets])
        versions = repo.versions_by_id(session, {s.source_version_id for s in sets if s.source_version_id})
    return [
        HardNegativeSetRow(s.id, s.name, versions[s.source_version_id].label if s.source_version_id in versions
                           else None, s.pool, s.n_items, local(s.created_at), reasons.get(s.id, {}),
                           Path(s.pool).exists())
        for s in sets
    ]


def _reason_counts(session: Session, set_ids: list[int]) -> dict[int, dict[str, int]]:
    """Items per reason of each set, counted in SQL (one query, not every item of every set); reasons in the order
    of their first item, like a `Counter` over the set's items."""
    i = m.HardNegativeItem
    query = (select(i.set_id, i.reason, func.count()).where(i.set_id.in_(set_ids))
             .group_by(i.set_id, i.reason).order_by(func.min(i.id)))
    counts: dict[int, dict[str, int]] = {}
    for set_id, reason, n in session.execute(query) if set_ids else ():
        counts.setdefault(set_id, {})[reason] = n
    return counts


def hard_negative_sets(limit: int = 50) -> list[HardNegativeSetRow]:
    """The newest hard-negative sets with their item counts per reason."""
    return _hard_negative_sets(services.db_url(), limit)


@st.cache_data(ttl=CACHE_TTL_S, show_spinner=False)
def _set_items(url: str, set_id: int) -> list[Any]:
    from roadwork.platform import mining

    with read_session(_engine(url)) as session:
        return mining.set_items(session, set_id)


def hard_negative_items(set_id: int) -> list[Any]:
    """The items (`mining.HardNegativeItemInfo`) of a set, in chosen order."""
    return _set_items(services.db_url(), set_id)


def _thumbnail(data: bytes) -> bytes | None:
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(io.BytesIO(data)) as img:
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
    return _thumbnails(services.db_url(), set_id, pool, path.stat().st_mtime)


# --- leaderboard ----------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class MinerView:
    uid: int
    place: int | None  # among miners by incentive ("1224" ranking), None for validators and the owner
    validator: bool  # not a miner: a validator or the subnet owner
    incentive: float | None
    emission: float | None  # alpha per epoch
    trust: float | None
    consensus: float | None
    stake: float | None  # alpha
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
    miners = {r.uid for r in rows if is_miner(r, our_uid)}
    incentives = [r.incentive or 0.0 for r in rows if r.uid in miners]

    def place(row: MinerRow) -> int | None:
        if row.uid not in miners:
            return None
        return 1 + sum(1 for v in incentives if v > (row.incentive or 0.0))

    views = [MinerView(r.uid, place(r), r.uid not in miners, r.incentive, r.emission,
                       r.trust, r.consensus, r.stake, r.rank, r.hotkey, r.active, r.uid == our_uid) for r in rows]
    return sorted(views, key=lambda v: (v.place is None, v.place or 0, v.uid))


@st.cache_data(ttl=CACHE_TTL_S, show_spinner=False)
def _leaderboard(url: str, our_uid: int | None) -> Leaderboard:
    with read_session(_engine(url)) as session:
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
    return _leaderboard(services.db_url(), load_settings().uid)


@st.cache_data(ttl=CACHE_TTL_S, show_spinner=False)
def _trends(url: str, uids: tuple[int, ...], n: int) -> dict[int, list[Any]]:
    with read_session(_engine(url)) as session:
        points = standing_trends(session, uids, n)  # one read for every uid
    return {uid: [dataclasses.replace(p, taken_at=local(p.taken_at)) for p in points[uid]] for uid in uids}


def trends(uids: list[int], n: int = 96) -> dict[int, list[Any]]:
    """Each uid's place and incentive over the last `n` good snapshots, oldest first (`standings.TrendPoint`)."""
    return _trends(services.db_url(), tuple(sorted(set(uids))), n)

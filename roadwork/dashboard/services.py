"""What the dashboard pages read and write: repository calls in short sessions, plain dataclasses out.

Pages hold no SQL. Reads are cached for a few seconds (`st.cache_data`), keyed by the database URL, so that a
command the scheduler has just applied shows up on the next rerun. Writes never run a job: they append a
scheduler command and an audit event, and the scheduler (the one writer of the job store) applies them.
Times come back as naive *local* wall-clock datetimes, ready to show (storage is UTC).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from dataclasses import dataclass, field
from typing import Any

import streamlit as st
from sqlalchemy import Engine

from roadwork.clock import to_local, utcnow
from roadwork.settings import load_settings
from roadwork.dashboard import auth
from roadwork.db import repo
from roadwork.db.engine import get_engine, migrate, read_session
from roadwork.platform import commands

CACHE_TTL_S = 5
JOB_RUNS_SHOWN = 20
COMMANDS_SHOWN = 20


def current_actor() -> str:
    """Who is acting from this dashboard session: the signed-in username, or `anonymous`."""
    return auth.actor()


# --- engine ----------------------------------------------------------------------------------------------------


def db_url() -> str:
    return load_settings().db_url


@st.cache_resource(show_spinner=False)
def _engine_for(url: str) -> Engine:
    # Every process start applies migrations, once, when its engine is first created.
    engine = get_engine(url)
    migrate(engine)
    return engine


def engine() -> Engine:
    """The process-wide, migrated engine of the configured registry."""
    return _engine_for(db_url())


def clear_caches() -> None:
    """Forget cached query results (after a write, so that it shows at once)."""
    st.cache_data.clear()


# --- formatting helpers (pure) ------------------------------------------------------------------------------


def local(value: dt.datetime | None) -> dt.datetime | None:
    """A stored UTC time as naive local wall-clock time (one offset-free column type, also across DST)."""
    converted = to_local(value)
    return None if converted is None else converted.replace(tzinfo=None)


def local_tz_name() -> str:
    return dt.datetime.now().astimezone().strftime("%Z (UTC%z)")


def format_duration(seconds: float | None) -> str:
    """A short human duration: `45 s`, `12 min`, `5 h 3 min`, `3 d 4 h`."""
    if seconds is None:
        return "-"
    seconds = max(0.0, float(seconds))
    if seconds < 60:
        return f"{seconds:.0f} s"
    minutes = int(seconds // 60)
    if minutes < 60:
        return f"{minutes} min"
    hours, minutes = divmod(minutes, 60)
    if hours < 24:
        return f"{hours} h {minutes} min" if minutes else f"{hours} h"
    days, hours = divmod(hours, 24)
    return f"{days} d {hours} h" if hours else f"{days} d"


def _training_mcc(metrics: dict[str, Any]) -> float | None:
    value = metrics.get("val_mcc", metrics.get("mcc"))
    return float(value) if isinstance(value, int | float) else None


# --- overview --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ChampionSummary:
    version_id: int
    label: str  # name:version
    version: str
    since: dt.datetime  # local: when it became champion (start of its current unbroken hold)
    created_at: dt.datetime  # local
    champion_for_s: float
    age_s: float
    training_mcc: float | None  # from the version's training-time validation metrics
    mcc: float | None  # latest validation evaluation
    accuracy: float | None
    n: int | None
    evaluated_at: dt.datetime | None  # local


@dataclass(frozen=True)
class JobRunRow:
    id: int
    job_id: str
    status: str
    trigger: str
    scheduled_at: dt.datetime | None  # local
    started_at: dt.datetime | None
    finished_at: dt.datetime | None
    duration_s: float | None
    error: str | None


@dataclass(frozen=True)
class Overview:
    champion: ChampionSummary | None
    n_versions: int
    n_alias_moves: int
    n_pending_commands: int
    n_failed_runs: int  # among the runs shown
    job_runs: list[JobRunRow] = field(default_factory=list)


def _champion_summary(session, now: dt.datetime) -> ChampionSummary | None:  # noqa: ANN001 - Session
    holder = repo.alias_holder(session, repo.CHAMPION)
    if holder is None:
        return None
    since = None
    for event in repo.alias_history(session, repo.CHAMPION):  # newest first
        if event.to_version_id != holder.id:
            break
        since = event.created_at
    since = since or holder.created_at
    evaluation = repo.latest_evaluation(session, holder.id, kind="validation")
    return ChampionSummary(
        version_id=holder.id,
        label=holder.label,
        version=holder.version,
        since=local(since),
        created_at=local(holder.created_at),
        champion_for_s=(now - since).total_seconds(),
        age_s=(now - holder.created_at).total_seconds(),
        training_mcc=_training_mcc(holder.metrics),
        mcc=evaluation.mcc if evaluation else None,
        accuracy=evaluation.accuracy if evaluation else None,
        n=evaluation.n if evaluation else None,
        evaluated_at=local(evaluation.created_at) if evaluation else None,
    )


def _job_run_row(run: repo.JobRun) -> JobRunRow:
    return JobRunRow(
        id=run.id,
        job_id=run.job_id,
        status=run.status,
        trigger=run.trigger,
        scheduled_at=local(run.scheduled_at),
        started_at=local(run.started_at),
        finished_at=local(run.finished_at),
        duration_s=run.duration_s,
        error=run.error,
    )


@st.cache_data(ttl=CACHE_TTL_S, show_spinner=False)
def _overview(url: str) -> Overview:
    with read_session(_engine_for(url)) as session:
        runs = [_job_run_row(r) for r in repo.list_job_runs(session, limit=JOB_RUNS_SHOWN)]
        return Overview(
            champion=_champion_summary(session, utcnow()),
            n_versions=repo.count_versions(session),
            n_alias_moves=repo.count_alias_moves(session, repo.CHAMPION),
            n_pending_commands=len(repo.pending_commands(session)),
            n_failed_runs=sum(r.status == "failed" for r in runs),
            job_runs=runs,
        )


def overview() -> Overview:
    """The champion, a few counts and the last job runs."""
    return _overview(db_url())


# --- models ----------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class VersionRow:
    id: int
    label: str
    version: str
    created_at: dt.datetime  # local
    created_by: str
    training_mcc: float | None
    eval_id: int | None  # latest evaluation of any kind
    eval_kind: str | None
    eval_mcc: float | None
    eval_accuracy: float | None
    eval_n: int | None
    parent: str | None  # parent's version string
    data_fingerprint: str | None
    code_revision: str | None
    is_champion: bool
    config: dict[str, Any] = field(default_factory=dict)


def _semver_key(version: str) -> tuple[int, int, int]:
    try:
        return repo.parse_semver(version)
    except ValueError:
        return (-1, -1, -1)


@st.cache_data(ttl=CACHE_TTL_S, show_spinner=False)
def _versions(url: str) -> list[VersionRow]:
    with read_session(_engine_for(url)) as session:
        versions = repo.list_versions(session)
        by_id = {v.id: v for v in versions}
        latest = repo.latest_evaluation_summaries(session)  # the metrics JSON (sweeps) is not needed here
        holder = repo.alias_holder(session, repo.CHAMPION)
    rows = []
    for v in versions:
        ev = latest.get(v.id)
        parent = by_id.get(v.parent_id) if v.parent_id is not None else None
        rows.append(
            VersionRow(
                id=v.id,
                label=v.label,
                version=v.version,
                created_at=local(v.created_at),
                created_by=v.created_by,
                training_mcc=_training_mcc(v.metrics),
                eval_id=ev.id if ev else None,
                eval_kind=ev.kind if ev else None,
                eval_mcc=ev.mcc if ev else None,
                eval_accuracy=ev.accuracy if ev else None,
                eval_n=ev.n if ev else None,
                parent=parent.version if parent else None,
                data_fingerprint=v.data_fingerprint,
                code_revision=v.code_revision,
                is_champion=holder is not None and holder.id == v.id,
                config=dict(v.config or {}),
            )
        )
    return sorted(rows, key=lambda r: (_semver_key(r.version), r.id), reverse=True)


def versions() -> list[VersionRow]:
    """Every version, newest semantic version first, with its latest evaluation and champion flag."""
    return _versions(db_url())


@st.cache_data(ttl=CACHE_TTL_S, show_spinner=False)
def _condition_cells(url: str, evaluation_id: int) -> list[repo.ConditionCell]:
    with read_session(_engine_for(url)) as session:
        return repo.condition_cells(session, evaluation_id)


def condition_cells(evaluation_id: int) -> list[repo.ConditionCell]:
    """Per-condition MCC cells of one evaluation, ordered by condition and value."""
    return _condition_cells(db_url(), evaluation_id)


# --- deployments ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class AliasEventRow:
    id: int
    when: dt.datetime  # local
    action: str
    from_version: str | None
    to_version: str
    to_version_id: int
    actor: str
    reason: str


@dataclass(frozen=True)
class RollbackChoices:
    champion_id: int | None
    options: dict[int, str]  # version id -> label, every version but the champion, newest first
    default_id: int | None  # the previous holder, when it is an option


# A scheduler command with its times in local time (a `repo.Command` with `created_at`/`applied_at` shifted).
CommandRow = repo.Command


@st.cache_data(ttl=CACHE_TTL_S, show_spinner=False)
def _alias_events(url: str, alias: str) -> list[AliasEventRow]:
    with read_session(_engine_for(url)) as session:
        events = repo.alias_history(session, alias)
        ids = {e.to_version_id for e in events} | {e.from_version_id for e in events if e.from_version_id}
        by_id = repo.versions_by_id(session, ids)
    return [
        AliasEventRow(
            id=e.id,
            when=local(e.created_at),
            action=e.action,
            from_version=by_id[e.from_version_id].version if e.from_version_id in by_id else None,
            to_version=by_id[e.to_version_id].version,
            to_version_id=e.to_version_id,
            actor=e.actor,
            reason=e.reason,
        )
        for e in events
    ]


def alias_events(alias: str = repo.CHAMPION) -> list[AliasEventRow]:
    """Moves of `alias`, newest first."""
    return _alias_events(db_url(), alias)


@st.cache_data(ttl=CACHE_TTL_S, show_spinner=False)
def _rollback_choices(url: str) -> RollbackChoices:
    with read_session(_engine_for(url)) as session:
        holder = repo.alias_holder(session, repo.CHAMPION)
        history = repo.alias_history(session, repo.CHAMPION, limit=1)
        versions = repo.list_version_heads(session)  # labels only: no config or metrics JSON
    champion_id = holder.id if holder else None
    ordered = sorted(versions, key=lambda v: (_semver_key(v.version), v.id), reverse=True)
    options = {v.id: v.label for v in ordered if v.id != champion_id}
    previous = history[0].from_version_id if history else None
    return RollbackChoices(
        champion_id=champion_id, options=options, default_id=previous if previous in options else None
    )


def rollback_choices() -> RollbackChoices:
    """Versions the champion can be rolled back to, and the previous holder as the default."""
    return _rollback_choices(db_url())


@st.cache_data(ttl=CACHE_TTL_S, show_spinner=False)
def _commands(url: str, limit: int) -> list[CommandRow]:
    with read_session(_engine_for(url)) as session:
        commands = repo.list_commands(session, limit=limit)
    return [
        dataclasses.replace(c, payload=dict(c.payload or {}), created_at=local(c.created_at),
                            applied_at=local(c.applied_at))
        for c in commands
    ]


def recent_commands(limit: int = COMMANDS_SHOWN) -> list[CommandRow]:
    """The newest scheduler commands, with status and outcome."""
    return _commands(db_url(), limit)


class RequestError(ValueError):
    """A dashboard request that cannot be accepted; the message says why and nothing was written."""


class NotAllowedError(RequestError, PermissionError):
    """The actor is not an enabled operator in the users table; nothing was written.

    A `PermissionError` for callers, and a `RequestError` so that a page's usual error display shows it.
    """


def authorize(actor: str) -> None:
    """`NotAllowedError` unless `actor` is an enabled operator in the users table (checked before anything else)."""
    try:
        commands.authorize(engine(), actor)
    except PermissionError as exc:
        raise NotAllowedError(str(exc)) from exc


def queue_command(kind: str, payload: dict[str, Any], *, actor: str, reason: str, target: str,
                  details: dict[str, Any] | None = None) -> int:
    """`commands.submit` (the command and its audit event, one transaction), its refusals as `RequestError`s."""
    try:
        command = commands.submit(engine(), kind, payload, actor=actor, reason=reason, target=target,
                                  details=details)
    except PermissionError as exc:
        raise NotAllowedError(str(exc)) from exc
    except ValueError as exc:
        raise RequestError(str(exc)) from exc
    clear_caches()
    return command.id


def request_rollback(to_version_id: int, reason: str, actor: str | None = None) -> int:
    """Ask the scheduler to roll `champion` back to `to_version_id`; returns the command id.

    Writes a pending `rollback` command and an audit event in one transaction. Raises `NotAllowedError` (a
    `PermissionError`) when `actor` (default: the signed-in user) is not an enabled operator in the users
    table, and `RequestError` for an empty reason, an unknown version or the current champion; either way
    nothing is written.
    """
    actor = actor or current_actor()
    authorize(actor)
    reason = (reason or "").strip()
    if not reason:
        raise RequestError("A reason is required for a rollback.")
    with read_session(engine()) as session:
        try:
            target = repo.get_version(session, int(to_version_id))
        except repo.NotFoundError as exc:
            raise RequestError(str(exc)) from exc
        holder = repo.alias_holder(session, repo.CHAMPION)
    if holder is not None and holder.id == target.id:
        raise RequestError(f"{target.label} is already the champion.")
    return queue_command("rollback", {"to": target.id}, actor=actor, reason=reason, target=target.label,
                   details={"from": holder.id if holder else None})


# --- candidates waiting for an operator ------------------------------------------------------------------------


@dataclass(frozen=True)
class Candidate:
    version_id: int
    label: str
    gated_at: dt.datetime | None  # local
    reasons: list[str]


@st.cache_data(ttl=CACHE_TTL_S, show_spinner=False)
def _candidates(url: str) -> list[Candidate]:
    from roadwork.platform.evaluation.gate import latest_gate_event, pending_candidates

    with read_session(_engine_for(url)) as session:
        out = []
        for version in pending_candidates(session):
            event = latest_gate_event(session, version.id)
            details = (event.details or {}) if event else {}
            out.append(Candidate(version.id, version.label, local(event.created_at) if event else None,
                                 list(details.get("reasons", []))))
        return out


def gate_policy() -> str:
    """`auto` or `manual` (settings `gate.policy`)."""
    return load_settings().gate.policy


def candidates() -> list[Candidate]:
    """Versions that passed the gate and wait for an operator (gate policy manual), newest first."""
    return _candidates(db_url())


def request_candidate_decision(kind: str, version_id: int, reason: str, actor: str | None = None) -> int:
    """Ask the scheduler to approve (deploy) or reject a gated candidate; returns the command id.

    Operators only; a reason is required (it goes with the deploy or the rejection)."""
    if kind not in ("approve", "reject"):
        raise RequestError(f"unknown decision {kind!r}")
    actor = actor or current_actor()
    authorize(actor)
    reason = (reason or "").strip()
    if not reason:
        raise RequestError(f"A reason is required to {kind} a candidate.")
    with read_session(engine()) as session:
        try:
            version = repo.get_version(session, int(version_id))
        except repo.NotFoundError as exc:
            raise RequestError(str(exc)) from exc
    return queue_command(kind, {"version": version.id}, actor=actor, reason=reason, target=version.label)

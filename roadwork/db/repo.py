"""Small repository functions: each takes a session first, returns frozen dataclasses, never ORM rows.

The caller owns the session and the transaction (`write_session` for writes).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import re
from dataclasses import dataclass
from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from roadwork.clock import utcnow
from roadwork.db import models as m

SEMVER = re.compile(r"^(\d+)\.(\d+)\.(\d+)$")
CHAMPION = "champion"


class NotFoundError(LookupError):
    """A version, alias, command or run that does not exist; the message names it."""


def _entity(cls, row):  # noqa: ANN001, ANN202 - maps an ORM row to its frozen dataclass by field names
    return cls(**{f.name: getattr(row, f.name) for f in dataclasses.fields(cls)})


# --- versions ----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Version:
    id: int
    name: str
    version: str
    artifact_sha256: str
    artifact_path: str
    config: dict[str, Any]
    metrics: dict[str, Any]
    parent_id: int | None
    data_fingerprint: str | None
    code_revision: str | None
    hard_negative_set_id: int | None
    created_by: str
    created_at: dt.datetime

    @property
    def label(self) -> str:
        return f"{self.name}:{self.version}"


def parse_semver(text: str) -> tuple[int, int, int]:
    match = SEMVER.match(text)
    if not match:
        raise ValueError(f"not a semantic version X.Y.Z: {text!r}")
    return int(match[1]), int(match[2]), int(match[3])


def next_semver(session: Session, name: str) -> str:
    """The next minor version for `name`: 0.1.0 first, then 0.2.0, ..."""
    versions = session.scalars(select(m.ModelVersion.version).where(m.ModelVersion.name == name)).all()
    if not versions:
        return "0.1.0"
    major, minor, _ = max(parse_semver(v) for v in versions)
    return f"{major}.{minor + 1}.0"


def create_version(session: Session, **fields: Any) -> Version:
    """Insert an immutable version row; `version` must be X.Y.Z and unique for the name."""
    parse_semver(fields["version"])
    row = m.ModelVersion(**fields)
    session.add(row)
    session.flush()
    return _entity(Version, row)


def get_version(session: Session, ref: str | int) -> Version:
    """A version by id (`7`), semantic version (`0.2.0`) or `name:0.2.0`."""
    query = select(m.ModelVersion)
    text = str(ref)
    if text.isdigit():
        query = query.where(m.ModelVersion.id == int(text))
    elif ":" in text:
        name, version = text.rsplit(":", 1)
        query = query.where(m.ModelVersion.name == name, m.ModelVersion.version == version)
    else:
        query = query.where(m.ModelVersion.version == text)
    rows = session.scalars(query.order_by(m.ModelVersion.id.desc())).all()
    if not rows:
        raise NotFoundError(f"no model version {text!r} in the registry (see `roadwork versions`)")
    if len(rows) > 1:
        names = ", ".join(f"{r.name}:{r.version}" for r in rows)
        raise NotFoundError(f"version {text!r} is ambiguous ({names}); use name:version or the id")
    return _entity(Version, rows[0])


def list_versions(session: Session, limit: int | None = None) -> list[Version]:
    query = select(m.ModelVersion).order_by(m.ModelVersion.id.desc()).limit(limit)
    return [_entity(Version, r) for r in session.scalars(query)]


def count_versions(session: Session) -> int:
    return session.scalar(select(func.count()).select_from(m.ModelVersion))


@dataclass(frozen=True)
class VersionHead:
    """A version without its config and metrics: enough to list or label it."""

    id: int
    name: str
    version: str
    created_at: dt.datetime

    @property
    def label(self) -> str:
        return f"{self.name}:{self.version}"


def list_version_heads(session: Session) -> list[VersionHead]:
    """Every version's id, name, version and creation time, newest id first (no JSON is read)."""
    v = m.ModelVersion
    query = select(v.id, v.name, v.version, v.created_at).order_by(v.id.desc())
    return [VersionHead(*row) for row in session.execute(query)]


def versions_by_id(session: Session, ids: set[int]) -> dict[int, Version]:
    if not ids:
        return {}
    rows = session.scalars(select(m.ModelVersion).where(m.ModelVersion.id.in_(ids)))
    return {r.id: _entity(Version, r) for r in rows}


# --- aliases ----------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class AliasEvent:
    id: int
    alias: str
    action: str
    from_version_id: int | None
    to_version_id: int
    actor: str
    reason: str
    gate_result: dict[str, Any] | None
    published_to: list[str] | None
    created_at: dt.datetime


def alias_holder(session: Session, alias: str = CHAMPION) -> Version | None:
    row = session.get(m.Alias, alias)
    return None if row is None else get_version(session, row.version_id)


def move_alias(
    session: Session,
    *,
    alias: str,
    to_version_id: int,
    action: str,
    actor: str,
    reason: str = "",
    gate_result: dict[str, Any] | None = None,
    published_to: list[str] | None = None,
) -> AliasEvent:
    """Append an alias event and point the alias at `to_version_id`, in the caller's transaction."""
    current = session.get(m.Alias, alias)
    event = m.AliasEvent(
        alias=alias,
        action=action,
        from_version_id=current.version_id if current else None,
        to_version_id=to_version_id,
        actor=actor,
        reason=reason,
        gate_result=gate_result,
        published_to=published_to,
    )
    session.add(event)
    session.flush()
    if current is None:
        session.add(m.Alias(name=alias, version_id=to_version_id, event_id=event.id, updated_at=event.created_at))
    else:
        current.version_id, current.event_id, current.updated_at = to_version_id, event.id, event.created_at
    session.flush()
    return _entity(AliasEvent, event)


def alias_history(session: Session, alias: str | None = CHAMPION, limit: int | None = None) -> list[AliasEvent]:
    """Alias moves, newest first."""
    query = select(m.AliasEvent).order_by(m.AliasEvent.id.desc()).limit(limit)
    if alias is not None:
        query = query.where(m.AliasEvent.alias == alias)
    return [_entity(AliasEvent, r) for r in session.scalars(query)]


def count_alias_moves(session: Session, alias: str = CHAMPION) -> int:
    return session.scalar(select(func.count()).select_from(m.AliasEvent).where(m.AliasEvent.alias == alias))


def alias_at(session: Session, when: dt.datetime, alias: str = CHAMPION) -> Version | None:
    """The version that held `alias` at time `when` (UTC), or None if it was not set yet."""
    event = session.scalars(
        select(m.AliasEvent)
        .where(m.AliasEvent.alias == alias, m.AliasEvent.created_at <= when)
        .order_by(m.AliasEvent.created_at.desc(), m.AliasEvent.id.desc())
        .limit(1)
    ).first()
    return None if event is None else get_version(session, event.to_version_id)


# --- evaluations -------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ConditionCell:
    condition: str
    value: str
    n: int
    mcc: float
    accuracy: float
    mcc_ci_low: float | None = None
    mcc_ci_high: float | None = None


@dataclass(frozen=True)
class Evaluation:
    id: int
    version_id: int
    dataset: str
    kind: str
    n: int
    mcc: float
    accuracy: float
    metrics: dict[str, Any]
    job_run_id: int | None
    created_at: dt.datetime


def add_evaluation(
    session: Session,
    *,
    version_id: int,
    dataset: str,
    n: int,
    mcc: float,
    accuracy: float,
    metrics: dict[str, Any],
    conditions: list[ConditionCell] = (),
    kind: str = "validation",
    job_run_id: int | None = None,
) -> Evaluation:
    row = m.Evaluation(
        version_id=version_id,
        dataset=dataset,
        kind=kind,
        n=n,
        mcc=mcc,
        accuracy=accuracy,
        metrics=metrics,
        job_run_id=job_run_id,
        conditions=[m.ConditionMetric(**dataclasses.asdict(c)) for c in conditions],
    )
    session.add(row)
    session.flush()
    return _entity(Evaluation, row)


def _newest_evaluation_ids(kind: str | None):  # noqa: ANN202 - a scalar subquery of evaluation ids
    newest = select(func.max(m.Evaluation.id)).group_by(m.Evaluation.version_id)
    return newest if kind is None else newest.where(m.Evaluation.kind == kind)


def latest_evaluations(session: Session, kind: str | None = None) -> dict[int, Evaluation]:
    """The newest evaluation of each version (optionally of one kind), keyed by version id."""
    rows = session.scalars(select(m.Evaluation).where(m.Evaluation.id.in_(_newest_evaluation_ids(kind))))
    return {r.version_id: _entity(Evaluation, r) for r in rows}


@dataclass(frozen=True)
class EvaluationSummary:
    """An evaluation's headline numbers, without its metrics JSON (which holds sweeps and can be large)."""

    id: int
    version_id: int
    kind: str
    n: int
    mcc: float
    accuracy: float
    created_at: dt.datetime


def latest_evaluation_summaries(session: Session, kind: str | None = None) -> dict[int, EvaluationSummary]:
    """`latest_evaluations` without the metrics: the newest evaluation of each version, keyed by version id."""
    e = m.Evaluation
    query = select(e.id, e.version_id, e.kind, e.n, e.mcc, e.accuracy, e.created_at).where(
        e.id.in_(_newest_evaluation_ids(kind)))
    return {row.version_id: EvaluationSummary(*row) for row in session.execute(query)}


def latest_evaluation(session: Session, version_id: int, kind: str | None = None) -> Evaluation | None:
    """The newest evaluation of one version (optionally of one kind): `latest_evaluations(...).get(version_id)`."""
    query = select(m.Evaluation).where(m.Evaluation.version_id == version_id)
    if kind is not None:
        query = query.where(m.Evaluation.kind == kind)
    row = session.scalars(query.order_by(m.Evaluation.id.desc()).limit(1)).first()
    return None if row is None else _entity(Evaluation, row)


def evaluations_of(session: Session, version_id: int) -> list[Evaluation]:
    query = select(m.Evaluation).where(m.Evaluation.version_id == version_id).order_by(m.Evaluation.id.desc())
    return [_entity(Evaluation, r) for r in session.scalars(query)]


def condition_cells(session: Session, evaluation_id: int) -> list[ConditionCell]:
    query = (
        select(m.ConditionMetric)
        .where(m.ConditionMetric.evaluation_id == evaluation_id)
        .order_by(m.ConditionMetric.condition, m.ConditionMetric.value)
    )
    return [_entity(ConditionCell, r) for r in session.scalars(query)]


# --- job runs ------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class JobRun:
    id: int
    job_id: str
    status: str
    scheduled_at: dt.datetime | None
    started_at: dt.datetime | None
    finished_at: dt.datetime | None
    duration_s: float | None
    log_path: str | None
    error: str | None
    result: dict[str, Any] | None
    trigger: str
    created_at: dt.datetime


RUN_STATUSES = ("submitted", "started", "succeeded", "failed", "missed", "skipped", "cancelled")
FINISHED = ("succeeded", "failed", "missed", "skipped", "cancelled")


def record_job_run(session: Session, *, job_id: str, status: str, **fields: Any) -> JobRun:
    """Insert a job run row in any status (missed and skipped runs are recorded in one step)."""
    if status not in RUN_STATUSES:
        raise ValueError(f"unknown job run status {status!r}")
    row = m.JobRun(job_id=job_id, status=status, **fields)
    session.add(row)
    session.flush()
    return _entity(JobRun, row)


def finish_job_run(
    session: Session,
    run_id: int,
    *,
    status: str,
    error: str | None = None,
    result: dict[str, Any] | None = None,
    log_path: str | None = None,
) -> JobRun:
    if status not in FINISHED:
        raise ValueError(f"{status!r} is not a finished status")
    row = session.get(m.JobRun, run_id)
    if row is None:
        raise NotFoundError(f"no job run {run_id}")
    now = utcnow()
    row.status, row.error, row.result, row.finished_at = status, error, result, now
    row.log_path = log_path or row.log_path
    if row.started_at is not None:
        row.duration_s = (now - row.started_at).total_seconds()
    session.flush()
    return _entity(JobRun, row)


def list_job_runs(session: Session, *, job_id: str | None = None, limit: int = 50) -> list[JobRun]:
    query = select(m.JobRun).order_by(m.JobRun.id.desc()).limit(limit)
    if job_id is not None:
        query = query.where(m.JobRun.job_id == job_id)
    return [_entity(JobRun, r) for r in session.scalars(query)]


# --- scheduler commands ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Command:
    id: int
    kind: str
    payload: dict[str, Any]
    requested_by: str
    reason: str
    status: str
    outcome: str | None
    created_at: dt.datetime
    applied_at: dt.datetime | None


COMMAND_KINDS = (
    "run_now",
    "pause",
    "resume",
    "reschedule",
    "cancel",
    "approve",
    "reject",
    "rollback",
    "create_ab_test",
)


def submit_command(
    session: Session, *, kind: str, payload: dict[str, Any], requested_by: str, reason: str = ""
) -> Command:
    if kind not in COMMAND_KINDS:
        raise ValueError(f"unknown command {kind!r}; one of: {', '.join(COMMAND_KINDS)}")
    row = m.SchedulerCommand(kind=kind, payload=payload, requested_by=requested_by, reason=reason)
    session.add(row)
    session.flush()
    return _entity(Command, row)


def pending_commands(session: Session) -> list[Command]:
    query = select(m.SchedulerCommand).where(m.SchedulerCommand.status == "pending").order_by(m.SchedulerCommand.id)
    return [_entity(Command, r) for r in session.scalars(query)]


def claim_command(session: Session, command_id: int) -> bool:
    """Mark a pending command as being applied; False if another applier got there first."""
    result = session.execute(
        update(m.SchedulerCommand)
        .where(m.SchedulerCommand.id == command_id, m.SchedulerCommand.status == "pending")
        .values(status="applying")
    )
    return result.rowcount == 1


def complete_command(session: Session, command_id: int, *, ok: bool, outcome: str) -> Command:
    row = session.get(m.SchedulerCommand, command_id)
    if row is None:
        raise NotFoundError(f"no command {command_id}")
    row.status, row.outcome, row.applied_at = ("applied" if ok else "failed"), outcome, utcnow()
    session.flush()
    return _entity(Command, row)


def get_command(session: Session, command_id: int) -> Command:
    row = session.get(m.SchedulerCommand, command_id)
    if row is None:
        raise NotFoundError(f"no command {command_id}")
    return _entity(Command, row)


def list_commands(session: Session, limit: int = 50) -> list[Command]:
    query = select(m.SchedulerCommand).order_by(m.SchedulerCommand.id.desc()).limit(limit)
    return [_entity(Command, r) for r in session.scalars(query)]


# --- scheduler lease -----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Lease:
    holder: str
    hostname: str
    pid: int
    acquired_at: dt.datetime
    heartbeat_at: dt.datetime


def current_lease(session: Session) -> Lease | None:
    row = session.get(m.SchedulerLease, 1)
    return None if row is None else _entity(Lease, row)


def acquire_lease(
    session: Session, *, holder: str, hostname: str, pid: int, timeout_s: float, now: dt.datetime | None = None
) -> tuple[bool, Lease]:
    """Take the lease if it is free, ours, or stale (heartbeat older than `timeout_s`).

    Returns (acquired, lease as it now stands). Call inside a write transaction so that two schedulers
    starting together cannot both win.
    """
    now = now or utcnow()
    row = session.get(m.SchedulerLease, 1)
    if row is None:
        row = m.SchedulerLease(id=1, holder=holder, hostname=hostname, pid=pid, acquired_at=now, heartbeat_at=now)
        session.add(row)
    elif row.holder == holder or (now - row.heartbeat_at).total_seconds() > timeout_s:
        row.holder, row.hostname, row.pid, row.acquired_at, row.heartbeat_at = holder, hostname, pid, now, now
    else:
        return False, _entity(Lease, row)
    session.flush()
    return True, _entity(Lease, row)


def renew_lease(session: Session, holder: str, now: dt.datetime | None = None) -> bool:
    """Refresh our heartbeat; False when the lease is no longer ours."""
    result = session.execute(
        update(m.SchedulerLease)
        .where(m.SchedulerLease.id == 1, m.SchedulerLease.holder == holder)
        .values(heartbeat_at=now or utcnow())
    )
    return result.rowcount == 1


def release_lease(session: Session, holder: str) -> None:
    session.execute(
        update(m.SchedulerLease)
        .where(m.SchedulerLease.id == 1, m.SchedulerLease.holder == holder)
        .values(heartbeat_at=dt.datetime(1970, 1, 1))
    )


# --- audit ----------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class AuditEvent:
    id: int
    actor: str
    action: str
    target: str | None
    reason: str
    details: dict[str, Any] | None
    created_at: dt.datetime


def add_audit(
    session: Session,
    *,
    actor: str,
    action: str,
    target: str | None = None,
    reason: str = "",
    details: dict[str, Any] | None = None,
) -> AuditEvent:
    row = m.AuditEvent(actor=actor, action=action, target=target, reason=reason, details=details)
    session.add(row)
    session.flush()
    return _entity(AuditEvent, row)


def list_audit(session: Session, limit: int = 50) -> list[AuditEvent]:
    query = select(m.AuditEvent).order_by(m.AuditEvent.id.desc()).limit(limit)
    return [_entity(AuditEvent, r) for r in session.scalars(query)]


def audit_events_between(
    session: Session, after_id: int, upto_id: int, actions: frozenset[str] | None = None
) -> list[AuditEvent]:
    """Audit events with after_id < id <= upto_id (optionally of some actions), oldest first."""
    query = select(m.AuditEvent).where(m.AuditEvent.id > after_id, m.AuditEvent.id <= upto_id)
    if actions is not None:
        query = query.where(m.AuditEvent.action.in_(actions))
    return [_entity(AuditEvent, r) for r in session.scalars(query.order_by(m.AuditEvent.id))]


def newest_audit_id(session: Session) -> int:
    return session.scalar(select(func.coalesce(func.max(m.AuditEvent.id), 0)))

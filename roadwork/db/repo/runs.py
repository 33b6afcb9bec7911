"""Job runs: every scheduled or requested run of a job, whatever its end."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from roadwork.clock import utcnow
from roadwork.db import models as m
from roadwork.db.repo.base import NotFoundError, to_entity


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
    child_pid: int | None = None
    child_pgid: int | None = None


RUN_STATUSES = ("submitted", "started", "succeeded", "failed", "missed", "skipped", "cancelled")
FINISHED = ("succeeded", "failed", "missed", "skipped", "cancelled")


def record_job_run(session: Session, *, job_id: str, status: str, **fields: Any) -> JobRun:
    """Insert a job run row in any status (missed and skipped runs are recorded in one step)."""
    if status not in RUN_STATUSES:
        raise ValueError(f"unknown job run status {status!r}")
    row = m.JobRun(job_id=job_id, status=status, **fields)
    session.add(row)
    session.flush()
    return to_entity(JobRun, row)


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
    return to_entity(JobRun, row)


def list_job_runs(session: Session, *, job_id: str | None = None, limit: int = 50) -> list[JobRun]:
    query = select(m.JobRun).order_by(m.JobRun.id.desc()).limit(limit)
    if job_id is not None:
        query = query.where(m.JobRun.job_id == job_id)
    return [to_entity(JobRun, r) for r in session.scalars(query)]


def failed_job_runs(session: Session, limit: int) -> list[JobRun]:
    """The newest failed or missed runs, newest first."""
    query = (select(m.JobRun).where(m.JobRun.status.in_(("failed", "missed")))
             .order_by(m.JobRun.id.desc()).limit(limit))
    return [to_entity(JobRun, r) for r in session.scalars(query)]


def set_run_child(session: Session, job_id: str, *, pid: int, pgid: int) -> bool:
    """Record the child process of the newest `started` run of `job_id` that has none yet; False if there is none
    (the run's row is not written yet)."""
    newest = (select(m.JobRun.id).where(m.JobRun.job_id == job_id, m.JobRun.status == "started",
                                        m.JobRun.child_pid.is_(None))
              .order_by(m.JobRun.id.desc()).limit(1).scalar_subquery())
    result = session.execute(update(m.JobRun).where(m.JobRun.id == newest).values(child_pid=pid, child_pgid=pgid))
    return result.rowcount == 1


def unfinished_job_runs(session: Session, triggers: tuple[str, ...]) -> list[JobRun]:
    """Runs with one of `triggers` still `submitted` or `started`, oldest first: after a scheduler crash, the runs
    it left behind."""
    query = (select(m.JobRun).where(m.JobRun.status.in_(("submitted", "started")), m.JobRun.trigger.in_(triggers))
             .order_by(m.JobRun.id))
    return [to_entity(JobRun, r) for r in session.scalars(query)]

"""The scheduler lease: one row that says which scheduler process may run jobs."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from sqlalchemy import update
from sqlalchemy.orm import Session

from roadwork.clock import utcnow
from roadwork.db import models as m
from roadwork.db.repo.base import to_entity


@dataclass(frozen=True)
class Lease:
    holder: str
    hostname: str
    pid: int
    acquired_at: dt.datetime
    heartbeat_at: dt.datetime


def current_lease(session: Session) -> Lease | None:
    row = session.get(m.SchedulerLease, 1)
    return None if row is None else to_entity(Lease, row)


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
        return False, to_entity(Lease, row)
    session.flush()
    return True, to_entity(Lease, row)


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

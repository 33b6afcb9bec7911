"""The scheduler lease: one row that says which scheduler process may run jobs.

Each change of hands increments `token` (a fencing token). The holder renews and checks the lease by holder and
token, so a scheduler that was taken over (its heartbeat went stale, or its process was found gone) fails its
next check and stops instead of writing on as if it still owned the store.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from sqlalchemy import update
from sqlalchemy.orm import Session

from roadwork.clock import utcnow
from roadwork.db import models as m
from roadwork.db.repo.base import to_entity


class LeaseLostError(RuntimeError):
    """The scheduler lease is no longer held by this holder with this token."""


@dataclass(frozen=True)
class Lease:
    holder: str
    hostname: str
    pid: int
    acquired_at: dt.datetime
    heartbeat_at: dt.datetime
    token: int


def current_lease(session: Session) -> Lease | None:
    row = session.get(m.SchedulerLease, 1)
    return None if row is None else to_entity(Lease, row)


def acquire_lease(
    session: Session, *, holder: str, hostname: str, pid: int, timeout_s: float, holder_gone: bool = False,
    now: dt.datetime | None = None,
) -> tuple[bool, Lease]:
    """Take the lease if it is free, ours, stale (heartbeat older than `timeout_s`) or `holder_gone` (the caller
    found the holder's process gone). Taking it from another holder increments the token.

    Returns (acquired, lease as it now stands). Call inside a write transaction so that two schedulers
    starting together cannot both win.
    """
    now = now or utcnow()
    row = session.get(m.SchedulerLease, 1)
    if row is None:
        row = m.SchedulerLease(id=1, holder=holder, hostname=hostname, pid=pid, acquired_at=now, heartbeat_at=now,
                               token=1)
        session.add(row)
    elif row.holder == holder:
        row.heartbeat_at = now
    elif holder_gone or (now - row.heartbeat_at).total_seconds() > timeout_s:
        row.holder, row.hostname, row.pid, row.acquired_at, row.heartbeat_at = holder, hostname, pid, now, now
        row.token = (row.token or 0) + 1
    else:
        return False, to_entity(Lease, row)
    session.flush()
    return True, to_entity(Lease, row)


def renew_lease(session: Session, holder: str, token: int | None = None, now: dt.datetime | None = None) -> bool:
    """Refresh our heartbeat; False when the lease is no longer ours (another holder, or another token)."""
    query = update(m.SchedulerLease).where(m.SchedulerLease.id == 1, m.SchedulerLease.holder == holder)
    if token is not None:
        query = query.where(m.SchedulerLease.token == token)
    return session.execute(query.values(heartbeat_at=now or utcnow())).rowcount == 1


def check_lease(session: Session, holder: str, token: int) -> None:
    """Inside a write transaction: raise `LeaseLostError` unless `holder` still holds the lease with `token`.

    The check is an UPDATE of the row (the heartbeat), so on PostgreSQL the row stays locked until the
    transaction commits and the lease cannot change hands between the check and the caller's writes.
    """
    if not renew_lease(session, holder, token):
        lease = current_lease(session)
        who = f"{lease.holder} (token {lease.token})" if lease else "nobody"
        raise LeaseLostError(f"the scheduler lease was taken over; it is now held by {who}")


def release_lease(session: Session, holder: str) -> None:
    session.execute(
        update(m.SchedulerLease)
        .where(m.SchedulerLease.id == 1, m.SchedulerLease.holder == holder)
        .values(heartbeat_at=dt.datetime(1970, 1, 1))
    )

"""Repository functions of the deploy lock and the deploy intents (see `models.DeployLock`, `DeployIntent`).

The lock is taken with a compare-and-set UPDATE on the token the caller last saw, so two processes that both
find it free cannot both win, on SQLite (BEGIN IMMEDIATE) as on PostgreSQL (row lock, re-checked WHERE).
Every function takes the caller's session; the caller owns the transaction.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from roadwork.clock import utcnow
from roadwork.db import models as m

LOCK_ID = 1


class LockLostError(RuntimeError):
    """The deploy lock is no longer held with this token (it expired and another process took it over)."""


@dataclass(frozen=True)
class DeployLock:
    token: int
    holder: str | None
    hostname: str | None
    pid: int | None
    purpose: str | None
    acquired_at: dt.datetime | None
    expires_at: dt.datetime | None

    def free(self, now: dt.datetime) -> bool:
        return self.holder is None or self.expires_at is None or self.expires_at <= now


@dataclass(frozen=True)
class DeployIntent:
    id: int
    lock_token: int
    action: str
    version_id: int
    from_version_id: int | None
    release: str
    previous: dict[str, str | None]
    published_to: list[str] | None
    actor: str
    reason: str
    gate_result: dict[str, Any] | None
    phase: str
    status: str
    outcome: str | None
    created_at: dt.datetime
    finished_at: dt.datetime | None


def _to(cls, row):  # noqa: ANN001, ANN202 - ORM row -> frozen dataclass by field names
    return cls(**{f.name: getattr(row, f.name) for f in dataclasses.fields(cls)})


def _row(session: Session) -> m.DeployLock:
    row = session.get(m.DeployLock, LOCK_ID)
    if row is None:  # a database made without the migration's seed row (e.g. create_all)
        row = m.DeployLock(id=LOCK_ID, token=0)
        session.add(row)
        session.flush()
    return row


def current_lock(session: Session) -> DeployLock:
    row = session.get(m.DeployLock, LOCK_ID)
    if row is None:
        return DeployLock(0, None, None, None, None, None, None)
    return _to(DeployLock, row)


def try_acquire(
    session: Session,
    *,
    holder: str,
    hostname: str,
    pid: int,
    purpose: str,
    ttl_s: float,
    seen: DeployLock,
    now: dt.datetime | None = None,
) -> DeployLock | None:
    """Take the lock if its token is still `seen.token` (the caller judged that lock free or dead).

    Returns the lock as now held (with a new token), or None when another process changed it first.
    """
    now = now or utcnow()
    _row(session)
    result = session.execute(
        update(m.DeployLock)
        .where(m.DeployLock.id == LOCK_ID, m.DeployLock.token == seen.token)
        .values(token=seen.token + 1, holder=holder, hostname=hostname, pid=pid, purpose=purpose[:255],
                acquired_at=now, expires_at=now + dt.timedelta(seconds=ttl_s))
    )
    if result.rowcount != 1:
        return None
    session.expire_all()
    return current_lock(session)


def fence(session: Session, token: int, ttl_s: float, now: dt.datetime | None = None) -> None:
    """Check that `token` still holds the lock and extend it; raises `LockLostError` if not.

    Called first in every write that depends on holding the lock: on PostgreSQL the UPDATE keeps the row
    locked until the transaction commits, so the lock cannot change hands in between.
    """
    now = now or utcnow()
    result = session.execute(
        update(m.DeployLock)
        .where(m.DeployLock.id == LOCK_ID, m.DeployLock.token == token, m.DeployLock.holder.is_not(None))
        .values(expires_at=now + dt.timedelta(seconds=ttl_s))
    )
    if result.rowcount != 1:
        raise LockLostError(f"the deploy lock (token {token}) was taken over by another process")


def release(session: Session, token: int) -> bool:
    """Free the lock if `token` still holds it; the token stays, so the next holder gets a larger one."""
    result = session.execute(
        update(m.DeployLock)
        .where(m.DeployLock.id == LOCK_ID, m.DeployLock.token == token)
        .values(holder=None, hostname=None, pid=None, purpose=None, expires_at=None)
    )
    return result.rowcount == 1


# --- intents ----------------------------------------------------------------------------------------------------


def record_intent(session: Session, **fields: Any) -> DeployIntent:
    row = m.DeployIntent(phase="publishing", status="pending", **fields)
    session.add(row)
    session.flush()
    return _to(DeployIntent, row)


def set_intent(session: Session, intent_id: int, **fields: Any) -> DeployIntent:
    """Change an intent's phase, status, outcome or published_to; `finished_at` is set with a final status."""
    row = session.get(m.DeployIntent, intent_id)
    if row is None:
        raise LookupError(f"deploy intent {intent_id} does not exist")
    for key, value in fields.items():
        setattr(row, key, value)
    if fields.get("status", "pending") != "pending":
        row.finished_at = utcnow()
    session.flush()
    return _to(DeployIntent, row)


def pending_intents(session: Session) -> list[DeployIntent]:
    """Intents not finished yet, oldest first."""
    query = select(m.DeployIntent).where(m.DeployIntent.status == "pending").order_by(m.DeployIntent.id)
    return [_to(DeployIntent, r) for r in session.scalars(query)]


def list_intents(session: Session, limit: int = 50) -> list[DeployIntent]:
    """Intents, newest first."""
    query = select(m.DeployIntent).order_by(m.DeployIntent.id.desc()).limit(limit)
    return [_to(DeployIntent, r) for r in session.scalars(query)]


def last_alert_details(session: Session, target: str) -> dict[str, Any] | None:
    """The details of the newest `alert` audit event about `target` (to alert once per problem, not per read)."""
    query = (
        select(m.AuditEvent)
        .where(m.AuditEvent.action == "alert", m.AuditEvent.target == target)
        .order_by(m.AuditEvent.id.desc())
        .limit(1)
    )
    row = session.scalars(query).first()
    return None if row is None else dict(row.details or {})

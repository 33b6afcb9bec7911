"""The audit feed: who did what, when and why."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from roadwork.db import models as m
from roadwork.db.repo.base import to_entity


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
    created_at: dt.datetime | None = None,
) -> AuditEvent:
    """Insert an audit event; `created_at` defaults to now (sign-in events carry the caller's `now`)."""
    row = m.AuditEvent(actor=actor, action=action, target=target, reason=reason, details=details)
    if created_at is not None:
        row.created_at = created_at
    session.add(row)
    session.flush()
    return to_entity(AuditEvent, row)


def list_audit(session: Session, limit: int = 50) -> list[AuditEvent]:
    query = select(m.AuditEvent).order_by(m.AuditEvent.id.desc()).limit(limit)
    return [to_entity(AuditEvent, r) for r in session.scalars(query)]


def audit_events_between(
    session: Session, after_id: int, upto_id: int, actions: frozenset[str] | None = None
) -> list[AuditEvent]:
    """Audit events with after_id < id <= upto_id (optionally of some actions), oldest first."""
    query = select(m.AuditEvent).where(m.AuditEvent.id > after_id, m.AuditEvent.id <= upto_id)
    if actions is not None:
        query = query.where(m.AuditEvent.action.in_(actions))
    return [to_entity(AuditEvent, r) for r in session.scalars(query.order_by(m.AuditEvent.id))]


def newest_audit_id(session: Session) -> int:
    return session.scalar(select(func.coalesce(func.max(m.AuditEvent.id), 0)))


def audit_of_action_since(session: Session, action: str, since: dt.datetime, limit: int) -> list[AuditEvent]:
    """Audit events of one action (e.g. `alert`) created at or after `since`, newest first."""
    query = (select(m.AuditEvent).where(m.AuditEvent.action == action, m.AuditEvent.created_at >= since)
             .order_by(m.AuditEvent.created_at.desc(), m.AuditEvent.id.desc()).limit(limit))
    return [to_entity(AuditEvent, r) for r in session.scalars(query)]


def audit_of_actions(session: Session, actions: tuple[str, ...], limit: int) -> list[AuditEvent]:
    """The newest audit events of these actions, newest first."""
    query = (select(m.AuditEvent).where(m.AuditEvent.action.in_(actions))
             .order_by(m.AuditEvent.id.desc()).limit(limit))
    return [to_entity(AuditEvent, r) for r in session.scalars(query)]


def latest_audit_event(session: Session, target: str, actions: tuple[str, ...]) -> AuditEvent | None:
    """The newest audit event about `target` of one of these actions, or None."""
    query = (select(m.AuditEvent).where(m.AuditEvent.target == target, m.AuditEvent.action.in_(actions))
             .order_by(m.AuditEvent.id.desc()).limit(1))
    row = session.scalars(query).first()
    return None if row is None else to_entity(AuditEvent, row)


def audit_events_with_actions(session: Session, actions: tuple[str, ...]) -> list[AuditEvent]:
    """Every audit event of these actions, oldest first (audit ids order the events)."""
    query = select(m.AuditEvent).where(m.AuditEvent.action.in_(actions)).order_by(m.AuditEvent.id)
    return [to_entity(AuditEvent, r) for r in session.scalars(query)]

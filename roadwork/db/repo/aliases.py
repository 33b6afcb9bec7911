"""Aliases (movable pointers to versions, `champion` above all) and the immutable history of their moves."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from roadwork.db import models as m
from roadwork.db.repo.base import to_entity
from roadwork.db.repo.versions import Version, get_version

CHAMPION = "champion"


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


def alias_target(session: Session, alias: str = CHAMPION) -> int | None:
    """The id of the version `alias` points at, None when unset (one primary-key read, no version row)."""
    row = session.get(m.Alias, alias)
    return None if row is None else row.version_id


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
    return to_entity(AliasEvent, event)


def alias_history(session: Session, alias: str | None = CHAMPION, limit: int | None = None) -> list[AliasEvent]:
    """Alias moves, newest first."""
    query = select(m.AliasEvent).order_by(m.AliasEvent.id.desc()).limit(limit)
    if alias is not None:
        query = query.where(m.AliasEvent.alias == alias)
    return [to_entity(AliasEvent, r) for r in session.scalars(query)]


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

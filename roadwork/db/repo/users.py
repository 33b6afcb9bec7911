"""Dashboard users.

The rules (roles, password hashing, who may change whom) live in `platform.users`; here only the
rows. A `UserRecord` carries the password hash, for `platform.users` to verify: it is never shown, logged or
audited (and left out of the record's repr).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from roadwork.db import models as m
from roadwork.db.repo.base import NotFoundError


@dataclass(frozen=True)
class UserRecord:
    id: int
    username: str
    role: str  # viewer | operator
    created_at: dt.datetime  # naive UTC
    disabled: bool
    password_hash: str = field(repr=False)


def _record(row: m.User) -> UserRecord:
    return UserRecord(row.id, row.username, row.role, row.created_at, bool(row.disabled), row.password_hash)


def _user_row(session: Session, user_id: int) -> m.User:
    row = session.get(m.User, user_id)
    if row is None:
        raise NotFoundError(f"no user {user_id}")
    return row


def find_user(session: Session, username: str) -> UserRecord | None:
    row = session.scalar(select(m.User).where(m.User.username == username))
    return None if row is None else _record(row)


def list_users(session: Session) -> list[UserRecord]:
    """Every user, by username."""
    return [_record(r) for r in session.scalars(select(m.User).order_by(m.User.username))]


def count_users(session: Session, *, role: str | None = None, enabled_only: bool = False) -> int:
    """Users (optionally of one role, optionally only the enabled ones)."""
    query = select(func.count()).select_from(m.User)
    if role is not None:
        query = query.where(m.User.role == role)
    if enabled_only:
        query = query.where(m.User.disabled.is_(False))
    return session.scalar(query)


def add_user(session: Session, *, username: str, password_hash: str, role: str, disabled: bool = False
             ) -> UserRecord:
    row = m.User(username=username, password_hash=password_hash, role=role, disabled=disabled)
    session.add(row)
    session.flush()
    return _record(row)


def update_user(session: Session, user_id: int, *, role: str | None = None, password_hash: str | None = None,
                disabled: bool | None = None) -> UserRecord:
    """Change the given fields of a user (None: left as it is); the user as it is now."""
    row = _user_row(session, user_id)
    for name, value in (("role", role), ("password_hash", password_hash), ("disabled", disabled)):
        if value is not None:
            setattr(row, name, value)
    session.flush()
    return _record(row)

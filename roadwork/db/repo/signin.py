"""The sign-in limits' counts: one row per user name, client address, or everyone (`platform.signin_limits`
decides what is counted and when an attempt is refused)."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from roadwork.db import models as m


@dataclass(frozen=True)
class SignInCount:
    scope: str  # name | address | all
    key: str  # sha256 of the name | the address | "*"
    times: tuple[dt.datetime, ...]  # the newest counted attempts (naive UTC), oldest first
    refused: int  # refused attempts not yet in an audit event
    unknown: int  # failed sign-ins with unknown names not yet in an audit event
    reported_at: dt.datetime | None  # when those counts were last written to the audit


def _count(row: m.SignInLimit) -> SignInCount:
    return SignInCount(row.scope, row.key, tuple(dt.datetime.fromisoformat(t) for t in row.times), row.refused,
                       row.unknown, row.reported_at)


def get_signin_count(session: Session, scope: str, key: str) -> SignInCount | None:
    row = session.get(m.SignInLimit, (scope, key))
    return None if row is None else _count(row)


def put_signin_count(session: Session, count: SignInCount, *, now: dt.datetime) -> None:
    """Store `count` (insert or replace its row); `now` marks the row as in use."""
    row = session.get(m.SignInLimit, (count.scope, count.key))
    if row is None:
        row = m.SignInLimit(scope=count.scope, key=count.key)
        session.add(row)
    row.times = [t.isoformat() for t in count.times]
    row.refused, row.unknown, row.reported_at, row.updated_at = count.refused, count.unknown, count.reported_at, now
    session.flush()


def delete_signin_count(session: Session, scope: str, key: str) -> None:
    session.execute(delete(m.SignInLimit).where(m.SignInLimit.scope == scope, m.SignInLimit.key == key))


def remove_signin_counts_before(session: Session, before: dt.datetime) -> list[SignInCount]:
    """Remove the rows not used since `before`; the removed rows, for their pending counts to be reported."""
    query = select(m.SignInLimit).where(m.SignInLimit.updated_at < before)
    removed = [_count(row) for row in session.scalars(query)]
    if removed:
        session.execute(delete(m.SignInLimit).where(m.SignInLimit.updated_at < before))
    return removed

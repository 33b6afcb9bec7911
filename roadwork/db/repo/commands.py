"""Scheduler commands: what the dashboard and the CLI ask of the scheduler, and their outcome."""

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
    return to_entity(Command, row)


def pending_commands(session: Session) -> list[Command]:
    query = select(m.SchedulerCommand).where(m.SchedulerCommand.status == "pending").order_by(m.SchedulerCommand.id)
    return [to_entity(Command, r) for r in session.scalars(query)]


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
    return to_entity(Command, row)


def get_command(session: Session, command_id: int) -> Command:
    row = session.get(m.SchedulerCommand, command_id)
    if row is None:
        raise NotFoundError(f"no command {command_id}")
    return to_entity(Command, row)


def list_commands(session: Session, limit: int = 50) -> list[Command]:
    query = select(m.SchedulerCommand).order_by(m.SchedulerCommand.id.desc()).limit(limit)
    return [to_entity(Command, r) for r in session.scalars(query)]


def fail_applying_commands(session: Session, outcome: str) -> list[Command]:
    """Mark every command left `applying` (its scheduler died or lost its lease mid-way) as failed with `outcome`."""
    rows = list(session.scalars(select(m.SchedulerCommand).where(m.SchedulerCommand.status == "applying")
                                .order_by(m.SchedulerCommand.id)))
    now = utcnow()
    for row in rows:
        row.status, row.outcome, row.applied_at = "failed", outcome, now
    session.flush()
    return [to_entity(Command, r) for r in rows]

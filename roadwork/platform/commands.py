"""The one way an operator's action reaches the scheduler: a command row and its audit row, written together.

The CLI and every dashboard write call `submit`. Who may: a local actor (`local:<os user>`, the command line of
someone who can already open the database) or a user who is, at this moment, an enabled operator in the users
table (re-checked in the database on every submit, not taken from a session). The scheduler applies the
command later and records its outcome (`scheduler.COMMAND_HANDLERS`).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from sqlalchemy import Engine

from roadwork.db import repo
from roadwork.db.engine import write_session
from roadwork.platform import users
from roadwork.platform.jobs import catalog


def authorize(engine: Engine, actor: str) -> None:
    """PermissionError unless `actor` may steer the scheduler (a local actor, or an enabled operator now)."""
    if not users.is_local_actor(actor):
        users.require_operator(engine, actor)


def check_payload(kind: str, payload: dict[str, Any]) -> dict[str, Any]:
    """What can be checked before the scheduler sees a command; ValueError saying what is wrong.

    The arguments of a run of a catalog job are checked against the catalog here, so a typo is refused at once
    instead of failing later in the scheduler."""
    if kind not in repo.COMMAND_KINDS:
        raise ValueError(f"unknown command {kind!r}; one of: {', '.join(repo.COMMAND_KINDS)}")
    if kind in JOB_COMMANDS:
        check_job_id(kind, payload.get("job_id"))
    if kind == "run_now" and payload.get("kwargs") and payload.get("job_id") in catalog.JOBS:
        if not isinstance(payload["kwargs"], dict):
            raise ValueError(f"the arguments of a run must be a mapping of name to value, got {payload['kwargs']!r}")
        catalog.check_kwargs(payload["job_id"], payload["kwargs"])
    return payload


# Commands that name a job, and which jobs of the catalog each can apply to: any job can run now; only scheduled
# jobs have a schedule to pause, resume or change; only jobs in a child process can be cancelled.
JOB_COMMANDS: dict[str, Callable[[catalog.JobSpec], bool]] = {
    "run_now": lambda spec: True,
    "pause": lambda spec: spec.scheduled,
    "resume": lambda spec: spec.scheduled,
    "reschedule": lambda spec: spec.scheduled,
    "cancel": lambda spec: spec.in_child,
}


def check_job_id(kind: str, job_id: Any) -> None:
    """ValueError, listing the jobs it can name, unless `job_id` is a job of the catalog that `kind` applies to."""
    fits = JOB_COMMANDS[kind]
    if job_id in catalog.JOBS and fits(catalog.JOBS[job_id]):
        return
    known = ", ".join(sorted(j for j, spec in catalog.JOBS.items() if fits(spec)))
    if job_id in catalog.JOBS:
        raise ValueError(f"job {job_id!r} does not take {kind} (jobs that do: {known})")
    raise ValueError(f"no job {job_id!r} (jobs for {kind}: {known})")


def submit(engine: Engine, kind: str, payload: dict[str, Any], *, actor: str, reason: str = "",
           target: str | None = None, details: dict[str, Any] | None = None) -> repo.Command:
    """Queue a command for the scheduler and audit it (`<kind>_requested`, with the command id) in one
    transaction; returns the command. PermissionError for an actor who may not, ValueError for an empty reason
    (required of dashboard users) or a bad payload; nothing is written then."""
    authorize(engine, actor)
    reason = (reason or "").strip()
    if not reason and not users.is_local_actor(actor):
        raise ValueError("A reason is required.")
    check_payload(kind, payload)
    with write_session(engine) as session:
        command = repo.submit_command(session, kind=kind, payload=payload, requested_by=actor, reason=reason)
        repo.add_audit(session, actor=actor, action=f"{kind}_requested", target=target or _target(payload),
                       reason=reason, details={"command_id": command.id, **payload, **(details or {})})
    return command


def _target(payload: dict[str, Any]) -> str | None:
    for key in ("job_id", "version", "to"):
        if payload.get(key) is not None:
            return str(payload[key])
    return None

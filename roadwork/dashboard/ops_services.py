"""The dashboard's writes about jobs and A/B tests: run now, pause, resume, cancel, reschedule, create a test.

Writes never run anything: each one checks that the actor is an operator (against the users table when
`roadwork.platform.users` exists, else the signed-in session), requires a reason, and appends one scheduler command
and one audit event in one transaction; the scheduler applies the command and records its outcome, which the pages
show. What the pages read is in `queries/`.
"""

from __future__ import annotations

import importlib
import importlib.util
from typing import Any

from sqlalchemy import Engine

from roadwork.dashboard import auth, services
from roadwork.dashboard.queries.jobs import preview_cron, runnable_jobs
from roadwork.dashboard.services import RequestError
from roadwork.db import repo
from roadwork.db.engine import read_session, write_session
from roadwork.platform.jobs.store import stored_jobs

USERS_MODULE = "roadwork.platform.users"
# Refusals of a non-operator: `services.NotAllowedError` (a RequestError and a PermissionError) where it exists.
NOT_ALLOWED: type[RequestError] = getattr(services, "NotAllowedError", RequestError)


# --- writes: who may, and the one way they are written ------------------------------------------------------------


def require_operator(engine: Engine, actor: str) -> None:
    """Raise `RequestError` unless `actor` may change things (checked before anything is validated or written)."""
    if importlib.util.find_spec(USERS_MODULE) is not None:
        users = importlib.import_module(USERS_MODULE)
        try:
            users.require_operator(engine, actor)
        except PermissionError as exc:
            raise NOT_ALLOWED(str(exc)) from exc
    elif not auth.is_operator() or auth.actor() != actor:
        raise NOT_ALLOWED("Only a signed-in operator can do this.")


def _reason(reason: str | None) -> str:
    reason = (reason or "").strip()
    if not reason:
        raise RequestError("A reason is required.")
    return reason


def _submit(kind: str, payload: dict[str, Any], *, reason: str, actor: str, target: str) -> int:
    """Append a pending command and its audit event (`<kind>_requested`) in one transaction; the command id."""
    with write_session(services.engine()) as session:
        command = repo.submit_command(session, kind=kind, payload=payload, requested_by=actor, reason=reason)
        repo.add_audit(session, actor=actor, action=f"{kind}_requested", target=target, reason=reason,
                       details={"command_id": command.id, **payload})
    services.clear_caches()
    return command.id


# --- jobs ------------------------------------------------------------------------------------------------------------


def _job_ids(engine: Engine) -> set[str]:
    return {j["id"] for j in stored_jobs(engine)}


def request_job_command(kind: str, job_id: str, reason: str, actor: str) -> int:
    """Ask the scheduler to pause, resume, run now or cancel `job_id`; returns the command id.

    Raises `RequestError` (nothing written) for a non-operator, an empty reason or a job the command cannot
    apply to."""
    engine = services.engine()
    require_operator(engine, actor)
    if kind not in ("run_now", "pause", "resume", "cancel"):
        raise RequestError(f"not a job command: {kind!r}")
    reason = _reason(reason)
    known = _job_ids(engine) if kind in ("pause", "resume") else set(runnable_jobs()) | _job_ids(engine)
    if job_id not in known:
        raise RequestError(f"no job {job_id!r} to {kind.replace('_', ' ')} (jobs: {', '.join(sorted(known))})")
    return _submit(kind, {"job_id": job_id}, reason=reason, actor=actor, target=job_id)


def request_reschedule(job_id: str, cron: str, reason: str, actor: str) -> int:
    """Ask the scheduler to give `job_id` a new UTC cron; `RequestError` (nothing written) when invalid."""
    engine = services.engine()
    require_operator(engine, actor)
    cron = " ".join((cron or "").split())
    preview_cron(cron, 1)
    reason = _reason(reason)
    if job_id not in _job_ids(engine):
        raise RequestError(f"no scheduled job {job_id!r}")
    return _submit("reschedule", {"job_id": job_id, "cron": cron}, reason=reason, actor=actor, target=job_id)


# --- A/B tests ------------------------------------------------------------------------------------------------------


def request_ab_test(version_a: int, version_b: int, sample_size: int, reason: str, actor: str) -> int:
    """Ask the scheduler to create and run an A/B test of two versions; returns the command id.

    Raises `RequestError` (nothing written) for a non-operator, an empty reason, the same or unknown versions, or
    a sample size below 2."""
    engine = services.engine()
    require_operator(engine, actor)
    reason = _reason(reason)
    if isinstance(sample_size, bool) or int(sample_size) != sample_size or sample_size < 2:
        raise RequestError(f"The sample size must be a whole number of at least 2, got {sample_size!r}.")
    with read_session(engine) as session:
        try:
            a, b = repo.get_version(session, int(version_a)), repo.get_version(session, int(version_b))
        except repo.NotFoundError as exc:
            raise RequestError(str(exc)) from None
    if a.id == b.id:
        raise RequestError(f"An A/B test needs two different versions, got {a.label} twice.")
    payload = {"a": a.id, "b": b.id, "sample_size": int(sample_size)}
    return _submit("create_ab_test", payload, reason=reason, actor=actor, target=f"{a.label} vs {b.label}")

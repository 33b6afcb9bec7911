"""The dashboard's writes about jobs and A/B tests: run now, pause, resume, cancel, reschedule, create a test.

Writes never run anything: each one checks that the actor is an operator (in the users table, first), requires a
reason, and goes through `roadwork.platform.commands.submit` (by way of `services.queue_command`): one scheduler
command and one audit event in one transaction; the scheduler applies the command and records its outcome, which the
pages show. What the pages read is in `queries/`.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import Engine

from roadwork.dashboard import services
from roadwork.dashboard.queries.jobs import preview_cron, runnable_jobs
from roadwork.dashboard.services import RequestError
from roadwork.db import repo
from roadwork.db.engine import read_session
from roadwork.platform.jobs import catalog
from roadwork.platform.jobs.store import stored_jobs


def _reason(reason: str | None) -> str:
    reason = (reason or "").strip()
    if not reason:
        raise RequestError("A reason is required.")
    return reason


# --- jobs ------------------------------------------------------------------------------------------------------------


def _job_ids(engine: Engine) -> set[str]:
    return {j["id"] for j in stored_jobs(engine)}


def request_job_command(kind: str, job_id: str, reason: str, actor: str,
                        kwargs: dict[str, Any] | None = None) -> int:
    """Ask the scheduler to pause, resume, run now or cancel `job_id`; returns the command id.

    `kwargs`: the arguments of a run now, checked against the job catalog. Raises `RequestError` (nothing
    written) for a non-operator, an empty reason, a job the command cannot apply to or a bad argument."""
    engine = services.engine()
    services.authorize(actor)
    if kind not in ("run_now", "pause", "resume", "cancel"):
        raise RequestError(f"not a job command: {kind!r}")
    reason = _reason(reason)
    if kwargs and kind != "run_now":
        raise RequestError(f"only a run now takes arguments, not {kind.replace('_', ' ')}")
    runnable = set(catalog.JOBS) if kwargs else set(runnable_jobs())
    known = _job_ids(engine) if kind in ("pause", "resume") else runnable | _job_ids(engine)
    if job_id not in known:
        raise RequestError(f"no job {job_id!r} to {kind.replace('_', ' ')} (jobs: {', '.join(sorted(known))})")
    payload: dict[str, Any] = {"job_id": job_id} | ({"kwargs": dict(kwargs)} if kwargs else {})
    return services.queue_command(kind, payload, reason=reason, actor=actor, target=job_id)


def request_reschedule(job_id: str, cron: str, reason: str, actor: str) -> int:
    """Ask the scheduler to give `job_id` a new UTC cron; `RequestError` (nothing written) when invalid."""
    engine = services.engine()
    services.authorize(actor)
    cron = " ".join((cron or "").split())
    preview_cron(cron, 1)
    reason = _reason(reason)
    if job_id not in _job_ids(engine):
        raise RequestError(f"no scheduled job {job_id!r}")
    return services.queue_command("reschedule", {"job_id": job_id, "cron": cron}, reason=reason, actor=actor,
                                  target=job_id)


# --- A/B tests ------------------------------------------------------------------------------------------------------


def request_ab_test(version_a: int, version_b: int, sample_size: int, reason: str, actor: str) -> int:
    """Ask the scheduler to create and run an A/B test of two versions; returns the command id.

    Raises `RequestError` (nothing written) for a non-operator, an empty reason, the same or unknown versions, or
    a sample size below 2."""
    engine = services.engine()
    services.authorize(actor)
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
    return services.queue_command("create_ab_test", payload, reason=reason, actor=actor,
                                  target=f"{a.label} vs {b.label}")

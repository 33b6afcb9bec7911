"""The dashboard's writes about deployments: a rollback, and the decision on a gated candidate.

Writes never run a job: they append a scheduler command and an audit event, and the scheduler (the one writer of
the job store) applies them. What the pages read is in `queries/`; the shared engine in `context`.
"""

from __future__ import annotations

from typing import Any

from roadwork.dashboard import auth
from roadwork.dashboard.context import clear_caches, engine, settings
from roadwork.db import repo
from roadwork.db.engine import read_session
from roadwork.platform import commands
from roadwork.platform.registry.reconcile import ReconcileReport, reconcile


def reconcile_published() -> ReconcileReport:
    """Before a page shows the champion: repair a champion that differs from what is published (or report it).

    The same `reconcile` that deploy, rollback, `versions` and the scheduler run; when all agrees it takes no lock
    and writes nothing. A repair is audited (actor `reconcile`) and invalidates the cached reads.
    """
    report = reconcile(engine(), settings())
    if report.repaired:
        clear_caches()
    return report


def current_actor() -> str:
    """Who is acting from this dashboard session: the signed-in username, or `anonymous`."""
    return auth.actor()


class RequestError(ValueError):
    """A dashboard request that cannot be accepted; the message says why and nothing was written."""


class NotAllowedError(RequestError, PermissionError):
    """The actor is not an enabled operator in the users table; nothing was written.

    A `PermissionError` for callers, and a `RequestError` so that a page's usual error display shows it.
    """


def authorize(actor: str) -> None:
    """`NotAllowedError` unless `actor` is an enabled operator in the users table (checked before anything else)."""
    try:
        commands.authorize(engine(), actor)
    except PermissionError as exc:
        raise NotAllowedError(str(exc)) from exc


def queue_command(kind: str, payload: dict[str, Any], *, actor: str, reason: str, target: str,
                  details: dict[str, Any] | None = None) -> int:
    """`commands.submit` (the command and its audit event, one transaction), its refusals as `RequestError`s."""
    try:
        command = commands.submit(engine(), kind, payload, actor=actor, reason=reason, target=target,
                                  details=details)
    except PermissionError as exc:
        raise NotAllowedError(str(exc)) from exc
    except ValueError as exc:
        raise RequestError(str(exc)) from exc
    clear_caches()
    return command.id


def request_rollback(to_version_id: int, reason: str, actor: str | None = None) -> int:
    """Ask the scheduler to roll `champion` back to `to_version_id`; returns the command id.

    Writes a pending `rollback` command and an audit event in one transaction. Raises `NotAllowedError` (a
    `PermissionError`) when `actor` (default: the signed-in user) is not an enabled operator in the users
    table, and `RequestError` for an empty reason, an unknown version or the current champion; either way
    nothing is written.
    """
    actor = actor or current_actor()
    authorize(actor)
    reason = (reason or "").strip()
    if not reason:
        raise RequestError("A reason is required for a rollback.")
    with read_session(engine()) as session:
        try:
            target = repo.get_version(session, int(to_version_id))
        except repo.NotFoundError as exc:
            raise RequestError(str(exc)) from exc
        holder = repo.alias_holder(session, repo.CHAMPION)
    if holder is not None and holder.id == target.id:
        raise RequestError(f"{target.label} is already the champion.")
    return queue_command("rollback", {"to": target.id}, actor=actor, reason=reason, target=target.label,
                   details={"from": holder.id if holder else None})


def request_candidate_decision(kind: str, version_id: int, reason: str, actor: str | None = None) -> int:
    """Ask the scheduler to approve (deploy) or reject a gated candidate; returns the command id.

    Operators only; a reason is required (it goes with the deploy or the rejection)."""
    if kind not in ("approve", "reject"):
        raise RequestError(f"unknown decision {kind!r}")
    actor = actor or current_actor()
    authorize(actor)
    reason = (reason or "").strip()
    if not reason:
        raise RequestError(f"A reason is required to {kind} a candidate.")
    with read_session(engine()) as session:
        try:
            version = repo.get_version(session, int(version_id))
        except repo.NotFoundError as exc:
            raise RequestError(str(exc)) from exc
    return queue_command(kind, {"version": version.id}, actor=actor, reason=reason, target=version.label)

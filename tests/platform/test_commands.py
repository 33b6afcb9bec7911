"""The one write path of operator actions, and the scheduler's table of how each kind is applied."""

from __future__ import annotations

import pytest

from roadwork.db import repo
from roadwork.db.engine import read_session
from roadwork.platform import commands, users
from roadwork.platform.jobs.scheduler import COMMAND_HANDLERS

PASSWORD = "correct horse battery staple"
LOCAL = users.local_actor("alice")


@pytest.fixture
def ops(engine):  # noqa: ANN001, ANN201 - olga operates, vera views, otto was an operator and is disabled
    users.create_user(engine, "olga", PASSWORD, "operator", LOCAL)
    users.create_user(engine, "vera", PASSWORD, "viewer", LOCAL)
    users.create_user(engine, "otto", PASSWORD, "operator", LOCAL)
    users.disable_user(engine, "otto", LOCAL, "left the team")
    return engine


def written(engine) -> tuple[list[repo.Command], list[repo.AuditEvent]]:  # noqa: ANN001
    with read_session(engine) as session:
        return repo.list_commands(session), [a for a in repo.list_audit(session) if a.action.endswith("_requested")]


def test_every_command_kind_has_a_handler() -> None:
    assert set(COMMAND_HANDLERS) == set(repo.COMMAND_KINDS)


def test_an_operator_command_and_its_audit_row_are_written_together(ops) -> None:  # noqa: ANN001
    command = commands.submit(ops, "pause", {"job_id": "train"}, actor="olga", reason="disk is full")
    queued, audit = written(ops)
    assert [(c.id, c.kind, c.requested_by, c.status) for c in queued] == [(command.id, "pause", "olga", "pending")]
    assert [(a.actor, a.action, a.target, a.reason, a.details["command_id"]) for a in audit] == [
        ("olga", "pause_requested", "train", "disk is full", command.id)]


def test_a_local_actor_may_without_a_reason_and_a_dashboard_user_needs_one(ops) -> None:  # noqa: ANN001
    commands.submit(ops, "resume", {"job_id": "train"}, actor=LOCAL)
    with pytest.raises(ValueError, match="reason is required"):
        commands.submit(ops, "resume", {"job_id": "train"}, actor="olga", reason="  ")
    assert [c.requested_by for c in written(ops)[0]] == [LOCAL]


@pytest.mark.parametrize(("actor", "why"), [("vera", "is a viewer"), ("otto", "is disabled"),
                                            ("ghost", "is not a user")])
def test_anyone_but_an_enabled_operator_is_refused_and_nothing_is_written(ops, actor: str, why: str) -> None:  # noqa: ANN001
    with pytest.raises(PermissionError, match=why):
        commands.submit(ops, "rollback", {"to": 1}, actor=actor, reason="rain regression")
    assert written(ops) == ([], [])


def test_the_arguments_of_a_run_are_checked_before_anything_is_written(ops) -> None:  # noqa: ANN001
    with pytest.raises(ValueError, match="train takes config; not epochs"):
        commands.submit(ops, "run_now", {"job_id": "train", "kwargs": {"epochs": 3}}, actor=LOCAL)
    with pytest.raises(ValueError, match="unknown command 'explode'"):
        commands.submit(ops, "explode", {}, actor=LOCAL)
    assert written(ops) == ([], [])
    commands.submit(ops, "run_now", {"job_id": "ab_test", "kwargs": {"test_id": 4}}, actor=LOCAL)
    assert written(ops)[0][0].payload == {"job_id": "ab_test", "kwargs": {"test_id": 4}}

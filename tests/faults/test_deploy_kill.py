"""kill -9 of a deploy at seeded steps (ROADWORK_FAULT_AT), then a fresh process: the champion is what is
published, the history is intact, and the next deploy neither waits for the dead holder nor reuses a half-written
folder."""

from __future__ import annotations

import signal
import time

import pytest

from roadwork.db import repo
from roadwork.db.engine import read_session
from roadwork.platform.registry import service as registry
from roadwork.platform.registry.faults import DEPLOY_STEPS, fault_point
from tests.faults.checks import assert_consistent
from tests.faults.conftest import register, run_cli

# Killed before every target was switched and smoke-tested: the deploy is reverted. After: it is completed.
COMPLETED = {"before_alias_move", "after_alias_move"}
FAST = {"after_link_switch", "before_alias_move"}  # the two sides of the gap the operator's probe found


@pytest.mark.parametrize("step", [s if s in FAST else pytest.param(s, marks=pytest.mark.slow) for s in DEPLOY_STEPS])
def test_kill_at_a_step_then_a_fresh_process_reconciles(step, engine, two_targets, tiny_checkpoint) -> None:
    settings = two_targets
    v1, v2 = register(engine, settings, tiny_checkpoint)
    registry.deploy(engine, settings, v1.version, actor="t", reason="first")

    killed = run_cli("deploy", v2.version, "--reason", "killed", ROADWORK_FAULT_AT=step)
    assert killed.returncode == -signal.SIGKILL, killed.stderr[-2000:]

    champion = assert_consistent(engine, settings)  # this process is the fresh one: its first read reconciles
    assert champion.id == (v2.id if step in COMPLETED else v1.id)
    with read_session(engine) as s:
        actions = [e.action for e in repo.list_audit(s, 20)]
        moves = repo.alias_history(s)
    assert [m.to_version_id for m in moves][-1] == v1.id  # the first deploy is still the oldest event
    if step in COMPLETED - {"after_alias_move"}:
        assert "reconcile" in actions and moves[0].reason.startswith("killed (completed by reconcile")
    if step == "after_alias_move":
        assert "deploy_lock_taken_over" not in actions  # nothing to repair; the lock is taken on the next deploy

    start = time.monotonic()
    again = registry.deploy(engine, settings, v2.version, actor="t", reason="again")
    assert time.monotonic() - start < settings.publish.lock_wait_s  # the dead holder's lock was taken over at once
    assert assert_consistent(engine, settings).id == v2.id == again.version.id
    leftovers = [p for p in (settings.home / "exports").glob(".*")]
    for target in settings.publish_dirs:
        leftovers += list((target / "releases").glob(".*"))
    assert leftovers == [], f"staging folders left behind: {leftovers}"


def test_an_unknown_fault_step_is_refused(clean_env) -> None:
    clean_env.setenv("ROADWORK_FAULT_AT", "after_lnk_switch")  # a typo must not silently inject nothing
    with pytest.raises(ValueError, match="not a fault step.*after_link_switch"):
        fault_point("after_lock")

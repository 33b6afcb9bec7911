"""The deploy lock (a database row with a fencing token) and reconcile() without a recorded intent."""

from __future__ import annotations

import os
import socket
import subprocess
import time

import pytest

from roadwork.db import deploy_state, repo
from roadwork.db.engine import read_session, write_session
from roadwork.platform.processes import process_alive
from roadwork.platform.registry import publish
from roadwork.platform.registry import service as registry
from roadwork.platform.registry.lock import deploy_lock
from tests.faults.conftest import register


def test_a_second_deployer_waits_then_fails_naming_the_holder(engine, settings) -> None:
    with deploy_lock(engine, settings, "deploy roadwork-ops:0.1.0"):
        start = time.monotonic()
        busy = r"another deploy is in progress \(deploy roadwork-ops:0.1.0, held by .*waited \d+ s"
        with pytest.raises(registry.DeployBusyError, match=busy), deploy_lock(engine, settings, "2nd", wait_s=0.6):
            pytest.fail("two holders at once")
        assert 0.6 <= time.monotonic() - start < 5
    with deploy_lock(engine, settings, "next", wait_s=0) as lock:  # released at the end of the block
        assert lock.token == 2


def test_an_expired_lock_is_taken_over_and_fences_its_old_holder(engine, clean_env, home) -> None:
    clean_env.setenv("ROADWORK_PUBLISH__LOCK_TTL_S", "0.3")
    from roadwork.settings import load_settings

    settings = load_settings()
    with deploy_lock(engine, settings, "slow deploy") as old:
        time.sleep(0.5)  # the holder hangs past its lease
        with deploy_lock(engine, settings, "new deploy", wait_s=1) as new:
            assert new.token == old.token + 1
            with pytest.raises(deploy_state.LockLostError), write_session(engine) as s:
                old.fence(s)  # the hung holder can no longer write: its alias move would be refused
            with read_session(engine) as s:
                assert deploy_state.current_lock(s).purpose == "new deploy"
        with read_session(engine) as s:
            assert deploy_state.current_lock(s).holder is None
    with read_session(engine) as s:  # the old holder's release at its end did not free anyone else's lock
        assert repo.list_audit(s, 1)[0].action == "deploy_lock_taken_over"


def test_a_lock_left_by_a_dead_process_on_this_host_is_taken_over_at_once(engine, settings) -> None:
    dead = subprocess.Popen(["true"])
    dead.wait()
    with write_session(engine) as s:
        seen = deploy_state.current_lock(s)
        deploy_state.try_acquire(s, holder=f"{socket.gethostname()}:{dead.pid}:x", hostname=socket.gethostname(),
                                 pid=dead.pid, purpose="killed deploy", ttl_s=3600, seen=seen)
    with deploy_lock(engine, settings, "after the crash", wait_s=0) as lock:
        assert lock.token == 2 and lock.holder.split(":")[1] == str(os.getpid())


def test_a_link_changed_by_hand_raises_one_alert(engine, settings, tiny_checkpoint) -> None:
    v1, v2 = register(engine, settings, tiny_checkpoint)
    registry.deploy(engine, settings, v1.version, actor="t")
    registry.deploy(engine, settings, v2.version, actor="t")
    target = settings.publish_dirs[0]
    publish.switch_current(target, target / publish.RELEASES / registry.release_name(v1))  # not through roadwork

    report = registry.reconcile(engine, settings)
    assert not report.consistent and "serves 0.1.0" in report.alerts[0]
    assert registry.champion(engine, settings).id == v2.id  # no intent: reported, not guessed at
    with read_session(engine) as s:
        alerts = [a for a in repo.list_audit(s, 10) if a.action == "alert"]
    assert len(alerts) == 1 and alerts[0].details["champion"] == v2.label

    publish.switch_current(target, target / publish.RELEASES / registry.release_name(v2))
    assert registry.reconcile(engine, settings).consistent


def test_a_killed_holder_not_yet_reaped_counts_as_gone(engine, settings) -> None:
    zombie = subprocess.Popen(["sleep", "30"])
    try:
        zombie.kill()
        time.sleep(0.3)  # dead, but its parent (this test) has not waited for it: a zombie
        assert not process_alive(zombie.pid)
        assert process_alive(os.getpid())
    finally:
        zombie.wait()

"""The scheduler under faults: kill -9 with a child job running and a rollback mid-way, a lease lost during a
long command, and the heartbeat while a command runs inline. Real SQLite, real APScheduler, real processes."""

from __future__ import annotations

import datetime as dt
import json
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from roadwork.clock import utcnow
from roadwork.db import deploy_state, repo
from roadwork.db.engine import read_session, write_session
from roadwork.platform.jobs import runner
from roadwork.platform.jobs.scheduler import SchedulerBusyError, SchedulerService
from roadwork.platform.processes import process_alive
from roadwork.platform.registry import publish
from roadwork.platform.registry import service as registry
from roadwork.settings import Settings, load_settings
from tests.conftest import ROOT
from tests.faults.checks import assert_consistent
from tests.faults.conftest import child_env, register

RELOAD = """#!/bin/sh
# A slow reload hook: says it started, then waits (at most 2 minutes) until the test lets it finish.
echo $$ >> "{home}/reload-started"
i=0
while [ ! -e "{home}/reload-go" ] && [ $i -lt 1200 ]; do sleep 0.1; i=$((i+1)); done
"""


def _wait_until(what: str, check, timeout: float = 120):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError(f"gave up waiting for {what}")


def _slow_reload(home: Path, clean_env: pytest.MonkeyPatch, **scheduler: str) -> Settings:
    """Settings whose reload hook blocks until `<home>/reload-go` exists, with a fast scheduler."""
    script = home / "slow-reload.sh"
    script.write_text(RELOAD.format(home=home))
    clean_env.setenv("ROADWORK_PUBLISH__RELOAD_COMMAND", f"sh {script}")
    clean_env.setenv("ROADWORK_SCHEDULER__COMMAND_POLL_S", "0.1")
    clean_env.setenv("ROADWORK_SCHEDULER__HEARTBEAT_S", "0.2")
    for key, value in scheduler.items():
        clean_env.setenv(f"ROADWORK_SCHEDULER__{key.upper()}", value)
    return load_settings()


def _two_deploys(engine, settings: Settings, ckpt) -> tuple[repo.Version, repo.Version]:
    v1, v2 = register(engine, settings, ckpt)
    registry.deploy(engine, settings, v1.version, actor="t", reason="first")
    registry.deploy(engine, settings, v2.version, actor="t", reason="second")
    return v1, v2


def _submit(engine, kind: str, payload: dict, reason: str = "test") -> int:
    with write_session(engine) as s:
        return repo.submit_command(s, kind=kind, payload=payload, requested_by="test", reason=reason).id


def _command(engine, command_id: int) -> repo.Command:
    with read_session(engine) as s:
        return repo.get_command(s, command_id)


def _runs(engine, job_id: str) -> list[repo.JobRun]:
    with read_session(engine) as s:
        return repo.list_job_runs(s, job_id=job_id)


def _serving(settings: Settings) -> set[str | None]:
    return {getattr(publish.serving(t), "name", None) for t in settings.publish_dirs}


@pytest.mark.slow
def test_a_killed_scheduler_is_recovered_by_the_next(engine, two_targets, tiny_checkpoint, home, clean_env,
                                                     tmp_path) -> None:
    _, v2 = _two_deploys(engine, two_targets, tiny_checkpoint)
    settings = _slow_reload(home, clean_env)  # lease timeout: the default 60 s
    with open(tmp_path / "scheduler.log", "w") as out:
        proc = subprocess.Popen([sys.executable, "-m", "tests.faults.scheduler_proc"], env=child_env(), cwd=ROOT,
                                stdout=out, stderr=subprocess.STDOUT)
    try:
        rollback = _submit(engine, "rollback", {})
        _wait_until("the rollback's reload hook", (home / "reload-started").exists)
        run = _wait_until("the sleeper's child recorded on its run",
                          lambda: next((r for r in _runs(engine, "sleeper") if r.child_pid), None))
        assert process_alive(run.child_pid) and _command(engine, rollback).status == "applying"

        proc.send_signal(signal.SIGKILL)
        assert proc.wait(30) == -signal.SIGKILL
        started = time.monotonic()
        second = SchedulerService(engine, settings)
        second.start()  # the dead holder's heartbeat is fresh: only the dead-process check lets this through
        took = time.monotonic() - started
        print(f"takeover after kill -9: {took:.2f} s (lease timeout {settings.scheduler.lease_timeout_s:.0f} s)")
        try:
            with read_session(engine) as s:
                assert repo.current_lease(s).holder == second.holder
                taken = repo.latest_audit_event(s, second.holder, ("scheduler_lease_taken_over",))
            assert taken.details["process_gone"] is True
            _wait_until("the orphaned child to end", lambda: not process_alive(run.child_pid), timeout=30)
            [left] = _runs(engine, "sleeper")
            assert left.status == "failed" and "stopped" in left.error
            command = _command(engine, rollback)
            assert command.status == "failed" and "stopped" in command.outcome
            assert assert_consistent(engine, settings).id == v2.id  # the half-done rollback was reverted
        finally:
            second.stop()
    finally:
        (home / "reload-go").touch()  # the orphaned reload hook exits
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_recovery_ends_recorded_worker_groups_and_never_a_reused_pid(engine, clean_env, home, tmp_path) -> None:
    clean_env.setenv("ROADWORK_SCHEDULER__TIMEOUTS_S", json.dumps({"evaluate_champion": 1}))  # the requeued run
    settings = load_settings()
    def start_worker(result: Path) -> subprocess.Popen:
        return subprocess.Popen(
            [sys.executable, "-m", "roadwork.platform.jobs.worker", "tests.platform.jobfuncs:sleepy",
             json.dumps({"seconds": 600}), str(result)],
            env=child_env(), cwd=ROOT, start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    worker = start_worker(settings.logs_dir / "jobs" / "train.result.json")
    elsewhere = start_worker(tmp_path / "other-home" / "logs" / "jobs" / "train.result.json")  # another registry's
    stranger = subprocess.Popen(["sleep", "600"], start_new_session=True)  # a recorded pid now used by another program
    try:
        now = utcnow()
        with write_session(engine) as s:
            train = repo.record_job_run(s, job_id="train", status="started", trigger="schedule", started_at=now,
                                        child_pid=worker.pid, child_pgid=worker.pid)
            mine = repo.record_job_run(s, job_id="mine", status="started", trigger="command", started_at=now,
                                       child_pid=stranger.pid, child_pgid=stranger.pid)
            other = repo.record_job_run(s, job_id="mine", status="started", trigger="schedule", started_at=now,
                                        child_pid=elsewhere.pid, child_pgid=elsewhere.pid)
            evaluate = repo.record_job_run(s, job_id="evaluate_champion", status="started", trigger="schedule",
                                           started_at=now)
            pipeline = repo.record_job_run(s, job_id="deploy", status="started", trigger="pipeline", started_at=now)
            command = repo.submit_command(s, kind="pause", payload={"job_id": "mine"}, requested_by="test")
            repo.claim_command(s, command.id)
        service = SchedulerService(engine, settings)
        service.start()
        try:
            assert worker.wait(30) == -signal.SIGKILL
            assert stranger.poll() is None, "a process that is not a roadwork worker was killed"
            assert elsewhere.poll() is None, "a worker of another home was killed"
            with read_session(engine) as s:
                runs = {r.id: r for r in repo.list_job_runs(s)}
            assert runs[train.id].status == "failed" and f"group {worker.pid} was ended" in runs[train.id].error
            for run_id in (mine.id, other.id):
                assert runs[run_id].status == "failed" and "was ended" not in runs[run_id].error
            assert runs[evaluate.id].status == "failed" and "run again" in runs[evaluate.id].error
            assert runs[pipeline.id].status == "started"  # not a run of the scheduler's: left alone
            assert _command(engine, command.id).status == "failed"
            _wait_until("the requeued evaluation",
                        lambda: [r for r in _runs(engine, "evaluate_champion") if r.id != evaluate.id])
        finally:
            for job_id in runner.running_jobs():
                runner.cancel(job_id)
            service.stop()
    finally:
        for proc in (worker, elsewhere, stranger):
            if proc.poll() is None:
                proc.kill()
                proc.wait()


def _serve(service: SchedulerService) -> threading.Thread:
    thread = threading.Thread(target=service.serve, kwargs={"max_seconds": 300}, daemon=True)
    thread.start()
    return thread


def test_a_scheduler_that_lost_its_lease_does_not_move_the_champion(engine, two_targets, tiny_checkpoint, home,
                                                                    clean_env) -> None:
    _, v2 = _two_deploys(engine, two_targets, tiny_checkpoint)
    settings = _slow_reload(home, clean_env)
    service = SchedulerService(engine, settings)
    service.start()
    thread = _serve(service)
    try:
        rollback = _submit(engine, "rollback", {})
        _wait_until("the rollback's reload hook", (home / "reload-started").exists)
        with write_session(engine) as s:  # another scheduler takes the lease, its clock past our timeout
            ok, _ = repo.acquire_lease(s, holder="elsewhere:1:x", hostname="elsewhere", pid=1,
                                       timeout_s=settings.scheduler.lease_timeout_s,
                                       now=utcnow() + dt.timedelta(seconds=settings.scheduler.lease_timeout_s + 1))
        assert ok
        (home / "reload-go").touch()
        thread.join(120)
        assert not thread.is_alive(), "the scheduler kept serving without its lease"
        command = _command(engine, rollback)
        assert command.status == "failed" and "lease" in command.outcome
        with read_session(engine) as s:
            assert repo.alias_holder(s).id == v2.id
            assert repo.current_lease(s).holder == "elsewhere:1:x"
        assert _serving(settings) == {registry.release_name(v2)}  # the links it had switched are switched back
        assert service.lost.is_set()
    finally:
        (home / "reload-go").touch()
        service.stop()
    assert assert_consistent(engine, settings).id == v2.id


def test_the_heartbeat_keeps_the_lease_while_a_command_runs_inline(engine, two_targets, tiny_checkpoint, home,
                                                                   clean_env) -> None:
    v1, _ = _two_deploys(engine, two_targets, tiny_checkpoint)
    settings = _slow_reload(home, clean_env, lease_timeout_s="1")
    service = SchedulerService(engine, settings)
    service.start()
    thread = _serve(service)
    try:
        rollback = _submit(engine, "rollback", {})
        _wait_until("the rollback's reload hook", (home / "reload-started").exists)
        time.sleep(3 * settings.scheduler.lease_timeout_s)  # the command has now run inline for 3 lease timeouts
        with pytest.raises(SchedulerBusyError, match=service.holder):
            SchedulerService(engine, settings).start()
        (home / "reload-go").touch()
        command = _wait_until("the rollback to finish",
                              lambda: (c := _command(engine, rollback)).status in ("applied", "failed") and c)
        assert command.status == "applied", command.outcome
        assert thread.is_alive() and not service.lost.is_set()
    finally:
        (home / "reload-go").touch()
        service.stop()
        thread.join(30)
    assert assert_consistent(engine, settings).id == v1.id


def test_a_deploy_stops_before_the_next_link_switch_once_its_fence_fails(engine, two_targets,
                                                                         tiny_checkpoint) -> None:
    settings = two_targets
    v1, v2 = register(engine, settings, tiny_checkpoint)
    registry.deploy(engine, settings, v1.version, actor="t", reason="first")
    first, second = settings.publish_dirs
    seen_by_second: list[str | None] = []

    def fence(session) -> None:  # lost right after the first target switched
        if getattr(publish.serving(first), "name", None) == registry.release_name(v2):
            seen_by_second.append(getattr(publish.serving(second), "name", None))
            raise repo.LeaseLostError("the scheduler lease was taken over (test)")

    with pytest.raises(registry.DeployError, match="lease was taken over"):
        registry.deploy(engine, settings, v2.version, actor="t", reason="fenced", fence=fence)
    assert seen_by_second == [registry.release_name(v1)]  # checked before the second switch, which never happened
    assert _serving(settings) == {registry.release_name(v1)}
    assert assert_consistent(engine, settings).id == v1.id
    with read_session(engine) as s:
        assert len(repo.alias_history(s)) == 1


def _children_of(pid: int) -> list[int]:
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            found.append(int(stat.parent.name))
    return found


def test_a_job_child_ends_itself_when_its_scheduler_is_killed(home, tmp_path) -> None:
    code = ("from roadwork.platform.jobs.runner import run_in_subprocess; "
            f"run_in_subprocess('sleepy', 'tests.platform.jobfuncs:sleepy', logs_dir={str(tmp_path)!r}, "
            "timeout_s=900, seconds=600)")
    parent = subprocess.Popen([sys.executable, "-c", code], env=child_env(), cwd=ROOT)
    try:
        logs = _wait_until("the child's log", lambda: [p for p in (tmp_path / "jobs").glob("*.log")
                                                       if "going to sleep" in p.read_text()])
        [child] = _children_of(parent.pid)
        parent.send_signal(signal.SIGKILL)
        parent.wait(30)
        _wait_until("the child to end", lambda: not process_alive(child), timeout=30)
        assert "is gone; ending this job" in logs[0].read_text()
    finally:
        if parent.poll() is None:
            parent.kill()
            parent.wait()


def test_a_deploy_whose_lock_was_taken_over_switches_no_link(engine, two_targets, tiny_checkpoint) -> None:
    settings = two_targets
    v1, v2 = register(engine, settings, tiny_checkpoint)
    registry.deploy(engine, settings, v1.version, actor="t", reason="first")
    gone = subprocess.Popen(["true"])
    gone.wait()  # a pid that no longer runs: the process that "took over" the lock, then died

    def steal_once(session) -> None:  # runs with the intent's write: the lock expires and changes hands there
        if not stolen:
            seen = deploy_state.current_lock(session)
            stolen.append(deploy_state.try_acquire(session, holder="other:1:x", hostname=socket.gethostname(),
                                                   pid=gone.pid, purpose="deploy elsewhere", ttl_s=900, seen=seen))

    stolen: list = []
    with pytest.raises(registry.DeployError, match="lock"):
        registry.deploy(engine, settings, v2.version, actor="t", reason="late", fence=steal_once)
    assert stolen and stolen[0] is not None
    assert _serving(settings) == {registry.release_name(v1)}  # refused before the first link switch
    assert assert_consistent(engine, settings).id == v1.id  # the next holder reverts the recorded intent

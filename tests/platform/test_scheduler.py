"""The scheduler against real SQLite and the real APScheduler."""

from __future__ import annotations

import datetime as dt
import json
import time

import pytest
from sqlalchemy import select

from roadwork.clock import utcnow
from roadwork.settings import load_settings
from roadwork.db import models as m
from roadwork.db import repo
from roadwork.db.engine import read_session, write_session
from roadwork.cron import next_fire_times
from roadwork.platform.registry import service as registry
from roadwork.platform.jobs import runner
from roadwork.platform.jobs.functions import EVALUATE_CHAMPION
from roadwork.platform.jobs.store import stored_jobs
from roadwork.platform.jobs.scheduler import SchedulerBusyError, SchedulerService


def boom() -> None:
    raise RuntimeError("the job blew up")


@pytest.fixture
def fast(clean_env, home):  # noqa: ANN001, ANN201
    clean_env.setenv("ROADWORK_SCHEDULER__COMMAND_POLL_S", "0.1")
    clean_env.setenv("ROADWORK_SCHEDULER__HEARTBEAT_S", "0.2")
    clean_env.setenv("ROADWORK_EVALUATION__CHAMPION_REPLAY_CHALLENGES", "20")  # children inherit the environment
    return load_settings()


@pytest.fixture
def service(engine, fast):  # noqa: ANN001, ANN201
    svc = SchedulerService(engine, fast)
    svc.start()
    yield svc
    for job_id in runner.running_jobs():  # a child job must not outlive its test (stop() would wait for it)
        runner.cancel(job_id)
    if svc.scheduler.running:
        svc.stop()


def _submit(engine, kind: str, payload: dict, reason: str = "") -> int:  # noqa: ANN001
    with write_session(engine) as s:
        return repo.submit_command(s, kind=kind, payload=payload, requested_by="test", reason=reason).id


def _wait_for_run(engine, job_id: str, status: str, timeout: float = 60) -> repo.JobRun:  # noqa: ANN001
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with read_session(engine) as s:
            runs = [r for r in repo.list_job_runs(s, job_id=job_id) if r.status == status]
        if runs:
            return runs[0]
        time.sleep(0.1)
    with read_session(engine) as s:
        raise AssertionError(f"no {status} run of {job_id}: {repo.list_job_runs(s)}")


def test_a_second_scheduler_refuses_to_start(engine, fast, service) -> None:
    second = SchedulerService(engine, fast)
    with pytest.raises(SchedulerBusyError, match=service.holder):
        second.start()
    service.stop()  # a clean stop releases the lease at once
    second.start()
    second.stop()


def test_a_stale_lease_is_taken_over(engine, fast) -> None:
    with write_session(engine) as s:  # a scheduler that died 10 minutes ago without releasing
        repo.acquire_lease(s, holder="dead:1:x", hostname="gone", pid=1, timeout_s=60,
                           now=utcnow() - dt.timedelta(minutes=10))
    svc = SchedulerService(engine, fast)
    svc.start()
    with read_session(engine) as s:
        assert repo.current_lease(s).holder == svc.holder
    svc.stop()


def test_the_builtin_job_is_stored_as_json(engine, service) -> None:
    with read_session(engine) as s:
        raw = s.execute(select(m.ScheduledJob.job_state).where(m.ScheduledJob.id == EVALUATE_CHAMPION)).scalar_one()
    state = json.loads(raw)  # JSON, not a pickle
    assert state["func"] == "roadwork.platform.jobs.functions:evaluate_champion_job"
    assert state["trigger"]["type"] == "cron" and state["trigger"]["timezone"] == "UTC"


def test_run_now_command_runs_the_evaluation_and_records_it(engine, settings, service, synth_data,
                                                            tiny_checkpoint, home) -> None:
    (home / "datasets").mkdir()
    (home / "datasets" / "synth").symlink_to(synth_data)
    v = registry.register_version(engine, settings, tiny_checkpoint.checkpoint_dir, config={}, metrics={},
                                  data_fingerprint=None, parent_id=None)
    registry.deploy(engine, settings, v.id, actor="t")

    command_id = _submit(engine, "run_now", {"job_id": EVALUATE_CHAMPION})
    assert service.apply_pending_commands() == 1
    assert service.apply_pending_commands() == 0  # applied once
    run = _wait_for_run(engine, EVALUATE_CHAMPION, "succeeded")
    assert run.trigger == "command" and run.duration_s is not None
    with read_session(engine) as s:
        assert repo.get_command(s, command_id).status == "applied"
        kinds = {e.id: e.kind for e in repo.evaluations_of(s, v.id)}
    assert run.result["version"] == v.label
    assert kinds == {run.result["evaluation_id"]: "validation", run.result["replay_evaluation_id"]: "replay"}


def test_pause_survives_a_restart_and_resume_reschedules(engine, fast, service) -> None:
    _submit(engine, "pause", {"job_id": EVALUATE_CHAMPION})
    service.apply_pending_commands()
    assert stored_jobs(engine)[0]["paused"]
    service.stop()

    again = SchedulerService(engine, fast)
    again.start()
    try:
        assert stored_jobs(engine)[0]["paused"], "a restart must not re-add or resume a paused job"
        _submit(engine, "resume", {"job_id": EVALUATE_CHAMPION})
        again.apply_pending_commands()
        job = stored_jobs(engine)[0]
        assert not job["paused"] and job["next_run_time"] > utcnow()
    finally:
        again.stop()


def test_reschedule_and_bad_commands_record_their_outcome(engine, service) -> None:
    ok = _submit(engine, "reschedule", {"job_id": EVALUATE_CHAMPION, "cron": "0 3 * * *"})
    bad_cron = _submit(engine, "reschedule", {"job_id": EVALUATE_CHAMPION, "cron": "0 25 * * *"})
    no_job = _submit(engine, "pause", {"job_id": "nope"})
    bad_args = _submit(engine, "run_now", {"job_id": "mine", "kwargs": {"pool": "x"}})  # written around the check
    service.apply_pending_commands()
    with read_session(engine) as s:
        assert "mine takes no arguments" in repo.get_command(s, bad_args).outcome
        assert repo.get_command(s, ok).status == "applied"
        assert "0 25 * * *" in repo.get_command(s, bad_cron).outcome
        assert repo.get_command(s, bad_cron).status == "failed"
        assert "nope" in repo.get_command(s, no_job).outcome
    job = stored_jobs(engine)[0]
    assert job["trigger"].startswith("cron 0 3 * * *") and job["next_run_time"].hour == 3


def test_failed_and_missed_runs_are_recorded(engine, service) -> None:
    service.scheduler.add_job("tests.platform.test_scheduler:boom", "date", id="boom",
                              run_date=dt.datetime.now(dt.UTC))
    failed = _wait_for_run(engine, "boom", "failed")
    assert "the job blew up" in failed.error

    service.scheduler.add_job("tests.platform.test_scheduler:boom", "date", id="late",
                              run_date=dt.datetime.now(dt.UTC) - dt.timedelta(hours=2), misfire_grace_time=60)
    missed = _wait_for_run(engine, "late", "missed")
    assert "missed" in missed.error
    with read_session(engine) as s:
        assert {"job_failed", "job_missed"} <= {a.action for a in repo.list_audit(s)}


def test_a_job_that_cannot_be_restored_is_parked_not_dropped(engine, fast) -> None:
    with write_session(engine) as s:
        s.add(m.ScheduledJob(id="broken", next_run_time=time.time() + 3600, job_state=b"\x80\x04garbage"))
    svc = SchedulerService(engine, fast)
    svc.start()
    try:
        assert "broken" in svc.jobstore.parked
        assert {j["id"] for j in stored_jobs(engine)} >= {"broken", EVALUATE_CHAMPION}
        with read_session(engine) as s:
            assert any(a.action == "job_parked" and a.target == "broken" for a in repo.list_audit(s))
    finally:
        svc.stop()


def test_serve_heartbeats_and_applies_commands(engine, service) -> None:
    with read_session(engine) as s:
        before = repo.current_lease(s).heartbeat_at
    _submit(engine, "pause", {"job_id": EVALUATE_CHAMPION})
    service.serve(max_seconds=0.6)
    with read_session(engine) as s:
        assert repo.current_lease(s).heartbeat_at > before
        assert repo.pending_commands(s) == []


def test_next_fire_times_preview_in_utc() -> None:
    times = next_fire_times("30 2 * * *", 3, after=dt.datetime(2026, 3, 28, tzinfo=dt.UTC))
    assert [t.isoformat() for t in times] == [
        "2026-03-28T02:30:00+00:00", "2026-03-29T02:30:00+00:00", "2026-03-30T02:30:00+00:00"]


def test_approve_and_reject_commands_decide_gated_candidates(engine, settings, service, tiny_checkpoint) -> None:
    versions = [registry.register_version(engine, settings, tiny_checkpoint.checkpoint_dir, config={}, metrics={},
                                          data_fingerprint=None, parent_id=None) for _ in range(3)]
    registry.deploy(engine, settings, versions[0].id, actor="t")
    with write_session(engine) as s:
        for v in versions[1:]:
            repo.add_audit(s, actor="scheduler", action="gate_passed", target=v.label, details={"passed": True})
    ungated = _submit(engine, "approve", {"version": versions[0].id}, reason="x")
    approve = _submit(engine, "approve", {"version": versions[1].id}, reason="looks right")
    reject = _submit(engine, "reject", {"version": versions[2].id}, reason="worse at night")
    service.apply_pending_commands()
    with read_session(engine) as s:
        assert repo.get_command(s, ungated).status == "failed"
        assert repo.get_command(s, approve).status == "applied"
        assert repo.get_command(s, reject).status == "applied"
        assert repo.alias_holder(s).id == versions[1].id
        event = repo.alias_history(s)[0]
        from roadwork.platform.evaluation.gate import pending_candidates

        assert pending_candidates(s) == []
    assert event.reason == "looks right" and event.gate_result["approved_by"] == "test"

    # A second approve, and an approve of the rejected candidate, change nothing.
    again = _submit(engine, "approve", {"version": versions[1].id}, reason="double click")
    late = _submit(engine, "approve", {"version": versions[2].id}, reason="changed my mind")
    service.apply_pending_commands()
    with read_session(engine) as s:
        assert "no longer waiting" in repo.get_command(s, again).outcome
        assert "no longer waiting" in repo.get_command(s, late).outcome
        assert repo.alias_holder(s).id == versions[1].id and len(repo.alias_history(s)) == 2


@pytest.mark.parametrize(
    ("expr", "weekdays"),
    [("0 3 * * 1", {"Mon"}), ("0 3 * * 0", {"Sun"}), ("0 3 * * 7", {"Sun"}), ("0 3 * * 1-5", {"Mon", "Tue", "Wed",
     "Thu", "Fri"}), ("0 3 * * sat,sun", {"Sat", "Sun"}), ("0 3 * * 0-6/3", {"Sun", "Wed", "Sat"})],
)
def test_cron_weekdays_follow_crontab_numbering(expr: str, weekdays: set[str]) -> None:
    fires = next_fire_times(expr, 14, after=dt.datetime(2026, 11, 1, tzinfo=dt.UTC))
    assert {t.strftime("%a") for t in fires} == weekdays

"""Long jobs in child processes (timeout, log, cancel), events to a webhook, and the model-age countdown."""

from __future__ import annotations

import datetime as dt
import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from roadwork.clock import utcnow
from roadwork.settings import load_settings
from roadwork.db import repo
from roadwork.db.engine import read_session, write_session
from roadwork.platform.jobs import catalog
from roadwork.platform.jobs import runner as subprocess_jobs
from roadwork.platform.events import EventForwarder
from roadwork.platform.model_age import champion_age, model_age_task, reward_factor
from roadwork.platform.jobs.scheduler import SchedulerService
from roadwork.platform.jobs.runner import JobFailed, run_in_subprocess


def test_a_subprocess_job_returns_its_result_and_keeps_a_log(tmp_path) -> None:  # noqa: ANN001
    result = run_in_subprocess("quick", "tests.platform.jobfuncs:quick", logs_dir=tmp_path, timeout_s=60, x=21)
    assert result["double"] == 42
    assert "working" in open(result["log_path"]).read()


def test_a_hung_job_is_killed_at_its_timeout(tmp_path) -> None:  # noqa: ANN001
    started = time.monotonic()
    with pytest.raises(JobFailed, match="timed out after 2 s") as info:
        run_in_subprocess("sleepy", "tests.platform.jobfuncs:sleepy", logs_dir=tmp_path, timeout_s=2)
    assert time.monotonic() - started < 30
    assert "going to sleep" in open(info.value.log_path).read()
    assert subprocess_jobs.running_jobs() == []


def test_a_failing_job_reports_its_error_and_log(tmp_path) -> None:  # noqa: ANN001
    with pytest.raises(JobFailed, match="exited with status 1") as info:
        run_in_subprocess("broken", "tests.platform.jobfuncs:broken", logs_dir=tmp_path, timeout_s=60)
    assert "this job is broken" in open(info.value.log_path).read()


def test_cancel_kills_a_running_job(tmp_path) -> None:  # noqa: ANN001
    errors = []

    def run() -> None:
        try:
            run_in_subprocess("sleepy", "tests.platform.jobfuncs:sleepy", logs_dir=tmp_path, timeout_s=120)
        except JobFailed as exc:
            errors.append(exc)

    thread = threading.Thread(target=run)
    thread.start()
    deadline = time.monotonic() + 30
    while "sleepy" not in subprocess_jobs.running_jobs() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert subprocess_jobs.cancel("sleepy")
    thread.join(30)
    assert errors and "cancelled" in str(errors[0])
    assert not subprocess_jobs.cancel("sleepy")


def test_scheduler_records_a_killed_job_as_failed_and_keeps_going(engine, clean_env, home) -> None:
    clean_env.setenv("ROADWORK_SCHEDULER__TIMEOUTS_S", json.dumps({"mine": 1}))
    settings = load_settings()
    service = SchedulerService(engine, settings)
    service.start()
    try:
        # a sleeper under the mine job's timeout, as the catalog resolves it with the settings' override
        service.scheduler.add_job("tests.platform.test_jobs:sleepy_mine", "date", id="hung",
                                  run_date=dt.datetime.now(dt.UTC))
        deadline = time.monotonic() + 60
        runs = []
        while time.monotonic() < deadline:
            with read_session(engine) as s:
                runs = [r for r in repo.list_job_runs(s, job_id="hung") if r.status == "failed"]
            if runs:
                break
            time.sleep(0.2)
        assert runs and "timed out" in runs[0].error and runs[0].log_path
        assert service.scheduler.running and catalog.JOBS["mine"].scheduled
    finally:
        for job_id in subprocess_jobs.running_jobs():
            subprocess_jobs.cancel(job_id)
        service.stop()


def sleepy_mine() -> dict:
    settings = load_settings()
    return run_in_subprocess("hung", "tests.platform.jobfuncs:sleepy", logs_dir=settings.logs_dir,
                             timeout_s=catalog.timeout_s(settings, "mine"), seconds=60)


class _Hook(BaseHTTPRequestHandler):
    received: list = []
    fail_next = 0

    def do_POST(self) -> None:  # noqa: N802
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        if _Hook.fail_next:
            _Hook.fail_next -= 1
            self.send_response(500)
        else:
            _Hook.received.append(body)
            self.send_response(200)
        self.end_headers()

    def log_message(self, *args) -> None:  # noqa: ANN002
        pass


def test_notable_events_reach_the_webhook_once(engine) -> None:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Hook)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    _Hook.received.clear()
    try:
        with write_session(engine) as s:
            repo.add_audit(s, actor="x", action="deploy", target="old")  # before the forwarder: not replayed
        forwarder = EventForwarder(engine, f"http://127.0.0.1:{server.server_port}/hook", 5)
        with write_session(engine) as s:
            repo.add_audit(s, actor="scheduler", action="job_failed", target="train", reason="OOM")
            repo.add_audit(s, actor="cli", action="register", target="m:0.2.0")  # not notable
            repo.add_audit(s, actor="ops", action="rollback", target="m:0.1.0", reason="rain regression")
        _Hook.fail_next = 1
        assert forwarder.forward() == 0  # webhook down: nothing lost
        assert forwarder.forward() == 2
        assert forwarder.forward() == 0
        texts = [b["text"] for b in _Hook.received]
        assert texts == ["[roadwork] job_failed train by scheduler: OOM",
                         "[roadwork] rollback m:0.1.0 by ops: rain regression"]
    finally:
        server.shutdown()


def test_reward_factor_follows_the_decay_window() -> None:
    assert [reward_factor(d, 45, 90) for d in (0, 45, 67.5, 90, 120)] == [1.0, 1.0, 0.5, 0.0, 0.0]


def _champion(engine) -> repo.Version:  # noqa: ANN001
    with write_session(engine) as s:
        v = repo.create_version(s, name="m", version="0.1.0", artifact_sha256="a" * 64, artifact_path="/x",
                                config={}, metrics={}, parent_id=None, data_fingerprint=None, code_revision=None,
                                hard_negative_set_id=None, created_by="t")
        repo.move_alias(s, alias="champion", to_version_id=v.id, action="deploy", actor="t")
    return v


def test_model_age_asks_for_training_before_the_decay_once(engine, settings) -> None:
    _champion(engine)
    with read_session(engine) as s:
        submitted = repo.alias_history(s)[0].created_at
    early = model_age_task(now=submitted + dt.timedelta(days=10))
    assert early["retrain_requested"] is False and early["reward_factor"] == 1.0
    due = model_age_task(now=submitted + dt.timedelta(days=39))  # 45 - 7 = day 38
    assert due["retrain_requested"] is True
    again = model_age_task(now=submitted + dt.timedelta(days=40))
    assert again["retrain_requested"] is False  # already queued
    with read_session(engine) as s:
        commands = repo.pending_commands(s)
    assert [(c.kind, c.payload) for c in commands] == [("run_now", {"job_id": "train"})]
    age = champion_age(engine, settings, now=submitted + dt.timedelta(days=60))
    assert age.reward_factor == pytest.approx(1 - 15 / 45) and age.days_until_decay == pytest.approx(-15)
    assert utcnow() >= submitted

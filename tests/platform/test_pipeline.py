"""The scheduler's train pipeline under `deploy.format: stock`: train -> distill -> evaluate -> gate -> deploy,
through the real scheduler (APScheduler, the job's child process, SQLite), on tiny data."""

from __future__ import annotations

import json
import time

import pytest
import yaml

from roadwork.db import repo
from roadwork.db.engine import read_session, write_session
from roadwork.platform.evaluation import gate
from roadwork.platform.jobs import runner
from roadwork.platform.jobs.scheduler import SchedulerService
from roadwork.platform.registry import publish
from roadwork.settings import load_settings
from tests.conftest import tiny_config
from tests.helpers import DEPLOY_FORMAT_VAR

STEPS = ["train", "distill", "evaluate", "gate", "deploy"]


@pytest.fixture
def stock_home(clean_env, home, synth_data):
    """A home whose synthetic dataset is the tests' one, deploying stock students, any candidate passing the
    champion checks (their judgement is tested in test_gate.py), the student-gap check loose, distillation short."""
    env = {DEPLOY_FORMAT_VAR: "stock", "ROADWORK_SCHEDULER__COMMAND_POLL_S": "0.2",
           "ROADWORK_SCHEDULER__HEARTBEAT_S": "0.5", "ROADWORK_GATE__POLICY": "auto",
           "ROADWORK_GATE__REPLAY_CHALLENGES": "40", "ROADWORK_GATE__MIN_CELL_N": "10",
           "ROADWORK_GATE__MIN_MCC_GAIN": "-2", "ROADWORK_GATE__MIN_REWARD_GAIN": "-2",
           "ROADWORK_GATE__MAX_STUDENT_GAP": "2", "ROADWORK_DISTILL__EPOCHS": "1",
           "ROADWORK_DISTILL__RENDER_COPIES": "0", "ROADWORK_DISTILL__IMAGE_SIZE": "64"}
    for key, value in env.items():  # the job's child process inherits them
        clean_env.setenv(key, value)
    settings = load_settings()
    settings.datasets_dir.mkdir(parents=True, exist_ok=True)
    (settings.datasets_dir / "synth").symlink_to(synth_data, target_is_directory=True)
    config = home / "train.yaml"
    config.write_text(yaml.safe_dump(tiny_config(epochs=1).to_dict()))
    return settings, config


def _pipeline_runs(engine, deadline_s: float = 900) -> dict[str, repo.JobRun]:
    """The newest finished run of each step, once the train job's own run (it ends after its steps) finished."""
    deadline = time.monotonic() + deadline_s
    while time.monotonic() < deadline:
        with read_session(engine) as s:
            runs = repo.list_job_runs(s)
        finished = {}
        for run in runs:  # newest first
            if run.status in ("succeeded", "failed"):
                finished.setdefault(run.job_id, run)
        if "train" in finished:
            return finished
        time.sleep(0.5)
    raise AssertionError(f"the pipeline did not finish: {runs}")


@pytest.mark.slow
def test_the_train_job_distils_gates_and_deploys_a_student_in_the_stock_format(engine, stock_home) -> None:
    settings, config = stock_home
    service = SchedulerService(engine, settings)
    service.start()
    try:
        with write_session(engine) as s:
            repo.submit_command(s, kind="run_now", payload={"job_id": "train", "kwargs": {"config": str(config)}},
                                requested_by="test")
        assert service.apply_pending_commands() == 1
        runs = _pipeline_runs(engine)
    finally:
        for job_id in runner.running_jobs():
            runner.cancel(job_id)
        service.stop()

    assert {k: runs[k].status for k in STEPS if k in runs} == dict.fromkeys(STEPS, "succeeded"), runs
    assert [runs[k].trigger for k in STEPS[1:]] == ["pipeline"] * 4
    with read_session(engine) as s:
        teacher, student = sorted(repo.list_versions(s), key=lambda v: v.id)
        champion = repo.alias_holder(s)
        event = gate.latest_gate_event(s, student.id)
    distilled = runs["distill"].result
    assert distilled["version"] == student.label and distilled["teacher"] == teacher.label
    assert student.config["student"]["teacher_id"] == teacher.id and student.parent_id == teacher.id
    assert runs["train"].result["version"] == teacher.label
    assert runs["train"].result["student"]["version"] == student.label

    # The student is what was gated (against its teacher, on the gate's replay) and deployed.
    assert runs["gate"].result["candidate"] == student.label and runs["gate"].result["passed"]
    assert any(r.startswith("student replay MCC") and teacher.label in r for r in runs["gate"].result["reasons"])
    assert event.action == "gate_passed" and event.details["teacher_id"] == teacher.id
    assert runs["evaluate"].result["teacher"] == event.details["teacher_evaluation_id"]
    assert runs["deploy"].result["version"] == student.label and champion.id == student.id

    served = settings.publish_dirs[0] / publish.CURRENT
    card = json.loads((served / "model_card.json").read_text())
    assert card["version"] == student.version
    stock = json.loads((served / "config.json").read_text())
    assert stock["architectures"] == ["Dinov2ForImageClassification"]  # distill.student's default kind
    assert "auto_map" not in stock  # a stock architecture: the miner needs no code of ours

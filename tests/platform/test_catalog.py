"""The job catalog: one declaration per job, read by the scheduler, the runner, the store and the settings."""

from __future__ import annotations

import inspect
import json

import pytest
from apscheduler.util import ref_to_obj
from sqlalchemy import select, update

from roadwork.db import models as m
from roadwork.db.engine import write_session
from roadwork.platform.jobs import catalog
from roadwork.platform.jobs.scheduler import SchedulerService
from roadwork.platform.jobs.store import stored_jobs
from roadwork.settings import SettingsError, load_settings


@pytest.mark.parametrize("spec", catalog.JOBS.values(), ids=list(catalog.JOBS))
def test_every_job_function_imports_with_its_declared_arguments(spec: catalog.JobSpec) -> None:
    func = ref_to_obj(spec.func)
    assert func.__name__ == f"{spec.id}_job"
    params = inspect.signature(func).parameters
    assert list(params) == [a.name for a in spec.args]
    for arg in spec.args:
        default = params[arg.name].default
        assert (default is inspect.Parameter.empty) if arg.required else default == arg.default
        assert params[arg.name].annotation in (arg.type, arg.type.__name__)
    assert callable(ref_to_obj(spec.work))  # what runs in the child (or the thread) exists too


def test_defaults_come_from_the_catalog_and_settings_only_override(clean_env, home) -> None:  # noqa: ANN001
    settings = load_settings()
    assert settings.scheduler.crons == {} and settings.scheduler.timeouts_s == {}
    for job_id, spec in catalog.JOBS.items():
        if spec.scheduled:
            assert catalog.cron(settings, job_id) == spec.cron
        assert catalog.timeout_s(settings, job_id) == spec.timeout_s
    assert catalog.timeout_s(settings, "train") == 6 * 3600 and catalog.timeout_s(settings, "leaderboard") is None

    clean_env.setenv("ROADWORK_SCHEDULER__CRONS", json.dumps({"mine": "5  1 * * *"}))
    clean_env.setenv("ROADWORK_SCHEDULER__TIMEOUTS_S", json.dumps({"evaluate": 60, "ab_test": 90}))
    settings = load_settings()
    assert catalog.cron(settings, "mine") == "5 1 * * *" and catalog.cron(settings, "train") == "0 3 * * 1"
    # the key written before the catalog still applies to the evaluating jobs; a job's own key wins
    assert catalog.timeout_s(settings, "evaluate_champion") == 60 and catalog.timeout_s(settings, "ab_test") == 90
    assert catalog.timeout_s(settings, "mine") == 3600


@pytest.mark.parametrize(
    ("yaml_text", "named"),
    [
        ("scheduler:\n  crons:\n    trian: '0 3 * * *'\n", "scheduler.crons.trian"),
        ("scheduler:\n  crons:\n    ab_test: '0 3 * * *'\n", "scheduler.crons.ab_test"),  # on demand only
        ("scheduler:\n  timeouts_s:\n    evaluate_champoin: 60\n", "scheduler.timeouts_s.evaluate_champoin"),
        ("scheduler:\n  timeouts_s:\n    leaderboard: 60\n", "leaderboard runs in the scheduler's thread"),
    ],
)
def test_an_override_of_no_job_is_refused_naming_it(clean_env, home, engine, yaml_text: str, named: str) -> None:  # noqa: ANN001
    (home / "roadwork.yaml").write_text(yaml_text)
    settings = load_settings()
    with pytest.raises(SettingsError, match="jobs: ab_test, distill, evaluate_champion") as info:
        catalog.check_overrides(settings.scheduler)
    assert named in str(info.value)
    with pytest.raises(SettingsError, match=named.replace(".", r"\.")):
        SchedulerService(engine, settings).start()  # refused before it takes the lease


def test_a_bad_cron_override_is_refused_at_load_naming_the_job(clean_env, home) -> None:  # noqa: ANN001
    (home / "roadwork.yaml").write_text("scheduler:\n  crons:\n    mine: '0 25 * * *'\n")
    with pytest.raises(SettingsError, match=r"scheduler\.crons.*mine: invalid cron expression '0 25 \* \* \*'"):
        load_settings()


def test_run_arguments_are_checked_against_the_catalog() -> None:
    assert catalog.check_kwargs("train", {"config": "configs/tiny.yaml"}) == {"config": "configs/tiny.yaml"}
    assert catalog.check_kwargs("ab_test", {"test_id": 3}) == {"test_id": 3}
    with pytest.raises(ValueError, match="train takes config; not epochs"):
        catalog.check_kwargs("train", {"epochs": 3})
    with pytest.raises(ValueError, match="mine takes no arguments"):
        catalog.check_kwargs("mine", {"pool": "x"})
    with pytest.raises(ValueError, match="ab_test needs test_id"):
        catalog.check_kwargs("ab_test", {})
    with pytest.raises(ValueError, match="test_id must be of type int"):
        catalog.check_kwargs("ab_test", {"test_id": True})
    with pytest.raises(LookupError, match="no job 'nope'"):
        catalog.check_kwargs("nope", {})


def test_the_scheduler_registers_the_catalog_and_restores_old_function_references(clean_env, engine) -> None:  # noqa: ANN001
    clean_env.setenv("ROADWORK_SCHEDULER__CRONS", json.dumps({"mine": "5 1 * * *"}))
    settings = load_settings()
    service = SchedulerService(engine, settings)
    service.start()
    service.stop()
    jobs = {j["id"]: j for j in stored_jobs(engine)}
    assert set(jobs) == {job_id for job_id, spec in catalog.JOBS.items() if spec.scheduled}
    assert jobs["mine"]["trigger"].startswith("cron 5 1 * * *")
    assert all(j["func"] == catalog.JOBS[j["id"]].func for j in jobs.values())

    # A database written before the catalog names `roadwork.platform.jobs:mine` (the module before the layout).
    with write_session(engine) as session:
        state = json.loads(session.scalar(select(m.ScheduledJob.job_state).where(m.ScheduledJob.id == "mine")))
        state["func"] = "roadwork.platform.jobs:mine"
        session.execute(update(m.ScheduledJob).where(m.ScheduledJob.id == "mine")
                        .values(job_state=json.dumps(state).encode()))
    again = SchedulerService(engine, settings)
    again.start()
    try:
        assert "mine" not in again.jobstore.parked
        assert again.scheduler.get_job("mine").func_ref == "roadwork.platform.jobs.functions:mine_job"
    finally:
        again.stop()

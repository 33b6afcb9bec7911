"""The scheduler's entry points: one module-level function `<id>_job` per job of the catalog.

Each has the job's arguments (primitive, as the catalog declares them) and hands its work to `runner.run_job`,
which runs it as the catalog says: in a child process with a timeout, a log file and a cancel path, or in the
scheduler's thread pool. A job reads the settings of the process it runs in (the scheduler passes `--settings`
on through `ROADWORK_SETTINGS`) and returns a small JSON-able dict that lands in `job_runs.result`.
"""

from __future__ import annotations

from typing import Any

from roadwork.platform.jobs.runner import JobFailed, run_job

EVALUATE_CHAMPION = "evaluate_champion"


def evaluate_champion_job() -> dict[str, Any]:
    """The champion on its validation split and on a fresh validator-style replay."""
    return run_job(EVALUATE_CHAMPION)


def train_job(config: str = "") -> dict[str, Any]:
    """Train (preset file `config`, default the embedded tiny preset), distil under deploy.format stock, then
    evaluate, gate, deploy."""
    return run_job("train", config=config)


def distill_job(teacher: str = "", student: str = "dinov2") -> dict[str, Any]:
    """Distil a teacher version into a stock-architecture student and register it."""
    return run_job("distill", teacher=teacher, student=student)


def mine_job() -> dict[str, Any]:
    """Mine hard negatives with the champion."""
    return run_job("mine")


def pseudo_label_job(pool: str = "") -> dict[str, Any]:
    """SAM 3 masks for the segmentation loss."""
    return run_job("pseudo_label", pool=pool)


def ab_test_job(test_id: int) -> dict[str, Any]:
    """Run an A/B test on a shared replay. A child killed at its timeout cannot mark its test failed: we do."""
    try:
        return run_job("ab_test", test_id=test_id)
    except JobFailed as exc:
        from roadwork.db.engine import get_engine
        from roadwork.platform.ab.service import mark_failed
        from roadwork.settings import load_settings

        mark_failed(get_engine(load_settings().db_url), test_id, error=str(exc), actor="scheduler")
        raise


def leaderboard_job() -> dict[str, Any]:
    """Poll the standings, store a snapshot, raise alerts."""
    return run_job("leaderboard")


def model_age_job() -> dict[str, Any]:
    """Count down the reward-decay window; ask for a training run before it closes."""
    return run_job("model_age")

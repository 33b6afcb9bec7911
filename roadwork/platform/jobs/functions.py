"""Scheduled jobs: importable module-level functions with primitive arguments and stable ids.

A job reads the settings of the process it runs in (the scheduler passes `--settings` on through
`ROADWORK_SETTINGS`). Long jobs (train, evaluate, mine, pseudo-label, A/B tests) run their work in a child
process with a timeout, a log file and a cancel path (`subprocess_jobs`); short ones (standings, model age)
run in the scheduler's thread pool. Each returns a small JSON-able dict that lands in `job_runs.result`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from roadwork.settings import load_settings
from roadwork.platform.jobs.runner import run_in_subprocess

EVALUATE_CHAMPION = "evaluate_champion"


def _child(job_id: str, target: str, timeout_key: str, **kwargs: Any) -> dict[str, Any]:
    settings = load_settings()
    return run_in_subprocess(job_id, target, logs_dir=settings.logs_dir,
                             timeout_s=settings.scheduler.timeouts_s[timeout_key], **kwargs)


def evaluate_champion() -> dict[str, Any]:
    """The champion on its validation split and on a fresh validator-style replay."""
    return _child(EVALUATE_CHAMPION, "roadwork.platform.jobs.tasks:evaluate_champion_task", "evaluate")


def train(config: str = "") -> dict[str, Any]:
    """Train a candidate (preset file `config`, default the embedded tiny preset), then evaluate, gate, deploy."""
    return _child("train", "roadwork.platform.jobs.tasks:train_task", "train", config=config)


def mine() -> dict[str, Any]:
    """Mine hard negatives with the champion."""
    return _child("mine", "roadwork.platform.mining:mine_job", "mine")


def pseudo_label(pool: str = "") -> dict[str, Any]:
    """SAM 3 masks for the segmentation loss."""
    return _child("pseudo_label", "roadwork.platform.pseudolabel:pseudo_label_job", "pseudo_label", pool=pool)


def ab_test(test_id: int) -> dict[str, Any]:
    """Run an A/B test on a shared replay. A child killed at its timeout cannot mark its test failed: we do."""
    from roadwork.platform.jobs.runner import JobFailed

    try:
        return _child("ab_test", "roadwork.platform.ab.service:ab_test_job", "evaluate", test_id=test_id)
    except JobFailed as exc:
        from roadwork.db.engine import get_engine
        from roadwork.platform.ab.service import mark_failed

        mark_failed(get_engine(load_settings().db_url), test_id, error=str(exc), actor="scheduler")
        raise


def leaderboard() -> dict[str, Any]:
    """Poll the standings, store a snapshot, raise alerts."""
    from roadwork.platform.standings import leaderboard_job

    return leaderboard_job()


def model_age() -> dict[str, Any]:
    """Count down the reward-decay window; ask for a training run before it closes."""
    from roadwork.platform.model_age import model_age_task

    return model_age_task()


@dataclass(frozen=True)
class JobSpec:
    func: str  # module:function
    description: str
    scheduled: bool  # registered with a cron (from settings.scheduler.crons); else on demand only


JOBS: dict[str, JobSpec] = {
    EVALUATE_CHAMPION: JobSpec(f"{__name__}:evaluate_champion", "Evaluate the champion (validation and replay)", True),
    "train": JobSpec(f"{__name__}:train", "Train a candidate, evaluate, gate and deploy", True),
    "mine": JobSpec(f"{__name__}:mine", "Mine hard negatives with the champion", True),
    "leaderboard": JobSpec(f"{__name__}:leaderboard", "Poll the standings", True),
    "model_age": JobSpec(f"{__name__}:model_age", "Reward-decay countdown", True),
    "pseudo_label": JobSpec(f"{__name__}:pseudo_label", "SAM 3 pseudo-labels", False),
    "ab_test": JobSpec(f"{__name__}:ab_test", "Run an A/B test", False),
}

"""The reward-decay countdown of the champion (the announced, unenforced model-age rule of COMPETITION.md).

Full reward for `full_reward_days` after a submission, then a linear decay to zero at `zero_reward_days`; a new
submission resets it. A deploy or a rollback publishes a model card with a new submission time, so the clock
starts at the champion's latest alias move.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from sqlalchemy import Engine

from roadwork.clock import utcnow
from roadwork.settings import Settings
from roadwork.db import repo
from roadwork.db.engine import read_session, write_session


def reward_factor(age_days: float, full_days: int, zero_days: int) -> float:
    """1 until `full_days`, then linear to 0 at `zero_days` (pure)."""
    if age_days <= full_days:
        return 1.0
    if age_days >= zero_days:
        return 0.0
    return 1.0 - (age_days - full_days) / (zero_days - full_days)


@dataclass(frozen=True)
class ModelAge:
    version: str
    submitted_at: dt.datetime
    age_days: float
    reward_factor: float
    days_until_decay: float  # negative once the decay has started
    days_until_zero: float
    retrain_due: bool


def champion_age(engine: Engine, settings: Settings, now: dt.datetime | None = None) -> ModelAge | None:
    """The champion's age against the decay window, or None without a champion."""
    now = now or utcnow()
    with read_session(engine) as session:
        champion = repo.alias_holder(session)
        if champion is None:
            return None
        submitted = repo.alias_history(session, limit=1)[0].created_at
    cfg = settings.model_age
    age = (now - submitted).total_seconds() / 86400
    return ModelAge(
        version=champion.label,
        submitted_at=submitted,
        age_days=age,
        reward_factor=reward_factor(age, cfg.full_reward_days, cfg.zero_reward_days),
        days_until_decay=cfg.full_reward_days - age,
        days_until_zero=cfg.zero_reward_days - age,
        retrain_due=age >= cfg.full_reward_days - cfg.retrain_days_before,
    )


def model_age_task(now: dt.datetime | None = None) -> dict:
    """Scheduled check: when retraining is due and none has run or been asked for since the submission,
    ask the scheduler (through the commands table) to run the train job now."""
    from roadwork.settings import load_settings
    from roadwork.db.engine import get_engine

    settings = load_settings()
    engine = get_engine(settings.db_url)
    age = champion_age(engine, settings, now)
    if age is None:
        return {"skipped": "no champion yet"}
    summary = {"version": age.version, "age_days": round(age.age_days, 2), "reward_factor": round(age.reward_factor, 3),
               "days_until_decay": round(age.days_until_decay, 2), "retrain_requested": False}
    if not age.retrain_due:
        return summary
    with write_session(engine) as session:
        recent_train = [r for r in repo.list_job_runs(session, job_id="train", limit=20)
                        if r.created_at >= age.submitted_at and r.status != "failed"]
        queued = [c for c in repo.pending_commands(session)
                  if c.kind == "run_now" and c.payload.get("job_id") == "train"]
        if not recent_train and not queued:
            repo.submit_command(session, kind="run_now", payload={"job_id": "train"}, requested_by="model_age",
                                reason=f"champion {age.version} is {age.age_days:.1f} days old; reward decays "
                                f"from day {settings.model_age.full_reward_days}")
            repo.add_audit(session, actor="model_age", action="retrain_scheduled", target=age.version,
                           reason=f"{age.days_until_decay:.1f} days until the reward starts to decay")
            summary["retrain_requested"] = True
    return summary

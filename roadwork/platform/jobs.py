"""Scheduled jobs: importable module-level functions with primitive arguments.

A job reads the settings of the process it runs in (the scheduler passes `--settings` on through
`ROADWORK_SETTINGS`), does its work through the platform services and returns a small JSON-able dict that
lands in `job_runs.result`.
"""

from __future__ import annotations

from typing import Any

from roadwork.config import load_settings
from roadwork.db import repo
from roadwork.db.engine import get_engine, read_session

# Job id -> (function reference, description). The scheduler registers these on first start.
EVALUATE_CHAMPION = "evaluate_champion"


REPLAY_CHALLENGES = 500


def evaluate_champion() -> dict[str, Any]:
    """Evaluate the current champion on its validation split and on a fresh validator-style replay.

    The replay's seed is the day number, so each day sees new challenges and any run can be reproduced."""
    import datetime as dt

    from roadwork.platform.evaluation import evaluate_version
    from roadwork.platform.replay_evaluation import evaluate_replay

    settings = load_settings()
    engine = get_engine(settings.db_url)
    with read_session(engine) as session:
        champion = repo.alias_holder(session)
    if champion is None:
        return {"skipped": "no champion yet"}
    evaluation = evaluate_version(engine, settings, champion.id)
    seed = dt.date.today().toordinal()
    replay = evaluate_replay(engine, settings, champion.id, n=REPLAY_CHALLENGES, seed=seed)
    return {"version": champion.label, "evaluation_id": evaluation.id, "mcc": round(evaluation.mcc, 4),
            "accuracy": round(evaluation.accuracy, 4), "n": evaluation.n,
            "replay_evaluation_id": replay.id, "replay_mcc": round(replay.mcc, 4), "replay_seed": seed}


JOBS: dict[str, tuple[str, str]] = {
    EVALUATE_CHAMPION: (f"{__name__}:evaluate_champion", "Evaluate the champion (validation split and replay)"),
}

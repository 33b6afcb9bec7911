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


def evaluate_champion() -> dict[str, Any]:
    """Evaluate the current champion on its validation split and store the result."""
    from roadwork.platform.evaluation import evaluate_version

    settings = load_settings()
    engine = get_engine(settings.db_url)
    with read_session(engine) as session:
        champion = repo.alias_holder(session)
    if champion is None:
        return {"skipped": "no champion yet"}
    evaluation = evaluate_version(engine, settings, champion.id)
    return {"version": champion.label, "evaluation_id": evaluation.id, "mcc": round(evaluation.mcc, 4),
            "accuracy": round(evaluation.accuracy, 4), "n": evaluation.n}


JOBS: dict[str, tuple[str, str]] = {
    EVALUATE_CHAMPION: (f"{__name__}:evaluate_champion", "Evaluate the champion on the validation split"),
}

"""The scheduled leaderboard job: poll, place us among the miners, raise alerts into the audit feed."""

from __future__ import annotations

from typing import Any

from roadwork.db import repo
from roadwork.db.engine import get_engine, read_session, write_session
from roadwork.platform.standings.analysis import (
    check_alerts,
    derive_standing,
    stale_standing,
)
from roadwork.platform.standings.store import latest_snapshot, poll_standings
from roadwork.settings import load_settings

ACTOR = "leaderboard"


def leaderboard_job() -> dict[str, Any]:
    """Poll the configured source, store a snapshot, write each alert as an audit event (actor `leaderboard`,
    action `alert`, target = the alert kind) and return a JSON-able summary for `job_runs.result`."""
    settings = load_settings()
    if settings.leaderboard.source == "none":
        return {"skipped": "leaderboard.source is none"}
    engine = get_engine(settings.db_url)
    with read_session(engine) as session:
        last_good = latest_snapshot(session)
    previous = derive_standing(last_good.rows, settings.uid) if last_good is not None else None

    result = poll_standings(engine, settings)
    if result.stale:
        current = stale_standing(previous, settings.uid, result.error)
    else:
        current = derive_standing(result.rows, settings.uid)
    alerts = check_alerts(previous, current, settings)
    if alerts:
        with write_session(engine) as session:
            for alert in alerts:
                repo.add_audit(session, actor=ACTOR, action="alert", target=alert.kind, reason=alert.message,
                               details={**alert.details, "snapshot_id": result.snapshot_id})
    return {
        "snapshot_id": result.snapshot_id,
        "source": result.source,
        "stale": result.stale,
        "error": result.error,
        "rows": len(result.rows),
        "skipped": result.skipped,
        "block": result.block,
        "uid": settings.uid,
        "rank": current.rank,
        "miners": current.miners,
        "percentile": None if current.percentile is None else round(current.percentile, 4),
        "incentive": current.incentive,
        "alerts": [alert.kind for alert in alerts],
    }

"""A registry seeded for the operations pages: versions, job runs with logs, the built-in schedules, an A/B test
with a result, a hard-negative set over a small synthetic pool, and leaderboard snapshots (two good, one stale).

Built once per test session into a template home (`seed`), then its database is copied per test.
"""

from __future__ import annotations

import datetime as dt
import importlib
import importlib.util
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from sqlalchemy import Engine, update

from roadwork.clock import utcnow
from roadwork.settings import Settings
from roadwork.db import models as m
from roadwork.db import repo
from roadwork.db.engine import make_engine, write_session

OUR_UID = 3
LOG_LINES = 250  # more than the 200 the page shows
STALE_ERROR_PART = "cannot read"


@dataclass(frozen=True)
class OpsSeed:
    home: Path  # the template home; its roadwork.db is what tests copy
    version_ids: dict[str, int]
    runs: dict[str, int]  # "succeeded" | "failed" | "started" -> run id
    failed_log: Path
    ab_test_id: int
    set_id: int
    pool: Path
    pool_ids: tuple[str, ...]  # item ids whose records are in the pool
    missing_id: str  # an item id that is not
    good_taken_at: dt.datetime  # UTC, of the newest good snapshot
    stale_taken_at: dt.datetime


def _versions(s, now: dt.datetime) -> dict[str, int]:  # noqa: ANN001 - Session
    ids: dict[str, int] = {}
    parent = None
    for i, version in enumerate(["0.1.0", "0.2.0", "0.3.0"]):
        v = repo.create_version(s, name="roadwork-ops", version=version, artifact_sha256=f"{i:064x}",
                                artifact_path=f"/artifacts/{version}", config={}, metrics={"val_mcc": 0.7 + i / 20},
                                parent_id=parent, created_by="test", created_at=now - dt.timedelta(days=9 - 3 * i))
        ids[version] = parent = v.id
        repo.add_evaluation(s, version_id=v.id, dataset="validation:fp", n=400, mcc=0.7 + i / 20, accuracy=0.9,
                            metrics={})
    repo.move_alias(s, alias=repo.CHAMPION, to_version_id=ids["0.2.0"], action="deploy", actor="cli", reason="first")
    return ids


def _runs(s, now: dt.datetime, logs: Path) -> tuple[dict[str, int], Path]:  # noqa: ANN001 - Session
    logs.mkdir(parents=True, exist_ok=True)
    ok_log, failed_log = logs / "train-ok.log", logs / "evaluate_champion-failed.log"
    ok_log.write_text("# train started\nepoch 1 mcc 0.71\ndone\n")
    lines = [f"line {i:03d}" for i in range(LOG_LINES - 1)] + ["RuntimeError: replay set missing"]
    failed_log.write_text("\n".join(lines) + "\n")
    hours = dt.timedelta(hours=1)
    ok = repo.record_job_run(s, job_id="train", status="succeeded", trigger="schedule", scheduled_at=now - 3 * hours,
                             started_at=now - 3 * hours, finished_at=now - 2 * hours, duration_s=3600.0,
                             log_path=str(ok_log))
    failed = repo.record_job_run(s, job_id="evaluate_champion", status="failed", trigger="command",
                                 scheduled_at=now - hours, started_at=now - hours,
                                 finished_at=now - hours + dt.timedelta(seconds=42), duration_s=42.0,
                                 error="JobFailed: evaluate_champion exited with status 1", log_path=str(failed_log))
    started = repo.record_job_run(s, job_id="mine", status="started", trigger="schedule",
                                  scheduled_at=now - dt.timedelta(minutes=5), started_at=now - dt.timedelta(minutes=5))
    return {"succeeded": ok.id, "failed": failed.id, "started": started.id}, failed_log


def _ab_test(engine: Engine, ids: dict[str, int]) -> int:
    from roadwork.platform.ab.service import create_ab_test
    from roadwork.platform.ab.stats import paired_comparison

    test_id = create_ab_test(engine, version_a=ids["0.2.0"], version_b=ids["0.3.0"], sample_size=400, actor="test")
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 2, 400)
    a = np.where(rng.random(400) < 0.8, labels, 1 - labels) * 0.8 + 0.1  # right 80% of the time
    b = np.where(rng.random(400) < 0.9, labels, 1 - labels) * 0.8 + 0.1  # right 90% of the time
    result = paired_comparison(labels, a, b, n_boot=200).to_dict()
    with write_session(engine) as s:
        s.add(m.ABResult(test_id=test_id, n=result["n"], arm_a=result["arm_a"], arm_b=result["arm_b"],
                         diff=result["diff"], verdict=result["verdict"]))
        s.execute(update(m.ABTest).where(m.ABTest.id == test_id).values(status="done"))
    return test_id


def _hard_negatives(engine: Engine, pool_dir: Path, source_id: int) -> tuple[int, tuple[str, ...], str]:
    from roadwork.trainer.data.records import read_records
    from roadwork.trainer.data.synth import synthesize

    synthesize(pool_dir, 12)
    records, _ = read_records(pool_dir)
    chosen = records[:8]
    missing = "gone-from-the-pool-0001"
    items = [m.HardNegativeItem(record_id=r.id, label=r.label, score=0.9 - k / 20 if k < 4 else 0.5 + k / 100,
                                reason="confident_mistake" if k < 4 else "uncertain",
                                conditions={"weather": "Rain" if k % 2 else "Clear"})
             for k, r in enumerate(chosen)]
    items.append(m.HardNegativeItem(record_id=missing, label=0, score=0.51, reason="uncertain", conditions=None))
    with write_session(engine) as s:
        row = m.HardNegativeSet(name="roadwork-ops:0.2.0 on synth", source_version_id=source_id,
                                pool=str(pool_dir.resolve()), n_items=len(items), items=items)
        s.add(row)
        s.flush()
        return row.id, tuple(r.id for r in chosen), missing


def _standings(engine: Engine, settings: Settings, root: Path, now: dt.datetime) -> tuple[dt.datetime, dt.datetime]:
    from roadwork.platform.standings import BtcliSource, poll_standings

    def neurons(ours: float) -> list[dict]:
        rows = [{"uid": 0, "hotkey": "5Validator", "incentive": 0.0, "stake": 2500.0, "validator_permit": True}]
        for uid, incentive in [(1, 0.30), (2, 0.22), (4, 0.12), (5, 0.05), (6, 0.02), (7, 0.01)]:
            rows.append({"uid": uid, "hotkey": f"5Miner{uid}", "incentive": incentive, "emission": incentive / 2,
                         "trust": 0.9, "validator_permit": False})
        rows.append({"uid": OUR_UID, "hotkey": "5Ours", "incentive": ours, "emission": ours / 2, "trust": 0.95,
                     "validator_permit": False})
        return rows

    for hours, ours in [(3, 0.10), (2, 0.15), (1, 0.20)]:
        path = root / f"btcli-{hours}.json"
        path.write_text(json.dumps({"netuid": 72, "block": 5_000_000 - hours * 300, "neurons": neurons(ours)}))
        good = poll_standings(engine, settings, BtcliSource(path=path), now=now - dt.timedelta(hours=hours))
    missing = BtcliSource(path=root / "missing.json")
    stale = poll_standings(engine, settings, missing, now=now - dt.timedelta(minutes=10))
    assert stale.stale and STALE_ERROR_PART in stale.error, stale
    return good.taken_at, stale.taken_at


def _scheduled_jobs(engine: Engine, settings: Settings) -> None:
    from roadwork.platform.jobs.scheduler import SchedulerService

    service = SchedulerService(engine, settings)
    service.start()  # registers the built-in jobs in the job store, once
    service.stop()


def seed(home: Path, settings: Settings, users: dict[str, str]) -> OpsSeed:
    """Fill `<home>/roadwork.db` (already migrated) and add `users` (name -> role); `settings` point at `home`."""
    now = utcnow()
    engine = make_engine(settings.db_url)
    try:
        for username, role in users.items():
            create_user(engine, username, role)
        # The jobs first: a starting scheduler fails the runs a dead scheduler left `started` (the seeded ones too).
        _scheduled_jobs(engine, settings)
        with write_session(engine) as s:
            ids = _versions(s, now)
            runs, failed_log = _runs(s, now, home / "seed-logs")
        ab_test_id = _ab_test(engine, ids)
        set_id, pool_ids, missing = _hard_negatives(engine, home / "pool", ids["0.2.0"])
        good_at, stale_at = _standings(engine, settings, home, now)
    finally:
        engine.dispose()
    return OpsSeed(home, ids, runs, failed_log, ab_test_id, set_id, home / "pool", pool_ids, missing, good_at,
                   stale_at)


def create_user(engine: Engine, username: str, role: str) -> None:
    """Add a user through `roadwork.platform.users` when that module exists (writes re-check roles there)."""
    if importlib.util.find_spec("roadwork.platform.users") is None:
        return
    users = importlib.import_module("roadwork.platform.users")
    users.create_user(engine, username, f"{username}-passw0rd-long", role, users.local_actor("test"))

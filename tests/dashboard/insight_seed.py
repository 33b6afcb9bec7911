"""Seed data for the Overview and Models insights: versions with replay evaluations (condition cells, sweep,
calibration, validator score, TTA, ablation), a champion deployed days ago, standings snapshots (good, good,
then stale), alerts, failures and the scheduler's built-in jobs. Everything goes through `repo` or the platform
functions, except rows whose `created_at` must lie in the past (written as ORM rows with an explicit time)."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from sqlalchemy import Engine

from roadwork.clock import utcnow
from roadwork.settings import Settings
from roadwork.db import models as m
from roadwork.db import repo
from roadwork.db.engine import write_session
from tests.helpers import serve_champion
from roadwork.platform.standings import Fetched, MinerRow, StandingsError, poll_standings

OUR_UID = 7
CHAMPION_DAYS = 10  # the champion's deploy happened this many days before the seed's `now`
SWEEP_POINTS = 101


@dataclass(frozen=True)
class History:
    now: dt.datetime  # UTC, when the seed ran
    ids: dict[str, int]  # "0.1.0" -> version id
    champion: str
    hard_negative_set: str
    thresholds: dict[str, float]  # version -> calibrated threshold of its replay evaluation


def replay_metrics(mcc: float, threshold: float, *, tta: bool = False) -> dict:
    """Metrics shaped like `replay_evaluation.replay_metrics` stores them (a peaked sweep at `threshold`)."""
    ts = [i / (SWEEP_POINTS - 1) for i in range(SWEEP_POINTS)]
    base = {"n": 400, "accuracy": 0.5 + mcc / 2, "precision": 0.9, "recall": 0.8, "f1": 0.85, "auc": 0.95}
    metrics = {
        **base,
        "mcc": mcc,
        "mcc_ci_low": mcc - 0.05,
        "mcc_ci_high": mcc + 0.04,
        "before_calibration": {**base, "mcc": mcc - 0.03, "recall": 0.7},
        "calibration": {"kind": "piecewise_linear", "threshold": threshold},
        "sweep": {"best_threshold": threshold, "best_mcc": mcc + 0.01,
                  "thresholds": ts, "mcc": [mcc + 0.01 - 2 * (t - threshold) ** 2 for t in ts]},
        "validator_score": {"n": 400, "n_valid": 400, "final_score": mcc ** 3, "mean_reward": mcc ** 3 - 0.01,
                            "mcc_100": mcc, "accuracy_10": 0.9, "mcc": mcc, "accuracy": 0.5 + mcc / 2},
        "expected_reward": {"final_score": {"mean": mcc ** 3, "ci_low": mcc ** 3 - 0.05, "ci_high": mcc ** 3 + 0.05},
                            "mean_reward": {"mean": 0.5, "ci_low": 0.45, "ci_high": 0.55}, "n_orderings": 200},
    }
    if tta:
        metrics["tta"] = {"fit_on": 200, "measured_on": 200, "variants": [
            {"variant": "none", "n_views": 1, "mcc": mcc, "accuracy": 0.9, "ms_per_image": 1.0,
             "mcc_delta_vs_none": 0.0},
            {"variant": "flip", "n_views": 2, "mcc": mcc + 0.01, "accuracy": 0.91, "ms_per_image": 2.0,
             "mcc_delta_vs_none": 0.01},
        ]}
    return metrics


def cells(mcc: float, conditions: dict[str, list[str]]) -> list[repo.ConditionCell]:
    out = []
    for i, (condition, values) in enumerate(sorted(conditions.items())):
        for j, value in enumerate(values):
            v = mcc - 0.02 * i - 0.01 * j
            out.append(repo.ConditionCell(condition, value, 50 + 10 * j, v, 0.9, v - 0.1, v + 0.08))
    return out


REPLAY_CONDITIONS = {"level": ["0", "1", "2", "3"], "source": ["real", "t2i", "i2i"], "weather": ["Clear", "Rain"]}


def _version(session, version: str, i: int, parent: int | None, now: dt.datetime, **extra) -> int:  # noqa: ANN001, ANN003
    return repo.create_version(
        session, name="roadwork-ops", version=version, artifact_sha256=f"{i:064x}", artifact_path=f"/a/{version}",
        config={"model": {"backbone": "tiny"}}, metrics=extra.pop("metrics", {"val_mcc": 0.6 + i / 100}),
        parent_id=parent, data_fingerprint=f"fp{i}", code_revision=f"rev{i}", created_by="test",
        created_at=now - dt.timedelta(days=40) + dt.timedelta(minutes=i), **extra,
    ).id


def _deploy(session, version_id: int, when: dt.datetime) -> None:  # noqa: ANN001
    """`repo.move_alias` at time `when` in the past (alias events are immutable once written)."""
    current = session.get(m.Alias, repo.CHAMPION)
    event = m.AliasEvent(alias=repo.CHAMPION, action="deploy", from_version_id=current.version_id if current else None,
                         to_version_id=version_id, actor="test", reason="seeded", created_at=when)
    session.add(event)
    session.flush()
    if current is None:
        session.add(m.Alias(name=repo.CHAMPION, version_id=version_id, event_id=event.id, updated_at=when))
    else:
        current.version_id, current.event_id, current.updated_at = version_id, event.id, when
    session.flush()


def _audit(session, action: str, target: str, reason: str, when: dt.datetime, actor: str = "scheduler") -> None:  # noqa: ANN001
    session.add(m.AuditEvent(actor=actor, action=action, target=target, reason=reason, created_at=when))


def calibration_decision(applied: bool, fitted: float, before: float, after: float) -> dict:
    """The `calibration` entry training stores in a version's metrics (platform/evaluation/calibration_check)."""
    low, high = after - before - 0.015, after - before + 0.03
    return {"applied": applied, "fitted_threshold": fitted, "reason": "seeded decision", "rule": "seeded rule",
            "fit": {"n": 400, "seed": 1, "mcc_before": 0.70, "mcc_after": 0.74},
            "held_out": {"n": 400, "seed": 2, "mcc_before": before, "mcc_after": after, "mcc_diff": after - before,
                         "ci_low": low, "ci_high": high, "alpha": 0.05, "n_boot": 1000, "bootstrap_seed": 2}}


def seed_versions(session, now: dt.datetime) -> History:  # noqa: ANN001
    """0.1.0 -> 0.2.0 -> 0.3.0 (champion, deployed CHAMPION_DAYS ago) -> 0.4.0 (hard negatives, ablation)."""
    ids: dict[str, int] = {}
    ids["0.1.0"] = _version(session, "0.1.0", 1, None, now)
    ids["0.2.0"] = _version(session, "0.2.0", 2, ids["0.1.0"], now)
    ids["0.3.0"] = _version(session, "0.3.0", 3, ids["0.2.0"], now,
                            metrics={"val_mcc": 0.63, "calibration": calibration_decision(True, 0.61, 0.70, 0.73)})
    hard = m.HardNegativeSet(name="mined-0.3.0", source_version_id=ids["0.3.0"], pool="pool.parquet", n_items=42)
    session.add(hard)
    session.flush()
    ablation = [{"variant": "full", "mcc": 0.8}, {"variant": "no hard negatives", "mcc": 0.76}]
    ids["0.4.0"] = _version(session, "0.4.0", 4, ids["0.3.0"], now, hard_negative_set_id=hard.id,
                            metrics={"val_mcc": 0.81, "ablation": ablation,
                                     "calibration": calibration_decision(False, 0.66, 0.648, 0.624)})
    # 0.1.0: a validation evaluation only (the heatmap falls back to it), with one extra cell.
    repo.add_evaluation(session, version_id=ids["0.1.0"], dataset="validation:fp1", n=300, mcc=0.6, accuracy=0.8,
                        metrics={}, conditions=cells(0.6, {"weather": ["Clear", "Rain"], "daytime": ["Dark"]}))
    thresholds = {"0.2.0": 0.42, "0.3.0": 0.61, "0.4.0": 0.55}
    for version, mcc in (("0.2.0", 0.7), ("0.3.0", 0.75), ("0.4.0", 0.78)):
        repo.add_evaluation(session, version_id=ids[version], dataset="replay:n=400,seed=0", kind="replay", n=400,
                            mcc=mcc, accuracy=0.9, metrics=replay_metrics(mcc, thresholds[version],
                                                                          tta=version == "0.3.0"),
                            conditions=cells(mcc, REPLAY_CONDITIONS))
    # A newer validation evaluation of 0.2.0 does not replace its replay cells.
    repo.add_evaluation(session, version_id=ids["0.2.0"], dataset="validation:fp2", n=300, mcc=0.69, accuracy=0.85,
                        metrics={}, conditions=cells(0.69, {"scene": ["Highway"]}))
    for version, days in (("0.1.0", 30), ("0.2.0", 20), ("0.3.0", CHAMPION_DAYS)):
        _deploy(session, ids[version], now - dt.timedelta(days=days))
    return History(now, ids, "0.3.0", "mined-0.3.0", thresholds)


class _Snapshot:
    """A standings source that returns fixed rows (or fails)."""

    name = "json"

    def __init__(self, ours: dict | None = None, error: str | None = None) -> None:
        self.ours, self.error = ours, error

    def fetch(self) -> Fetched:
        if self.error:
            raise StandingsError(self.error)
        rows = [MinerRow(uid=0, incentive=0.0, validator_permit=True, trust=1.0)]
        rows += [MinerRow(uid=u, incentive=u / 100, emission=u / 10, trust=0.5) for u in range(1, 10) if u != OUR_UID]
        rows.append(MinerRow(uid=OUR_UID, hotkey="5Our", **self.ours))
        return Fetched(tuple(rows), block=1000)


def seed_standings(engine: Engine, settings: Settings, now: dt.datetime) -> None:
    """Two good snapshots (we climb from rank 3 to rank 2 of 9 miners), then a failed poll."""
    poll_standings(engine, settings, _Snapshot({"incentive": 0.07, "emission": 1.0, "trust": 0.5}),
                   now - dt.timedelta(hours=2))
    poll_standings(engine, settings, _Snapshot({"incentive": 0.085, "emission": 1.2, "trust": 0.6}),
                   now - dt.timedelta(hours=1))
    poll_standings(engine, settings, _Snapshot(error="HTTP 503 from the API"), now - dt.timedelta(minutes=10))


def seed_operations(session, now: dt.datetime) -> None:  # noqa: ANN001
    """Alerts (two in the last 24 h, one older) and failures (a failed and a missed run, a failed deploy)."""
    _audit(session, "alert", "rank_drop", "UID 7 fell from rank 2 to 9 of 9 miners", now - dt.timedelta(hours=1),
           actor="leaderboard")
    _audit(session, "alert", "stale", "standings poll failed: HTTP 503", now - dt.timedelta(minutes=10),
           actor="leaderboard")
    _audit(session, "alert", "uid_missing", "UID 7 is not in the latest snapshot", now - dt.timedelta(days=2),
           actor="leaderboard")
    failed_at = now - dt.timedelta(hours=3)
    repo.record_job_run(session, job_id="evaluate_champion", status="failed", scheduled_at=failed_at,
                        started_at=failed_at, finished_at=failed_at,
                        error="RuntimeError: replay set missing\nTraceback ...")
    _audit(session, "job_failed", "evaluate_champion", "RuntimeError: replay set missing",
           failed_at + dt.timedelta(seconds=1))  # the same failure, from the scheduler's listener
    repo.record_job_run(session, job_id="mine", status="missed", scheduled_at=now - dt.timedelta(hours=2),
                        error="missed its fire time by more than 300 s")
    repo.record_job_run(session, job_id="train", status="succeeded", scheduled_at=now - dt.timedelta(hours=4))
    _audit(session, "deploy_failed", "roadwork-ops:0.4.0", "publish failed: disk full",
           now - dt.timedelta(minutes=30), actor="cli")


def register_jobs(engine: Engine, settings: Settings) -> None:
    """Start and stop the scheduler once: it registers the built-in jobs with their next run times."""
    from roadwork.platform.jobs.scheduler import SchedulerService

    service = SchedulerService(engine, settings)
    service.start()
    service.stop()


def seed_history(engine: Engine, settings: Settings) -> History:
    now = utcnow()
    register_jobs(engine, settings)
    with write_session(engine) as session:
        history = seed_versions(session, now)
        seed_operations(session, now)
    seed_standings(engine, settings, now)
    serve_champion(engine)  # the seed moves the alias directly; publish it as a deploy would have
    return history


def seed_long_history(engine: Engine, n_versions: int = 200, n_cells: int = 40) -> None:
    """`n_versions` chained versions, each with a replay evaluation of `n_cells` cells; the champion is the one a
    quarter of the way in (older than the newest 30)."""
    now = utcnow()
    conditions = {f"c{i}": [f"v{j}" for j in range(5)] for i in range(n_cells // 5)}
    with write_session(engine) as session:
        parent = None
        ids = []
        for i in range(n_versions):
            parent = _version(session, f"1.{i}.0", i, parent, now)
            ids.append(parent)
            mcc = 0.5 + 0.4 * i / n_versions
            repo.add_evaluation(session, version_id=parent, dataset="replay:n=2000,seed=0", kind="replay", n=2000,
                                mcc=mcc, accuracy=0.9, metrics=replay_metrics(mcc, 0.5),
                                conditions=cells(mcc, conditions))
        _deploy(session, ids[n_versions // 4], now - dt.timedelta(days=3))
    serve_champion(engine)


# --- a teacher and its distilled students (the Models page's "Teacher and student") ------------------------------

SHARED_REPLAY = "replay:n=400,seed=0,data=fp1"
TEACHER_CELLS = {("level", "0"): 0.9, ("level", "3"): 0.6, ("weather", "Rain"): 0.7, ("daytime", "Dark"): 0.5}
STUDENT_CELLS = {("level", "0"): 0.85, ("level", "3"): 0.62, ("weather", "Rain"): 0.6}  # no daytime=Dark cell
DISTILL_METRICS = {  # what platform/distillation.py stores in a student's metrics
    "size": {"teacher": {"parameters": 632_076_802, "weights_mb": 2528.31},
             "student": {"parameters": 22_056_194, "weights_mb": 88.25}},
    "latency_ms": {"teacher": 410.5, "student": 12.25},
    "latency_setup": {"device": "cpu", "batch": 1, "runs": 5, "statistic": "median", "torch_threads": 4},
}


@dataclass(frozen=True)
class Distilled:
    teacher: int
    old_student: int  # distilled before size and latency were measured
    student: int  # the newest student, with size and latency
    other: int  # a version that is neither


def _replay(session, version_id: int, dataset: str, mcc: float, cell_mcc: dict[tuple[str, str], float]) -> None:  # noqa: ANN001
    n, seed = (int(part.split("=")[1]) for part in dataset.split(",")[:2] if "=" in part)
    repo.add_evaluation(session, version_id=version_id, dataset=dataset, kind="replay", n=n, mcc=mcc, accuracy=0.9,
                        metrics={"mcc": mcc, "replay": {"n": n, "seed": seed}},
                        conditions=[repo.ConditionCell(c, v, 40 + 10 * i, m, 0.9)
                                    for i, ((c, v), m) in enumerate(sorted(cell_mcc.items()))])


def seed_distillation(engine: Engine, name: str = "roadwork-ops") -> Distilled:
    """A teacher (0.1.0) with two students (0.2.0 unmeasured, 0.3.0 measured) all scored on `SHARED_REPLAY`, plus
    a replay each that the other lacks (never paired), and 0.4.0, neither teacher nor student."""
    now = utcnow()

    def version(session, v: str, i: int, parent: int | None, config: dict, metrics: dict) -> int:  # noqa: ANN001
        return repo.create_version(session, name=name, version=v, artifact_sha256=f"{i:064x}",
                                   artifact_path=f"/a/{v}", config=config, metrics=metrics, parent_id=parent,
                                   data_fingerprint="fp1", code_revision="rev", created_by="test",
                                   created_at=now - dt.timedelta(minutes=10 - i)).id

    with write_session(engine) as session:
        teacher = version(session, "0.1.0", 1, None, {"model": {"backbone": "tiny"}}, {"val_mcc": 0.8})

        def student(v: str, i: int, metrics: dict) -> int:
            info = {"kind": "dinov2", "teacher": f"{name}:0.1.0", "teacher_id": teacher, "threshold": 0.37,
                    "epochs": 3}
            return version(session, v, i, teacher, {"student": info, "distill": {"epochs": 3}}, metrics)

        old = student("0.2.0", 2, {"val_mcc": 0.6})
        new = student("0.3.0", 3, {"val_mcc": 0.7, "distill": DISTILL_METRICS})
        other = version(session, "0.4.0", 4, teacher, {"model": {"backbone": "tiny"}}, {"val_mcc": 0.81})
        _replay(session, teacher, SHARED_REPLAY, 0.8, TEACHER_CELLS)
        _replay(session, old, SHARED_REPLAY, 0.6, {k: v - 0.2 for k, v in STUDENT_CELLS.items()})
        _replay(session, new, SHARED_REPLAY, 0.74, STUDENT_CELLS)
        _replay(session, teacher, "replay:n=200,seed=9,data=fp1", 0.5, {("level", "0"): 0.1})  # newer, unshared
        _replay(session, new, "replay:n=100,seed=3,data=fp1", 0.1, {("level", "0"): 0.0})  # newer, unshared
    return Distilled(teacher, old, new, other)

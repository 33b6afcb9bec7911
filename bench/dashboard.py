"""Every dashboard page against a large registry: render time per page, cold (query caches cleared) and warm.

Seeds a fresh, migrated SQLite registry under a temporary home with bulk inserts (SQLAlchemy Core, one
transaction): 1,000 versions with configs and metrics like real ones, a validation and a replay evaluation per
version (200 condition cells and a threshold sweep per replay), a champion history of 50 moves, 400 standings
snapshots x 250 UIDs (100,000 rows, ours included), 5,000 job runs, a few hundred audit events and commands,
A/B tests, hard-negative sets and the scheduler's built-in jobs. Then it renders each page of the app's navigation
through `AppTest`, signed in as an operator, and prints the median time of `at.run()` per page:

- first: the page's first render in this process (imports of the page's modules included), once;
- cold: `st.cache_data` cleared before the run (every query runs), the median of `--repeat` runs;
- warm: a rerun right after (cached query results), the median of `--repeat` runs.

The goal: every page under 1.5 s cold and warm on two cores.

    python bench/dashboard.py            # the full seed: seeding takes seconds, rendering under a minute
    python bench/dashboard.py --quick    # a 10x smaller seed
    python bench/dashboard.py --home DIR # keep (or reuse) the seeded home, e.g. to profile a page
    python bench/dashboard.py --baseline main   # also render with the code of `main`, same seed; print ratios

With `--baseline REV` the seeded home is shared: the pages are rendered, in fresh processes and alternating, once
with the code of REV (checked out in a temporary git worktree, removed afterwards) and once with this tree's code,
`--rounds` times each; per page the median of the rounds is reported, with the ratio this tree / REV (below 1 is
faster).
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime as dt
import json
import os
import platform
import random
import re
import shutil
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

# The tree whose code renders the pages: this one, or a baseline's worktree (set by `--baseline` for its children).
ROOT = Path(os.environ.get("BENCH_CODE_ROOT") or Path(__file__).resolve().parents[1])
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

APP = ROOT / "roadwork" / "dashboard" / "app.py"
GOAL_S = 1.5
TIMEOUT_S = 120  # per AppTest run; a page slower than this is reported as failed
OUR_UID = 42
VALIDATORS = 10  # uids 0..9 hold a validator permit
OPERATOR = ("bench-operator", "bench-operator-password")
SWEEP_POINTS = 101  # as `replay_evaluation.CURVE_POINTS` stores it
JOB_IDS = ("evaluate_champion", "train", "mine", "leaderboard", "model_age")
STATUS_WEIGHTS = {"succeeded": 80, "failed": 8, "missed": 5, "skipped": 4, "cancelled": 3}


@dataclass(frozen=True)
class Sizes:
    versions: int = 1000
    cells_per_replay: int = 200
    alias_moves: int = 50
    snapshots: int = 400
    uids: int = 250
    stale_every: int = 50  # one failed poll after every this many good ones
    job_runs: int = 5000
    audit_events: int = 300  # besides the deploys, gate decisions and command requests
    commands: int = 200
    ab_tests: int = 5
    hard_negative_sets: int = 5
    items_per_set: int = 400
    log_files: int = 20  # the newest runs get a real log file

    def quick(self) -> Sizes:
        return dataclasses.replace(self, versions=100, cells_per_replay=20, alias_moves=10, snapshots=40, uids=25,
                                   job_runs=500, audit_events=30, commands=20, items_per_set=40, log_files=5)


# --- seeding -----------------------------------------------------------------------------------------------------


def _conditions(n: int) -> list[tuple[str, str]]:
    """`n` (condition, value) cells: the real conditions first, then numbered scene tags."""
    real = [("level", str(i)) for i in range(5)] + [("source", s) for s in ("real", "t2i", "i2i", "synthetic")]
    real += [("weather", w) for w in ("Clear", "Rain", "Snow", "Fog", "Overcast")]
    real += [("daytime", d) for d in ("Day", "Dusk", "Night")] + [("distortion", d) for d in ("none", "blur", "jpeg")]
    extra = [(f"scene_{i // 10}", f"tag{i % 10}") for i in range(max(0, n - len(real)))]
    return (real + extra)[:n]


def _config(i: int, rng: random.Random) -> dict:
    from roadwork.trainer.config import TrainConfig

    config = TrainConfig().model_dump(mode="json")
    config["name"] = f"candidate-{i}"
    config["data"]["path"] = f"/home/miner/.roadwork/datasets/streetvision-{i // 50}.parquet"
    config["model"]["backbone"] = "facebook/dinov3-vits16-pretrain-lvd1689m"
    config["optim"].update(seed=i, lr=rng.choice([1e-4, 2e-4, 5e-4]), epochs=rng.choice([10, 20, 30]))
    return config


def _training_metrics(mcc: float, rng: random.Random) -> dict:
    val = {"mcc": mcc, "accuracy": 0.5 + mcc / 2, "precision": 0.88, "recall": 0.84, "f1": 0.86, "auc": 0.95}
    history = [{"epoch": e + 1, "loss": 0.7 / (e + 1), "val_mcc": mcc - 0.2 / (e + 1)} for e in range(20)]
    return {**{f"val_{k}": v for k, v in val.items()}, "best_epoch": 17, "history": history,
            "calibration_threshold": rng.uniform(0.35, 0.65), "n_train": 40_000, "n_val": 10_000,
            "train_seconds": rng.uniform(600, 7200), "skipped_rows": rng.randint(0, 20)}


def _replay_metrics(mcc: float, threshold: float) -> dict:
    """Shaped like `replay_evaluation.replay_metrics`."""
    ts = [i / (SWEEP_POINTS - 1) for i in range(SWEEP_POINTS)]
    base = {"n": 2000, "accuracy": 0.5 + mcc / 2, "precision": 0.9, "recall": 0.8, "f1": 0.85, "auc": 0.95,
            "tp": 800, "fp": 90, "tn": 900, "fn": 210}
    return {
        **base, "mcc": mcc, "mcc_ci_low": mcc - 0.04, "mcc_ci_high": mcc + 0.04,
        "before_calibration": {**base, "mcc": mcc - 0.03},
        "calibration": {"kind": "piecewise_linear", "threshold": threshold},
        "sweep": {"best_threshold": threshold, "best_mcc": mcc + 0.01, "thresholds": ts,
                  "mcc": [mcc + 0.01 - 2 * (t - threshold) ** 2 for t in ts]},
        "validator_score": {"n": 2000, "n_valid": 2000, "final_score": mcc ** 3, "mean_reward": mcc ** 3 - 0.01,
                            "mcc_100": mcc, "accuracy_10": 0.9, "mcc": mcc, "accuracy": 0.5 + mcc / 2},
        "expected_reward": {"final_score": {"mean": mcc ** 3, "ci_low": mcc ** 3 - 0.05, "ci_high": mcc ** 3 + 0.05},
                            "mean_reward": {"mean": 0.5, "ci_low": 0.45, "ci_high": 0.55}, "n_orderings": 200},
    }


def _versions_and_evaluations(sizes: Sizes, now: dt.datetime, rng: random.Random, hn_sets: list[int]) -> dict:
    versions, evaluations, cells = [], [], []
    cell_keys = _conditions(sizes.cells_per_replay)
    step = dt.timedelta(hours=12)
    start = now - step * (sizes.versions + 2)
    for i in range(sizes.versions):
        vid, created = i + 1, start + step * i
        mcc = min(0.95, 0.45 + 0.4 * i / sizes.versions + rng.uniform(-0.03, 0.03))
        versions.append({
            "id": vid, "name": "roadwork-ops", "version": f"{i // 100}.{i % 100 + 1}.0",
            "artifact_sha256": f"{vid:064x}", "artifact_path": f"/home/miner/.roadwork/artifacts/{vid:064x}",
            "config": _config(i, rng), "metrics": _training_metrics(mcc, rng),
            "parent_id": vid - 1 if i else None, "data_fingerprint": f"{i // 50:016x}",
            "code_revision": f"{rng.getrandbits(40):010x}",
            "hard_negative_set_id": hn_sets[i % len(hn_sets)] if hn_sets and i % 7 == 0 else None,
            "created_by": "scheduler", "created_at": created,
        })
        validation_id, replay_id = 2 * vid - 1, 2 * vid
        evaluations.append({"id": validation_id, "version_id": vid, "dataset": f"validation:{i // 50:016x}",
                            "kind": "validation", "n": 10_000, "mcc": mcc, "accuracy": 0.5 + mcc / 2,
                            "metrics": {"precision": 0.88, "recall": 0.84, "auc": 0.95}, "job_run_id": None,
                            "created_at": created + dt.timedelta(minutes=5)})
        evaluations.append({"id": replay_id, "version_id": vid, "dataset": "replay:n=2000,seed=0", "kind": "replay",
                            "n": 2000, "mcc": mcc - 0.02, "accuracy": 0.5 + mcc / 2,
                            "metrics": _replay_metrics(mcc - 0.02, rng.uniform(0.35, 0.65)), "job_run_id": None,
                            "created_at": created + dt.timedelta(minutes=30)})
        for j, (condition, value) in enumerate(cell_keys):
            c = mcc - 0.1 + 0.2 * ((j * 37 + i) % 100) / 100
            cells.append({"evaluation_id": replay_id, "condition": condition, "value": value, "n": 20 + j % 200,
                          "mcc": c, "accuracy": 0.5 + c / 2, "mcc_ci_low": c - 0.1, "mcc_ci_high": c + 0.08})
    return {"model_versions": versions, "evaluations": evaluations, "condition_metrics": cells}


def _champion_history(sizes: Sizes, versions: list[dict], now: dt.datetime) -> dict:
    """A champion move every `versions / moves` versions, a day after the version was made; the last, a rollback."""
    events, every = [], max(1, len(versions) // sizes.alias_moves)
    targets = versions[every - 1::every][: sizes.alias_moves]
    previous = None
    for k, target in enumerate(targets):
        rollback = k == len(targets) - 1 and previous is not None and k >= 2
        to = targets[k - 2] if rollback else target
        events.append({"id": k + 1, "alias": "champion", "action": "rollback" if rollback else "deploy",
                       "from_version_id": previous, "to_version_id": to["id"], "actor": "scheduler",
                       "reason": "MCC dropped on rain" if rollback else "gate passed",
                       "gate_result": {"passed": True, "checks": {"mcc": "passed", "cells": "passed"}},
                       "published_to": ["hf:miner/roadwork"],
                       "created_at": min(now - dt.timedelta(days=2), target["created_at"] + dt.timedelta(days=1))})
        previous = to["id"]
    last = events[-1]
    alias = [{"name": "champion", "version_id": last["to_version_id"], "event_id": last["id"],
              "updated_at": last["created_at"]}]
    return {"alias_events": events, "aliases": alias}


def _standings(sizes: Sizes, now: dt.datetime, rng: random.Random) -> dict:
    snapshots, rows = [], []
    base = {uid: rng.random() for uid in range(sizes.uids)}
    snap_id = 0
    for k in range(sizes.snapshots):
        taken = now - dt.timedelta(minutes=30) * (sizes.snapshots - k)
        snap_id += 1
        snapshots.append({"id": snap_id, "source": "taostats", "netuid": 72, "block": 5_000_000 + 150 * k,
                          "stale": False, "error": None, "taken_at": taken})
        weights = {u: max(0.0, base[u] + rng.gauss(0, 0.05)) for u in range(VALIDATORS, sizes.uids)}
        total = sum(weights.values()) or 1.0
        for uid in range(sizes.uids):
            validator = uid < VALIDATORS
            incentive = 0.0 if validator else weights[uid] / total
            rows.append({"snapshot_id": snap_id, "uid": uid, "hotkey": f"5Hot{uid:06d}", "coldkey": f"5Cold{uid:05d}",
                         "rank": incentive, "incentive": incentive, "emission": incentive * 7200 * 0.41,
                         "trust": 0.0 if validator else 0.9, "consensus": incentive,
                         "dividends": 0.1 if validator else 0.0, "stake": 50_000.0 if validator else 10.0,
                         "active": True, "validator_permit": validator, "extra": None})
        if (k + 1) % sizes.stale_every == 0 or k == sizes.snapshots - 1:  # the newest poll failed: a stale badge
            snap_id += 1
            snapshots.append({"id": snap_id, "source": "taostats", "netuid": 72, "block": None, "stale": True,
                              "error": "HTTP 503 from the API", "taken_at": taken + dt.timedelta(minutes=10)})
    return {"leaderboard_snapshots": snapshots, "leaderboard_rows": rows}


def _job_runs(sizes: Sizes, now: dt.datetime, rng: random.Random, logs: Path) -> dict:
    runs = []
    statuses, weights = list(STATUS_WEIGHTS), list(STATUS_WEIGHTS.values())
    for k in range(sizes.job_runs):
        job_id = JOB_IDS[k % len(JOB_IDS)]
        scheduled = now - dt.timedelta(minutes=15) * (sizes.job_runs - k)
        newest = k >= sizes.job_runs - 2
        status = "started" if newest else rng.choices(statuses, weights)[0]
        started = None if status in ("missed", "skipped") else scheduled + dt.timedelta(seconds=2)
        duration = None if started is None or newest else rng.uniform(5, 3600)
        finished = started + dt.timedelta(seconds=duration) if duration else None
        stamp = (started or scheduled).strftime("%Y%m%dT%H%M%S%fZ")
        error = {"failed": "RuntimeError: replay set missing\nTraceback (most recent call last):\n  ...",
                 "missed": "missed its fire time by more than 300 s",
                 "cancelled": "cancelled by an operator"}.get(status)
        runs.append({"id": k + 1, "job_id": job_id, "status": status, "scheduled_at": scheduled, "started_at": started,
                     "finished_at": finished, "duration_s": duration,
                     "log_path": str(logs / f"{job_id}-{stamp}.log") if started else None, "error": error,
                     "result": {"ok": status == "succeeded"}, "trigger": "schedule", "created_at": scheduled})
    logs.mkdir(parents=True, exist_ok=True)
    for run in runs[-sizes.log_files:]:
        if run["log_path"]:
            Path(run["log_path"]).write_text("".join(f"step {i}: loss 0.{i:04d}\n" for i in range(5000)))
    return {"job_runs": runs}


def _audit_and_commands(sizes: Sizes, now: dt.datetime, rng: random.Random, data: dict) -> dict:
    audits = []

    def audit(actor: str, action: str, target: str | None, reason: str, when: dt.datetime, details=None) -> None:  # noqa: ANN001
        audits.append({"actor": actor, "action": action, "target": target, "reason": reason, "details": details,
                       "created_at": when})

    labels = {v["id"]: f"{v['name']}:{v['version']}" for v in data["model_versions"]}
    for v in data["model_versions"][:: max(1, sizes.versions // 150)]:  # gate decisions on about 150 candidates
        passed, when = rng.random() < 0.6, v["created_at"] + dt.timedelta(hours=1)
        audit("scheduler", "gate_passed" if passed else "gate_failed", labels[v["id"]],
              "candidate beats the champion" if passed else "MCC on rain below the champion's", when,
              {"reasons": ["mcc: passed", "cells: passed"]})
        if passed:  # an operator decided (gate policy manual); only the newest candidates below still wait
            audit(OPERATOR[0], "candidate_rejected", labels[v["id"]], "not worth a deploy", when + dt.timedelta(hours=1))
    for e in data["alias_events"]:
        audit("scheduler", e["action"], labels[e["to_version_id"]], e["reason"], e["created_at"])
    for v in data["model_versions"][-3:]:  # candidates waiting for an operator
        audit("scheduler", "gate_passed", labels[v["id"]], "candidate beats the champion",
              v["created_at"] + dt.timedelta(hours=1), {"reasons": ["mcc +0.02: passed", "cells: passed"]})
    kinds = ("rank_drop", "stale", "uid_missing", "deregistration")
    for k in range(sizes.audit_events):
        when = now - dt.timedelta(hours=6) * (sizes.audit_events - k) / 5
        if k % 3:
            audit("leaderboard", "alert", kinds[k % len(kinds)], f"UID {OUR_UID} fell from rank 12 to 30", when)
        else:
            job = JOB_IDS[k % len(JOB_IDS)]
            action = ("job_failed", "deploy_failed", "rollback_failed")[k // 3 % 3]
            audit("scheduler", action, job if action == "job_failed" else labels[1 + k % sizes.versions],
                  "RuntimeError: disk full", when)
    commands = []
    command_kinds = ("run_now", "pause", "resume", "reschedule", "rollback", "create_ab_test", "approve")
    for k in range(sizes.commands):
        kind, when = command_kinds[k % len(command_kinds)], now - dt.timedelta(hours=2) * (sizes.commands - k)
        payload = {"job_id": JOB_IDS[k % len(JOB_IDS)]} if kind in ("run_now", "pause", "resume", "reschedule") \
            else {"to": 1 + k % sizes.versions}
        pending = k == sizes.commands - 1
        commands.append({"id": k + 1, "kind": kind, "payload": payload, "requested_by": OPERATOR[0],
                         "reason": "bench", "status": "pending" if pending else "applied",
                         "outcome": None if pending else "done", "created_at": when,
                         "applied_at": None if pending else when + dt.timedelta(seconds=3)})
        audit(OPERATOR[0], f"{kind}_requested", payload.get("job_id"), "bench", when, {"command_id": k + 1})
    audits.sort(key=lambda a: a["created_at"])
    return {"audit_events": audits, "scheduler_commands": commands}


def _ab_tests(sizes: Sizes, now: dt.datetime, n_versions: int) -> dict:
    tests, results = [], []
    for k in range(sizes.ab_tests):
        a, b = n_versions - 2 * k - 1, n_versions - 2 * k
        arm = {"mcc": 0.8, "mcc_ci_low": 0.77, "mcc_ci_high": 0.83, "accuracy": 0.9, "expected_reward": 0.5}
        tests.append({"id": k + 1, "name": f"ab-{k}", "version_a_id": a, "version_b_id": b, "sample_size": 2000,
                      "mode": "replay", "status": "done", "created_by": OPERATOR[0],
                      "created_at": now - dt.timedelta(days=sizes.ab_tests - k)})
        results.append({"test_id": k + 1, "n": 2000, "arm_a": arm, "arm_b": {**arm, "mcc": 0.81},
                        "diff": {"mcc_diff": 0.01, "ci_low": -0.01, "ci_high": 0.03, "alpha": 0.05,
                                 "mcnemar": {"p": 0.2, "b": 40, "c": 52, "method": "chi2"},
                                 "expected_reward_diff": 0.01, "warnings": []},
                        "verdict": "no_difference", "created_at": now - dt.timedelta(days=sizes.ab_tests - k)})
    return {"ab_tests": tests, "ab_results": results}


def _hard_negatives(sizes: Sizes, now: dt.datetime) -> dict:
    sets, items = [], []
    for k in range(sizes.hard_negative_sets):
        sets.append({"id": k + 1, "name": f"mined-{k}", "source_version_id": None,
                     "pool": f"/data/pools/streetvision-{k}.parquet", "n_items": sizes.items_per_set,
                     "created_at": now - dt.timedelta(days=10 * (sizes.hard_negative_sets - k))})
        for j in range(sizes.items_per_set):
            items.append({"set_id": k + 1, "record_id": f"rec-{k}-{j:05d}", "label": j % 2, "score": (j % 100) / 100,
                          "reason": "confident_mistake" if j % 3 else "uncertain",
                          "conditions": {"weather": ("Clear", "Rain", "Fog")[j % 3], "level": str(j % 5)}})
    return {"hard_negative_sets": sets, "hard_negative_items": items}


def seed(url: str, settings, sizes: Sizes) -> dict[str, int]:  # noqa: ANN001 - roadwork.settings.Settings
    """Migrate and fill the registry at `url`; the number of rows per table."""
    from sqlalchemy import insert

    from roadwork.clock import utcnow
    from roadwork.db import models as m
    from roadwork.db.engine import make_engine, migrate
    from roadwork.platform import users

    rng, now = random.Random(0), utcnow()
    hn = _hard_negatives(sizes, now)
    data = {**hn, **_versions_and_evaluations(sizes, now, rng, [s["id"] for s in hn["hard_negative_sets"]])}
    data |= _champion_history(sizes, data["model_versions"], now)
    data |= _standings(sizes, now, rng)
    data |= _job_runs(sizes, now, rng, settings.logs_dir / "jobs")
    data |= _audit_and_commands(sizes, now, rng, data)
    data |= _ab_tests(sizes, now, sizes.versions)
    tables = {t.name: t for t in m.Base.metadata.sorted_tables}
    engine = make_engine(url)
    try:
        migrate(engine)
        with engine.begin() as conn:  # one transaction; foreign keys are checked, so parents go first
            for table in m.Base.metadata.sorted_tables:
                if data.get(table.name):
                    conn.execute(insert(tables[table.name]), data[table.name])
        users.create_user(engine, OPERATOR[0], OPERATOR[1], "operator", users.local_actor("bench"))
        _register_jobs(engine, settings)
    finally:
        engine.dispose()
    return {name: len(rows) for name, rows in data.items()}


def _register_jobs(engine, settings) -> None:  # noqa: ANN001
    """Start and stop the scheduler once: it stores the built-in jobs with their next run times."""
    import logging

    from roadwork.platform.jobs.scheduler import SchedulerService

    logging.getLogger("apscheduler").setLevel(logging.WARNING)
    service = SchedulerService(engine, settings)
    service.start()
    service.stop()


# --- rendering ---------------------------------------------------------------------------------------------------


def navigation_pages() -> list[tuple[str, str]]:
    """(title, page path relative to app.py) of every page in the app's `st.navigation`, in order."""
    source = APP.read_text()
    return [(title, f"views/{name}.py")
            for name, title in re.findall(r'PAGES / "(\w+)\.py", title="([^"]+)"', source)]


@dataclass(frozen=True)
class Timing:
    title: str
    page: str
    first_s: float
    cold_s: float
    warm_s: float
    error: str | None = None

    @property
    def met(self) -> bool:
        return self.error is None and self.cold_s < GOAL_S and self.warm_s < GOAL_S


def _timed(at) -> float:  # noqa: ANN001 - AppTest
    from streamlit import logger

    start = time.perf_counter()
    at.run()
    elapsed = time.perf_counter() - start
    logger.set_log_level("error")  # AppTest's bare-mode warnings, several per run (it resets the level)
    if at.exception:
        raise RuntimeError("; ".join(str(e.message) for e in at.exception))
    return elapsed


def render_pages(repeat: int) -> list[Timing]:
    import streamlit as st
    from streamlit import logger
    from streamlit.testing.v1 import AppTest

    from roadwork.clock import utcnow
    from roadwork.dashboard import auth

    logger.set_log_level("error")
    timings = []
    for title, page in navigation_pages():
        at = AppTest.from_file(str(APP), default_timeout=TIMEOUT_S)
        at.session_state[auth.SESSION_KEY] = auth.SignedIn(OPERATOR[0], "operator", utcnow() + dt.timedelta(hours=1))
        try:
            _timed(at)  # the session starts on the default page
            at.switch_page(page)
            st.cache_data.clear()
            first = _timed(at)
            cold, warm = [], []
            for _ in range(repeat):
                st.cache_data.clear()
                cold.append(_timed(at))
                warm.append(_timed(at))
            timings.append(Timing(title, page, first, statistics.median(cold), statistics.median(warm)))
        except Exception as exc:  # noqa: BLE001 - a failing page is reported, the others still run
            timings.append(Timing(title, page, float("nan"), float("nan"), float("nan"), str(exc)[:200]))
        print(f"  {title}: done", file=sys.stderr, flush=True)
    return timings


# --- report ------------------------------------------------------------------------------------------------------


def machine() -> str:
    import sqlalchemy
    import streamlit

    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return (f"{platform.machine()}, {cores} CPU cores, Python {platform.python_version()}, SQLite "
            f"{sqlite3.sqlite_version}, SQLAlchemy {sqlalchemy.__version__}, Streamlit {streamlit.__version__}")


def report(timings: list[Timing], counts: dict[str, int], seed_s: float, db_bytes: int, repeat: int,
           load: tuple[float, float]) -> str:
    lines = [f"- machine: {machine()}; load average (1 min) {load[0]:.1f} before rendering, {load[1]:.1f} after",
             f"- seed: {', '.join(f'{n:,} {t}' for t, n in counts.items())}",
             f"- seeding: {seed_s:.1f} s, database {db_bytes / 2**20:.0f} MiB",
             (f"- first: first render in the process; cold: query caches cleared; warm: rerun with cached queries "
              f"(median of {repeat}); goal: cold and warm < {GOAL_S} s"),
             "",
             "| page | first s | cold s | warm s | goal met? |",
             "|---|---|---|---|---|"]
    for t in timings:
        verdict = f"FAILED: {t.error}" if t.error else ("yes" if t.met else "NO")
        lines.append(f"| {t.title} | {t.first_s:.2f} | {t.cold_s:.2f} | {t.warm_s:.2f} | {verdict} |")
    met = sum(t.met for t in timings)
    lines += ["", f"{met} of {len(timings)} pages meet the goal."]
    return "\n".join(lines)


# --- baseline: the same workload with the code of another revision ----------------------------------------------


def _render_in_child(home: Path, tree: Path, repeat: int, out: Path) -> list[Timing]:
    """Render every page in a fresh process whose `roadwork` is imported from `tree`; its timings."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("ROADWORK_")}
    env.update(BENCH_CODE_ROOT=str(tree), PYTHONPATH=str(tree), ROADWORK_HOME=str(home), ROADWORK_UID=str(OUR_UID))
    subprocess.run([sys.executable, __file__, "--home", str(home), "--repeat", str(repeat), "--json", str(out)],
                   env=env, check=False, stdout=subprocess.DEVNULL)
    return [Timing(**t) for t in json.loads(out.read_text())]


def _median_timing(runs: list[Timing]) -> Timing:
    errors = [t.error for t in runs if t.error]
    return Timing(runs[0].title, runs[0].page, statistics.median(t.first_s for t in runs),
                  statistics.median(t.cold_s for t in runs), statistics.median(t.warm_s for t in runs),
                  errors[0] if errors else None)


def compare(home: Path, rev: str, repeat: int, rounds: int) -> tuple[list[Timing], list[Timing]]:
    """(baseline, this tree) timings per page on the seeded `home`, the median of `rounds` alternating runs."""
    here = Path(__file__).resolve().parents[1]
    work = Path(tempfile.mkdtemp(prefix="roadwork-bench-baseline-"))
    tree = work / "tree"
    subprocess.run(["git", "-C", str(here), "worktree", "add", "--detach", "--quiet", str(tree), rev], check=True)
    try:
        runs: dict[str, list[list[Timing]]] = {"baseline": [], "this": []}
        for i in range(rounds):
            for name, code in (("baseline", tree), ("this", here)):
                print(f"  round {i + 1}/{rounds}: {name}", file=sys.stderr, flush=True)
                runs[name].append(_render_in_child(home, code, repeat, work / f"{name}-{i}.json"))
    finally:
        subprocess.run(["git", "-C", str(here), "worktree", "remove", "--force", str(tree)], check=False)
        shutil.rmtree(work, ignore_errors=True)
    return tuple([_median_timing(list(page)) for page in zip(*runs[name], strict=True)]  # type: ignore[return-value]
                 for name in ("baseline", "this"))


def ratio_report(rev: str, baseline: list[Timing], this: list[Timing], rounds: int) -> str:
    lines = [f"## this tree vs `{rev}`: seconds (median of {rounds} alternating runs), ratio = this / baseline", "",
             "| page | first base | first this | ratio | cold base | cold this | ratio | warm base | warm this | ratio |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for b, t in zip(baseline, this, strict=True):
        cells = [f"{b.first_s:.2f} | {t.first_s:.2f} | {t.first_s / b.first_s:.2f}",
                 f"{b.cold_s:.2f} | {t.cold_s:.2f} | {t.cold_s / b.cold_s:.2f}",
                 f"{b.warm_s:.2f} | {t.warm_s:.2f} | {t.warm_s / b.warm_s:.2f}"]
        error = (f" (baseline: {b.error})" if b.error else "") + (f" (this: {t.error})" if t.error else "")
        lines.append(f"| {t.title}{error} | " + " | ".join(cells) + " |")
    total = [sum(getattr(x, f) for x in runs) for runs in (baseline, this) for f in ("first_s", "cold_s", "warm_s")]
    lines.append(f"| all pages | {total[0]:.2f} | {total[3]:.2f} | {total[3] / total[0]:.2f} | {total[1]:.2f} | "
                 f"{total[4]:.2f} | {total[4] / total[1]:.2f} | {total[2]:.2f} | {total[5]:.2f} | "
                 f"{total[5] / total[2]:.2f} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a 10x smaller seed")
    parser.add_argument("--repeat", type=int, default=3, help="cold and warm runs per page (median)")
    parser.add_argument("--home", type=Path, help="use this home (seeded unless it already holds a registry); kept")
    parser.add_argument("--baseline", metavar="REV", help="also render with the code of git revision REV; ratios")
    parser.add_argument("--rounds", type=int, default=2, help="with --baseline: alternating runs per tree (median)")
    parser.add_argument("--json", type=Path, help=argparse.SUPPRESS)  # a child of --baseline writes its timings here
    args = parser.parse_args(argv)
    sizes = Sizes().quick() if args.quick else Sizes()

    home = args.home or Path(tempfile.mkdtemp(prefix="roadwork-bench-"))
    for key in [k for k in os.environ if k.startswith("ROADWORK_")]:
        del os.environ[key]
    os.environ.update(ROADWORK_HOME=str(home), ROADWORK_UID=str(OUR_UID))

    from roadwork.settings import load_settings

    settings = load_settings()
    db_path = Path(settings.db_url.removeprefix("sqlite:///"))
    try:
        start = time.perf_counter()
        counts = {} if db_path.exists() else seed(settings.db_url, settings, sizes)
        seed_s = time.perf_counter() - start
        print(f"seeded {home} in {seed_s:.1f} s; rendering...", file=sys.stderr, flush=True)
        load_before = os.getloadavg()[0]  # other processes on the same cores slow every page down
        if args.baseline:
            baseline, timings = compare(home, args.baseline, args.repeat, args.rounds)
            print(ratio_report(args.baseline, baseline, timings, args.rounds) + "\n")
        else:
            timings = render_pages(args.repeat)
        if args.json:
            args.json.write_text(json.dumps([dataclasses.asdict(t) for t in timings]))
            return 0
        if not counts:
            counts = {"(existing home, not reseeded)": 0}
        print(report(timings, counts, seed_s, db_path.stat().st_size, args.repeat,
                     (load_before, os.getloadavg()[0])))
    finally:
        if args.home is None:
            shutil.rmtree(home, ignore_errors=True)
    return 0 if all(t.met for t in timings) else 1


if __name__ == "__main__":
    sys.exit(main())

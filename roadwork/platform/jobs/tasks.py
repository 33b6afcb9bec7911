"""The work of the long jobs, run inside a worker process (see `jobs` and `subprocess_jobs`).

`train_task` is the loop of DESIGN.md steps 2-5: train a candidate, evaluate it and the champion on one
replay, gate, and deploy when the policy is `auto` (else it waits for an operator's approve or reject).
Under `deploy.format: stock` (the default) a distill step comes after training: the trained teacher is distilled
into a student, and the student is the candidate that is evaluated, gated (also against its teacher) and deployed.
Each step after training is recorded as a job run of its own (trigger `pipeline`), so the history shows
train, distill, evaluate, gate and deploy separately with their durations and results.
"""

from __future__ import annotations

import contextlib
import datetime as dt
from collections.abc import Callable, Iterator
from typing import Any

from sqlalchemy import Engine
from sqlalchemy.orm import Session

from roadwork.clock import utcnow
from roadwork.settings import Settings, load_settings
from roadwork.db import repo
from roadwork.db.engine import get_engine, read_session, write_session


@contextlib.contextmanager
def pipeline_step(engine: Engine, job_id: str) -> Iterator[dict[str, Any]]:
    """Record a job run for one step; put the step's result dict in `step["result"]`."""
    with write_session(engine) as session:
        run = repo.record_job_run(session, job_id=job_id, status="started", started_at=utcnow(), trigger="pipeline")
    step: dict[str, Any] = {}
    try:
        yield step
    except Exception as exc:
        with write_session(engine) as session:
            repo.finish_job_run(session, run.id, status="failed", error=f"{type(exc).__name__}: {exc}")
            repo.add_audit(session, actor="scheduler", action="job_failed", target=job_id, reason=str(exc)[:500])
        raise
    with write_session(engine) as session:
        repo.finish_job_run(session, run.id, status="succeeded", result=step.get("result"))


def evaluate_champion_task() -> dict[str, Any]:
    """The champion on its validation split and on a replay (`evaluation.champion_replay_challenges` challenges)
    whose seed is the day number (new challenges each day, any run reproducible)."""
    from roadwork.platform.evaluation.validation import evaluate_version
    from roadwork.platform.evaluation.replay import evaluate_replay

    settings = load_settings()
    engine = get_engine(settings.db_url)
    with read_session(engine) as session:
        champion = repo.alias_holder(session)
    if champion is None:
        return {"skipped": "no champion yet"}
    evaluation = evaluate_version(engine, settings, champion.id)
    seed = dt.date.today().toordinal()
    replay = evaluate_replay(engine, settings, champion.id, n=settings.evaluation.champion_replay_challenges, seed=seed)
    return {"version": champion.label, "evaluation_id": evaluation.id, "mcc": round(evaluation.mcc, 4),
            "accuracy": round(evaluation.accuracy, 4), "n": evaluation.n,
            "replay_evaluation_id": replay.id, "replay_mcc": round(replay.mcc, 4), "replay_seed": seed}


def deploy_candidate(engine: Engine, settings: Settings, ref: str | int, *, actor: str, reason: str,
                     gate_result: dict[str, Any] | None, fence: Callable[[Session], None] | None = None) -> dict[str, Any]:
    from roadwork.platform.registry.service import deploy

    with pipeline_step(engine, "deploy") as step:
        result = deploy(engine, settings, ref, actor=actor, reason=reason, gate_result=gate_result, fence=fence)
        step["result"] = {"version": result.version.label, "published": result.published,
                          "previous": result.previous.label if result.previous else None}
    return step["result"]


def train_task(config: str = "") -> dict[str, Any]:
    """Train, evaluate against the champion on one replay, gate, and deploy if the policy says so. Under
    `deploy.format: stock` the trained teacher is first distilled, and the student is what is gated and deployed."""
    from roadwork.platform.evaluation.gate import default_seed, gate_candidate
    from roadwork.platform.registry.packaging import STOCK
    from roadwork.platform.training import train_and_register
    from roadwork.trainer.config import TrainConfig, load_config

    settings = load_settings()
    engine = get_engine(settings.db_url)
    cfg = load_config(config) if config else TrainConfig()
    with read_session(engine) as session:
        n_versions = len(repo.list_versions(session))
    # A retrain with the same seed on the same data would reproduce the same model: vary it (recorded).
    cfg = cfg.model_copy(update={"optim": cfg.optim.model_copy(update={"seed": cfg.optim.seed + n_versions})})
    version, result = train_and_register(engine, settings, cfg, actor="scheduler", show_progress=False)
    summary: dict[str, Any] = {"version": version.label, "val_mcc": round(result.metrics["val_mcc"], 4),
                               "hard_negative_set_id": version.hard_negative_set_id}
    seed = None  # the gate's default: fixed per candidate
    if settings.deploy.format == STOCK:  # what the stock miner serves is a student: distil, then gate the student
        with pipeline_step(engine, "distill") as step:
            step["result"] = distill_step(engine, settings, version)
        summary["student"] = step["result"]
        seed = default_seed(version.id)  # the replay the distill step ran the teacher on
        version = repo_version(engine, step["result"]["version_id"])
    with pipeline_step(engine, "evaluate") as step:
        outcome = gate_candidate(engine, settings, version.id, seed=seed)
        step["result"] = {"candidate": version.label, **outcome.evaluation_ids}
    with pipeline_step(engine, "gate") as step:
        step["result"] = {"candidate": version.label, "passed": outcome.result.passed,
                          "reasons": outcome.result.reasons, "policy": settings.gate.policy}
    summary["gate"] = step["result"]
    if outcome.result.passed and settings.gate.policy == "auto":
        summary["deployed"] = deploy_candidate(engine, settings, version.id, actor="scheduler",
                                               reason="passed the gate (policy auto)",
                                               gate_result=outcome.result.to_dict())
    elif outcome.result.passed:
        summary["pending"] = "waiting for an operator to approve or reject"
    return summary


def repo_version(engine: Engine, ref: str | int) -> repo.Version:
    with read_session(engine) as session:
        return repo.get_version(session, ref)


def distill_step(engine: Engine, settings: Settings, teacher: repo.Version) -> dict[str, Any]:
    """The pipeline's distill step: `teacher` into a `distill.student` student, compared with it on the replay the
    gate will run (n `gate.replay_challenges`, the teacher's gate seed), so the gate reuses the teacher's run."""
    from roadwork.platform.distillation import comparison_rows, distill_version
    from roadwork.platform.evaluation.gate import default_seed

    outcome = distill_version(engine, settings, teacher.id, settings.distill.student, actor="scheduler",
                              show_progress=False, replay_n=settings.gate.replay_challenges,
                              replay_seed=default_seed(teacher.id))
    return {"version": outcome.student.label, "version_id": outcome.student.id, "teacher": outcome.teacher.label,
            "threshold": round(outcome.result.threshold, 6),
            "evaluations": [{k: (round(v, 4) if isinstance(v, float) else v) for k, v in row.items()}
                            for row in comparison_rows(outcome)]}


def distill_task(teacher: str = "", student: str = "dinov2") -> dict[str, Any]:
    """Distil `teacher` (empty: the newest version that is not a student) into a `student` student, register it
    and evaluate it on the validation split and the teacher's replays."""
    from roadwork.platform.distillation import (
        comparison_rows,
        distill_version,
        footprint_rows,
    )

    settings = load_settings()
    engine = get_engine(settings.db_url)
    outcome = distill_version(engine, settings, teacher or None, student or None, actor="scheduler",
                              show_progress=False)
    return {"version": outcome.student.label, "teacher": outcome.teacher.label,
            "threshold": round(outcome.result.threshold, 6),
            "evaluations": [{k: (round(v, 4) if isinstance(v, float) else v) for k, v in row.items()}
                            for row in comparison_rows(outcome)],
            "footprint": footprint_rows(outcome)}


def approve_candidate(engine: Engine, settings: Settings, ref: str | int, *, actor: str, reason: str,
                      fence: Callable[[Session], None] | None = None) -> str:
    """An operator's approval: deploy a candidate whose latest gate decision passed (with that decision).
    `fence`: the scheduler's lease check, run before each change of what is served."""
    from roadwork.platform.evaluation.gate import latest_gate_event, pending_candidates

    with read_session(engine) as session:
        event = latest_gate_event(session, ref)
        version = repo.get_version(session, ref)
        waiting = {v.id for v in pending_candidates(session)}
    if event is None or event.action != "gate_passed":
        raise ValueError(f"{version.label} has not passed the gate; only gated candidates are approved "
                         "(an operator can still `roadwork deploy` it directly)")
    if version.id not in waiting:  # deployed or rejected since the gate: a second or late approve does nothing
        raise ValueError(f"{version.label} is no longer waiting for approval (already deployed or rejected)")
    deployed = deploy_candidate(engine, settings, ref, actor=actor, reason=reason or "approved",
                                gate_result=(event.details or {}) | {"approved_by": actor}, fence=fence)
    return f"{deployed['version']} approved and deployed"

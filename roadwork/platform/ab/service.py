"""A/B tests as a service: stored replay tests of two versions, created, run (as a job) and recorded; the verdict
rule is in `stats`."""

from __future__ import annotations

import dataclasses
import hashlib
import json
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from sqlalchemy import Engine

from roadwork.settings import Settings
from roadwork.db import repo
# The readers (and the verdict threshold a page shows) live in the repository: pages show tests without scipy.
from roadwork.db.repo.ab import MIN_N, ABResult, ABTest, get_ab_test, list_ab_tests  # noqa: F401
from roadwork.db.repo.ab import latest_ab_result as latest_results  # noqa: F401
from roadwork.db.engine import read_session, write_session
from roadwork.platform.ab.stats import ALPHA, MODES, N_BOOT, ABOutcome, ABTestError, paired_comparison

if TYPE_CHECKING:  # the readers serve the dashboard, which must not import torch; the runner imports it late
    from roadwork.trainer.eval.predict import Predictor


# --- the service: stored replay tests ------------------------------------------------------------------------------


def create_ab_test(engine: Engine, *, version_a: str | int, version_b: str | int, sample_size: int, actor: str,
                   name: str | None = None, mode: str = "replay") -> int:
    """Add a pending A/B test of two existing, different versions (`get_version` references); returns its id."""
    if mode not in MODES:
        raise ValueError(f"mode must be one of {', '.join(MODES)}, got {mode!r}")
    if isinstance(sample_size, bool) or not isinstance(sample_size, int) or sample_size < 2:
        raise ValueError(f"sample_size must be an integer >= 2, got {sample_size!r}")
    with write_session(engine) as session:
        a, b = repo.get_version(session, version_a), repo.get_version(session, version_b)
        if a.id == b.id:
            raise ValueError(f"an A/B test needs two different versions, got {a.label} twice")
        test_id = repo.add_ab_test(session, name=name or f"{a.label} vs {b.label}", version_a_id=a.id,
                                   version_b_id=b.id, sample_size=sample_size, mode=mode, created_by=actor)
        repo.add_audit(session, actor=actor, action="ab_test_create", target=f"ab_test:{test_id}",
                       details={"version_a": a.label, "version_b": b.label, "sample_size": sample_size, "mode": mode})
        return test_id


class _Shadow:
    """Looks like a Predictor to `run_replay`: answers with A's raw scores and records B's on the same images,
    so each challenge is rendered once and both models see identical bytes."""

    def __init__(self, a: Predictor, b: Predictor) -> None:
        self.a, self.b, self.b_probs = a, b, []

    def raw_probs(self, images: Sequence[Any]) -> np.ndarray:
        self.b_probs.append(self.b.raw_probs(images))
        return self.a.raw_probs(images)


def _split_key(config: Any) -> tuple[Any, ...]:
    return config.data.path, config.data.val_fraction, config.data.split_seed


def _replay_outcome(engine: Engine, settings: Settings, test: ABTest, *, seed: int, data_path: Path | None,
                    min_n: int, n_boot: int, alpha: float) -> ABOutcome:
    """Both versions on one replay of A's validation split, each answering with its own calibration."""
    from roadwork.platform.evaluation.validation import checkpoint_train_config, data_splits
    from roadwork.platform.registry.service import checkout, store
    from roadwork.platform.evaluation.replay import run_replay
    from roadwork.trainer.eval.predict import Predictor

    with read_session(engine) as session:
        va, vb = repo.get_version(session, test.version_a_id), repo.get_version(session, test.version_b_id)
    ckpt_a, ckpt_b = checkout(settings, va), checkout(settings, vb)
    pred_a, pred_b = Predictor.load(ckpt_a), Predictor.load(ckpt_b)
    config_a = checkpoint_train_config(ckpt_a)
    config_b = checkpoint_train_config(ckpt_b)
    data = data_splits(settings, config_a, data_path)
    shadow = _Shadow(pred_a, pred_b)
    run = run_replay(shadow, data.val, test.sample_size, seed, cache_resave=settings.evaluation.cache_resave)
    raw_b = np.concatenate(shadow.b_probs) if shadow.b_probs else np.zeros(0)
    if raw_b.shape != run.raw_probs.shape:  # never expected: both models scored every batch
        raise ABTestError(f"arms answered {run.raw_probs.size} and {raw_b.size} challenges")
    log = [{k: v for k, v in e.items() if k != "raw_prob"} | {"raw_prob_a": e["raw_prob"], "raw_prob_b": float(p)}
           for e, p in zip(run.log, raw_b, strict=True)]
    challenges = hashlib.sha256("".join(e["jpeg_sha256"] for e in log).encode()).hexdigest()
    log_sha = store(settings).put_bytes("\n".join(json.dumps(e, sort_keys=True) for e in log).encode())
    warnings = []
    if _split_key(config_a) != _split_key(config_b):
        warnings.append("B was trained with a different data path or split than A: some of A's validation "
                        "challenges may be in B's training data")
    outcome = paired_comparison(run.labels, pred_a.calibration.apply(run.raw_probs), pred_b.calibration.apply(raw_b),
                                min_n=min_n, n_boot=n_boot, alpha=alpha, seed=seed)
    return dataclasses.replace(outcome, extra={
        "versions": {"a": va.label, "b": vb.label},
        "calibration": {"a": pred_a.calibration.to_dict(), "b": pred_b.calibration.to_dict()},
        "replay": {"n": test.sample_size, "seed": seed, "data_path": str(data.path), "data_fingerprint":
                   data.fingerprint, "validation_rows": len(data.val), "undecodable": run.stats.undecodable,
                   "challenges_sha256": challenges, "log_sha256": log_sha},
        "warnings": warnings,
    })


def run_ab_test(engine: Engine, settings: Settings, test_id: int, *, seed: int | None = None,
                data_path: Path | None = None, min_n: int = MIN_N, n_boot: int = N_BOOT, alpha: float = ALPHA,
                actor: str = "ab-test") -> ABOutcome:
    """Run a replay test and store its result: status pending -> running -> done, or failed (with the error
    in an audit event) on any exception, which is re-raised. The replay seed defaults to the test id, so a
    rerun sees the same challenges; `data_path` overrides the dataset of A's config.

    Any status may be run again, "running" included: a child killed at its timeout (SIGKILL) cannot record
    "failed" itself (see `mark_failed`), and such a test must not stay blocked. A rerun adds a result."""
    target = f"ab_test:{test_id}"
    with write_session(engine) as session:
        test = repo.get_ab_test(session, test_id)  # NotFoundError when there is none
        if test.mode != "replay":
            raise ABTestError(f"A/B test {test_id} is a {test.mode} test: its pairs come from a LiveMonitor")
        repo.set_ab_status(session, test_id, "running")
        repo.add_audit(session, actor=actor, action="ab_test_start", target=target)
    try:
        seed = test.id if seed is None else seed
        outcome = _replay_outcome(engine, settings, test, seed=seed, data_path=data_path, min_n=min_n,
                                  n_boot=n_boot, alpha=alpha)
        result = outcome.to_dict()
        with write_session(engine) as session:
            repo.add_ab_result(session, test_id=test_id, n=outcome.n, arm_a=result["arm_a"], arm_b=result["arm_b"],
                               diff=result["diff"], verdict=outcome.verdict)
            repo.set_ab_status(session, test_id, "done")
            repo.add_audit(session, actor=actor, action="ab_test_done", target=target, reason=outcome.reason,
                           details={"verdict": outcome.verdict, "n": outcome.n, "mcc_diff": outcome.mcc_diff})
    except BaseException as exc:
        with write_session(engine) as session:
            repo.set_ab_status(session, test_id, "failed")
            repo.add_audit(session, actor=actor, action="ab_test_failed", target=target,
                           details={"error": f"{type(exc).__name__}: {exc}"})
        raise
    return outcome


def mark_failed(engine: Engine, test_id: int, *, error: str, actor: str = "scheduler") -> bool:
    """Record a run that died without saying so (killed at its timeout): "running" -> "failed" with the error
    in an audit event. False, and nothing written, when the test is not running."""
    with write_session(engine) as session:
        changed = repo.mark_ab_failed_if_running(session, test_id)
        if changed:
            repo.add_audit(session, actor=actor, action="ab_test_failed", target=f"ab_test:{test_id}",
                           details={"error": error})
    return changed


def ab_test_job(test_id: int) -> dict[str, Any]:
    """Scheduler job: run A/B test `test_id` with this process's settings; a small JSON-able summary."""
    from roadwork.settings import load_settings
    from roadwork.db.engine import get_engine

    settings = load_settings()
    outcome = run_ab_test(get_engine(settings.db_url), settings, int(test_id))
    return {"test_id": int(test_id), "verdict": outcome.verdict, "n": outcome.n,
            "mcc_a": round(outcome.arm_a.mcc, 4), "mcc_b": round(outcome.arm_b.mcc, 4),
            "mcc_diff": round(outcome.mcc_diff, 4), "ci": [round(outcome.diff_ci_low, 4), round(outcome.diff_ci_high, 4)],
            "mcnemar_p": outcome.mcnemar_p}

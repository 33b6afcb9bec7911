"""Evaluate a version on a challenge replay: the images validators would send, scored as validators score.

The replay draws from the validation split of the version's data (rows it never trained on), renders each
challenge exactly as validators do, and feeds the decoded 224 px JPEG to the model with no metadata. Stored
with the evaluation: metrics before and after the version's calibration, the 5000-threshold sweep, the
validator score of the stream and its expected reward over random orderings, per-condition MCC with bootstrap
confidence intervals, and the replay log (every challenge's exact parameters) as a content-addressed blob.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from sqlalchemy import Engine

from roadwork.settings import Settings
from roadwork.db import repo
from roadwork.db.engine import write_session
from roadwork.platform.evaluation.calibration_check import check_calibration
from roadwork.platform.evaluation.challenge import Challenge, ReplayStats, build_replay, decode_jpeg
from roadwork.platform.evaluation.validation import condition_cells, load_for_evaluation
from roadwork.platform.registry.service import store
from roadwork.platform.evaluation.scoring import expected_reward, summarize
from roadwork.trainer.data.records import Record, decode_image
from roadwork.trainer.eval.metrics import binary_metrics, bootstrap_mcc_ci, roc_auc, threshold, threshold_sweep
from roadwork.trainer.eval.predict import Predictor, StudentPredictor, to_pixels
from roadwork.trainer.eval.tta import DEFAULT_VARIANTS, compare_variants

BATCH = 64
CURVE_POINTS = 101  # the sweep is stored downsampled for charts; the best threshold is exact


@dataclass(frozen=True)
class ReplayRun:
    """Raw outcome of running a model over a replay."""

    labels: np.ndarray  # (N,)
    raw_probs: np.ndarray  # (N,) uncalibrated model probabilities
    tags: list[dict[str, str]]
    log: list[dict[str, Any]]  # Challenge.to_dict() per challenge, with the prediction added
    stats: ReplayStats
    pixels: Any = None  # the decoded challenge images, kept only when asked (TTA measurement)


def run_replay(
    predictor: Predictor,
    records: Sequence[Record],
    n: int,
    seed: int,
    *,
    flips: bool = False,
    cache_resave: bool = True,
    progress: Callable[[int], None] | None = None,
    keep_images: bool = False,
) -> ReplayRun:
    """Render `n` challenges from `records` and predict each decoded JPEG (batched, no metadata).

    `cache_resave`: real rows go through the validator cache's JPEG re-save first (see `build_replay`)."""
    stats = ReplayStats()
    labels, probs, tags, log, kept = [], [], [], [], []
    batch: list[Challenge] = []

    def flush() -> None:
        images = [decode_jpeg(c.jpeg) for c in batch]
        if keep_images:
            kept.extend(images)
        scores = predictor.raw_probs(images)
        for challenge, score in zip(batch, scores, strict=True):
            labels.append(challenge.label)
            probs.append(float(score))
            tags.append(challenge.tags)
            log.append(challenge.to_dict() | {"raw_prob": float(score)})
        batch.clear()
        if progress is not None:
            progress(len(labels))

    for challenge in build_replay(records, n, seed, flips=flips, cache_resave=cache_resave, stats=stats):
        batch.append(challenge)
        if len(batch) == BATCH:
            flush()
    if batch:
        flush()
    return ReplayRun(np.array(labels, dtype=np.int64), np.array(probs), tags, log, stats,
                     kept if keep_images else None)


def _auc(labels: np.ndarray, probs: np.ndarray) -> float | None:
    return roc_auc(labels, probs) if len(set(labels.tolist())) == 2 else None


def replay_metrics(run: ReplayRun, predictor: Predictor, seed: int) -> dict[str, Any]:
    """Everything stored about a replay run except the per-condition cells."""
    answers = predictor.calibration.apply(run.raw_probs)
    sweep = threshold_sweep(run.labels, run.raw_probs)
    step = max(1, len(sweep.thresholds) // (CURVE_POINTS - 1))
    before = binary_metrics(run.labels, run.raw_probs) | {"auc": _auc(run.labels, run.raw_probs)}
    after = binary_metrics(run.labels, answers) | {"auc": _auc(run.labels, answers)}
    low, high = bootstrap_mcc_ci(run.labels, threshold(answers))
    return {
        **after,
        "mcc_ci_low": low,
        "mcc_ci_high": high,
        "before_calibration": before,
        "calibration": predictor.calibration.to_dict(),
        "sweep": {
            "best_threshold": sweep.best_threshold,
            "best_mcc": sweep.best_mcc,
            "thresholds": sweep.thresholds[::step].tolist(),
            "mcc": sweep.mcc[::step].tolist(),
        },
        "validator_score": summarize(run.labels, answers),
        "expected_reward": expected_reward(run.labels, answers, n_orderings=200, seed=seed),
    }


def evaluate_replay(
    engine: Engine,
    settings: Settings,
    ref: str | int,
    *,
    n: int,
    seed: int,
    data_path: Path | None = None,
    flips: bool = False,
    cache_resave: bool | None = None,
    tta: bool = False,
    progress: Callable[[int], None] | None = None,
    job_run_id: int | None = None,
) -> repo.Evaluation:
    """Run version `ref` over an `n`-challenge replay (seed `seed`) of its validation data and store it.

    `cache_resave`: None takes `settings.evaluation.cache_resave`. With `tta`, every test-time-augmentation
    variant is also measured on the replay against no TTA."""
    if n < 2:
        raise ValueError(f"a replay needs at least 2 challenges, got {n}")
    version, predictor, data = load_for_evaluation(engine, settings, ref, data_path)
    if tta and isinstance(predictor, StudentPredictor):
        raise ValueError(f"--tta: {version.label} is a student (a stock architecture the miner serves without "
                         "test-time augmentation); TTA is measured on roadwork checkpoints")
    path, val, fingerprint = data.path, data.val, data.fingerprint
    resave = settings.evaluation.cache_resave if cache_resave is None else cache_resave
    run = run_replay(predictor, val, n, seed, flips=flips, cache_resave=resave, progress=progress, keep_images=tta)
    metrics = replay_metrics(run, predictor, seed)
    if tta:
        metrics["tta"] = measure_tta(predictor, run, data.train)
    log_sha = store(settings).put_bytes("\n".join(json.dumps(e, sort_keys=True) for e in run.log).encode())
    metrics["replay"] = {
        "n": n, "seed": seed, "flips": flips, "cache_resave": resave, "data_path": str(path), "validation_rows": len(val),
        "undecodable": run.stats.undecodable, "description_filtered": run.stats.description_filtered,
        "log_sha256": log_sha,
    }
    answers = predictor.calibration.apply(run.raw_probs)
    with write_session(engine) as session:
        return repo.add_evaluation(
            session,
            version_id=version.id,
            dataset=f"replay:n={n},seed={seed},data={fingerprint[:12]}",
            kind="replay",
            n=len(run.labels),
            mcc=metrics["mcc"],
            accuracy=metrics["accuracy"],
            metrics=metrics,
            conditions=condition_cells(run.tags, run.labels, answers),
            job_run_id=job_run_id,
        )


def measure_tta(predictor: Predictor, run: ReplayRun, train: Sequence[Record], max_train: int = 256) -> dict:
    """Each TTA variant against the plain model on the same replay. Learned view weights are fitted on the
    first half of the challenges and every variant is measured on the second half; FOODS statistics come from
    (up to `max_train`) training images. MCC at the raw 0.5 cut; latency in ms per image."""
    size = predictor.image_size
    pixels = to_pixels(run.pixels, size)
    half = len(run.labels) // 2
    train_pixels = to_pixels([decode_image(r.image_bytes) for r in train[:max_train]], size)
    rows = compare_variants(predictor.model, pixels[:half], run.labels[:half], pixels[half:], run.labels[half:],
                            train_pixels, DEFAULT_VARIANTS)
    return {"fit_on": half, "measured_on": len(run.labels) - half, "variants": rows}


def fit_replay_calibration(
    predictor: Predictor, val: Sequence[Record], n: int, seed: int, *, held_out_seed: int | None = None,
    cache_resave: bool = True,
) -> dict[str, Any]:
    """Fit the MCC-best cut on one `n`-challenge replay of validation rows (`seed`) and keep it only when a held-out
    replay (`held_out_seed`, default `seed + 1`; same size and renderer) says it helps (`check_calibration`).

    Returns the calibration to save (the fitted cut, or the identity) with `fitted_on` and the decision (`check`).
    Rendered by the same `run_replay` as evaluation, so pass the same `cache_resave` (the setting)."""
    held_seed = seed + 1 if held_out_seed is None else held_out_seed
    if held_seed == seed:
        raise ValueError(f"the held-out replay needs another seed than the fit replay ({seed})")
    fit = run_replay(predictor, val, n, seed, cache_resave=cache_resave)
    held = run_replay(predictor, val, n, held_seed, cache_resave=cache_resave)
    calibration, check = check_calibration(fit.labels, fit.raw_probs, held.labels, held.raw_probs, seed=held_seed)
    fitted_on = {"kind": "replay", "n": n, "seed": seed, "cache_resave": cache_resave}
    check["fit"] |= {"seed": seed}
    check["held_out"] |= {"seed": held_seed, "cache_resave": cache_resave}
    return calibration.to_dict() | {"fitted_on": fitted_on, "check": check}

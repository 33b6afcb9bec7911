"""Train a config and register the result as a candidate version with its lineage."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

from sqlalchemy import Engine
from sqlalchemy.orm import Session

from roadwork.clock import utcnow
from roadwork.config import Settings
from roadwork.db import repo
from roadwork.db.engine import read_session
from roadwork.platform import mining
from roadwork.platform.evaluation import resolve_data_path
from roadwork.platform.registry import register_version
from roadwork.trainer.config import TrainConfig
from roadwork.trainer.train import TrainResult, train

CALIBRATION_REPLAY = 400  # challenges in the replay the calibration is fitted on


def calibrate_checkpoint(checkpoint_dir: Path, config: TrainConfig, data_path: Path, n: int) -> dict:
    """Fit the calibration on a replay of the validation split and write it into the checkpoint's JSON."""
    from roadwork.platform.replay_evaluation import fit_replay_calibration
    from roadwork.trainer.checkpoint import META, atomic_write_bytes, read_meta
    from roadwork.trainer.data import read_records, split_records
    from roadwork.trainer.predict import Predictor

    records, _ = read_records(data_path)
    _, val = split_records(records, config.data.val_fraction, config.data.split_seed)
    calibration = fit_replay_calibration(Predictor.load(checkpoint_dir), val, n, seed=config.optim.seed + 1)
    meta = read_meta(checkpoint_dir) | {"calibration": calibration}
    atomic_write_bytes(Path(checkpoint_dir) / META, json.dumps(meta, indent=2, sort_keys=True).encode())
    return calibration


def choose_hard_negatives(
    session: Session, champion: repo.Version | None, set_id: int | None, use_latest: bool
) -> tuple[mining.HardNegativeSetInfo | None, list[str]]:
    """(set, record ids) a training run oversamples: set `set_id`, else the champion's newest set, else none."""
    if set_id is not None:
        chosen = mining.get_set(session, set_id)
    elif use_latest and champion is not None:
        chosen = mining.latest_set(session, champion.id)
    else:
        chosen = None
    return chosen, (mining.hard_negative_ids(session, chosen.id) if chosen is not None else [])


def train_and_register(
    engine: Engine,
    settings: Settings,
    config: TrainConfig,
    *,
    data_path: Path | None = None,
    actor: str = "cli",
    show_progress: bool = True,
    log: Callable[[str], None] = print,
    calibration_replay: int = CALIBRATION_REPLAY,
    hard_negative_set_id: int | None = None,
    use_latest_hard_negatives: bool = True,
) -> tuple[repo.Version, TrainResult]:
    """Train, calibrate, store the checkpoint by content, and add a candidate version whose parent is the champion.

    The calibration is fitted on a `calibration_replay`-challenge replay of the validation split (0: none), so
    that the threshold that is best on what validators send lands on their fixed 0.5 cut.

    Hard negatives: the records of set `hard_negative_set_id` (by default, with `use_latest_hard_negatives`, the
    newest set mined with the current champion) are seen `settings.mining.oversample` times per epoch, and the
    set is recorded in the version's lineage."""
    path = Path(data_path) if data_path else resolve_data_path(settings, config.data.path)
    with read_session(engine) as session:
        champion = repo.alias_holder(session)
        hard_set, hard_ids = choose_hard_negatives(session, champion, hard_negative_set_id, use_latest_hard_negatives)
    # The config as run records the data it actually used.
    config = config.model_copy(update={"data": config.data.model_copy(update={"path": str(path.resolve())})})
    run_dir = settings.home / "runs" / utcnow().strftime("%Y%m%dT%H%M%S%fZ")
    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / "settings.json").write_text(json.dumps(settings.public_dict(), indent=2))
    (run_dir / "config.json").write_text(json.dumps(config.to_dict(), indent=2))
    if hard_set is not None:
        log(f"hard negatives: set {hard_set.id} ({hard_set.name}), {len(hard_ids)} records, "
            f"oversampled x{settings.mining.oversample}")
    result = train(config, path, run_dir / "checkpoint", hard_negative_ids=hard_ids,
                   oversample=settings.mining.oversample, show_progress=show_progress, log=log)
    metrics_extra: dict = {}
    if calibration_replay:
        calibration = calibrate_checkpoint(result.checkpoint_dir, config, path, calibration_replay)
        log(f"calibration: best cut {calibration['threshold']:.3f} on a {calibration_replay}-challenge replay "
            "of the validation split, mapped onto 0.5")
        metrics_extra["calibration_threshold"] = calibration["threshold"]
    metrics = result.metrics | metrics_extra | {"n_train": result.n_train, "n_val": result.n_val,
                                "train_seconds": round(result.seconds, 2), "skipped_rows": result.read_report.skipped}
    version = register_version(
        engine,
        settings,
        result.checkpoint_dir,
        config=config.to_dict(),
        metrics=metrics,
        data_fingerprint=result.data_fingerprint,
        parent_id=champion.id if champion else None,
        hard_negative_set_id=hard_set.id if hard_set is not None else None,
        actor=actor,
    )
    (run_dir / "version.json").write_text(json.dumps({"id": version.id, "version": version.version}))
    return version, result

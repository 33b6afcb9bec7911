"""Train a config and register the result as a candidate version with its lineage."""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import Engine
from sqlalchemy.orm import Session

from roadwork.clock import utcnow
from roadwork.settings import Settings
from roadwork.db import repo
from roadwork.db.engine import read_session
from roadwork.platform import mining
from roadwork.platform.evaluation.validation import resolve_data_path
from roadwork.platform.registry.faults import fault_point
from roadwork.platform.registry.service import register_version
from roadwork.trainer.config import TrainConfig
from roadwork.trainer.data.readers import canonical_source
from roadwork.trainer.loop.distributed import rank_from_env
from roadwork.trainer.loop.ensemble import EnsembleResult, train_ensemble
from roadwork.trainer.loop.state import RESUME_DIR, clear_state
from roadwork.trainer.loop.train import TrainResult, train

CALIBRATION_REPLAY = 400  # challenges in the replay the calibration is fitted on, and in the held-out one


def calibrate_checkpoint(
    checkpoint_dir: Path, config: TrainConfig, data_path: Path, n: int, *, cache_resave: bool = True
) -> dict:
    """Fit the calibration on a replay of the validation split (seed = optim seed + 1), keep it only when a held-out
    replay (seed + 2) says it helps, and write it with the decision into the checkpoint's JSON."""
    from roadwork.platform.evaluation.replay import fit_replay_calibration
    from roadwork.trainer.model.checkpoint import META, atomic_write_bytes, read_meta
    from roadwork.trainer.data.records import read_records, split_records
    from roadwork.trainer.eval.predict import Predictor

    records, _ = read_records(data_path)
    _, val = split_records(records, config.data.val_fraction, config.data.split_seed)
    calibration = fit_replay_calibration(Predictor.load(checkpoint_dir), val, n, seed=config.optim.seed + 1,
                                         held_out_seed=config.optim.seed + 2, cache_resave=cache_resave)
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


@dataclass(frozen=True)
class Run:
    """A training run's folder, the data it reads, and the lineage it will be registered with."""

    path: Path  # the dataset
    config: TrainConfig  # as run: data.path is the resolved dataset
    run_dir: Path  # <home>/runs/<UTC timestamp>
    champion: repo.Version | None  # the parent of the version it registers
    hard_set: mining.HardNegativeSetInfo | None
    hard_ids: list[str]


def new_run_dir(settings: Settings) -> Path:
    """`<home>/runs/<UTC timestamp>`; under torchrun every rank gets the same folder (named by the run id)."""
    run_id = os.environ.get("TORCHELASTIC_RUN_ID")
    if run_id and int(os.environ.get("WORLD_SIZE", "1")) > 1:
        return settings.home / "runs" / f"ddp-{run_id}"
    return settings.home / "runs" / utcnow().strftime("%Y%m%dT%H%M%S%fZ")


class ResumeError(ValueError):
    """`--resume` cannot tell which run to continue, or the run it was given cannot be continued."""


def interrupted_runs(settings: Settings) -> list[Path]:
    """Run folders whose training left resumable state and that registered no version, oldest first.

    A run keeps its state until its version is registered, so a run killed during calibration or registration
    is among them too (resuming it rebuilds the checkpoint from the state and registers it)."""
    states = (settings.home / "runs").glob(f"*/checkpoint/{RESUME_DIR}/state.json")
    runs = [p.parents[2] for p in states if not (p.parents[2] / "version.json").exists()]
    return sorted(runs, key=lambda run: run.name)


def resumable_run(settings: Settings, run_id: str | None = None) -> Path:
    """The run `run_id` continues (a folder name under `<home>/runs`), or without one the only interrupted run.

    Raises `ResumeError` when there are several (naming them) or when `run_id` is not an interrupted run, and
    FileNotFoundError when there is none."""
    root = settings.home / "runs"
    runs = interrupted_runs(settings)
    listed = ", ".join(run.name for run in runs) or "none"
    if run_id is not None:
        run = root / run_id
        if run in runs:
            return run
        if Path(run_id).name != run_id or not run.is_dir():
            raise ResumeError(f"no training run '{run_id}' under {root}; interrupted runs: {listed}")
        if (run / "version.json").exists():
            registered = json.loads((run / "version.json").read_text())
            raise ResumeError(f"run '{run_id}' finished and is registered as version {registered.get('version')}; "
                              "nothing to resume")
        raise ResumeError(f"run '{run_id}' has no resumable state (it never finished an epoch); "
                          f"interrupted runs: {listed}")
    if not runs:
        raise FileNotFoundError(f"no interrupted training run to resume under {root}")
    if len(runs) > 1:
        raise ResumeError(f"{len(runs)} interrupted training runs under {root}: {listed}; "
                          "name the one to continue with --run RUN_ID")
    return runs[0]


def start_run(
    engine: Engine, settings: Settings, config: TrainConfig, data_path: Path | None,
    hard_negative_set_id: int | None, use_latest_hard_negatives: bool, log: Callable[[str], None],
    resume: bool = False, run_id: str | None = None,
) -> Run:
    """Resolve the data and the hard negatives, and open the run folder (settings.json, config.json)."""
    path = Path(data_path) if data_path else resolve_data_path(settings, config.data.path)
    with read_session(engine) as session:
        champion = repo.alias_holder(session)
        hard_set, hard_ids = choose_hard_negatives(session, champion, hard_negative_set_id, use_latest_hard_negatives)
    # The config as run records the data it actually used.
    config = config.model_copy(update={"data": config.data.model_copy(update={"path": canonical_source(path)})})
    run_dir = resumable_run(settings, run_id) if resume else new_run_dir(settings)
    run_dir.mkdir(parents=True, exist_ok=True)
    # public_dict masks every secret (tokens, the webhook URL, passwords in URLs): a run folder is shared freely
    (run_dir / "settings.json").write_text(json.dumps(settings.public_dict(), indent=2))
    (run_dir / "config.json").write_text(json.dumps(config.to_dict(), indent=2))
    if hard_set is not None:
        log(f"hard negatives: set {hard_set.id} ({hard_set.name}), {len(hard_ids)} records, "
            f"oversampled x{settings.mining.oversample}")
    return Run(path, config, run_dir, champion, hard_set, hard_ids)


def calibrate_and_register(
    engine: Engine, settings: Settings, run: Run, checkpoint_dir: Path, metrics: dict[str, Any], *,
    data_fingerprint: str, actor: str, log: Callable[[str], None], calibration_replay: int,
    lineage: dict[str, Any] | None = None,
) -> repo.Version:
    """Calibrate the run's checkpoint (`calibration_replay` challenges, 0: none) and register it as a candidate
    whose parent is the champion; `lineage` adds keys to the version's config."""
    if calibration_replay:
        calibration = calibrate_checkpoint(checkpoint_dir, run.config, run.path, calibration_replay,
                                           cache_resave=settings.evaluation.cache_resave)
        check = calibration["check"]
        verdict = "mapped onto 0.5" if check["applied"] else "not applied, the model answers its raw probability"
        log(f"calibration: best cut {check['fitted_threshold']:.3f} on a {calibration_replay}-challenge replay "
            f"of the validation split, {verdict}: {check['reason']}")
        metrics = metrics | {"calibration_threshold": calibration["threshold"], "calibration": check}
    version = register_version(
        engine,
        settings,
        checkpoint_dir,
        config=run.config.to_dict() | (lineage or {}),
        metrics=metrics,
        data_fingerprint=data_fingerprint,
        parent_id=run.champion.id if run.champion else None,
        hard_negative_set_id=run.hard_set.id if run.hard_set is not None else None,
        actor=actor,
    )
    (run.run_dir / "version.json").write_text(json.dumps({"id": version.id, "version": version.version}))
    return version


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
    resume: bool = False,
    run_id: str | None = None,
) -> tuple[repo.Version | None, TrainResult]:
    """Train, calibrate, store the checkpoint by content, and add a candidate version whose parent is the champion.

    The calibration is fitted on a `calibration_replay`-challenge replay of the validation split (0: none), so
    that the threshold that is best on what validators send lands on their fixed 0.5 cut, and applied only when a
    held-out replay of the same size confirms it (else the identity; the decision is in the version's metrics).

    Hard negatives: the records of set `hard_negative_set_id` (by default, with `use_latest_hard_negatives`, the
    newest set mined with the current champion) are seen `settings.mining.oversample` times per epoch, and the
    set is recorded in the version's lineage. Under torchrun, ranks other than 0 return (None, result).

    Resume: `resume` continues run `run_id`, or without one the only interrupted run (`resumable_run`). The
    run's resumable state is removed only once its version is registered, so a run killed while calibrating or
    registering is resumed too, and then registered."""
    run = start_run(engine, settings, config, data_path, hard_negative_set_id, use_latest_hard_negatives, log,
                    resume=resume or run_id is not None, run_id=run_id)
    checkpoint_dir = run.run_dir / "checkpoint"
    if resume or run_id is not None:
        log(f"resuming run {run.run_dir.name} ({run.run_dir})")
    result = train(run.config, run.path, checkpoint_dir, hard_negative_ids=run.hard_ids,
                   oversample=settings.mining.oversample, resume=resume or run_id is not None, keep_state=True,
                   show_progress=show_progress, log=log)
    if rank_from_env()[0] != 0:
        return None, result  # under torchrun only rank 0 saved a checkpoint; it registers the version
    fault_point("after_checkpoint")
    metrics = result.metrics | {"n_train": result.n_train, "n_val": result.n_val,
                                "train_seconds": round(result.seconds, 2), "skipped_rows": result.read_report.skipped}
    version = calibrate_and_register(engine, settings, run, result.checkpoint_dir, metrics,
                                     data_fingerprint=result.data_fingerprint, actor=actor, log=log,
                                     calibration_replay=calibration_replay)
    clear_state(checkpoint_dir)  # registered (and version.json written): nothing left to resume
    return version, result


def train_ensemble_and_register(
    engine: Engine,
    settings: Settings,
    config: TrainConfig,
    members: list[dict[str, Any]],
    combine: str = "mean",
    *,
    data_path: Path | None = None,
    actor: str = "cli",
    show_progress: bool = True,
    log: Callable[[str], None] = print,
    calibration_replay: int = CALIBRATION_REPLAY,
    hard_negative_set_id: int | None = None,
    use_latest_hard_negatives: bool = True,
) -> tuple[repo.Version, EnsembleResult]:
    """Train an ensemble (`members`: override dicts of `config`, see `parse_members`), calibrate it and register it
    as ONE candidate version, as `train_and_register` does for a single model.

    Lineage: the version's config is `config` plus `ensemble` (combine, weights, bias, and each member's name,
    kind, seed and overrides); its metrics are the ensemble's plus `members` (name, kind, seed, val_mcc, weight)."""
    run = start_run(engine, settings, config, data_path, hard_negative_set_id, use_latest_hard_negatives, log)
    result = train_ensemble(run.config, run.path, run.run_dir, members, combine, hard_negative_ids=run.hard_ids,
                            oversample=settings.mining.oversample, show_progress=show_progress, log=log)
    lineage = {"ensemble": {
        "combine": result.combine, "weights": result.weights, "bias": result.bias,
        "members": [{"name": m.name, "kind": m.kind, "seed": m.seed, "overrides": m.overrides} for m in result.members],
    }}
    metrics = result.metrics | {
        "members": [{"name": m.name, "kind": m.kind, "seed": m.seed, "val_mcc": m.val_mcc, "weight": m.weight}
                    for m in result.members],
        "n_train": result.n_train, "n_val": result.n_val, "train_seconds": round(result.seconds, 2),
        "skipped_rows": result.read_report.skipped,
    }
    version = calibrate_and_register(engine, settings, run, result.checkpoint_dir, metrics,
                                     data_fingerprint=result.data_fingerprint, actor=actor, log=log,
                                     calibration_replay=calibration_replay, lineage=lineage)
    return version, result

"""Evaluate a registered version on the validation split of its data; store overall and per-condition metrics.

(The challenge replay, which transforms images exactly as validators do, is a separate evaluation kind.)
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from sqlalchemy import Engine

from roadwork.settings import Settings
from roadwork.db import repo
from roadwork.db.engine import read_session, write_session
from roadwork.platform.registry.service import checkout
from roadwork.trainer.model.checkpoint import checkpoint_config, read_meta
from roadwork.trainer.config import TrainConfig
from roadwork.trainer.data.records import ReadReport, Record, decode_image, read_records, split_records
from roadwork.trainer.eval.metrics import binary_metrics, bootstrap_mcc_ci, threshold
from roadwork.trainer.eval.predict import Predictor
from roadwork.trainer.student.model import is_student_dir, read_student_meta
from roadwork.trainer.loop.train import data_fingerprint

MISSING = "(missing)"


def record_tags(record: Record) -> dict[str, str]:
    """Condition tags of a validation row. (Real vs synthetic source is a replay condition, where it is known.)"""
    return {"daytime": record.daytime or MISSING, "weather": record.weather or MISSING,
            "scene": record.scene or MISSING}


def condition_cells(
    tags: Sequence[dict[str, str]], labels: np.ndarray, answers: np.ndarray, min_n: int = 1
) -> list[repo.ConditionCell]:
    """MCC and accuracy with a bootstrap CI of the answers (cut at 0.5) for each value of each tag."""
    preds = threshold(answers)
    groups: dict[tuple[str, str], list[int]] = defaultdict(list)
    for i, row in enumerate(tags):
        for name, value in row.items():
            groups[(name, value)].append(i)
    cells = []
    for (name, value), idx in sorted(groups.items()):
        if len(idx) < min_n:
            continue
        m = binary_metrics(labels[idx], answers[idx])
        low, high = bootstrap_mcc_ci(labels[idx], preds[idx])
        cells.append(repo.ConditionCell(name, value[:64], m["n"], m["mcc"], m["accuracy"], low, high))
    return cells


def resolve_data_path(settings: Settings, configured: str | None) -> Path:
    """The dataset a config points at (a path, or a `dataset:` / Hub reference kept as written); empty means
    the home's synthetic dataset."""
    if configured:
        from roadwork.trainer.data.readers import canonical_source  # noqa: PLC0415

        return Path(canonical_source(configured))  # raises FileNotFoundError naming a missing local path
    path = settings.datasets_dir / "synth"
    if not path.exists():
        raise FileNotFoundError(
            f"dataset not found: {path} (create one with `roadwork data synth --out {path}` or set data.path)"
        )
    return path


@dataclass(frozen=True)
class DataSplits:
    path: Path
    train: list[Record]
    val: list[Record]
    fingerprint: str
    report: ReadReport


def data_splits(settings: Settings, config: TrainConfig, data_path: Path | None) -> DataSplits:
    """The dataset a version was trained on (or `data_path`), split as its config splits it."""
    path = Path(data_path) if data_path else resolve_data_path(settings, config.data.path)
    records, report = read_records(path)
    train, val = split_records(records, config.data.val_fraction, config.data.split_seed)
    if not val:
        raise ValueError(f"{path}: no validation rows")
    return DataSplits(path, train, val, data_fingerprint(records), report)


def load_for_evaluation(
    engine: Engine, settings: Settings, ref: str | int, data_path: Path | None
) -> tuple[repo.Version, Predictor, DataSplits]:
    """A registered version, its verified predictor, and its data split as its own config splits it."""
    with read_session(engine) as session:
        version = repo.get_version(session, ref)
    ckpt = checkout(settings, version)
    return version, Predictor.load(ckpt), data_splits(settings, checkpoint_train_config(ckpt), data_path)


def checkpoint_train_config(ckpt: Path) -> TrainConfig:
    """The training config a checkpoint carries (a student carries its teacher's: same data, same split)."""
    return checkpoint_config(read_student_meta(ckpt) if is_student_dir(ckpt) else read_meta(ckpt))


def evaluate_version(
    engine: Engine,
    settings: Settings,
    ref: str | int,
    *,
    data_path: Path | None = None,
    job_run_id: int | None = None,
) -> repo.Evaluation:
    """Run version `ref` on the validation split of `data_path` (default: its own training data); store it."""
    version, predictor, data = load_for_evaluation(engine, settings, ref, data_path)
    path, val, fingerprint, report = data.path, data.val, data.fingerprint, data.report
    labels = np.array([r.label for r in val], dtype=np.int64)
    raw = predictor.raw_probs([decode_image(r.image_bytes) for r in val])
    answers = predictor.calibration.apply(raw)
    overall = binary_metrics(labels, answers)
    low, high = bootstrap_mcc_ci(labels, threshold(answers))
    metrics = {**overall, "mcc_ci_low": low, "mcc_ci_high": high, "skipped_rows": report.skipped,
               "data_path": str(path), "before_calibration": binary_metrics(labels, raw),
               "calibration": predictor.calibration.to_dict()}
    with write_session(engine) as session:
        return repo.add_evaluation(
            session,
            version_id=version.id,
            dataset=f"validation:{fingerprint[:12]}",
            kind="validation",
            n=overall["n"],
            mcc=overall["mcc"],
            accuracy=overall["accuracy"],
            metrics=metrics,
            conditions=condition_cells([record_tags(r) for r in val], labels, answers),
            job_run_id=job_run_id,
        )

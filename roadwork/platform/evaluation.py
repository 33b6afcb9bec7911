"""Evaluate a registered version on the validation split of its data; store overall and per-condition metrics.

(The challenge replay, which transforms images exactly as validators do, is a separate evaluation kind.)
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from sqlalchemy import Engine

from roadwork.config import Settings
from roadwork.db import repo
from roadwork.db.engine import read_session, write_session
from roadwork.platform.registry import load_version
from roadwork.trainer.data import Record, read_records, split_records
from roadwork.trainer.metrics import binary_metrics, bootstrap_mcc_ci, threshold
from roadwork.trainer.train import data_fingerprint, predict_probs, to_tensors

# Record attribute -> condition name shown in reports.
# (Real vs synthetic source is a condition of the challenge replay, where the source is known.)
CONDITIONS = {"daytime": "daytime", "weather": "weather", "scene": "scene"}
MISSING = "(missing)"


def condition_cells(
    records: Sequence[Record], labels: np.ndarray, probs: np.ndarray, min_n: int = 1
) -> list[repo.ConditionCell]:
    """MCC and accuracy with a bootstrap CI for each value of each condition (missing values grouped)."""
    preds = threshold(probs)
    cells = []
    for attr, name in CONDITIONS.items():
        groups: dict[str, list[int]] = defaultdict(list)
        for i, rec in enumerate(records):
            groups[getattr(rec, attr) or MISSING].append(i)
        for value, idx in sorted(groups.items()):
            if len(idx) < min_n:
                continue
            m = binary_metrics(labels[idx], probs[idx])
            low, high = bootstrap_mcc_ci(labels[idx], preds[idx])
            cells.append(repo.ConditionCell(name, value[:64], m["n"], m["mcc"], m["accuracy"], low, high))
    return cells


def resolve_data_path(settings: Settings, configured: str | None) -> Path:
    """The dataset a config points at; empty means the home's synthetic dataset."""
    path = Path(configured).expanduser() if configured else settings.datasets_dir / "synth"
    if not path.exists():
        raise FileNotFoundError(
            f"dataset not found: {path} (create one with `roadwork data synth --out {path}` or set data.path)"
        )
    return path


def evaluate_version(
    engine: Engine,
    settings: Settings,
    ref: str | int,
    *,
    data_path: Path | None = None,
    job_run_id: int | None = None,
) -> repo.Evaluation:
    """Run version `ref` on the validation split of `data_path` (default: its own training data); store it."""
    with read_session(engine) as session:
        version = repo.get_version(session, ref)
    model, config = load_version(settings, version)
    path = Path(data_path) if data_path else resolve_data_path(settings, config.data.path)
    records, report = read_records(path)
    _, val = split_records(records, config.data.val_fraction, config.data.split_seed)
    if not val:
        raise ValueError(f"{path}: no validation rows")
    images, labels_t = to_tensors(val, config.data.image_size)
    labels = labels_t.numpy().astype(np.int64)
    probs = predict_probs(model, images)
    overall = binary_metrics(labels, probs)
    low, high = bootstrap_mcc_ci(labels, (probs > 0.5).astype(np.int64))
    metrics = {**overall, "mcc_ci_low": low, "mcc_ci_high": high, "skipped_rows": report.skipped,
               "data_path": str(path)}
    with write_session(engine) as session:
        return repo.add_evaluation(
            session,
            version_id=version.id,
            dataset=f"validation:{data_fingerprint(records)[:12]}",
            kind="validation",
            n=overall["n"],
            mcc=overall["mcc"],
            accuracy=overall["accuracy"],
            metrics=metrics,
            conditions=condition_cells(val, labels, probs),
            job_run_id=job_run_id,
        )

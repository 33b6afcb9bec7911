"""`roadwork score` on a stream holding the answers a broken miner gives: NaN and infinities are scored, not refused."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from roadwork.platform.evaluation.scoring import read_predictions_csv
from tests.helpers import as_json, roadwork
from tests.platform.scoring_reference import reference_scores


def score_json(home: Path, csv: Path) -> dict:
    """`roadwork score CSV --json` as a user runs it."""
    return as_json(roadwork(home, "score", str(csv), "--json"))


def test_score_reads_nan_and_infinities_and_zeroes_their_windows(tmp_path: Path) -> None:
    lines = [f"{i % 2},{0.9 if i % 2 else 0.1}" for i in range(150)]
    lines[20], lines[70], lines[90] = "0,nan", "1,inf", "0,-inf"
    csv = tmp_path / "p.csv"
    csv.write_text("label,prediction\n" + "\n".join(lines) + "\n")
    result = score_json(tmp_path / "home", csv)
    labels, preds = read_predictions_csv(csv)
    expected = reference_scores(labels.tolist(), preds.tolist())
    assert result["n"] == 150 and result["n_poisoning"] == 3
    assert result["mcc_100"] == 0.0 and result["accuracy_10"] == 1.0  # -inf at step 91 is in the last 100 only
    assert abs(result["final_score"] - expected[-1][3]) < 1e-12
    assert abs(result["mean_reward"] - np.mean([r for r, *_ in expected])) < 1e-12

"""The validator's scoring written out plainly, one challenge at a time, as a reference for the vectorised scorer.

Step by step from COMPETITION.md ("How a miner is scored"): append (prediction, label) to a history of the last
100; for each window (last 100 for MCC, last 10 for accuracy) drop the -1 answers, round the rest with
``np.round`` (half to even) and compute the metric with scikit-learn inside one try block; any error there
zeroes that window's metrics. scikit-learn itself raises on NaN and infinite predictions; a prediction that
rounds to neither 0 nor 1 makes the validator's calls fail too (COMPETITION.md), which the explicit check
stands for. Nothing here is shared with ``roadwork.platform.evaluation.scoring``.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence

import numpy as np
from sklearn.metrics import accuracy_score, matthews_corrcoef

MISSING = -1


def window_metrics(history: list[tuple[float, int]], size: int) -> tuple[float, float]:
    """(mcc, accuracy) over the last ``size`` entries of ``history``, as the validator computes them."""
    kept = [(p, y) for p, y in history[-size:] if p != MISSING]
    if not kept:
        return 0.0, 0.0
    truth = np.array([y for _, y in kept])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # sklearn's note on one-class windows; handled below
        warnings.simplefilter("ignore", RuntimeWarning)  # sklearn casting NaN and infinity before it raises
        try:
            hard = np.round(np.array([p for p, _ in kept], dtype=np.float64))
            accuracy = float(accuracy_score(truth, hard))  # raises on NaN and infinity
            mcc = float(matthews_corrcoef(truth, hard))
            if not set(hard.tolist()) <= {0.0, 1.0}:
                raise ValueError("a prediction rounds to neither class")
        except ValueError:
            return 0.0, 0.0
    both_classes = len(set(truth.tolist())) == 2 and len(set(hard.tolist())) == 2
    return (max(0.0, mcc) if both_classes else 0.0), accuracy


def reference_scores(labels: Sequence[int], predictions: Sequence[float]) -> list[tuple[float, float, float, float]]:
    """(reward, mcc_100, accuracy_10, score) after each challenge."""
    history: list[tuple[float, int]] = []
    score, out = 0.0, []
    for y, p in zip(labels, predictions, strict=True):
        history = (history + [(float(p), int(y))])[-100:]
        mcc_100 = window_metrics(history, 100)[0]
        accuracy_10 = window_metrics(history, 10)[1]
        in_range = p != MISSING and 0.0 <= p <= 1.0  # False for NaN
        reward = (0.5 * mcc_100 + 0.5 * accuracy_10) ** 3 if in_range else 0.0
        score = 0.05 * reward + 0.95 * score
        out.append((reward, mcc_100, accuracy_10, score))
    return out

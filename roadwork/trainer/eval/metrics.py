"""Binary classification metrics as the validators compute them: predictions > 0.5 are roadwork."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np


def threshold(probs: np.ndarray, cut: float = 0.5) -> np.ndarray:
    """Hard labels: strictly above `cut` is 1 (the validator rounds half to even, so 0.5 -> 0)."""
    return (np.asarray(probs, dtype=np.float64) > cut).astype(np.int64)


def confusion(labels: np.ndarray, preds: np.ndarray) -> tuple[int, int, int, int]:
    """(tp, tn, fp, fn) of hard 0/1 arrays."""
    y, p = np.asarray(labels, dtype=bool), np.asarray(preds, dtype=bool)
    return int(np.sum(y & p)), int(np.sum(~y & ~p)), int(np.sum(~y & p)), int(np.sum(y & ~p))


def mcc(labels: np.ndarray, preds: np.ndarray) -> float:
    """Matthews correlation of hard labels; 0.0 when it is undefined (a row or column of zeros)."""
    tp, tn, fp, fn = confusion(labels, preds)
    denom = math.sqrt(float(tp + fp) * float(tp + fn) * float(tn + fp) * float(tn + fn))
    return 0.0 if denom == 0 else (tp * tn - fp * fn) / denom


def accuracy(labels: np.ndarray, preds: np.ndarray) -> float:
    labels = np.asarray(labels)
    return float(np.mean(labels == np.asarray(preds))) if labels.size else 0.0


def precision(labels: np.ndarray, preds: np.ndarray) -> float:
    """tp / (tp + fp) of hard labels; 0.0 when nothing is predicted positive (sklearn's zero_division=0)."""
    tp, _, fp, _ = confusion(labels, preds)
    return tp / (tp + fp) if tp + fp else 0.0


def recall(labels: np.ndarray, preds: np.ndarray) -> float:
    """tp / (tp + fn) of hard labels; 0.0 when there are no positives (sklearn's zero_division=0)."""
    tp, _, _, fn = confusion(labels, preds)
    return tp / (tp + fn) if tp + fn else 0.0


def f1(labels: np.ndarray, preds: np.ndarray) -> float:
    """2 tp / (2 tp + fp + fn) of hard labels; 0.0 when tp + fp + fn == 0 (sklearn's zero_division=0)."""
    tp, _, fp, fn = confusion(labels, preds)
    return 2 * tp / (2 * tp + fp + fn) if tp + fp + fn else 0.0


def roc_auc(labels: np.ndarray, probs: np.ndarray) -> float:
    """Area under the ROC curve, ties counted as half (as sklearn's `roc_auc_score`).

    Raises ValueError when `labels` hold a single class (sklearn 1.9 warns and returns nan there; an AUC
    that silently becomes nan is worse than an error for us).
    """
    y = np.asarray(labels).astype(bool).ravel()
    p = np.asarray(probs, dtype=np.float64).ravel()
    if y.shape != p.shape:
        raise ValueError(f"labels and probs differ in length: {y.size} != {p.size}")
    n_pos = int(y.sum())
    n_neg = y.size - n_pos
    if n_pos == 0 or n_neg == 0:
        raise ValueError("only one class present in labels: ROC AUC is not defined")
    # Mann-Whitney U with mid-ranks for ties: the area under the trapezoidal ROC curve, exactly.
    order = np.argsort(p, kind="stable")
    sorted_p = p[order]
    starts = np.flatnonzero(np.r_[True, sorted_p[1:] != sorted_p[:-1]])
    ends = np.r_[starts[1:], p.size]
    group_rank = (starts + ends + 1) / 2.0  # mean of 1-based ranks starts+1 .. ends
    ranks = np.empty(p.size)
    ranks[order] = np.repeat(group_rank, ends - starts)
    u = ranks[y].sum() - n_pos * (n_pos + 1) / 2.0
    return float(u / (n_pos * n_neg))


def binary_metrics(labels: np.ndarray, probs: np.ndarray, cut: float = 0.5) -> dict[str, float]:
    """MCC, accuracy, precision, recall, F1 and counts at `cut`."""
    preds = threshold(probs, cut)
    tp, tn, fp, fn = confusion(labels, preds)
    return {
        "n": int(len(preds)),
        "mcc": mcc(labels, preds),
        "accuracy": accuracy(labels, preds),
        "precision": tp / (tp + fp) if tp + fp else 0.0,
        "recall": tp / (tp + fn) if tp + fn else 0.0,
        "f1": 2 * tp / (2 * tp + fp + fn) if tp + fp + fn else 0.0,
        "tp": tp,
        "tn": tn,
        "fp": fp,
        "fn": fn,
    }


def bootstrap_mcc_ci(
    labels: np.ndarray, preds: np.ndarray, n_boot: int = 200, alpha: float = 0.05, seed: int = 0
) -> tuple[float, float]:
    """Percentile bootstrap confidence interval of MCC (vectorised over resamples)."""
    labels, preds = np.asarray(labels, dtype=bool), np.asarray(preds, dtype=bool)
    n = len(labels)
    if n == 0:
        return (0.0, 0.0)
    idx = np.random.default_rng(seed).integers(0, n, size=(n_boot, n))
    y, p = labels[idx], preds[idx]
    tp = np.sum(y & p, axis=1).astype(np.float64)
    tn = np.sum(~y & ~p, axis=1).astype(np.float64)
    fp = np.sum(~y & p, axis=1).astype(np.float64)
    fn = np.sum(y & ~p, axis=1).astype(np.float64)
    denom = np.sqrt((tp + fp) * (tp + fn) * (tn + fp) * (tn + fn))
    with np.errstate(invalid="ignore", divide="ignore"):
        values = np.where(denom > 0, (tp * tn - fp * fn) / np.where(denom > 0, denom, 1), 0.0)
    low, high = np.quantile(values, [alpha / 2, 1 - alpha / 2])
    return float(low), float(high)


@dataclass(frozen=True, eq=False)  # eq=False: fields are arrays, whose == is elementwise
class ThresholdSweep:
    """Confusion counts and scores of `prob > t` at every threshold t of a grid (arrays aligned with `thresholds`)."""

    thresholds: np.ndarray  # (T,) increasing, inside (0, 1)
    mcc: np.ndarray  # (T,)
    accuracy: np.ndarray  # (T,)
    tp: np.ndarray  # (T,) int64
    fp: np.ndarray  # (T,) int64
    tn: np.ndarray  # (T,) int64
    fn: np.ndarray  # (T,) int64
    best_threshold: float  # highest MCC; ties -> closest to 0.5, then the lower threshold
    best_mcc: float


def sweep_thresholds(n_thresholds: int) -> np.ndarray:
    """`n_thresholds` evenly spaced cuts strictly inside (0, 1), plus 0.5 itself when the grid misses it.

    The grid is k / (n + 1) for k = 1..n (`linspace(0, 1, n + 2)[1:-1]`, each point correctly rounded). 0.5 is
    on it only for odd n, so it is added for even n (then the grid has n + 1 points): the validator's own cut
    is always a candidate, and the best threshold is never worse than 0.5 on the data it was chosen on.
    """
    if n_thresholds < 1:
        raise ValueError(f"n_thresholds must be >= 1, got {n_thresholds}")
    grid = np.arange(1, n_thresholds + 1) / (n_thresholds + 1)
    return grid if n_thresholds % 2 else np.union1d(grid, [0.5])


def mcc_from_counts(tp: np.ndarray, tn: np.ndarray, fp: np.ndarray, fn: np.ndarray) -> np.ndarray:
    """Elementwise Matthews correlation of confusion counts; 0.0 where undefined (as `mcc` and sklearn)."""
    tp, tn, fp, fn = (np.asarray(a, dtype=np.float64) for a in (tp, tn, fp, fn))
    denom = np.sqrt((tp + fp) * (tp + fn) * (tn + fp) * (tn + fn))
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(denom > 0, (tp * tn - fp * fn) / np.where(denom > 0, denom, 1.0), 0.0)


def threshold_sweep(labels: np.ndarray, probs: np.ndarray, n_thresholds: int = 5000) -> ThresholdSweep:
    """MCC, accuracy and confusion counts of `probs > t` for every t of `sweep_thresholds(n_thresholds)`.

    One sort plus one `searchsorted`: O((N + T) log N), no loop over thresholds. The MCC at each t equals
    `sklearn.metrics.matthews_corrcoef(labels, probs > t)` up to float rounding (~1e-16).
    """
    y = np.asarray(labels).astype(bool).ravel()
    p = np.asarray(probs, dtype=np.float64).ravel()
    if y.shape != p.shape:
        raise ValueError(f"labels and probs differ in length: {y.size} != {p.size}")
    if np.isnan(p).any():
        raise ValueError("probs contain NaN")
    thresholds = sweep_thresholds(n_thresholds)
    order = np.argsort(p, kind="stable")
    sorted_p = p[order]
    pos_below = np.r_[0, np.cumsum(y[order], dtype=np.int64)]  # (N + 1,) positives among the k smallest
    n, n_pos = p.size, int(y.sum())
    k = np.searchsorted(sorted_p, thresholds, side="right")  # (T,) how many probs are <= t: predicted 0
    tp = n_pos - pos_below[k]
    fn = pos_below[k]
    fp = (n - k) - tp
    tn = (n - n_pos) - fp
    mcc_t = mcc_from_counts(tp, tn, fp, fn)
    acc_t = (tp + tn) / n if n else np.zeros(thresholds.size)
    best = _best_index(mcc_t, thresholds)
    return ThresholdSweep(thresholds, mcc_t, acc_t, tp, fp, tn, fn, float(thresholds[best]), float(mcc_t[best]))


def _best_index(scores: np.ndarray, thresholds: np.ndarray, tol: float = 1e-12) -> int:
    """Index of the highest score; among scores within `tol` of it, the threshold closest to 0.5, then the lower.

    The tolerance makes thresholds with mathematically equal MCC (rounded differently) count as a tie.
    """
    near_top = np.flatnonzero(scores >= scores.max() - tol)
    distance = np.abs(thresholds[near_top] - 0.5)
    return int(near_top[np.lexsort((thresholds[near_top], distance))[0]])

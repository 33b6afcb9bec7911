"""Binary classification metrics as the validators compute them: predictions > 0.5 are roadwork."""

from __future__ import annotations

import math

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


def binary_metrics(labels: np.ndarray, probs: np.ndarray, cut: float = 0.5) -> dict[str, float]:
    """MCC, accuracy, precision, recall and counts at `cut`."""
    preds = threshold(probs, cut)
    tp, tn, fp, fn = confusion(labels, preds)
    return {
        "n": int(len(preds)),
        "mcc": mcc(labels, preds),
        "accuracy": accuracy(labels, preds),
        "precision": tp / (tp + fp) if tp + fp else 0.0,
        "recall": tp / (tp + fn) if tp + fn else 0.0,
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

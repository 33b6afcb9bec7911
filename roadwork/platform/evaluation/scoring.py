"""The validator's scoring of one miner, as a pure function of its (label, prediction) stream.

Rules (docs: /work/shared/COMPETITION.md, "How a miner is scored"; checked against the public validator,
natixnetwork/streetvision-subnet, `natix/validator/reward.py` and `miner_performance_tracker.py`):

- Every answer is appended to the miner's history, a window of the last 100 (prediction, label) pairs.
  Missing answers (-1) and out-of-range answers are appended too: **a -1 occupies a window slot** and pushes
  the oldest answer out, although the metrics then drop it.
- The metrics are computed after the current answer has been appended, over the last `min(window, len)`
  slots (100 for MCC, 10 for accuracy), keeping only the answers != -1. So with fewer than 10 answers so far,
  `accuracy_10` is the accuracy over all of them, and when some of the last 10 slots hold -1 it is the
  accuracy over the remaining valid answers of those 10 (not over 10). With no valid answer in the
  window, both metrics are 0.
- Hard predictions are `p > 0.5` (the validator's `np.round` rounds half to even, so 0.5 is 0). That agrees
  with `np.round` for every answer that rounds to 0 or 1, i.e. in [-0.5, 1.5): an answer in [-0.5, 0) or
  (1, 1.5) scores 0 at its own step but counts as its rounded class in the windows.
- `mcc_100` = max(0, MCC), and 0 unless the window's valid labels and hard predictions both hold both classes
  (MCC of a one-class prediction is 0 anyway, as sklearn's).
- reward = (0.5 mcc_100 + 0.5 accuracy_10) ** 3; 0 for a -1 answer and for an answer outside [0, 1].
- score = alpha * reward + (1 - alpha) * score, from 0, alpha = 0.05.

- Poisoning answers: the validator computes each window's metrics with scikit-learn inside one try block,
  and any error zeroes every metric of that window. An answer that is NaN, infinite, or rounds to neither 0
  nor 1 (below -0.5, or 1.5 and above) makes those calls fail, so it zeroes `mcc_100` at every step whose
  100-window holds it (its own and the next 99) and `accuracy_10` likewise for 10 steps. Only -1 itself is
  the missing answer (dropped before the metrics); -0.7 is a poisoning answer.

All windows are cumulative sums over the confusion indicators, vectorised over many streams at once.
"""

from __future__ import annotations

import csv
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO

import numpy as np
from scipy.signal import lfilter

from roadwork.trainer.eval.metrics import accuracy, mcc, mcc_from_counts, threshold

MISSING = -1.0


@dataclass(frozen=True)
class StepScore:
    reward: float
    mcc_100: float
    accuracy_10: float
    score: float  # the running score after this step


def score_stream(
    labels: Sequence[int],
    predictions: Sequence[float],
    *,
    window_mcc: int = 100,
    window_acc: int = 10,
    alpha: float = 0.05,
) -> list[StepScore]:
    """What the validator computes at each challenge of one miner's stream, in order."""
    y, p = _as_stream(labels, predictions)
    reward, mcc_w, acc_w, score = _score_streams(y[None, :], p[None, :], window_mcc, window_acc, alpha)
    return [
        StepScore(float(r), float(m), float(a), float(s))
        for r, m, a, s in zip(reward[0], mcc_w[0], acc_w[0], score[0])
    ]


def poisoning(predictions: Sequence[float] | np.ndarray) -> np.ndarray:
    """True where an answer zeroes the metrics of every window it sits in: NaN, infinite, or rounding (half to
    even) to neither 0 nor 1, i.e. outside [-0.5, 1.5); never the missing answer -1."""
    p = np.asarray(predictions, dtype=np.float64)
    with np.errstate(invalid="ignore"):
        return (p != MISSING) & ~(np.isfinite(p) & (p >= -0.5) & (p < 1.5))


def summarize(labels: Sequence[int], predictions: Sequence[float]) -> dict[str, float]:
    """Final and mean scoring of a stream, plus overall MCC and accuracy at 0.5 over the valid (!= -1) answers.

    Keys: n (challenges), n_valid, n_poisoning (answers that zero their windows: NaN, infinite, rounding to
    neither class), final_score, mean_reward, mcc_100 and accuracy_10 (at the last step), mcc, accuracy (here a
    poisoning answer counts as `p > 0.5`, NaN as 0).
    """
    y, p = _as_stream(labels, predictions)
    valid = p != MISSING
    steps = score_stream(y, p)
    last = steps[-1] if steps else StepScore(0.0, 0.0, 0.0, 0.0)
    hard = threshold(p[valid])
    return {
        "n": int(y.size),
        "n_valid": int(valid.sum()),
        "n_poisoning": int(poisoning(p).sum()),
        "final_score": last.score,
        "mean_reward": float(np.mean([s.reward for s in steps])) if steps else 0.0,
        "mcc_100": last.mcc_100,
        "accuracy_10": last.accuracy_10,
        "mcc": mcc(y[valid], hard),
        "accuracy": accuracy(y[valid], hard),
    }


def read_predictions_csv(path: str | Path) -> tuple[np.ndarray, np.ndarray]:
    """(labels int64, predictions float64) from a CSV with a header naming `label` and `prediction`.

    Rows are challenges in order. Labels must be 0 or 1; predictions any number, including `nan`, `inf` and
    `-inf` (-1 = missing; values outside [0, 1] are kept and scored as the validator scores them: 0 at their
    step, and NaN, infinities and values that round to neither class zero their windows). ValueError names the
    line number and the problem.
    """
    labels: list[int] = []
    preds: list[float] = []
    with open(path, newline="", encoding="utf-8") as f:
        reader = csv.reader(_bounded_lines(f, path))
        try:
            header = next(reader, None)
        except csv.Error as exc:
            raise ValueError(f"{path}: line {reader.line_num}: {exc}") from None
        if header is None:
            raise ValueError(f"{path}: empty file, expected a header with columns label,prediction")
        names = [h.strip().lower() for h in header]
        missing = [c for c in ("label", "prediction") if c not in names]
        if missing:
            raise ValueError(f"{path}: line 1: header lacks column(s) {', '.join(missing)} (found {header})")
        i_label, i_pred = names.index("label"), names.index("prediction")
        while True:
            try:
                row = next(reader, None)
            except csv.Error as exc:  # e.g. a quote left open, a NUL byte
                raise ValueError(f"{path}: line {reader.line_num}: {exc}") from None
            if row is None:
                break
            line = reader.line_num
            if not row or all(not cell.strip() for cell in row):
                continue  # blank lines carry no challenge
            if len(row) != len(header):
                raise ValueError(f"{path}: line {line}: expected {len(header)} fields, got {len(row)}")
            labels.append(_parse_label(row[i_label], path, line))
            preds.append(_parse_prediction(row[i_pred], path, line))
    return np.asarray(labels, dtype=np.int64), np.asarray(preds, dtype=np.float64)


# A line of a predictions CSV holds a label and a number: anything near this long is not one. Lines are read at
# most this long, so a file of one enormous line is refused without being read into memory.
MAX_CSV_LINE_CHARS = 64 * 1024


def _bounded_lines(f: TextIO, path: str | Path) -> Iterator[str]:
    """The lines of `f`; ValueError naming the line number of one longer than :data:`MAX_CSV_LINE_CHARS`."""
    number = 0
    while line := f.readline(MAX_CSV_LINE_CHARS + 1):
        number += 1
        if len(line) > MAX_CSV_LINE_CHARS:
            raise ValueError(f"{path}: line {number}: longer than {MAX_CSV_LINE_CHARS} characters; "
                             "expected label,prediction")
        yield line


def expected_reward(
    labels: Sequence[int],
    probs: Sequence[float],
    *,
    n_orderings: int = 200,
    length: int | None = None,
    seed: int = 0,
) -> dict:
    """Monte Carlo of the score over random challenge orders of a model's (label, prob) answers.

    `length=None`: each ordering is a random permutation of all the pairs; otherwise `length` pairs drawn with
    replacement (a bootstrap stream of that many challenges). Returns the mean and 95% percentile interval of
    the final score and of the mean reward: {"final_score": {"mean", "ci_low", "ci_high"}, "mean_reward": {...},
    "n_orderings"}.
    """
    y, p = _as_stream(labels, probs)
    if y.size == 0:
        raise ValueError("expected_reward needs at least one (label, prob) pair")
    if n_orderings < 1:
        raise ValueError(f"n_orderings must be >= 1, got {n_orderings}")
    rng = np.random.default_rng(seed)
    if length is None:
        idx = np.argsort(rng.random((n_orderings, y.size)), axis=1)  # (K, N) random permutations
    else:
        if length < 1:
            raise ValueError(f"length must be >= 1, got {length}")
        idx = rng.integers(0, y.size, size=(n_orderings, length))  # (K, L) bootstrap draws
    reward, _, _, score = _score_streams(y[idx], p[idx], 100, 10, 0.05)
    return {
        "final_score": _mean_ci(score[:, -1]),
        "mean_reward": _mean_ci(reward.mean(axis=1)),
        "n_orderings": int(n_orderings),
    }


def _score_streams(
    y: np.ndarray, p: np.ndarray, window_mcc: int, window_acc: int, alpha: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(reward, mcc_100, accuracy_10, score), each (K, N), for K streams of N challenges."""
    if window_mcc < 1 or window_acc < 1:
        raise ValueError("windows must hold at least one answer")
    if not 0 < alpha <= 1:
        raise ValueError(f"alpha must be in (0, 1], got {alpha}")
    k, n = y.shape
    if n == 0:
        empty = np.zeros((k, 0))
        return empty, empty, empty, empty
    valid = p != MISSING
    poison = poisoning(p)
    truth, hard = y.astype(bool), p > 0.5
    # (5, K, N + 1): running counts of tp, tn, fp, fn over valid answers and of poisoning ones, with a leading 0.
    indicators = np.stack([truth & hard, ~truth & ~hard, ~truth & hard, truth & ~hard, poison]) & valid
    counts = np.concatenate([np.zeros((5, k, 1), np.int64), np.cumsum(indicators, axis=2, dtype=np.int64)], axis=2)

    def window(size: int) -> np.ndarray:  # (5, K, N) counts over the last `size` slots at each step
        end = np.arange(1, n + 1)
        return counts[:, :, end] - counts[:, :, np.maximum(end - size, 0)]

    tp, tn, fp, fn, bad = window(window_mcc)
    both_labels = (tp + fn > 0) & (tn + fp > 0) & (bad == 0)
    mcc_w = np.where(both_labels, np.maximum(mcc_from_counts(tp, tn, fp, fn), 0.0), 0.0)
    tp, tn, fp, fn, bad = window(window_acc)
    n_valid = tp + tn + fp + fn
    acc_w = np.where((n_valid > 0) & (bad == 0), (tp + tn) / np.maximum(n_valid, 1), 0.0)
    in_range = valid & (p >= 0.0) & (p <= 1.0)  # NaN fails both comparisons too
    reward = np.where(in_range, (0.5 * mcc_w + 0.5 * acc_w) ** 3, 0.0)
    # score[t] = alpha * reward[t] + (1 - alpha) * score[t - 1], score[-1] = 0: a first-order IIR filter.
    score = lfilter([alpha], [1.0, -(1.0 - alpha)], reward, axis=1)
    return reward, mcc_w, acc_w, score


def _as_stream(labels: Sequence[int], predictions: Sequence[float]) -> tuple[np.ndarray, np.ndarray]:
    y = np.asarray(labels).ravel()
    p = np.asarray(predictions, dtype=np.float64).ravel()
    if y.shape != p.shape:
        raise ValueError(f"labels and predictions differ in length: {y.size} != {p.size}")
    if not np.isin(y, (0, 1)).all():
        raise ValueError("labels must be 0 or 1")
    return y.astype(np.int64), p


def _mean_ci(values: np.ndarray) -> dict[str, float]:
    low, high = np.percentile(values, [2.5, 97.5])
    return {"mean": float(np.mean(values)), "ci_low": float(low), "ci_high": float(high)}


def _parse_label(cell: str, path: str | Path, line: int) -> int:
    try:
        value = float(cell)
    except ValueError:
        raise ValueError(f"{path}: line {line}: label {cell.strip()!r} is not a number") from None
    if value not in (0.0, 1.0):
        raise ValueError(f"{path}: line {line}: label must be 0 or 1, got {cell.strip()!r}")
    return int(value)


def _parse_prediction(cell: str, path: str | Path, line: int) -> float:
    try:
        return float(cell)  # also "nan", "inf", "-inf", "infinity", any case: answers a miner can give
    except ValueError:
        raise ValueError(f"{path}: line {line}: prediction {cell.strip()!r} is not a number") from None

from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import f1_score, matthews_corrcoef, precision_score, recall_score, roc_auc_score

from roadwork.trainer.eval import metrics


def random_case(seed: int, n: int = 300, decimals: int = 2) -> tuple[np.ndarray, np.ndarray]:
    """Labels and probs of a weak model; rounding makes many probs tie."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 2, n)
    probs = np.round(np.clip(0.3 * labels + 0.7 * rng.random(n), 0, 1), decimals)
    return labels, probs


@pytest.mark.parametrize("seed", range(6))
def test_precision_recall_f1_match_scikit_learn(seed: int) -> None:
    labels, probs = random_case(seed)
    for cut in (0.05, 0.3, 0.5, 0.7, 0.99):
        preds = metrics.threshold(probs, cut)
        assert metrics.precision(labels, preds) == pytest.approx(precision_score(labels, preds, zero_division=0))
        assert metrics.recall(labels, preds) == pytest.approx(recall_score(labels, preds, zero_division=0))
        assert metrics.f1(labels, preds) == pytest.approx(f1_score(labels, preds, zero_division=0))


def test_zero_division_cases_give_zero_as_scikit_learn() -> None:
    nothing_predicted, no_positives = np.zeros(4, int), np.zeros(4, int)
    labels = np.array([1, 0, 1, 0])
    assert metrics.precision(labels, nothing_predicted) == 0.0
    assert metrics.recall(no_positives, np.array([1, 0, 0, 0])) == 0.0
    assert metrics.f1(no_positives, nothing_predicted) == f1_score(no_positives, nothing_predicted, zero_division=0)


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("decimals", [1, 2, 8])
def test_roc_auc_matches_scikit_learn_with_ties(seed: int, decimals: int) -> None:
    labels, probs = random_case(seed, decimals=decimals)
    assert metrics.roc_auc(labels, probs) == pytest.approx(roc_auc_score(labels, probs), abs=1e-12)


def test_roc_auc_hand_cases() -> None:
    assert metrics.roc_auc([0, 0, 1, 1], [0.1, 0.2, 0.8, 0.9]) == 1.0
    assert metrics.roc_auc([0, 1], [0.5, 0.5]) == 0.5  # a tie counts half


def test_roc_auc_of_one_class_raises() -> None:
    with pytest.raises(ValueError, match="one class"):
        metrics.roc_auc([1, 1, 1], [0.2, 0.5, 0.9])


def test_binary_metrics_keeps_its_keys_and_adds_f1() -> None:
    labels, probs = random_case(0)
    m = metrics.binary_metrics(labels, probs)
    assert {"n", "mcc", "accuracy", "precision", "recall", "tp", "tn", "fp", "fn"} <= set(m)
    assert m["f1"] == pytest.approx(f1_score(labels, metrics.threshold(probs)))


def test_sweep_grid_is_inside_the_unit_interval_and_holds_half() -> None:
    for n in (1, 2, 99, 5000):
        grid = metrics.sweep_thresholds(n)
        assert grid[0] > 0 and grid[-1] < 1 and np.all(np.diff(grid) > 0) and np.sum(grid == 0.5) == 1
        assert len(grid) == (n if n % 2 else n + 1)


@pytest.mark.parametrize("seed", range(3))
def test_sweep_equals_scikit_learn_at_every_threshold(seed: int) -> None:
    labels, probs = random_case(seed, n=120, decimals=2)
    sweep = metrics.threshold_sweep(labels, probs, n_thresholds=199)  # grid k/200: hits many probs exactly
    assert np.isin(probs, sweep.thresholds).sum() > 50
    for i, t in enumerate(sweep.thresholds):
        preds = probs > t
        assert sweep.mcc[i] == pytest.approx(matthews_corrcoef(labels, preds), abs=1e-12)
        assert sweep.accuracy[i] == pytest.approx(np.mean(labels == preds), abs=1e-12)
        tp, tn, fp, fn = metrics.confusion(labels, preds)
        assert (sweep.tp[i], sweep.tn[i], sweep.fp[i], sweep.fn[i]) == (tp, tn, fp, fn)


def test_sweep_at_thresholds_equal_to_prediction_values() -> None:
    labels, probs = random_case(7, n=500, decimals=3)
    sweep = metrics.threshold_sweep(labels, probs, n_thresholds=999)  # grid k/1000 = the prob values
    hits = np.flatnonzero(np.isin(sweep.thresholds, probs))
    assert len(hits) > 300
    for i in hits:
        assert sweep.mcc[i] == pytest.approx(matthews_corrcoef(labels, probs > sweep.thresholds[i]), abs=1e-12)


def test_sweep_matches_scikit_learn_at_random_thresholds_on_a_larger_case() -> None:
    labels, probs = random_case(11, n=20_000, decimals=4)
    sweep = metrics.threshold_sweep(labels, probs)  # default 5000 thresholds
    picks = np.random.default_rng(0).choice(len(sweep.thresholds), 200, replace=False)
    for i in picks:
        assert sweep.mcc[i] == pytest.approx(matthews_corrcoef(labels, probs > sweep.thresholds[i]), abs=1e-12)


def test_best_threshold_has_the_highest_mcc_and_ties_go_toward_half() -> None:
    labels, probs = random_case(3, n=2000)
    sweep = metrics.threshold_sweep(labels, probs, 500)
    assert sweep.best_mcc == pytest.approx(sweep.mcc.max())
    assert sweep.best_mcc == pytest.approx(metrics.mcc(labels, probs > sweep.best_threshold))
    # Perfectly separable at any cut in [0.2, 0.8): every such threshold ties at MCC 1; 0.5 is chosen.
    sep = metrics.threshold_sweep([0, 0, 1, 1], [0.1, 0.2, 0.8, 0.9], 100)
    assert sep.best_mcc == 1.0 and sep.best_threshold == 0.5
    # Separable only at cuts in [0.6, 0.7): the tied threshold closest to 0.5 is the lowest of them.
    off = metrics.threshold_sweep([0, 0, 1, 1], [0.1, 0.6, 0.7, 0.9], 99)  # grid k/100
    assert off.best_mcc == 1.0 and off.best_threshold == pytest.approx(0.6)
    # Nothing to learn (one class): MCC is 0 everywhere and the validator's cut stays.
    flat = metrics.threshold_sweep([1, 1, 1], [0.2, 0.4, 0.9], 100)
    assert flat.best_mcc == 0.0 and flat.best_threshold == 0.5


def test_sweep_rejects_mismatched_lengths_and_nan() -> None:
    with pytest.raises(ValueError, match="length"):
        metrics.threshold_sweep([0, 1], [0.5])
    with pytest.raises(ValueError, match="NaN"):
        metrics.threshold_sweep([0, 1], [0.5, float("nan")])

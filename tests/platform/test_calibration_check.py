"""The calibration is applied only when a held-out replay confirms the fitted cut; otherwise the identity is kept."""

from __future__ import annotations

import numpy as np
import pytest

from roadwork.platform.evaluation.calibration_check import TOLERANCE, check_calibration
from roadwork.trainer.eval.calibration import Calibration
from roadwork.trainer.eval.metrics import mcc, threshold


def low_scoring_positives(seed: int, n: int = 400) -> tuple[np.ndarray, np.ndarray]:
    """A model whose positives mostly score 0.3-0.5: the best cut is near 0.3 on any draw, 0.5 misses most."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 2, n)
    probs = np.where(labels == 1, rng.uniform(0.28, 0.6, n), rng.uniform(0.0, 0.32, n))
    return labels, probs


def band(labels_in_band: int, n_band: int = 40, n_clean: int = 160) -> tuple[np.ndarray, np.ndarray]:
    """Clean negatives below 0.45 and positives above 0.75, plus `n_band` challenges scored 0.5-0.7 whose label is
    `labels_in_band`: where the band's challenges belong is exactly what differs between two replays."""
    clean_neg = np.linspace(0.05, 0.45, n_clean // 2)
    clean_pos = np.linspace(0.75, 0.95, n_clean // 2)
    band_scores = np.linspace(0.51, 0.69, n_band)
    probs = np.concatenate([clean_neg, clean_pos, band_scores])
    labels = np.concatenate([np.zeros(n_clean // 2), np.ones(n_clean // 2), np.full(n_band, labels_in_band)])
    return labels.astype(np.int64), probs


def test_a_cut_that_also_helps_on_the_held_out_replay_is_applied() -> None:
    fit_y, fit_p = low_scoring_positives(seed=1)
    held_y, held_p = low_scoring_positives(seed=2)
    calibration, record = check_calibration(fit_y, fit_p, held_y, held_p, seed=2)

    assert record["applied"] is True and "improves" in record["reason"]
    assert 0.25 < record["fitted_threshold"] < 0.35
    assert calibration == Calibration(record["fitted_threshold"])
    # The stored numbers are the answers' MCC at the validators' 0.5 cut, before and after, on each replay.
    held = record["held_out"]
    assert held["mcc_before"] == pytest.approx(mcc(held_y, threshold(held_p)))
    assert held["mcc_after"] == pytest.approx(mcc(held_y, threshold(calibration.apply(held_p))))
    assert held["mcc_diff"] == pytest.approx(held["mcc_after"] - held["mcc_before"]) and held["mcc_diff"] > 0.2
    assert 0 < held["ci_low"] <= held["mcc_diff"] <= held["ci_high"] and held["n"] == 400
    assert record["fit"]["mcc_after"] > record["fit"]["mcc_before"] and record["fit"]["n"] == 400


def test_a_cut_overfitted_to_the_fit_replay_is_not_applied_and_the_identity_is_kept() -> None:
    # Fit replay: the 0.5-0.7 band is negatives, so its best cut is ~0.7. Held out: the band is positives, where
    # that cut turns 40 right answers into wrong ones.
    fit_y, fit_p = band(labels_in_band=0)
    held_y, held_p = band(labels_in_band=1)
    calibration, record = check_calibration(fit_y, fit_p, held_y, held_p, seed=5)

    assert record["fitted_threshold"] >= 0.69  # the cut the fit replay asks for
    assert record["fit"]["mcc_after"] > record["fit"]["mcc_before"]  # ... and it looks better there
    assert record["applied"] is False and "does not improve" in record["reason"]
    assert record["held_out"]["mcc_diff"] < 0 and record["held_out"]["mcc_before"] == pytest.approx(1.0)
    assert calibration == Calibration.identity()
    assert np.array_equal(calibration.apply(held_p), held_p)  # the deployed model answers its raw probability


def test_a_small_gain_is_applied_only_when_the_ci_stays_within_the_tolerance() -> None:
    # Held out: the band is 21 negatives and 19 positives, so cutting it away gains a little and may lose.
    fit_y, fit_p = band(labels_in_band=0)
    held_y, held_p = band(labels_in_band=0)
    held_y[-19:] = 1
    _, record = check_calibration(fit_y, fit_p, held_y, held_p, seed=3)
    held = record["held_out"]
    assert held["ci_low"] < 0 < held["mcc_diff"]

    strict, looser = -held["ci_low"] - 0.001, -held["ci_low"] + 0.001
    refused, refused_record = check_calibration(fit_y, fit_p, held_y, held_p, seed=3, tolerance=strict)
    kept, kept_record = check_calibration(fit_y, fit_p, held_y, held_p, seed=3, tolerance=looser)
    assert refused == Calibration.identity() and "not significant" in refused_record["reason"]
    assert kept == Calibration(kept_record["fitted_threshold"]) and kept_record["applied"] is True
    # With the default rule (no tolerance) such a gain, whose CI reaches below 0, is not applied.
    assert TOLERANCE == 0 and record["applied"] is False and "CI lies above 0" in record["rule"]

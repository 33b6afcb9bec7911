from __future__ import annotations

import json

import numpy as np
import pytest

from roadwork.trainer.eval.calibration import Calibration, fit_calibration
from roadwork.trainer.eval.metrics import binary_metrics, threshold_sweep

THRESHOLDS = [0.01, 0.05, 0.3, 0.5, 0.5000001, 0.72, 0.99, 1 / 3]


def probe_probs(t: float, seed: int = 0) -> np.ndarray:
    """Random probs plus the hard spots: 0, 1, t itself and the floats right next to t."""
    rng = np.random.default_rng(seed)
    near = [t, np.nextafter(t, 0), np.nextafter(t, 1), np.nextafter(np.nextafter(t, 1), 1), t + 1e-15, t - 1e-15]
    return np.concatenate([rng.random(5000), rng.random(500) * 0.02 + t - 0.01, near, [0.0, 1.0, 0.5]])


@pytest.mark.parametrize("t", THRESHOLDS)
def test_apply_moves_the_cut_onto_half_exactly(t: float) -> None:
    cal = Calibration(t)
    p = probe_probs(t)
    out = cal.apply(p)
    assert np.array_equal(out > 0.5, p > t)
    assert cal.apply(t) == 0.5  # raw t is "no roadwork"; so is its image
    assert cal.apply(0.0) == 0.0 and cal.apply(1.0) == 1.0
    assert out.min() >= 0.0 and out.max() <= 1.0


@pytest.mark.parametrize("t", THRESHOLDS)
def test_apply_is_monotone(t: float) -> None:
    p = np.sort(probe_probs(t, seed=1))
    assert np.all(np.diff(Calibration(t).apply(p)) >= 0)
    # Strictly increasing wherever the float grid allows: well-separated inputs stay apart.
    coarse = np.linspace(0, 1, 1001)
    assert np.all(np.diff(Calibration(t).apply(coarse)) > 0)


@pytest.mark.parametrize("t", THRESHOLDS)
def test_metrics_at_half_after_calibration_equal_metrics_at_t_before(t: float) -> None:
    rng = np.random.default_rng(2)
    labels = rng.integers(0, 2, 2000)
    probs = np.round(np.clip(0.4 * labels + 0.6 * rng.random(2000), 0, 1), 3)
    probs[:20] = t  # exactly on the cut
    assert binary_metrics(labels, Calibration(t).apply(probs)) == binary_metrics(labels, probs, cut=t)


def test_apply_is_piecewise_linear_and_identity_is_exact() -> None:
    cal = Calibration(0.8)
    assert cal.apply([0.4, 0.9]) == pytest.approx([0.25, 0.75])
    p = np.random.default_rng(3).random(1000)
    assert np.array_equal(Calibration.identity().apply(p), p)
    assert Calibration.identity().threshold == 0.5


def test_inputs_outside_the_unit_interval_are_clipped() -> None:
    assert Calibration(0.3).apply([-0.5, 1.5]).tolist() == [0.0, 1.0]


def test_round_trip_through_json() -> None:
    cal = Calibration(0.72)
    d = json.loads(json.dumps(cal.to_dict()))
    assert d == {"kind": "piecewise_linear", "threshold": 0.72}
    assert Calibration.from_dict(d) == cal


@pytest.mark.parametrize(
    ("d", "field"),
    [
        ({"kind": "isotonic", "threshold": 0.7}, "'kind'"),
        ({"threshold": 0.7}, "'kind'"),
        ({"kind": "piecewise_linear"}, "'threshold'"),
        ({"kind": "piecewise_linear", "threshold": "0.7"}, "'threshold'"),
        ({"kind": "piecewise_linear", "threshold": 0.0}, "'threshold'"),
        ({"kind": "piecewise_linear", "threshold": 1.0}, "'threshold'"),
        ({"kind": "piecewise_linear", "threshold": float("nan")}, "'threshold'"),
        ({"kind": "piecewise_linear", "threshold": True}, "'threshold'"),
    ],
)
def test_from_dict_names_the_bad_field(d: dict, field: str) -> None:
    with pytest.raises(ValueError, match=field):
        Calibration.from_dict(d)


def test_from_dict_rejects_a_non_object() -> None:
    with pytest.raises(ValueError, match="object"):
        Calibration.from_dict([0.7])


def test_fit_calibration_takes_the_best_threshold_and_never_loses_to_half() -> None:
    rng = np.random.default_rng(4)
    labels = rng.integers(0, 2, 3000)
    probs = np.clip(0.5 * labels + 0.5 * rng.random(3000) + 0.15, 0, 1)  # biased high: best cut above 0.5
    cal = fit_calibration(labels, probs)
    sweep = threshold_sweep(labels, probs)
    assert cal.threshold == sweep.best_threshold and cal.threshold > 0.5
    calibrated = binary_metrics(labels, cal.apply(probs))
    assert calibrated["mcc"] == pytest.approx(sweep.best_mcc)
    assert calibrated["mcc"] >= binary_metrics(labels, probs)["mcc"]

"""Move our chosen decision threshold onto the validator's fixed cut at 0.5.

Validators always count `answer > 0.5` as roadwork. When a model's best cut on raw probabilities is some other
t, the miner answers `calibration.apply(prob)` instead: a monotone piecewise linear map sending [0, t] onto
[0, 0.5] and [t, 1] onto [0.5, 1], so `apply(p) > 0.5` exactly when `p > t`. It is saved with the model
version as JSON (`to_dict` / `from_dict`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from roadwork.trainer.eval.metrics import threshold_sweep

KIND = "piecewise_linear"
# The smallest float above 0.5: what any p > t must map to at least, because 0.5 + (a tiny slope term)
# rounds back to 0.5 when p is within a few ulps of t.
_ABOVE_HALF = float(np.nextafter(0.5, 1.0))


@dataclass(frozen=True)
class Calibration:
    threshold: float  # the chosen cut t in (0, 1) on raw probabilities; 0.5 is the identity

    def __post_init__(self) -> None:
        t = self.threshold
        if isinstance(t, bool) or not isinstance(t, (int, float)) or not math.isfinite(t) or not 0 < t < 1:
            raise ValueError(f"'threshold' must be a number strictly between 0 and 1, got {t!r}")
        object.__setattr__(self, "threshold", float(t))

    def apply(self, probs: np.ndarray | float) -> np.ndarray:
        """Calibrated answers in [0, 1], same shape as `probs` (inputs are clipped to [0, 1] first).

        Monotone; apply(0) = 0, apply(t) = 0.5 exactly (no roadwork, like raw t under the strict cut), apply(1) = 1.
        """
        t = self.threshold
        p = np.clip(np.asarray(probs, dtype=np.float64), 0.0, 1.0)
        # p <= t: p / t <= 1 in floating point too (division is correctly rounded), so the result is <= 0.5.
        low = (p / t) * 0.5
        high = np.maximum(0.5 + 0.5 * ((p - t) / (1.0 - t)), _ABOVE_HALF)
        return np.where(p <= t, low, high)

    def to_dict(self) -> dict[str, Any]:
        return {"kind": KIND, "threshold": self.threshold}

    @classmethod
    def from_dict(cls, d: Any) -> Calibration:
        """Rebuild from `to_dict` output; ValueError naming the bad field."""
        if not isinstance(d, dict):
            raise ValueError(f"calibration must be a JSON object, got {type(d).__name__}")
        if d.get("kind") != KIND:
            raise ValueError(f"'kind' must be {KIND!r}, got {d.get('kind')!r}")
        if "threshold" not in d:
            raise ValueError("'threshold' is missing")
        return cls(d["threshold"])

    @classmethod
    def identity(cls) -> Calibration:
        return cls(0.5)


def fit_calibration(labels: np.ndarray, probs: np.ndarray, n_thresholds: int = 5000) -> Calibration:
    """The calibration whose cut is the MCC-best threshold of `threshold_sweep(labels, probs, n_thresholds)`."""
    return Calibration(threshold_sweep(labels, probs, n_thresholds).best_threshold)

"""Apply a fitted calibration only when a held-out replay says it helps.

The MCC-best cut on one replay is partly fitted to that replay's noise: on the demo's second model the cut from a
400-challenge replay lowered MCC on a fresh 500-challenge replay from 0.648 to 0.624. So the cut is fitted on one
replay (seed A) and checked on a second one (another seed, same size, same renderer), where both answers, raw and
calibrated, are scored on the very same challenges and compared with the A/B tests' paired bootstrap.

Rule: the calibration is applied when, on the held-out replay,

- MCC(calibrated) - MCC(raw) > 0, and
- the lower bound of the paired bootstrap 95% CI of that difference is above -`TOLERANCE` (0: the CI lies above 0).

Otherwise the identity (threshold 0.5, no mapping) is stored, so the deployed model answers its raw probability.
Why the CI and no tolerance: a point gain is not enough. On the tiny preset's 30-epoch model the cut fitted on
400 challenges (0.288) gained +0.015 on the 400 held-out ones, CI [-0.016, +0.043], yet lowered MCC on two fresh
500-challenge replays (0.560 -> 0.546, 0.646 -> 0.619); "gain > 0" and "CI above -0.02" would both have applied
it. The cost: a small real gain is often left unused, since the deployed model answers raw unless a held-out
replay clearly says the cut is better.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from roadwork.platform.ab.stats import ALPHA, N_BOOT, paired_comparison
from roadwork.trainer.eval.calibration import Calibration, fit_calibration
from roadwork.trainer.eval.metrics import mcc, threshold

TOLERANCE = 0.0  # the held-out CI's lower bound must be above -TOLERANCE: 0 asks for a gain the CI is sure of


def rule(tolerance: float = TOLERANCE) -> str:
    """The decision rule in words, stored with every decision so a reader knows what was tested."""
    bound = "its 95% CI lies above 0" if tolerance == 0 else f"its 95% CI's lower bound is above -{tolerance:g}"
    return f"applied when held-out MCC(calibrated) - MCC(raw) > 0 and {bound}"


def check_calibration(
    fit_labels: np.ndarray,
    fit_raw: np.ndarray,
    held_labels: np.ndarray,
    held_raw: np.ndarray,
    *,
    seed: int = 0,
    n_boot: int = N_BOOT,
    tolerance: float = TOLERANCE,
) -> tuple[Calibration, dict[str, Any]]:
    """(the calibration to deploy, the record of the decision).

    The cut is fitted on (`fit_labels`, `fit_raw`) and judged on the held-out (`held_labels`, `held_raw`) by the
    rule in the module docstring; `seed` seeds the bootstrap. The record holds the fitted cut, MCC before and after
    on both replays, the held-out difference with its CI, whether it was applied and why."""
    fitted = fit_calibration(fit_labels, fit_raw)
    held_y = np.asarray(held_labels)
    held_p = np.asarray(held_raw, dtype=np.float64)
    outcome = paired_comparison(held_y, held_p, fitted.apply(held_p), n_boot=n_boot, alpha=ALPHA, seed=seed)
    diff, low, high = outcome.mcc_diff, outcome.diff_ci_low, outcome.diff_ci_high
    numbers = (f"held-out replay MCC raw {outcome.arm_a.mcc:.3f} -> cut {outcome.arm_b.mcc:.3f} "
               f"({diff:+.3f}, CI [{low:+.3f}, {high:+.3f}])")
    if fitted.threshold == 0.5:
        applied, reason = False, "the fitted cut is 0.5 already: nothing to map"
    elif diff <= 0:
        applied, reason = False, f"{numbers}: the cut does not improve the held-out replay"
    elif low <= -tolerance:
        floor = f"{-tolerance:g}" if tolerance else "0"
        applied, reason = False, f"{numbers}: the gain is not significant (the CI's lower bound is not above {floor})"
    else:
        applied, reason = True, f"{numbers}: improves the held-out replay"
    fit_y = np.asarray(fit_labels)
    fit_p = np.asarray(fit_raw, dtype=np.float64)
    record = {
        "applied": applied,
        "reason": reason,
        "rule": rule(tolerance),
        "fitted_threshold": fitted.threshold,
        "fit": {"n": int(fit_y.size), "mcc_before": mcc(fit_y, threshold(fit_p)),
                "mcc_after": mcc(fit_y, threshold(fitted.apply(fit_p)))},
        "held_out": {"n": outcome.n, "mcc_before": outcome.arm_a.mcc, "mcc_after": outcome.arm_b.mcc,
                     "mcc_diff": diff, "ci_low": low, "ci_high": high, "alpha": ALPHA, "n_boot": n_boot,
                     "bootstrap_seed": seed},
    }
    return (fitted if applied else Calibration.identity()), record

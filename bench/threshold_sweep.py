"""Benchmark: `threshold_sweep` (one sort + searchsorted) vs sklearn's `matthews_corrcoef` per threshold.

    python bench/threshold_sweep.py

1,000,000 random (label, prob) pairs, 5000 thresholds. Calling sklearn 5000 times on 1M rows would take far
too long, so sklearn is timed on 20 evenly spread thresholds of the grid and its time is extrapolated
linearly to the full grid (the output says so). The two are checked to agree at those thresholds.
"""

from __future__ import annotations

import os
import platform
import sys
import time
from pathlib import Path

import numpy as np
import sklearn
from sklearn.metrics import matthews_corrcoef

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from roadwork.trainer.eval.metrics import threshold_sweep  # noqa: E402

N_ROWS = 1_000_000
N_THRESHOLDS = 5000
N_SKLEARN = 20  # thresholds actually run through sklearn
SEED = 0


def main() -> None:
    rng = np.random.default_rng(SEED)
    labels = rng.integers(0, 2, N_ROWS)
    # A plausible model: positives skew high; rounded to 3 decimals so many probs tie, and some sit exactly
    # on grid thresholds.
    probs = np.round(np.clip(0.35 * labels + 0.65 * rng.random(N_ROWS), 0, 1), 3)

    threshold_sweep(labels[:1000], probs[:1000], N_THRESHOLDS)  # warm-up (imports, allocator)
    start = time.perf_counter()
    sweep = threshold_sweep(labels, probs, N_THRESHOLDS)
    ours = time.perf_counter() - start

    picks = np.linspace(0, len(sweep.thresholds) - 1, N_SKLEARN).round().astype(int)
    start = time.perf_counter()
    reference = np.array([matthews_corrcoef(labels, probs > sweep.thresholds[i]) for i in picks])
    sk_subset = time.perf_counter() - start
    sk_full = sk_subset / N_SKLEARN * len(sweep.thresholds)
    max_diff = float(np.max(np.abs(reference - sweep.mcc[picks])))

    print("### threshold_sweep vs sklearn.metrics.matthews_corrcoef per threshold")
    print()
    print(f"- data: {N_ROWS:,} random (label, prob) pairs, {len(sweep.thresholds)} thresholds "
          f"(n_thresholds={N_THRESHOLDS}; 0.5 added to the grid)")
    print(f"- machine: {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, "
          f"Python {platform.python_version()}, numpy {np.__version__}, scikit-learn {sklearn.__version__}")
    print(f"- `threshold_sweep`, all {len(sweep.thresholds)} thresholds: {ours:.3f} s")
    print(f"- sklearn, measured on {N_SKLEARN} evenly spread thresholds: {sk_subset:.2f} s "
          f"({sk_subset / N_SKLEARN * 1000:.0f} ms per threshold)")
    print(f"- sklearn, extrapolated linearly to {len(sweep.thresholds)} thresholds: {sk_full:.0f} s "
          f"(NOT measured: {N_SKLEARN} measured x {len(sweep.thresholds) / N_SKLEARN:.2f})")
    print(f"- speed-up (extrapolated sklearn / threshold_sweep): {sk_full / ours:,.0f}x")
    print(f"- max |MCC difference| at the {N_SKLEARN} checked thresholds: {max_diff:.2e}")
    print(f"- best threshold {sweep.best_threshold:.4f}, MCC {sweep.best_mcc:.4f} "
          f"(MCC at 0.5: {sweep.mcc[np.flatnonzero(sweep.thresholds == 0.5)[0]]:.4f})")


if __name__ == "__main__":
    main()

"""The pure statistics of an A/B test: a paired comparison of two versions' answers and its verdict.

Every comparison here is *paired*: both versions answer the very same challenges, so the noise of which
images happened to be drawn cancels out and the test looks only at where the two disagree.

Verdict rule (one rule for stored replay tests and for the live monitor's rollback):

- ``insufficient`` when fewer than ``min_n`` paired challenges were seen;
- ``b_better`` when the paired bootstrap (1 - alpha) CI of MCC(B) - MCC(A) lies entirely above 0 **and**
  McNemar's test on the disagreements gives p < alpha with B right more often than A (c > b);
- ``a_better`` symmetrically (CI entirely below 0, p < alpha, b > c);
- ``no_difference`` otherwise, including when the two tests disagree.

Why both: MCC is what validators score, so the CI says the difference is in the metric that pays; McNemar
guards the bootstrap where it is weakest, a handful of disagreements (4 out of 200, all in B's favour, give a
percentile CI above 0, while the exact McNemar p is 0.125). Requiring both is conservative: a rollback or a
promotion happens only on evidence both tests accept.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from roadwork.platform.evaluation.scoring import expected_reward
from roadwork.trainer.eval.metrics import accuracy, mcc, mcc_from_counts, threshold
from roadwork.db.repo.ab import MIN_N  # the verdict threshold a page shows lives with the readers


N_BOOT = 1000
ALPHA = 0.05
EXACT_BELOW = 25  # McNemar: exact binomial test when b + c is below this, chi-square above
REWARD_ORDERINGS = 200
# The validator's score is an EMA with alpha 0.05: after 2000 steps the oldest weighs 0.95^2000 ~ 1e-45, so a
# longer stream's expected final score is estimated on bootstrap streams of this length (bounded memory).
REWARD_STREAM_MAX = 2000
VERDICTS = ("a_better", "b_better", "no_difference", "insufficient")
MODES = ("replay", "live")


class ABTestError(RuntimeError):
    """An A/B test cannot be run as asked (a live test has no replay to run); the message says why."""


# --- pure statistics -------------------------------------------------------------------------------------------


def mcnemar(b: int, c: int) -> tuple[float, float]:
    """McNemar's test on paired disagreements: (statistic, two-sided p).

    `b` = challenges A got right and B wrong, `c` = A wrong and B right. Under "equally accurate" each
    disagreement is a fair coin. With b + c < 25 the exact binomial test: statistic min(b, c) and
    p = min(1, 2 P[X <= min(b, c)]), X ~ Bin(b + c, 1/2). Otherwise the chi-square statistic with continuity
    correction, max(0, |b - c| - 1)^2 / (b + c), and its chi-square(1) survival p = erfc(sqrt(x / 2)) (the
    max(0, .) only matters when b == c, where the corrected statistic would otherwise exceed the raw one).
    No disagreements: (0.0, 1.0).
    """
    if b < 0 or c < 0:
        raise ValueError(f"disagreement counts must be >= 0, got b={b}, c={c}")
    n = b + c
    if n == 0:
        return 0.0, 1.0
    if n < EXACT_BELOW:
        k = min(b, c)
        tail = sum(math.comb(n, i) for i in range(k + 1)) / 2.0**n
        return float(k), min(1.0, 2.0 * tail)
    stat = max(0, abs(b - c) - 1) ** 2 / n
    return float(stat), math.erfc(math.sqrt(stat / 2.0))


@dataclass(frozen=True)
class ArmStats:
    """One arm's answers on the paired challenges (hard answers are `answer > 0.5`, as validators cut)."""

    mcc: float
    accuracy: float
    expected_reward: float  # mean final validator score over random orderings of these answers
    mcc_ci_low: float
    mcc_ci_high: float


@dataclass(frozen=True)
class ABOutcome:
    """Everything a paired comparison concludes; `to_dict()` is what `ab_results` stores."""

    n: int
    arm_a: ArmStats
    arm_b: ArmStats
    mcc_diff: float  # MCC(B) - MCC(A)
    diff_ci_low: float
    diff_ci_high: float
    a_only_right: int  # McNemar's b
    b_only_right: int  # McNemar's c
    mcnemar_stat: float
    mcnemar_p: float
    verdict: str
    reason: str
    alpha: float
    min_n: int
    n_boot: int
    seed: int
    extra: dict[str, Any] = field(default_factory=dict)  # e.g. the replay that produced the answers

    def diff_dict(self) -> dict[str, Any]:
        """The `ab_results.diff` column: B - A with its CI, McNemar, the rule's parameters and `extra`."""
        exact = self.a_only_right + self.b_only_right < EXACT_BELOW
        return {
            "mcc_diff": self.mcc_diff, "ci_low": self.diff_ci_low, "ci_high": self.diff_ci_high,
            "accuracy_diff": self.arm_b.accuracy - self.arm_a.accuracy,
            "expected_reward_diff": self.arm_b.expected_reward - self.arm_a.expected_reward,
            "mcnemar": {"b": self.a_only_right, "c": self.b_only_right, "statistic": self.mcnemar_stat,
                        "p": self.mcnemar_p, "method": "exact" if exact else "chi2_cc"},
            "alpha": self.alpha, "min_n": self.min_n, "n_boot": self.n_boot, "seed": self.seed,
            "reason": self.reason, **self.extra,
        }

    def to_dict(self) -> dict[str, Any]:
        return {"n": self.n, "arm_a": asdict(self.arm_a), "arm_b": asdict(self.arm_b), "diff": self.diff_dict(),
                "verdict": self.verdict}


def _check_paired(labels: Sequence[int], a: Sequence[float], b: Sequence[float]) -> tuple[np.ndarray, ...]:
    y = np.asarray(labels).ravel().astype(np.int64)
    pa, pb = (np.asarray(x, dtype=np.float64).ravel() for x in (a, b))
    if not y.size == pa.size == pb.size:
        raise ValueError(f"labels and answers differ in length: {y.size}, {pa.size}, {pb.size}")
    if not np.isin(y, (0, 1)).all():
        raise ValueError("labels must be 0 or 1")
    return y, pa, pb


def _paired_bootstrap_mcc(
    y: np.ndarray, ha: np.ndarray, hb: np.ndarray, n_boot: int, seed: int
) -> tuple[np.ndarray, np.ndarray]:
    """(MCC of A, MCC of B) per replicate, each (n_boot,), both arms on the same resampled challenges.

    Resampling n challenge indices with replacement only changes how many challenges fall into each of the
    8 (label, A's answer, B's answer) cells, and those counts are Multinomial(n, cell frequencies): drawing
    them directly is the same paired bootstrap in distribution, at (n_boot, 8) memory instead of (n_boot, n).
    """
    cells = np.bincount(y * 4 + ha * 2 + hb, minlength=8)  # index = 4 label + 2 A + B
    draws = np.random.default_rng(seed).multinomial(len(y), cells / cells.sum(), size=n_boot)  # (K, 8)

    def count(label: int, answer: int, arm: int) -> np.ndarray:  # arm 2 = A's bit, 1 = B's bit
        idx = [i for i in range(8) if (i >> 2) == label and bool(i & arm) == bool(answer)]
        return draws[:, idx].sum(axis=1)

    def arm_mcc(arm: int) -> np.ndarray:
        return mcc_from_counts(count(1, 1, arm), count(0, 0, arm), count(0, 1, arm), count(1, 0, arm))

    return arm_mcc(2), arm_mcc(1)


def _reward(y: np.ndarray, p: np.ndarray, seed: int) -> float:
    if y.size == 0:
        return 0.0
    length = None if y.size <= REWARD_STREAM_MAX else REWARD_STREAM_MAX
    return float(expected_reward(y, p, n_orderings=REWARD_ORDERINGS, length=length, seed=seed)["final_score"]["mean"])


def decide(n: int, ci_low: float, ci_high: float, b: int, c: int, p: float, *, min_n: int, alpha: float
           ) -> tuple[str, str]:
    """(verdict, reason) by the rule in the module docstring."""
    if n < min_n:
        return "insufficient", f"{n} paired challenges, fewer than the {min_n} needed"
    ci = f"MCC(B)-MCC(A) CI [{ci_low:+.4f}, {ci_high:+.4f}]"
    test = f"McNemar p={p:.3g} (A only right {b}, B only right {c})"
    if ci_low > 0 and p < alpha and c > b:
        return "b_better", f"{ci} above 0 and {test}"
    if ci_high < 0 and p < alpha and b > c:
        return "a_better", f"{ci} below 0 and {test}"
    return "no_difference", f"{ci}, {test}: not both significant in the same direction"


def paired_comparison(
    labels: Sequence[int],
    answers_a: Sequence[float],
    answers_b: Sequence[float],
    *,
    min_n: int = MIN_N,
    n_boot: int = N_BOOT,
    alpha: float = ALPHA,
    seed: int = 0,
) -> ABOutcome:
    """Compare two arms' answers (probabilities, cut at 0.5) to the same challenges; deterministic per seed."""
    if not 0 < alpha < 1:
        raise ValueError(f"alpha must be in (0, 1), got {alpha}")
    if n_boot < 1:
        raise ValueError(f"n_boot must be >= 1, got {n_boot}")
    y, pa, pb = _check_paired(labels, answers_a, answers_b)
    ha, hb = threshold(pa), threshold(pb)
    n = int(y.size)
    if n:
        boot_a, boot_b = _paired_bootstrap_mcc(y, ha, hb, n_boot, seed)
    else:
        boot_a = boot_b = np.zeros(n_boot)
    q = [alpha / 2, 1 - alpha / 2]

    def arm(h: np.ndarray, p: np.ndarray, boot: np.ndarray) -> ArmStats:
        low, high = np.quantile(boot, q)
        return ArmStats(mcc(y, h), accuracy(y, h), _reward(y, p, seed), float(low), float(high))

    arm_a, arm_b = arm(ha, pa, boot_a), arm(hb, pb, boot_b)
    diff_low, diff_high = (float(v) for v in np.quantile(boot_b - boot_a, q))
    right_a, right_b = ha == y, hb == y
    b, c = int(np.sum(right_a & ~right_b)), int(np.sum(~right_a & right_b))
    stat, p = mcnemar(b, c)
    verdict, reason = decide(n, diff_low, diff_high, b, c, p, min_n=min_n, alpha=alpha)
    return ABOutcome(n, arm_a, arm_b, arm_b.mcc - arm_a.mcc, diff_low, diff_high, b, c, stat, p, verdict, reason,
                     alpha, min_n, n_boot, seed)

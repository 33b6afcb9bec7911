"""A/B tests of two model versions on the same challenges: paired statistics, a live split, and the service.

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

import dataclasses
import hashlib
import json
import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from sqlalchemy import Engine, update
from sqlalchemy.orm import Session

from roadwork.settings import Settings
from roadwork.db import models as m
from roadwork.db import repo
# The readers (and the verdict threshold a page shows) live in the repository: pages show tests without scipy.
from roadwork.db.repo.ab import MIN_N, ABResult, ABTest, get_ab_test, list_ab_tests  # noqa: F401
from roadwork.db.repo.ab import latest_ab_result as latest_results  # noqa: F401
from roadwork.db.engine import read_session, write_session
from roadwork.platform.evaluation.scoring import expected_reward
from roadwork.trainer.eval.metrics import accuracy, mcc, mcc_from_counts, threshold

if TYPE_CHECKING:  # the readers serve the dashboard, which must not import torch; the runner imports it late
    from roadwork.platform.registry.service import DeployResult
    from roadwork.trainer.eval.predict import Predictor

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


# --- live split and monitor ---------------------------------------------------------------------------------------


class LiveSplit:
    """Sticky traffic split: a request's arm is a function of sha256(salt + request bytes) alone."""

    def __init__(self, share_b: float, salt: str) -> None:
        if not 0.0 <= share_b <= 1.0:
            raise ValueError(f"share_b must be in [0, 1], got {share_b}")
        self.share_b, self.salt = float(share_b), salt

    def arm(self, request: bytes) -> str:
        """Arm "a" or "b": the same image always lands in the same arm (for this salt)."""
        digest = hashlib.sha256(self.salt.encode() + bytes(request)).digest()
        u = int.from_bytes(digest[:8], "big") / 2.0**64  # uniform in [0, 1)
        return "b" if u < self.share_b else "a"


class LiveMonitor:
    """Shadow pairs (label, A's answer, B's answer) of live traffic: both models answer every request, only
    the arm's answer is served. With `path`, pairs are appended to a JSONL file and read back on start, so the
    monitor survives restarts."""

    def __init__(self, min_n: int = MIN_N, alpha: float = ALPHA, *, path: Path | None = None,
                 n_boot: int = N_BOOT, seed: int = 0) -> None:
        self.min_n, self.alpha, self.n_boot, self.seed = min_n, alpha, n_boot, seed
        self.path = Path(path) if path is not None else None
        self.labels: list[int] = []
        self.answers_a: list[float] = []
        self.answers_b: list[float] = []
        if self.path is not None and self.path.exists():
            for label, a, b in load_pairs(self.path):
                self._keep(label, a, b)

    @classmethod
    def load(cls, path: Path, **kwargs: Any) -> LiveMonitor:
        """A monitor holding every pair of `path` (which need not exist yet), appending there from now on."""
        return cls(path=path, **kwargs)

    def __len__(self) -> int:
        return len(self.labels)

    def _keep(self, label: int, a: float, b: float) -> None:
        self.labels.append(label)
        self.answers_a.append(a)
        self.answers_b.append(b)

    def append(self, label: int, answer_a: float, answer_b: float) -> None:
        """Record one shadow pair (and write it to the file first, when there is one)."""
        pair = _valid_pair(label, answer_a, answer_b)
        if self.path is not None:
            append_pair(self.path, *pair)
        self._keep(*pair)

    def outcome(self) -> ABOutcome:
        return paired_comparison(self.labels, self.answers_a, self.answers_b, min_n=self.min_n,
                                 n_boot=self.n_boot, alpha=self.alpha, seed=self.seed)

    def should_roll_back(self) -> bool:
        """Enough pairs and B significantly worse than A (verdict `a_better`, the stored tests' rule)."""
        return len(self) >= self.min_n and self.outcome().verdict == "a_better"


def _valid_pair(label: Any, a: Any, b: Any) -> tuple[int, float, float]:
    if isinstance(label, str) or label not in (0, 1):
        raise ValueError(f"label must be 0 or 1, got {label!r}")
    a, b = float(a), float(b)
    if not (math.isfinite(a) and math.isfinite(b)):
        raise ValueError(f"answers must be finite, got {a!r}, {b!r}")
    return int(label), a, b


def append_pair(path: Path, label: int, answer_a: float, answer_b: float) -> None:
    """Append one shadow pair as a JSON line (flushed, so a crash loses at most the line being written)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a", encoding="utf-8") as fh:
        fh.write(json.dumps({"label": label, "a": answer_a, "b": answer_b}) + "\n")
        fh.flush()


def load_pairs(path: Path) -> list[tuple[int, float, float]]:
    """Every (label, answer_a, answer_b) of a JSONL file. A torn last line (a crash mid-write) is skipped;
    a bad line anywhere else is a ValueError naming it."""
    lines = Path(path).read_text(encoding="utf-8").splitlines()
    pairs = []
    for i, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
            pairs.append(_valid_pair(row["label"], row["a"], row["b"]))
        except (ValueError, KeyError, TypeError) as exc:
            if i == len(lines):
                break
            raise ValueError(f"{path}: line {i}: not a shadow pair: {exc}") from None
    return pairs


def roll_back_if_worse(engine: Engine, settings: Settings, monitor: LiveMonitor, *, version_a: str | int,
                       actor: str = "ab-monitor") -> DeployResult | None:
    """Roll the champion back to `version_a` when the live monitor finds B significantly worse; else None."""
    from roadwork.platform.registry.service import rollback

    if not monitor.should_roll_back():
        return None
    outcome = monitor.outcome()
    return rollback(engine, settings, reason=f"live A/B: B worse than A ({outcome.reason})", actor=actor,
                    to=version_a)


# --- the service: stored replay tests ------------------------------------------------------------------------------


def create_ab_test(engine: Engine, *, version_a: str | int, version_b: str | int, sample_size: int, actor: str,
                   name: str | None = None, mode: str = "replay") -> int:
    """Add a pending A/B test of two existing, different versions (`get_version` references); returns its id."""
    if mode not in MODES:
        raise ValueError(f"mode must be one of {', '.join(MODES)}, got {mode!r}")
    if isinstance(sample_size, bool) or not isinstance(sample_size, int) or sample_size < 2:
        raise ValueError(f"sample_size must be an integer >= 2, got {sample_size!r}")
    with write_session(engine) as session:
        a, b = repo.get_version(session, version_a), repo.get_version(session, version_b)
        if a.id == b.id:
            raise ValueError(f"an A/B test needs two different versions, got {a.label} twice")
        row = m.ABTest(name=name or f"{a.label} vs {b.label}", version_a_id=a.id, version_b_id=b.id,
                       sample_size=sample_size, mode=mode, status="pending", created_by=actor)
        session.add(row)
        session.flush()
        repo.add_audit(session, actor=actor, action="ab_test_create", target=f"ab_test:{row.id}",
                       details={"version_a": a.label, "version_b": b.label, "sample_size": sample_size, "mode": mode})
        return row.id


class _Shadow:
    """Looks like a Predictor to `run_replay`: answers with A's raw scores and records B's on the same images,
    so each challenge is rendered once and both models see identical bytes."""

    def __init__(self, a: Predictor, b: Predictor) -> None:
        self.a, self.b, self.b_probs = a, b, []

    def raw_probs(self, images: Sequence[Any]) -> np.ndarray:
        self.b_probs.append(self.b.raw_probs(images))
        return self.a.raw_probs(images)


def _split_key(config: Any) -> tuple[Any, ...]:
    return config.data.path, config.data.val_fraction, config.data.split_seed


def _replay_outcome(engine: Engine, settings: Settings, test: m.ABTest, *, seed: int, data_path: Path | None,
                    min_n: int, n_boot: int, alpha: float) -> ABOutcome:
    """Both versions on one replay of A's validation split, each answering with its own calibration."""
    from roadwork.platform.evaluation.validation import data_splits
    from roadwork.platform.registry.service import checkout, store
    from roadwork.platform.evaluation.replay import run_replay
    from roadwork.trainer.model.checkpoint import checkpoint_config, read_meta
    from roadwork.trainer.eval.predict import Predictor

    with read_session(engine) as session:
        va, vb = repo.get_version(session, test.version_a_id), repo.get_version(session, test.version_b_id)
    ckpt_a, ckpt_b = checkout(settings, va), checkout(settings, vb)
    pred_a, pred_b = Predictor.load(ckpt_a), Predictor.load(ckpt_b)
    config_a = checkpoint_config(read_meta(ckpt_a))
    config_b = checkpoint_config(read_meta(ckpt_b))
    data = data_splits(settings, config_a, data_path)
    shadow = _Shadow(pred_a, pred_b)
    run = run_replay(shadow, data.val, test.sample_size, seed, cache_resave=settings.evaluation.cache_resave)
    raw_b = np.concatenate(shadow.b_probs) if shadow.b_probs else np.zeros(0)
    if raw_b.shape != run.raw_probs.shape:  # never expected: both models scored every batch
        raise ABTestError(f"arms answered {run.raw_probs.size} and {raw_b.size} challenges")
    log = [{k: v for k, v in e.items() if k != "raw_prob"} | {"raw_prob_a": e["raw_prob"], "raw_prob_b": float(p)}
           for e, p in zip(run.log, raw_b, strict=True)]
    challenges = hashlib.sha256("".join(e["jpeg_sha256"] for e in log).encode()).hexdigest()
    log_sha = store(settings).put_bytes("\n".join(json.dumps(e, sort_keys=True) for e in log).encode())
    warnings = []
    if _split_key(config_a) != _split_key(config_b):
        warnings.append("B was trained with a different data path or split than A: some of A's validation "
                        "challenges may be in B's training data")
    outcome = paired_comparison(run.labels, pred_a.calibration.apply(run.raw_probs), pred_b.calibration.apply(raw_b),
                                min_n=min_n, n_boot=n_boot, alpha=alpha, seed=seed)
    return dataclasses.replace(outcome, extra={
        "versions": {"a": va.label, "b": vb.label},
        "calibration": {"a": pred_a.calibration.to_dict(), "b": pred_b.calibration.to_dict()},
        "replay": {"n": test.sample_size, "seed": seed, "data_path": str(data.path), "data_fingerprint":
                   data.fingerprint, "validation_rows": len(data.val), "undecodable": run.stats.undecodable,
                   "challenges_sha256": challenges, "log_sha256": log_sha},
        "warnings": warnings,
    })


def _set_status(session: Session, test_id: int, status: str) -> None:
    session.execute(update(m.ABTest).where(m.ABTest.id == test_id).values(status=status))


def run_ab_test(engine: Engine, settings: Settings, test_id: int, *, seed: int | None = None,
                data_path: Path | None = None, min_n: int = MIN_N, n_boot: int = N_BOOT, alpha: float = ALPHA,
                actor: str = "ab-test") -> ABOutcome:
    """Run a replay test and store its result: status pending -> running -> done, or failed (with the error
    in an audit event) on any exception, which is re-raised. The replay seed defaults to the test id, so a
    rerun sees the same challenges; `data_path` overrides the dataset of A's config.

    Any status may be run again, "running" included: a child killed at its timeout (SIGKILL) cannot record
    "failed" itself (see `mark_failed`), and such a test must not stay blocked. A rerun adds a result."""
    target = f"ab_test:{test_id}"
    with write_session(engine) as session:
        test = session.get(m.ABTest, test_id)
        if test is None:
            raise repo.NotFoundError(f"no A/B test {test_id}")
        if test.mode != "replay":
            raise ABTestError(f"A/B test {test_id} is a {test.mode} test: its pairs come from a LiveMonitor")
        test.status = "running"
        session.flush()
        repo.add_audit(session, actor=actor, action="ab_test_start", target=target)
    try:
        seed = test.id if seed is None else seed
        outcome = _replay_outcome(engine, settings, test, seed=seed, data_path=data_path, min_n=min_n,
                                  n_boot=n_boot, alpha=alpha)
        result = outcome.to_dict()
        with write_session(engine) as session:
            session.add(m.ABResult(test_id=test_id, n=outcome.n, arm_a=result["arm_a"], arm_b=result["arm_b"],
                                   diff=result["diff"], verdict=outcome.verdict))
            _set_status(session, test_id, "done")
            repo.add_audit(session, actor=actor, action="ab_test_done", target=target, reason=outcome.reason,
                           details={"verdict": outcome.verdict, "n": outcome.n, "mcc_diff": outcome.mcc_diff})
    except BaseException as exc:
        with write_session(engine) as session:
            _set_status(session, test_id, "failed")
            repo.add_audit(session, actor=actor, action="ab_test_failed", target=target,
                           details={"error": f"{type(exc).__name__}: {exc}"})
        raise
    return outcome


def mark_failed(engine: Engine, test_id: int, *, error: str, actor: str = "scheduler") -> bool:
    """Record a run that died without saying so (killed at its timeout): "running" -> "failed" with the error
    in an audit event. False, and nothing written, when the test is not running."""
    with write_session(engine) as session:
        changed = session.execute(update(m.ABTest).where(m.ABTest.id == test_id, m.ABTest.status == "running")
                                  .values(status="failed")).rowcount == 1
        if changed:
            repo.add_audit(session, actor=actor, action="ab_test_failed", target=f"ab_test:{test_id}",
                           details={"error": error})
    return changed


def ab_test_job(test_id: int) -> dict[str, Any]:
    """Scheduler job: run A/B test `test_id` with this process's settings; a small JSON-able summary."""
    from roadwork.settings import load_settings
    from roadwork.db.engine import get_engine

    settings = load_settings()
    outcome = run_ab_test(get_engine(settings.db_url), settings, int(test_id))
    return {"test_id": int(test_id), "verdict": outcome.verdict, "n": outcome.n,
            "mcc_a": round(outcome.arm_a.mcc, 4), "mcc_b": round(outcome.arm_b.mcc, 4),
            "mcc_diff": round(outcome.mcc_diff, 4), "ci": [round(outcome.diff_ci_low, 4), round(outcome.diff_ci_high, 4)],
            "mcnemar_p": outcome.mcnemar_p}

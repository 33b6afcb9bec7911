"""A/B testing on live traffic: a deterministic split of requests between two versions, and a monitor that rolls
back when the new version is worse (the verdict rule of `stats`)."""

from __future__ import annotations

import hashlib
import json
import math
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import Engine

from roadwork.settings import Settings
from roadwork.platform.ab.stats import ALPHA, N_BOOT, ABOutcome, paired_comparison
from roadwork.db.repo.ab import MIN_N  # the verdict threshold a page shows lives with the readers

if TYPE_CHECKING:  # the readers serve the dashboard, which must not import torch; the runner imports it late
    from roadwork.platform.registry.service import DeployResult


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

"""The promotion gate: does a candidate replace the champion?

`decide` is pure: two evaluation summaries on the same replay and the policy in, a verdict with one reason per
check out. A candidate passes when it beats the champion's replay MCC and expected validator reward by the
policy's margins AND no condition cell with enough challenges on both sides loses more MCC than the tolerance;
with `must_beat_all` it must also beat every earlier champion. A student candidate (distilled, see
`platform.distillation`) must also stay within `max_student_gap` of its teacher's replay MCC on the same replay,
first version or not. `gate_candidate` runs candidate, champion (and a student's teacher) on the same replay,
decides, and records the decision as an audit event; deploying is the caller's business (policy `auto` deploys at
once, `manual` waits for an operator, see `pending_candidates`).
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy import Engine
from sqlalchemy.orm import Session

from roadwork.settings import GateSettings, Settings
from roadwork.db import repo
from roadwork.db.engine import read_session, write_session

EPS = 1e-9  # a margin met exactly passes despite float rounding (0.6 + 0.01 != 0.61)
PASSED, FAILED, REJECTED = "gate_passed", "gate_failed", "candidate_rejected"
DEPLOY_ACTIONS = ("deploy", "rollback", "promote")  # audit actions that make a version the champion

Cell = tuple[str, str]  # (condition, value)


@dataclass(frozen=True)
class EvalSummary:
    """What the gate needs of one version's replay evaluation."""

    version: str  # label, e.g. roadwork-ops:0.2.0
    mcc: float
    expected_reward: float  # mean validator final score over random orderings
    cells: dict[Cell, tuple[int, float]] = field(default_factory=dict)  # (condition, value) -> (n, mcc)
    replay: str = ""  # identity of the challenges (sha256 of image hashes and labels); "" = unknown
    evaluation_id: int | None = None

    @classmethod
    def from_evaluation(
        cls, label: str, evaluation: repo.Evaluation, cells: Sequence[repo.ConditionCell], replay: str = ""
    ) -> EvalSummary:
        reward = evaluation.metrics.get("expected_reward", {}).get("final_score", {}).get("mean", float("nan"))
        return cls(label, evaluation.mcc, float(reward), {(c.condition, c.value): (c.n, c.mcc) for c in cells},
                   replay, evaluation.id)


@dataclass(frozen=True)
class GateResult:
    passed: bool
    reasons: list[str]  # one sentence per check, passed or failed, with the numbers
    checks: dict[str, Any]  # the same, as data

    def to_dict(self) -> dict[str, Any]:
        return {"passed": self.passed, "reasons": list(self.reasons), "checks": self.checks}


def _ok(flag: bool) -> str:
    return "passed" if flag else "FAILED"


def _margin_check(name: str, cand: float, other: float, gain: float, against: str = "champion") -> tuple[str, dict]:
    passed = math.isfinite(cand) and math.isfinite(other) and cand - other >= gain - EPS
    sentence = (f"{name} {cand:.4f} vs {against} {other:.4f}: change {cand - other:+.4f}, "
                f"required at least {gain:+.4f} ({_ok(passed)})")
    return sentence, {"candidate": cand, "other": other, "diff": cand - other, "required": gain, "passed": passed}


def _cell_check(candidate: EvalSummary, champion: EvalSummary, policy: GateSettings) -> tuple[str, dict]:
    judged, ignored, failing = [], 0, []
    for key in sorted(set(candidate.cells) & set(champion.cells)):
        (n_c, mcc_c), (n_h, mcc_h) = candidate.cells[key], champion.cells[key]
        if n_c < policy.min_cell_n or n_h < policy.min_cell_n or not (math.isfinite(mcc_c) and math.isfinite(mcc_h)):
            ignored += 1
            continue
        row = {"condition": key[0], "value": key[1], "candidate": mcc_c, "champion": mcc_h,
               "drop": mcc_h - mcc_c, "n_candidate": n_c, "n_champion": n_h}
        judged.append(row)
        if row["drop"] > policy.cell_tolerance + EPS:
            failing.append(row)
    count = (f"{len(judged)} cells judged, {ignored} with fewer than {policy.min_cell_n} challenges "
             f"on either side ignored")
    data = {"judged": len(judged), "ignored": ignored, "tolerance": policy.cell_tolerance,
            "min_cell_n": policy.min_cell_n, "failing": failing, "worst": None, "passed": not failing}
    if not judged:
        return f"condition cells: none to judge ({count}) (passed)", data
    worst = max(judged, key=lambda r: r["drop"])
    data["worst"] = worst
    sentence = (f"worst condition cell {worst['condition']}={worst['value']}: MCC {worst['candidate']:.4f} vs "
                f"champion {worst['champion']:.4f} (n {worst['n_candidate']}/{worst['n_champion']}), drop "
                f"{worst['drop']:+.4f}, tolerance {policy.cell_tolerance:.4f}; {len(failing)} cell(s) beyond it; "
                f"{count} ({_ok(not failing)})")
    return sentence, data


def _student_gap_check(student: EvalSummary, teacher: EvalSummary, max_gap: float) -> tuple[str, dict]:
    """The student's replay MCC may trail its teacher's on the same replay by at most `max_gap`."""
    gap = teacher.mcc - student.mcc
    same = not (student.replay and teacher.replay) or student.replay == teacher.replay
    passed = same and math.isfinite(gap) and gap <= max_gap + EPS
    data = {"student": student.mcc, "teacher": teacher.mcc, "teacher_version": teacher.version, "gap": gap,
            "allowed": max_gap, "same_replay": same, "passed": passed}
    if not same:
        sentence = (f"student and teacher {teacher.version} ran on different replays ({student.replay[:12]} vs "
                    f"{teacher.replay[:12]}): not comparable (FAILED)")
    else:
        sentence = (f"student replay MCC {student.mcc:.4f} vs teacher {teacher.version} {teacher.mcc:.4f}: "
                    f"gap {gap:+.4f}, allowed at most {max_gap:.4f} ({_ok(passed)})")
    return sentence, data


def decide(
    candidate: EvalSummary,
    champion: EvalSummary | None,
    policy: GateSettings,
    earlier: Sequence[EvalSummary] = (),
    teacher: EvalSummary | None = None,
) -> GateResult:
    """Whether `candidate` may replace `champion`, with every check explained (see the module docstring).
    `teacher`: the candidate's teacher on the candidate's replay, when the candidate is a student."""
    reasons: list[str] = []
    checks: dict[str, Any] = {"first_version": champion is None}

    def check(name: str, outcome: tuple[str, dict]) -> None:
        reasons.append(outcome[0])
        checks[name] = outcome[1]

    if champion is None:
        reasons.append(f"{candidate.version} is the first version: no champion to beat (passed)")
    else:
        checks["champion"] = champion.version
        _champion_checks(candidate, champion, policy, earlier, reasons, checks)
    if teacher is not None:
        check("student_gap", _student_gap_check(candidate, teacher, policy.max_student_gap))
    passed = all(c["passed"] for c in checks.values() if isinstance(c, dict))
    return GateResult(passed, reasons, checks)


def _champion_checks(candidate: EvalSummary, champion: EvalSummary, policy: GateSettings,
                     earlier: Sequence[EvalSummary], reasons: list[str], checks: dict[str, Any]) -> None:
    """The checks against the champion (and, with `must_beat_all`, every earlier one), added to `reasons`/`checks`."""

    def check(name: str, outcome: tuple[str, dict]) -> None:
        reasons.append(outcome[0])
        checks[name] = outcome[1]

    if candidate.replay and champion.replay:
        same = candidate.replay == champion.replay
        check("same_replay", ("candidate and champion ran on the same replay (passed)" if same else
                              f"candidate and champion ran on different replays ({candidate.replay[:12]} vs "
                              f"{champion.replay[:12]}): not comparable (FAILED)",
                              {"candidate": candidate.replay, "champion": champion.replay, "passed": same}))
    check("mcc", _margin_check("replay MCC", candidate.mcc, champion.mcc, policy.min_mcc_gain))
    check("expected_reward", _margin_check("expected reward", candidate.expected_reward,
                                           champion.expected_reward, policy.min_reward_gain))
    check("cells", _cell_check(candidate, champion, policy))
    if policy.must_beat_all:
        rows = []
        for past in earlier:
            sentence, data = _margin_check("replay MCC", candidate.mcc, past.mcc, policy.min_mcc_gain,
                                           against=f"earlier champion {past.version}")
            reasons.append(sentence)
            rows.append(data | {"version": past.version})
        if not earlier:
            reasons.append("must beat every earlier champion: there is none besides the current one (passed)")
        checks["earlier_champions"] = {"rows": rows, "passed": all(r["passed"] for r in rows)}


# --- service ---------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class GateOutcome:
    result: GateResult
    candidate: repo.Version
    champion: repo.Version | None
    candidate_evaluation_id: int
    champion_evaluation_id: int | None
    earlier_evaluation_ids: dict[str, int]  # label -> evaluation id, when must_beat_all
    audit_event_id: int
    teacher_evaluation_id: int | None = None  # a student candidate's teacher on the same replay

    @property
    def evaluation_ids(self) -> dict[str, int | None]:
        teacher = {} if self.teacher_evaluation_id is None else {"teacher": self.teacher_evaluation_id}
        return {"candidate": self.candidate_evaluation_id, "champion": self.champion_evaluation_id,
                **{f"earlier:{k}": v for k, v in self.earlier_evaluation_ids.items()}, **teacher}


def default_seed(candidate_id: int) -> int:
    """The replay seed of a candidate's gate: fixed per candidate (reruns reproduce), new for each candidate."""
    return int.from_bytes(hashlib.sha256(f"gate:{candidate_id}".encode()).digest()[:4], "big") % 2**31


def replay_identity(settings: Settings, evaluation: repo.Evaluation) -> str:
    """sha256 over the challenges' image hashes and labels, read from the stored replay log; "" if none."""
    from roadwork.platform.registry.service import store

    log_sha = evaluation.metrics.get("replay", {}).get("log_sha256")
    if not log_sha:
        return ""
    digest = hashlib.sha256()
    for line in store(settings).verify(log_sha).read_text().splitlines():
        entry = json.loads(line)
        digest.update(f"{entry['jpeg_sha256']}:{entry['label']}\n".encode())
    return digest.hexdigest()


def training_data_path(settings: Settings, version: repo.Version) -> Path:
    """The dataset a version was trained on, from its checkpoint's config."""
    from roadwork.platform.evaluation.validation import (
        checkpoint_train_config,
        resolve_data_path,
    )
    from roadwork.platform.registry.service import checkout

    config = checkpoint_train_config(checkout(settings, version))
    return resolve_data_path(settings, config.data.path)


def earlier_champions(session: Session, exclude: set[int]) -> list[repo.Version]:
    """Every version that has held `champion`, oldest first, without the ids in `exclude`."""
    ids: list[int] = []
    for event in reversed(repo.alias_history(session)):
        if event.to_version_id not in ids and event.to_version_id not in exclude:
            ids.append(event.to_version_id)
    by_id = repo.versions_by_id(session, set(ids))
    return [by_id[i] for i in ids]


def student_teacher_id(version: repo.Version) -> int:
    """The teacher of a student version: its config's `student.teacher_id`, else its parent."""
    return int(version.config["student"].get("teacher_id") or version.parent_id)


def stored_replay(engine: Engine, version_id: int, n: int, seed: int, data_path: Path,
                  cache_resave: bool) -> repo.Evaluation | None:
    """The newest stored replay evaluation of a version with these challenges (n, seed, data, re-save, no
    flips), or None: a version's answers on a replay never change, so it need not run again."""
    with read_session(engine) as session:
        evaluations = repo.evaluations_of(session, version_id)
    for e in evaluations:  # newest first
        replay = e.metrics.get("replay") or {}
        if (e.kind == "replay" and replay.get("n") == n and replay.get("seed") == seed
                and replay.get("data_path") == str(data_path) and not replay.get("flips")
                and replay.get("cache_resave") == cache_resave):
            return e
    return None


def gate_candidate(
    engine: Engine,
    settings: Settings,
    candidate_ref: str | int,
    *,
    seed: int | None = None,
    actor: str = "scheduler",
    data_path: Path | None = None,
    progress: Callable[[str], None] | None = None,
) -> GateOutcome:
    """Evaluate the candidate and the champion on one replay (`settings.gate.replay_challenges` challenges of the
    candidate's data, or `data_path`), decide, and record `gate_passed` / `gate_failed`. Deploys nothing.
    A student candidate's teacher is judged on the same replay too (its stored evaluation of it, else a run)."""
    from roadwork.platform.evaluation.replay import evaluate_replay

    policy = settings.gate
    with read_session(engine) as session:
        candidate = repo.get_version(session, candidate_ref)
        champion = repo.alias_holder(session)
        exclude = {candidate.id} | ({champion.id} if champion else set())
        earlier = earlier_champions(session, exclude) if policy.must_beat_all else []
        teacher = repo.get_version(session, student_teacher_id(candidate)) if repo.is_student(candidate) else None
    if champion is not None and champion.id == candidate.id:
        raise ValueError(f"{candidate.label} is already the champion")
    seed = default_seed(candidate.id) if seed is None else seed
    # Everyone runs on the candidate's data, so that the replay is the same challenge for challenge.
    path = Path(data_path) if data_path else training_data_path(settings, candidate)

    def summarize(version: repo.Version) -> EvalSummary:
        if progress is not None:
            progress(f"replay of {version.label}: {policy.replay_challenges} challenges, seed {seed}")
        evaluation = evaluate_replay(engine, settings, version.id, n=policy.replay_challenges, seed=seed,
                                     data_path=path)
        with read_session(engine) as session:
            cells = repo.condition_cells(session, evaluation.id)
        return EvalSummary.from_evaluation(version.label, evaluation, cells, replay_identity(settings, evaluation))

    cand = summarize(candidate)
    champ = summarize(champion) if champion is not None else None
    past = [summarize(v) for v in earlier] if champion is not None else []
    teach = None
    if teacher is not None:  # a student: its teacher on the same replay (stored by the distill step, or run now)
        stored = stored_replay(engine, teacher.id, policy.replay_challenges, seed, path,
                               settings.evaluation.cache_resave)
        if stored is None:
            teach = summarize(teacher)
        else:
            with read_session(engine) as session:
                cells = repo.condition_cells(session, stored.id)
            teach = EvalSummary.from_evaluation(teacher.label, stored, cells, replay_identity(settings, stored))
    result = decide(cand, champ, policy, past, teach)
    details = result.to_dict() | {
        "candidate_id": candidate.id, "champion_id": champion.id if champion else None, "seed": seed,
        "replay_challenges": policy.replay_challenges, "data_path": str(path),
        "candidate_evaluation_id": cand.evaluation_id,
        "champion_evaluation_id": champ.evaluation_id if champ else None,
        "earlier_evaluation_ids": {p.version: p.evaluation_id for p in past},
        "teacher_id": teacher.id if teacher else None,
        "teacher_evaluation_id": teach.evaluation_id if teach else None,
        "policy": policy.model_dump(mode="json"),
    }
    summary = "; ".join(result.reasons)
    with write_session(engine) as session:
        event = repo.add_audit(session, actor=actor, action=PASSED if result.passed else FAILED,
                               target=candidate.label, reason=summary[:2000], details=details)
    return GateOutcome(result, candidate, champion, cand.evaluation_id, champ.evaluation_id if champ else None,
                       {p.version: p.evaluation_id for p in past}, event.id,
                       teach.evaluation_id if teach else None)


# --- pending candidates and rejection ---------------------------------------------------------------------------


def latest_gate_event(session: Session, ref: str | int) -> repo.AuditEvent | None:
    """The newest gate decision about version `ref`, or None if it was never gated."""
    label = repo.get_version(session, ref).label
    return repo.latest_audit_event(session, label, (PASSED, FAILED))


def pending_candidates(session: Session) -> list[repo.Version]:
    """Versions whose latest gate decision passed and that were neither deployed nor rejected since; newest first.

    (Audit ids order the events: the registry writes a `deploy` audit event with every deploy.)"""
    rows = repo.audit_events_with_actions(session, (PASSED, FAILED, REJECTED, *DEPLOY_ACTIONS))
    state: dict[str, str] = {}  # label -> latest relevant action
    for row in rows:
        if row.target is None:
            continue
        if row.action in (PASSED, FAILED) or row.target in state:
            state[row.target] = row.action
    pending = [label for label, action in state.items() if action == PASSED]
    versions = [repo.get_version(session, label) for label in pending]
    return sorted(versions, key=lambda v: v.id, reverse=True)


def reject_candidate(engine: Engine, ref: str | int, actor: str, reason: str) -> repo.AuditEvent:
    """Record an operator's `candidate_rejected` decision (a reason is required); the version stays registered."""
    if not reason or not reason.strip():
        raise ValueError("rejecting a candidate needs a reason")
    with write_session(engine) as session:
        version = repo.get_version(session, ref)
        champion = repo.alias_holder(session)
        if champion is not None and champion.id == version.id:
            raise ValueError(f"{version.label} is the champion; roll back instead of rejecting it")
        return repo.add_audit(session, actor=actor, action=REJECTED, target=version.label, reason=reason.strip())

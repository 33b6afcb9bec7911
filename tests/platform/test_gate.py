"""The promotion gate: the pure decision on hand-made summaries, then end to end on two tiny versions."""

from __future__ import annotations

import pytest

from roadwork.settings import GateSettings, load_settings
from roadwork.db import repo
from roadwork.db.engine import read_session
from roadwork.platform.evaluation import gate
from roadwork.platform.registry import service as registry
from roadwork.platform.evaluation.gate import EvalSummary, decide
from roadwork.trainer.model.checkpoint import read_meta
from tests.helpers import register_student

POLICY = GateSettings(min_mcc_gain=0.01, min_reward_gain=0.0, min_cell_n=30, cell_tolerance=0.05)


def summary(label: str, mcc: float, reward: float = 0.5, cells: dict | None = None) -> EvalSummary:
    return EvalSummary(label, mcc, reward, cells or {})


def test_no_champion_passes_as_the_first_version() -> None:
    result = decide(summary("v1", 0.1), None, POLICY)
    assert result.passed and result.checks["first_version"]
    assert "first version" in result.reasons[0]


def test_mcc_margin_exactly_met_passes_and_missed_by_a_hair_fails() -> None:
    champion = summary("v1", 0.60)
    met = decide(summary("v2", 0.61), champion, POLICY)  # 0.60 + 0.01 is not exactly 0.61 in floats
    assert met.passed, met.reasons
    missed = decide(summary("v2", 0.61 - 1e-6), champion, POLICY)
    assert not missed.passed and not missed.checks["mcc"]["passed"]
    assert missed.checks["expected_reward"]["passed"] and missed.checks["cells"]["passed"]
    assert "replay MCC 0.6100 vs champion 0.6000" in met.reasons[0] and "(passed)" in met.reasons[0]
    assert "required at least +0.0100" in missed.reasons[0] and "FAILED" in missed.reasons[0]


def test_expected_reward_must_not_drop() -> None:
    result = decide(summary("v2", 0.7, reward=0.49), summary("v1", 0.6, reward=0.50), POLICY)
    assert not result.passed and not result.checks["expected_reward"]["passed"]
    assert any("expected reward 0.4900 vs champion 0.5000" in r and "FAILED" in r for r in result.reasons)


def test_worst_cell_drop_beyond_tolerance_fails_even_when_overall_improves() -> None:
    champion = summary("v1", 0.60, cells={("weather", "Rain"): (50, 0.70), ("daytime", "Day"): (80, 0.6)})
    candidate = summary("v2", 0.80, 0.9, cells={("weather", "Rain"): (50, 0.64), ("daytime", "Day"): (80, 0.9)})
    result = decide(candidate, champion, POLICY)
    assert not result.passed
    assert result.checks["mcc"]["passed"] and result.checks["expected_reward"]["passed"]
    worst = result.checks["cells"]["worst"]
    assert (worst["condition"], worst["value"]) == ("weather", "Rain")
    assert worst["drop"] == pytest.approx(0.06)
    sentence = next(r for r in result.reasons if "worst condition cell" in r)
    assert "weather=Rain" in sentence and "0.6400" in sentence and "0.7000" in sentence and "FAILED" in sentence

    within = summary("v2", 0.80, 0.9, cells={("weather", "Rain"): (50, 0.65), ("daytime", "Day"): (80, 0.9)})
    assert decide(within, champion, POLICY).passed  # a drop of exactly the tolerance is allowed


def test_a_cell_below_min_cell_n_on_either_side_is_ignored() -> None:
    champion = summary("v1", 0.60, cells={("weather", "Snow"): (29, 0.9), ("scene", "Urban"): (100, 0.5)})
    candidate = summary("v2", 0.70, cells={("weather", "Snow"): (200, 0.1), ("scene", "Urban"): (100, 0.5),
                                           ("weather", "Fog"): (100, 0.0)})  # Fog: candidate only, not judged
    result = decide(candidate, champion, POLICY)
    assert result.passed, result.reasons
    assert result.checks["cells"]["judged"] == 1 and result.checks["cells"]["ignored"] == 1
    assert any("fewer than 30" in r for r in result.reasons)


def test_must_beat_all_fails_against_an_earlier_better_champion() -> None:
    policy = POLICY.model_copy(update={"must_beat_all": True})
    earlier = [summary("v0", 0.75), summary("v1", 0.55)]
    result = decide(summary("v3", 0.70), summary("v2", 0.60), policy, earlier)
    assert not result.passed
    rows = result.checks["earlier_champions"]["rows"]
    assert [(r["version"], r["passed"]) for r in rows] == [("v0", False), ("v1", True)]
    assert any("earlier champion v0 0.7500" in r and "FAILED" in r for r in result.reasons)
    assert decide(summary("v3", 0.70), summary("v2", 0.60), POLICY, earlier).passed  # off: not checked


def test_different_replays_are_not_comparable() -> None:
    candidate = EvalSummary("v2", 0.9, 0.9, {}, replay="a" * 64)
    result = decide(candidate, EvalSummary("v1", 0.1, 0.1, {}, replay="b" * 64), POLICY)
    assert not result.passed and "different replays" in result.reasons[0]


def test_reasons_list_every_check_with_numbers() -> None:
    result = decide(summary("v2", 0.7, 0.6), summary("v1", 0.6, 0.5), POLICY)
    assert result.passed and len(result.reasons) == 3
    assert result.to_dict()["reasons"] == result.reasons and result.to_dict()["passed"] is True
    assert all(any(ch.isdigit() for ch in r) for r in result.reasons)


def test_a_student_losing_more_than_the_allowed_gap_to_its_teacher_fails() -> None:
    policy = POLICY.model_copy(update={"max_student_gap": 0.02})
    champion = summary("v1", 0.40)
    result = decide(summary("v3", 0.61, 0.6), champion, policy, teacher=summary("v2", 0.66))
    assert not result.passed
    assert result.checks["mcc"]["passed"] and result.checks["cells"]["passed"]  # it beats the champion
    gap = result.checks["student_gap"]
    assert not gap["passed"] and gap["gap"] == pytest.approx(0.05) and gap["allowed"] == 0.02
    assert gap["teacher_version"] == "v2"
    assert result.reasons[-1] == ("student replay MCC 0.6100 vs teacher v2 0.6600: gap +0.0500, allowed at most "
                                  "0.0200 (FAILED)")


def test_a_student_within_the_gap_passes_and_the_gap_met_exactly_passes() -> None:
    policy = POLICY.model_copy(update={"max_student_gap": 0.02})
    champion = summary("v1", 0.40)
    exact = decide(summary("v3", 0.64, 0.6), champion, policy, teacher=summary("v2", 0.66))
    assert exact.passed, exact.reasons
    better = decide(summary("v3", 0.70, 0.6), champion, policy, teacher=summary("v2", 0.66))
    assert better.passed and better.checks["student_gap"]["gap"] == pytest.approx(-0.04)
    assert "(passed)" in better.reasons[-1] and "gap -0.0400" in better.reasons[-1]
    worse = decide(summary("v3", 0.64 - 1e-6, 0.6), champion, policy, teacher=summary("v2", 0.66))
    assert not worse.passed


def test_the_student_gap_is_checked_for_a_first_version_too() -> None:
    policy = POLICY.model_copy(update={"max_student_gap": 0.02})
    first = decide(summary("v2", 0.30), None, policy, teacher=summary("v1", 0.50))
    assert not first.passed and first.checks["first_version"]
    assert "first version" in first.reasons[0] and "FAILED" in first.reasons[1]
    assert decide(summary("v2", 0.49), None, policy, teacher=summary("v1", 0.50)).passed


def test_a_student_and_teacher_on_different_replays_are_not_comparable() -> None:
    student = EvalSummary("v3", 0.9, 0.9, {}, replay="a" * 64)
    result = decide(student, None, POLICY, teacher=EvalSummary("v2", 0.5, 0.5, {}, replay="b" * 64))
    assert not result.passed and "different replays" in result.reasons[-1]


# --- end to end ------------------------------------------------------------------------------------------------


@pytest.fixture
def two_versions(engine, settings, tiny_checkpoint, synth_data):  # noqa: ANN001, ANN201
    """Two registered versions of the tiny checkpoint (same weights), the first deployed as champion; the
    home's default dataset is the synthetic one, which is what the tiny config trains on."""
    settings.datasets_dir.mkdir(parents=True, exist_ok=True)
    (settings.datasets_dir / "synth").symlink_to(synth_data, target_is_directory=True)
    versions = [registry.register_version(engine, settings, tiny_checkpoint.checkpoint_dir, config={}, metrics={},
                                          data_fingerprint=None, parent_id=None, actor="test") for _ in range(2)]
    registry.deploy(engine, settings, versions[0].id, actor="test", reason="first")
    return versions


def _gate_settings(clean_env, **values):  # noqa: ANN001, ANN003, ANN202
    clean_env.setenv("ROADWORK_GATE__REPLAY_CHALLENGES", "40")
    clean_env.setenv("ROADWORK_GATE__MIN_CELL_N", "10")
    for key, value in values.items():
        clean_env.setenv(f"ROADWORK_GATE__{key.upper()}", str(value))
    return load_settings()


def test_gate_candidate_runs_both_on_the_same_replay_and_audits(engine, clean_env, two_versions) -> None:
    champion, candidate = two_versions
    settings = _gate_settings(clean_env, min_mcc_gain=0.0)
    outcome = gate.gate_candidate(engine, settings, candidate.id, actor="test")
    # Identical weights on the same challenges: the same numbers, so a zero margin passes.
    assert outcome.result.passed, outcome.result.reasons
    assert outcome.champion.id == champion.id and outcome.candidate.id == candidate.id
    with read_session(engine) as s:
        evals = {e.version_id: e for e in repo.evaluations_of(s, candidate.id) + repo.evaluations_of(s, champion.id)}
        events = [e for e in repo.list_audit(s) if e.action.startswith("gate_")]
        pending = gate.pending_candidates(s)
    a, b = evals[candidate.id], evals[champion.id]
    assert {a.id, b.id} == {outcome.candidate_evaluation_id, outcome.champion_evaluation_id}
    assert a.kind == b.kind == "replay" and a.n == b.n == 40 and a.dataset == b.dataset
    assert f"seed={gate.default_seed(candidate.id)}" in a.dataset
    assert outcome.result.checks["same_replay"]["passed"]
    assert gate.replay_identity(settings, a) == gate.replay_identity(settings, b) != ""
    assert a.mcc == b.mcc
    assert len(events) == 1 and events[0].action == "gate_passed" and events[0].target == candidate.label
    assert events[0].details["candidate_evaluation_id"] == a.id and events[0].details["passed"] is True
    assert events[0].details["champion_evaluation_id"] == b.id and events[0].id == outcome.audit_event_id
    assert [v.id for v in pending] == [candidate.id]

    # Deployed: no longer pending.
    registry.deploy(engine, settings, candidate.id, actor="test", reason="gate passed")
    with read_session(engine) as s:
        assert gate.pending_candidates(s) == []


def test_failed_gate_is_audited_and_rejection_removes_a_pending_candidate(engine, clean_env, two_versions) -> None:
    champion, candidate = two_versions
    strict = _gate_settings(clean_env, min_mcc_gain=0.01)
    failed = gate.gate_candidate(engine, strict, candidate.id, seed=3, actor="test")
    assert not failed.result.passed and not failed.result.checks["mcc"]["passed"]
    with read_session(engine) as s:
        assert gate.latest_gate_event(s, candidate.id).action == "gate_failed"
        assert gate.pending_candidates(s) == []

    lenient = _gate_settings(clean_env, min_mcc_gain=0.0)
    assert gate.gate_candidate(engine, lenient, candidate.id, seed=3, actor="test").result.passed
    with read_session(engine) as s:
        assert [v.id for v in gate.pending_candidates(s)] == [candidate.id]
    with pytest.raises(ValueError, match="reason"):
        gate.reject_candidate(engine, candidate.id, "operator", " ")
    with pytest.raises(ValueError, match="champion"):
        gate.reject_candidate(engine, champion.id, "operator", "no")
    event = gate.reject_candidate(engine, candidate.id, "operator", "looks worse on night scenes")
    assert event.action == "candidate_rejected" and event.reason == "looks worse on night scenes"
    with read_session(engine) as s:
        assert gate.pending_candidates(s) == []
    with pytest.raises(ValueError, match="already the champion"):
        gate.gate_candidate(engine, lenient, champion.id)


def test_a_student_is_gated_against_its_teacher_on_the_same_replay(engine, clean_env, settings, tiny_checkpoint,
                                                                    synth_data, tmp_path) -> None:
    teacher = registry.register_version(engine, settings, tiny_checkpoint.checkpoint_dir, config={}, metrics={},
                                        data_fingerprint="fp", parent_id=None, actor="test")
    student = register_student(engine, settings, teacher, tmp_path / "student", threshold=0.9,
                               train_config=read_meta(tiny_checkpoint.checkpoint_dir)["train_config"])
    loose = _gate_settings(clean_env, max_student_gap=1.0)
    first = gate.gate_candidate(engine, loose, student.id, seed=5, data_path=synth_data, actor="test")
    gap = first.result.checks["student_gap"]
    with read_session(engine) as s:
        teacher_eval = next(e for e in repo.evaluations_of(s, teacher.id) if e.id == first.teacher_evaluation_id)
        student_eval = next(e for e in repo.evaluations_of(s, student.id) if e.id == first.candidate_evaluation_id)
        event = gate.latest_gate_event(s, student.id)
    assert teacher_eval.dataset == student_eval.dataset and "seed=5" in teacher_eval.dataset
    assert gap["teacher"] == teacher_eval.mcc and gap["student"] == student_eval.mcc
    assert gap["teacher_version"] == teacher.label and first.result.passed, first.result.reasons
    assert event.details["teacher_evaluation_id"] == teacher_eval.id
    assert any(r.startswith("student replay MCC") for r in first.result.reasons)
    assert gap["gap"] > 0.001, gap  # this random student trails the trained teacher: a tighter gate refuses it

    strict = _gate_settings(clean_env, max_student_gap=gap["gap"] / 2)
    second = gate.gate_candidate(engine, strict, student.id, seed=5, data_path=synth_data, actor="test")
    assert not second.result.passed and not second.result.checks["student_gap"]["passed"]
    assert second.teacher_evaluation_id == teacher_eval.id  # the teacher's stored run of that replay, not a rerun
    with read_session(engine) as s:
        assert gate.latest_gate_event(s, student.id).action == "gate_failed"
        assert gate.pending_candidates(s) == []

"""A/B tests: McNemar and the paired comparison against hand computations, the live split and monitor, and the
replay service end to end against the real registry."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from safetensors.torch import load_file, save_file
from sklearn.metrics import matthews_corrcoef

from roadwork.db import models as m
from roadwork.db import repo
from roadwork.db.engine import read_session, write_session
from roadwork.platform.ab import live
from roadwork.platform.ab import stats as ab_stats
from roadwork.platform.ab import service as ab
from roadwork.platform.registry import service as registry
from roadwork.platform.registry.artifacts import ArtifactError
from roadwork.platform.evaluation.replay import evaluate_replay
from roadwork.trainer.model.checkpoint import WEIGHTS
from roadwork.trainer.eval.metrics import mcc_from_counts

# --- McNemar ----------------------------------------------------------------------------------------------------


def test_mcnemar_chi_square_branch_by_hand() -> None:
    # b + c = 42 >= 25: (|30 - 12| - 1)^2 / 42 = 289 / 42; chi-square(1) survival = erfc(sqrt(x / 2)).
    stat, p = ab_stats.mcnemar(30, 12)
    assert stat == pytest.approx(289 / 42)
    assert p == pytest.approx(math.erfc(math.sqrt(289 / 42 / 2)))
    assert p == pytest.approx(0.0087119, abs=1e-6)
    assert ab_stats.mcnemar(12, 30) == (stat, p)
    assert ab_stats.mcnemar(20, 20) == (0.0, 1.0)  # b == c: no evidence either way


def test_mcnemar_exact_branch_by_hand() -> None:
    assert ab_stats.mcnemar(5, 0) == (0.0, pytest.approx(2 * 0.5**5))
    assert ab_stats.mcnemar(0, 5) == (0.0, pytest.approx(0.0625))
    # b=2, c=6: 2 * P[X <= 2], X ~ Bin(8, 1/2) = 2 * (1 + 8 + 28) / 256
    assert ab_stats.mcnemar(2, 6) == (2.0, pytest.approx(2 * 37 / 256))
    assert ab_stats.mcnemar(0, 0) == (0.0, 1.0)
    assert ab_stats.mcnemar(4, 4)[1] == 1.0  # capped at 1
    with pytest.raises(ValueError):
        ab_stats.mcnemar(-1, 3)


def test_mcnemar_agrees_with_scipy() -> None:
    stats = pytest.importorskip("scipy.stats")
    for b, c in [(3, 9), (0, 24), (11, 12)]:
        assert ab_stats.mcnemar(b, c)[1] == pytest.approx(stats.binomtest(min(b, c), b + c, 0.5).pvalue)
    for b, c in [(30, 12), (100, 140), (13, 40)]:
        stat, p = ab_stats.mcnemar(b, c)
        assert p == pytest.approx(stats.chi2.sf(stat, 1))


# --- paired comparison ---------------------------------------------------------------------------------------------


def planted(n: int = 400, a_wrong: int = 80, b_fixes: int = 60, seed: int = 0):
    """Balanced labels; A is wrong on `a_wrong` challenges and B is right on `b_fixes` of those, else equal."""
    rng = np.random.default_rng(seed)
    labels = np.tile([0, 1], n // 2)
    answers_a = np.where(labels == 1, 0.9, 0.1)
    wrong = rng.choice(n, a_wrong, replace=False)
    answers_a[wrong] = 1 - answers_a[wrong]
    answers_b = answers_a.copy()
    answers_b[wrong[:b_fixes]] = 1 - answers_b[wrong[:b_fixes]]
    return labels, answers_a, answers_b


def test_b_better_on_a_planted_subset() -> None:
    labels, a, b = planted()
    out = ab_stats.paired_comparison(labels, a, b)
    assert out.verdict == "b_better" and out.n == 400
    assert out.diff_ci_low > 0 and out.mcnemar_p < 0.05
    assert (out.a_only_right, out.b_only_right) == (0, 60)
    assert out.arm_a.accuracy == pytest.approx(0.8) and out.arm_b.accuracy == pytest.approx(0.95)
    assert out.arm_a.mcc == pytest.approx(matthews_corrcoef(labels, a > 0.5))
    assert out.arm_b.mcc == pytest.approx(matthews_corrcoef(labels, b > 0.5))
    assert out.mcc_diff == pytest.approx(out.arm_b.mcc - out.arm_a.mcc)
    assert out.arm_b.expected_reward > out.arm_a.expected_reward > 0
    assert out.arm_a.mcc_ci_low < out.arm_a.mcc < out.arm_a.mcc_ci_high
    # Swapping the arms mirrors the verdict.
    assert ab_stats.paired_comparison(labels, b, a).verdict == "a_better"
    json.dumps(out.to_dict())
    assert out.to_dict()["diff"]["mcnemar"]["method"] == "chi2_cc"


def test_paired_bootstrap_matches_resampling_indices() -> None:
    # The multinomial draw of cell counts is the index bootstrap in distribution: the CIs agree closely.
    labels, a, b = planted(n=300, a_wrong=70, b_fixes=30, seed=2)
    out = ab_stats.paired_comparison(labels, a, b, n_boot=4000)
    idx = np.random.default_rng(5).integers(0, 300, size=(4000, 300))  # (K, N) resampled challenge indices
    y = labels[idx].astype(bool)

    def boot_mcc(answers: np.ndarray) -> np.ndarray:  # (K,)
        p = answers[idx] > 0.5
        return mcc_from_counts((y & p).sum(1), (~y & ~p).sum(1), (~y & p).sum(1), (y & ~p).sum(1))

    low, high = np.quantile(boot_mcc(b) - boot_mcc(a), [0.025, 0.975])
    assert out.diff_ci_low == pytest.approx(low, abs=0.01) and out.diff_ci_high == pytest.approx(high, abs=0.01)


def test_identical_answers_make_no_difference() -> None:
    labels, a, _ = planted()
    out = ab_stats.paired_comparison(labels, a, a.copy())
    assert out.verdict == "no_difference"
    assert out.mcc_diff == 0.0 and out.diff_ci_low == 0.0 and out.diff_ci_high == 0.0
    assert out.mcnemar_p == 1.0 and out.a_only_right == out.b_only_right == 0
    assert out.arm_a == out.arm_b


def test_few_disagreements_are_not_enough() -> None:
    # 4 disagreements, all for B: the bootstrap CI alone excludes 0, McNemar (p = 0.125) does not.
    labels, a, b = planted(n=200, a_wrong=20, b_fixes=4)
    out = ab_stats.paired_comparison(labels, a, b)
    assert out.diff_ci_low > 0 and out.mcnemar_p == pytest.approx(0.125)
    assert out.verdict == "no_difference"


def test_below_min_n_is_insufficient_and_a_seed_is_deterministic() -> None:
    labels, a, b = planted()
    assert ab_stats.paired_comparison(labels[:100], a[:100], b[:100]).verdict == "insufficient"
    assert ab_stats.paired_comparison(labels[:100], a[:100], b[:100], min_n=50).verdict == "b_better"
    assert ab_stats.paired_comparison([], [], [], min_n=1).verdict == "insufficient"
    first = ab_stats.paired_comparison(labels, a, b, seed=7).to_dict()
    assert ab_stats.paired_comparison(labels, a, b, seed=7).to_dict() == first
    assert ab_stats.paired_comparison(labels, a, b, seed=8).to_dict() != first
    with pytest.raises(ValueError, match="length"):
        ab_stats.paired_comparison(labels, a, b[:-1])


# --- live split and monitor -------------------------------------------------------------------------------------------


def test_live_split_is_sticky_and_holds_its_share() -> None:
    split = live.LiveSplit(0.3, salt="exp-1")
    rng = np.random.default_rng(0)
    requests = [rng.bytes(32) for _ in range(20_000)]
    arms = [split.arm(r) for r in requests]
    assert set(arms) == {"a", "b"}
    assert abs(arms.count("b") / len(arms) - 0.3) < 0.03
    assert [live.LiveSplit(0.3, salt="exp-1").arm(r) for r in requests[:500]] == arms[:500]  # same image, same arm
    assert [live.LiveSplit(0.3, salt="exp-2").arm(r) for r in requests[:500]] != arms[:500]
    assert {live.LiveSplit(0.0, "s").arm(r) for r in requests[:200]} == {"a"}
    assert {live.LiveSplit(1.0, "s").arm(r) for r in requests[:200]} == {"b"}
    with pytest.raises(ValueError):
        live.LiveSplit(1.5, "s")


def fill(monitor: live.LiveMonitor, labels, a, b) -> live.LiveMonitor:
    for triple in zip(labels.tolist(), a.tolist(), b.tolist(), strict=True):
        monitor.append(*triple)
    return monitor


def test_live_monitor_rolls_back_only_when_b_is_worse() -> None:
    labels, bad, good = planted(n=300, a_wrong=80, b_fixes=60)  # planted()'s second arm is the better one
    assert fill(live.LiveMonitor(min_n=200), labels, bad, good).should_roll_back() is False
    worse = fill(live.LiveMonitor(min_n=200), labels, good, bad)
    assert worse.should_roll_back() is True and worse.outcome().verdict == "a_better"
    assert fill(live.LiveMonitor(min_n=200), labels, good, good.copy()).should_roll_back() is False
    assert fill(live.LiveMonitor(min_n=400), labels, good, bad).should_roll_back() is False  # not enough yet


def test_live_monitor_survives_a_restart(tmp_path) -> None:
    path = tmp_path / "shadow" / "pairs.jsonl"
    labels, bad, good = planted(n=300)
    before = fill(live.LiveMonitor(min_n=200, path=path), labels, good, bad)
    again = live.LiveMonitor.load(path, min_n=200)
    assert len(again) == 300 and again.outcome().to_dict() == before.outcome().to_dict()
    assert again.should_roll_back()
    again.append(1, 0.9, 0.2)
    assert len(live.LiveMonitor.load(path)) == 301
    with open(path, "a") as fh:
        fh.write('{"label": 1, "a": 0.')  # torn by a crash mid-write: skipped
    assert len(live.LiveMonitor.load(path)) == 301
    path.write_text('{"label": 1, "a": 0.9, "b": 0.1}\nnot json\n{"label": 0, "a": 0.1, "b": 0.1}\n')
    with pytest.raises(ValueError, match="line 2"):
        live.LiveMonitor.load(path)
    with pytest.raises(ValueError, match="label"):
        live.LiveMonitor().append(2, 0.5, 0.5)


def test_roll_back_if_worse_calls_the_registry(monkeypatch) -> None:
    calls = []
    monkeypatch.setattr(registry, "rollback", lambda engine, settings, **kw: calls.append(kw) or "done")
    labels, bad, good = planted(n=300)
    assert live.roll_back_if_worse(None, None, fill(live.LiveMonitor(), labels, bad, good), version_a="0.1.0") is None
    assert live.roll_back_if_worse(None, None, fill(live.LiveMonitor(), labels, good, bad), version_a="0.1.0") == "done"
    assert calls[0]["to"] == "0.1.0" and "B worse than A" in calls[0]["reason"]


# --- the service ------------------------------------------------------------------------------------------------


def register_perturbed(engine, settings, tiny_checkpoint, tmp_path, name: str, bias: float):
    """A copy of the tiny checkpoint with its head's bias shifted by `bias` (0: the checkpoint as trained)."""
    ckpt = tmp_path / name
    ckpt.mkdir()
    for f in tiny_checkpoint.checkpoint_dir.iterdir():
        (ckpt / f.name).write_bytes(f.read_bytes())
    if bias:
        tensors = load_file(str(ckpt / WEIGHTS))
        key = "head.fc2.bias" if "head.fc2.bias" in tensors else "head.bias"  # multi-view or single head
        tensors[key] = tensors[key] + bias
        save_file(tensors, str(ckpt / WEIGHTS), metadata={"format": "pt"})
    return registry.register_version(engine, settings, ckpt, config={}, metrics={}, data_fingerprint=None,
                                     parent_id=None)


@pytest.fixture
def two_versions(engine, settings, tiny_checkpoint, tmp_path):
    a = register_perturbed(engine, settings, tiny_checkpoint, tmp_path, "a", 0.0)
    b = register_perturbed(engine, settings, tiny_checkpoint, tmp_path, "b", 0.7)
    return a, b


def test_create_validates_versions_and_sample_size(engine, two_versions) -> None:
    a, b = two_versions
    with pytest.raises(ValueError, match="different"):
        ab.create_ab_test(engine, version_a=a.id, version_b=a.id, sample_size=50, actor="t")
    with pytest.raises(ValueError, match="sample_size"):
        ab.create_ab_test(engine, version_a=a.id, version_b=b.id, sample_size=1, actor="t")
    with pytest.raises(repo.NotFoundError):
        ab.create_ab_test(engine, version_a=a.id, version_b="9.9.9", sample_size=50, actor="t")
    test_id = ab.create_ab_test(engine, version_a=a.version, version_b=b.label, sample_size=50, actor="alice")
    with read_session(engine) as s:
        (test,) = ab.list_ab_tests(s)
        audit = repo.list_audit(s, limit=1)[0]
    assert (test.id, test.status, test.mode, test.verdict) == (test_id, "pending", "replay", None)
    assert (test.version_a, test.version_b, test.created_by) == (a.label, b.label, "alice")
    assert (audit.action, audit.target) == ("ab_test_create", f"ab_test:{test_id}")


def test_replay_test_runs_both_versions_on_the_same_challenges(engine, settings, two_versions, synth_data) -> None:
    a, b = two_versions
    test_id = ab.create_ab_test(engine, version_a=a.id, version_b=b.id, sample_size=60, actor="t")
    out = ab.run_ab_test(engine, settings, test_id, seed=3, data_path=synth_data, min_n=20, n_boot=200)
    assert out.n == 60 and out.verdict in ab_stats.VERDICTS and out.verdict != "insufficient"
    assert out.a_only_right + out.b_only_right > 0  # the shifted head answers differently somewhere

    with read_session(engine) as s:
        test = ab.get_ab_test(s, test_id)
        result = ab.latest_results(s, test_id)
    assert test.status == "done" and test.verdict == out.verdict
    assert result.n == 60 and result.verdict == out.verdict
    assert result.arm_a == out.to_dict()["arm_a"] and result.diff["mcc_diff"] == pytest.approx(out.mcc_diff)
    assert result.diff["replay"]["seed"] == 3 and result.diff["versions"] == {"a": a.label, "b": b.label}

    # Each arm equals that version's own replay evaluation with the same seed: same challenges, own calibration.
    eval_a = evaluate_replay(engine, settings, a.id, n=60, seed=3, data_path=synth_data)
    eval_b = evaluate_replay(engine, settings, b.id, n=60, seed=3, data_path=synth_data)
    assert out.arm_a.mcc == pytest.approx(eval_a.mcc) and out.arm_b.mcc == pytest.approx(eval_b.mcc)
    assert out.arm_a.accuracy == pytest.approx(eval_a.accuracy)
    log = [json.loads(line) for line in
           registry.store(settings).verify(result.diff["replay"]["log_sha256"]).read_text().splitlines()]
    logged_a = registry.store(settings).verify(eval_a.metrics["replay"]["log_sha256"]).read_text().splitlines()
    assert [e["jpeg_sha256"] for e in log] == [json.loads(line)["jpeg_sha256"] for line in logged_a]
    assert [e["raw_prob_a"] for e in log] == pytest.approx([json.loads(line)["raw_prob"] for line in logged_a])

    # A rerun with the test's seed sees the same challenges again and adds a second result.
    again = ab.run_ab_test(engine, settings, test_id, seed=3, data_path=synth_data, min_n=20, n_boot=200)
    assert again.to_dict() == out.to_dict()
    with read_session(engine) as s:
        assert len(s.get(m.ABTest, test_id).results) == 2


def test_a_failing_run_ends_failed_not_running(engine, settings, two_versions, tiny_checkpoint, tmp_path,
                                               synth_data) -> None:
    a, _ = two_versions
    broken = register_perturbed(engine, settings, tiny_checkpoint, tmp_path, "broken", -0.5)
    registry.store(settings).path(broken.artifact_sha256).unlink()
    test_id = ab.create_ab_test(engine, version_a=a.id, version_b=broken.id, sample_size=20, actor="t")
    with pytest.raises(ArtifactError):
        ab.run_ab_test(engine, settings, test_id, data_path=synth_data)
    with read_session(engine) as s:
        assert ab.get_ab_test(s, test_id).status == "failed"
        assert ab.latest_results(s, test_id) is None
        audit = repo.list_audit(s, limit=1)[0]
    assert audit.action == "ab_test_failed" and "missing" in audit.details["error"]


def test_a_run_killed_without_a_word_can_be_marked_failed(engine, two_versions) -> None:
    a, b = two_versions
    test_id = ab.create_ab_test(engine, version_a=a.id, version_b=b.id, sample_size=20, actor="t")
    assert ab.mark_failed(engine, test_id, error="killed at timeout") is False  # pending: untouched
    with write_session(engine) as s:
        s.get(m.ABTest, test_id).status = "running"  # as a child SIGKILLed mid-run leaves it
    assert ab.mark_failed(engine, test_id, error="ab_test timed out after 3600 s and was killed") is True
    with read_session(engine) as s:
        assert ab.get_ab_test(s, test_id).status == "failed"
        assert repo.list_audit(s, limit=1)[0].details == {"error": "ab_test timed out after 3600 s and was killed"}


def test_live_tests_are_not_run_as_replays(engine, settings, two_versions) -> None:
    a, b = two_versions
    test_id = ab.create_ab_test(engine, version_a=a.id, version_b=b.id, sample_size=500, actor="t", mode="live")
    with pytest.raises(ab.ABTestError, match="live"):
        ab.run_ab_test(engine, settings, test_id)
    with read_session(engine) as s:
        assert ab.get_ab_test(s, test_id).status == "pending"
    with pytest.raises(repo.NotFoundError):
        ab.run_ab_test(engine, settings, 999)


def test_ab_test_job_loads_its_own_settings(engine, settings, two_versions, synth_data) -> None:
    a, b = two_versions
    settings.datasets_dir.mkdir(parents=True, exist_ok=True)
    (settings.datasets_dir / "synth").symlink_to(synth_data)  # the tiny config's data: the home's synth set
    test_id = ab.create_ab_test(engine, version_a=a.id, version_b=b.id, sample_size=30, actor="t")
    summary = ab.ab_test_job(test_id)
    assert json.loads(json.dumps(summary)) == summary
    assert summary["test_id"] == test_id and summary["n"] == 30 and summary["verdict"] == "insufficient"
    with read_session(engine) as s:
        assert ab.get_ab_test(s, test_id).status == "done"

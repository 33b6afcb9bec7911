from __future__ import annotations

import math
import time

import numpy as np
import pytest
from sklearn.metrics import matthews_corrcoef

from roadwork.platform.evaluation.scoring import (
    StepScore,
    expected_reward,
    poisoning,
    read_predictions_csv,
    score_stream,
    summarize,
)
from tests.platform.scoring_reference import reference_scores


def as_rows(steps: list[StepScore]) -> np.ndarray:
    return np.array([[s.reward, s.mcc_100, s.accuracy_10, s.score] for s in steps])


def alternating(n: int) -> np.ndarray:
    return np.arange(n) % 2


def test_perfect_stream_approaches_one_geometrically() -> None:
    labels = alternating(300)
    steps = score_stream(labels, labels.astype(float))
    assert steps[0].reward == pytest.approx(0.125)  # one class seen so far: mcc 0, accuracy 1 -> 0.5 ** 3
    assert all(s.reward == 1.0 for s in steps[1:])
    # From step 2 on the reward is 1, so 1 - score shrinks by 0.95 per step.
    n = len(steps)
    expected = 1 - 0.95 ** (n - 1) * (1 - steps[0].score)
    assert steps[-1].score == pytest.approx(expected, abs=1e-12) and steps[-1].score > 0.9999


def test_all_missing_answers_score_nothing() -> None:
    steps = score_stream(alternating(50), [-1.0] * 50)
    assert all(s.reward == 0 and s.score == 0 and s.mcc_100 == 0 and s.accuracy_10 == 0 for s in steps)


@pytest.mark.parametrize("bad", [1.3, -0.2])
def test_out_of_range_answer_scores_zero_at_its_step(bad: float) -> None:
    labels = alternating(20)
    preds = labels.astype(float)
    i = 13 if bad > 1 else 12  # a label the answer gets right: 1.3 counts as 1, -0.2 as 0
    preds[i] = bad
    steps = score_stream(labels, preds)
    assert steps[i].reward == 0.0 and steps[i].score == pytest.approx(0.95 * steps[i - 1].score)
    assert steps[i - 1].reward == 1.0 and steps[i + 1].reward == 1.0  # it stays in the window, as a right answer


def test_exactly_half_counts_as_no_roadwork() -> None:
    labels = alternating(40)
    steps = score_stream(labels, np.where(labels == 1, 1.0, 0.5))
    assert all(s.reward == 1.0 for s in steps[1:])  # label-0 answers of 0.5 are right
    wrong = score_stream(labels, np.where(labels == 1, 0.5, 0.0))
    assert all(s.mcc_100 == 0 for s in wrong)  # every answer is "no roadwork": one predicted class
    assert wrong[-1].accuracy_10 == 0.5


def test_one_class_windows_have_zero_mcc() -> None:
    ones = np.ones(30, int)
    steps = score_stream(ones, np.ones(30))  # all right, but the labels hold one class
    assert all(s.mcc_100 == 0 and s.accuracy_10 == 1 and s.reward == pytest.approx(0.125) for s in steps)
    labels = alternating(30)
    steps = score_stream(labels, np.full(30, 0.9))  # predictions hold one class
    assert all(s.mcc_100 == 0 for s in steps) and steps[-1].accuracy_10 == 0.5


def test_anti_correlated_stream_is_floored_at_zero() -> None:
    labels = alternating(50)
    steps = score_stream(labels, 1.0 - labels)
    assert all(s.mcc_100 == 0 and s.accuracy_10 == 0 and s.reward == 0 for s in steps)


def test_three_steps_by_hand() -> None:
    steps = score_stream([1, 0, 1], [0.9, 0.2, 0.3])
    # step 1: labels {1}: mcc 0, accuracy 1 -> (0.5) ** 3
    # step 2: TP, TN: mcc 1, accuracy 1 -> 1
    # step 3: TP, TN, FN: mcc = (1*1 - 0) / sqrt(1*2*1*2) = 0.5, accuracy 2/3 -> (0.25 + 1/3) ** 3
    rewards = [0.125, 1.0, (0.25 + 1 / 3) ** 3]
    scores = [0.05 * 0.125]
    scores += [0.05 * 1.0 + 0.95 * scores[0]]
    scores += [0.05 * rewards[2] + 0.95 * scores[1]]
    assert [s.reward for s in steps] == pytest.approx(rewards, abs=1e-15)
    assert [s.score for s in steps] == pytest.approx(scores, abs=1e-15)
    assert steps[2].mcc_100 == pytest.approx(0.5) and steps[2].accuracy_10 == pytest.approx(2 / 3)


def test_windows_slide_past_100_and_10() -> None:
    # 99 perfect answers, then a wrong one at step 100 (index 99), then right ones.
    labels = alternating(120)
    preds = labels.astype(float)
    preds[99] = 1 - labels[99]
    steps = score_stream(labels, preds)
    assert steps[99].accuracy_10 == pytest.approx(0.9) and steps[99].mcc_100 < 1
    assert steps[108].accuracy_10 == pytest.approx(0.9)  # the wrong answer is the oldest of the last 10
    assert steps[109].accuracy_10 == 1.0  # and has left the 10-window
    assert steps[98].mcc_100 == 1.0 and steps[119].mcc_100 < 1  # still inside the 100-window
    # A wrong answer at index 0 leaves the 100-window at step 101 (index 100).
    preds2 = labels.astype(float)
    preds2[0] = 1.0
    steps2 = score_stream(labels, preds2)
    assert steps2[99].mcc_100 < 1 and steps2[100].mcc_100 == 1.0


def test_missing_answers_take_a_window_slot_and_leave_the_metrics() -> None:
    labels = alternating(30)
    preds = labels.astype(float)
    preds[20] = 1 - labels[20]  # one wrong answer...
    preds[21:29] = -1  # ...then 8 missing: the last 10 slots at index 29 hold the wrong one and one right one
    steps = score_stream(labels, preds)
    assert steps[28].accuracy_10 == pytest.approx(1 / 2)  # slots 19..28: valid 19 (right), 20 (wrong)
    assert steps[29].accuracy_10 == pytest.approx(1 / 2)  # slots 20..29: valid 20 (wrong), 29 (right)
    assert steps[25].reward == 0.0
    # Fewer than 10 answers so far: accuracy over those there are.
    assert score_stream([1, 0, 1], [0.9, 0.9, 0.9])[2].accuracy_10 == pytest.approx(2 / 3)


@pytest.mark.parametrize("seed", range(3))
def test_matches_the_rules_written_out_naively(seed: int) -> None:
    rng = np.random.default_rng(seed)
    n = 160
    labels = rng.integers(0, 2, n)
    preds = np.round(np.clip(0.4 * labels + 0.6 * rng.random(n), 0, 1), 1)  # many exact 0.5s
    preds[rng.random(n) < 0.1] = -1
    preds[rng.random(n) < 0.03] = 1.3
    expected = np.array(reference_scores(labels.tolist(), preds.tolist()))
    assert np.abs(as_rows(score_stream(labels, preds)) - expected).max() < 1e-12


BAD_ANSWERS = [math.nan, math.inf, -math.inf, -0.7, -0.5000001, 1.5, 2.5, 7.0, -3.0]
HARMLESS_OUT_OF_RANGE = [-0.5, -0.2, -1e-9, 1.2, 1.4999999]


@pytest.mark.parametrize("seed", range(6))
def test_poisoning_answers_match_the_reference_on_random_streams(seed: int) -> None:
    rng = np.random.default_rng(seed)
    n = 260
    labels = rng.integers(0, 2, n)
    preds = np.round(np.clip(0.4 * labels + 0.6 * rng.random(n), 0, 1), 1)
    preds[rng.random(n) < 0.08] = -1
    odd = rng.random(n)
    preds[odd < 0.04] = rng.choice(HARMLESS_OUT_OF_RANGE, size=int(np.sum(odd < 0.04)))
    bad_at = rng.choice(n, size=1 + seed % 3, replace=False)  # one to three, anywhere (early, late, close)
    preds[bad_at] = rng.choice(BAD_ANSWERS, size=bad_at.size)
    expected = np.array(reference_scores(labels.tolist(), preds.tolist()))
    got = as_rows(score_stream(labels, preds))
    assert np.abs(got - expected).max() < 1e-12
    assert (expected[:, 1] == 0).sum() > 0 and poisoning(preds).sum() > 0  # the case under test occurs


@pytest.mark.parametrize("bad", BAD_ANSWERS)
def test_a_poisoning_answer_zeroes_its_windows_for_100_and_10_steps(bad: float) -> None:
    labels = alternating(260)
    preds = labels.astype(float)
    preds[120] = bad
    steps = score_stream(labels, preds)
    assert steps[119].mcc_100 == 1.0 and steps[119].accuracy_10 == 1.0
    assert all(s.mcc_100 == 0.0 for s in steps[120:220])  # its own step and the next 99
    assert all(s.accuracy_10 == 0.0 for s in steps[120:130])  # its own step and the next 9
    assert all(s.reward == 0.0 for s in steps[120:130])
    assert steps[130].accuracy_10 == 1.0 and steps[130].reward == pytest.approx(0.125)  # mcc still 0
    assert steps[220].mcc_100 == 1.0 and steps[220].reward == 1.0
    assert poisoning(preds).tolist() == [i == 120 for i in range(260)]


@pytest.mark.parametrize("value", HARMLESS_OUT_OF_RANGE)
def test_an_answer_that_rounds_to_a_class_only_loses_its_own_reward(value: float) -> None:
    labels = alternating(40)
    preds = labels.astype(float)
    i = 21 if value > 1 else 20  # a label it gets right when rounded: 1.2 counts as 1, -0.2 (and -0.5) as 0
    preds[i] = value
    steps = score_stream(labels, preds)
    assert steps[i].reward == 0.0 and steps[i].mcc_100 == 1.0 and steps[i].accuracy_10 == 1.0
    assert all(s.reward == 1.0 for s in steps[i + 1:])
    assert not poisoning(preds).any()


def test_minus_one_is_missing_not_poisoning() -> None:
    labels = alternating(30)
    preds = labels.astype(float)
    preds[15] = -1.0
    steps = score_stream(labels, preds)
    assert steps[15].reward == 0.0 and steps[16].mcc_100 == 1.0 and steps[16].accuracy_10 == 1.0
    assert summarize(labels, preds)["n_poisoning"] == 0
    preds[15] = -1.0000001  # not the missing marker: rounds to -1, a third class
    assert score_stream(labels, preds)[16].mcc_100 == 0.0 and summarize(labels, preds)["n_poisoning"] == 1


def test_summarize() -> None:
    labels = alternating(40)
    preds = labels.astype(float)
    preds[5] = -1
    preds[6] = 1 - labels[6]
    s = summarize(labels, preds)
    steps = score_stream(labels, preds)
    assert s["n"] == 40 and s["n_valid"] == 39
    assert s["final_score"] == steps[-1].score and s["mcc_100"] == steps[-1].mcc_100
    assert s["accuracy_10"] == 1.0 and s["mean_reward"] == pytest.approx(np.mean([x.reward for x in steps]))
    assert s["accuracy"] == pytest.approx(38 / 39)
    valid = preds != -1
    assert s["mcc"] == pytest.approx(matthews_corrcoef(labels[valid], preds[valid] > 0.5))
    assert summarize([], [])["final_score"] == 0.0


def test_read_predictions_csv(tmp_path) -> None:  # noqa: ANN001
    path = tmp_path / "p.csv"
    path.write_text("challenge,label,prediction\na,1,0.91\nb,0,-1\n\nc,0,0.5\nd,1,1.3\n")
    labels, preds = read_predictions_csv(path)
    assert labels.tolist() == [1, 0, 0, 1] and preds.tolist() == [0.91, -1.0, 0.5, 1.3]
    assert summarize(labels, preds)["n_valid"] == 3


def test_csv_reads_nan_and_infinities_and_scores_them(tmp_path) -> None:  # noqa: ANN001
    path = tmp_path / "p.csv"
    rows = [(i % 2, float(i % 2)) for i in range(40)]
    text = [f"{y},{p}" for y, p in rows]
    text[12], text[25], text[28] = "0,nan", "1, inf", "0,-Infinity"
    path.write_text("label,prediction\n" + "\n".join(text) + "\n")
    labels, preds = read_predictions_csv(path)
    assert np.isnan(preds[12]) and preds[25] == math.inf and preds[28] == -math.inf
    expected = np.array(reference_scores(labels.tolist(), preds.tolist()))
    assert np.abs(as_rows(score_stream(labels, preds)) - expected).max() < 1e-12
    s = summarize(labels, preds)
    assert s["n_poisoning"] == 3 and s["mcc_100"] == 0.0 and s["accuracy_10"] == 1.0


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("label,score\n1,0.5\n", "line 1: header lacks column(s) prediction"),
        ("", "empty file"),
        ("label,prediction\n1,0.9\n0,abc\n", "line 3: prediction 'abc' is not a number"),
        ("label,prediction\n1,0.9\n2,0.1\n", "line 3: label must be 0 or 1"),
        ("label,prediction\nyes,0.9\n", "line 2: label 'yes' is not a number"),
        ("label,prediction\n1,0.9,7\n", "line 2: expected 2 fields, got 3"),
    ],
)
def test_bad_csv_names_the_line_and_the_problem(tmp_path, text: str, message: str) -> None:  # noqa: ANN001
    path = tmp_path / "bad.csv"
    path.write_text(text)
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(")", r"\)")):
        read_predictions_csv(path)


def model_answers(quality: float, n: int = 1000, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Labels and probs of a model that is right with probability `quality`."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 2, n)
    right = rng.random(n) < quality
    confidence = 0.5 + 0.5 * rng.random(n)
    probs = np.where(right == (labels == 1), confidence, 1 - confidence)
    return labels, probs


def test_expected_reward_is_deterministic_and_brackets_its_mean() -> None:
    labels, probs = model_answers(0.85)
    first = expected_reward(labels, probs, n_orderings=50, seed=3)
    assert first == expected_reward(labels, probs, n_orderings=50, seed=3)
    assert first != expected_reward(labels, probs, n_orderings=50, seed=4)
    assert first["n_orderings"] == 50
    for key in ("final_score", "mean_reward"):
        stats = first[key]
        assert 0 <= stats["ci_low"] <= stats["mean"] <= stats["ci_high"] <= 1
        assert stats["ci_low"] < stats["ci_high"]


def test_expected_reward_ranks_a_better_model_higher_and_supports_bootstrap_length() -> None:
    labels, good = model_answers(0.95)
    _, weak = model_answers(0.75)
    better = expected_reward(labels, good, n_orderings=100, length=500)
    worse = expected_reward(labels, weak, n_orderings=100, length=500)
    assert better["mean_reward"]["mean"] > worse["mean_reward"]["ci_high"]
    assert better["final_score"]["mean"] > worse["final_score"]["mean"]


def test_expected_reward_is_fast() -> None:
    labels, probs = model_answers(0.9)
    start = time.perf_counter()
    expected_reward(labels, probs, n_orderings=200)
    assert time.perf_counter() - start < 2.0  # the brief's budget is 5 s; it takes ~0.1 s


def test_mismatched_lengths_and_bad_labels_raise() -> None:
    with pytest.raises(ValueError, match="length"):
        score_stream([0, 1], [0.5])
    with pytest.raises(ValueError, match="0 or 1"):
        score_stream([0, 2], [0.5, 0.5])

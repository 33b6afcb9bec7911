"""The demo prints each MCC of its model once, saying what it was measured on."""

from __future__ import annotations

import datetime as dt
import re

from roadwork.db import repo
from roadwork.platform.demo import evaluation_lines, student_lines


def evaluation(kind: str, n: int, mcc: float, metrics: dict) -> repo.Evaluation:
    return repo.Evaluation(id=1, version_id=1, dataset=f"{kind}:f", kind=kind, n=n, mcc=mcc, accuracy=0.9,
                           metrics=metrics, job_run_id=None, created_at=dt.datetime(2026, 1, 1, tzinfo=dt.UTC))


REPLAY = evaluation("replay", 500, 0.546, {"expected_reward": {"final_score": {"mean": 0.3}}})


def mccs(lines: list[str]) -> list[str]:
    return re.findall(r"\d\.\d{3}", " ".join(lines))


def test_without_calibration_each_mcc_is_printed_once_with_its_source() -> None:
    val = evaluation("validation", 113, 0.801, {"before_calibration": {"mcc": 0.801}})
    lines = evaluation_lines(val, REPLAY, applied=False)
    text = "\n".join(lines)
    assert "validation split, 113 images: MCC 0.801 (raw answers" in text
    assert "replay MCC 0.546" in text and "500 challenges" in text
    assert mccs(lines).count("0.801") == 1 and mccs(lines).count("0.546") == 1


def test_with_calibration_the_served_and_the_raw_mcc_are_both_labelled() -> None:
    val = evaluation("validation", 113, 0.78, {"before_calibration": {"mcc": 0.801}})
    text = "\n".join(evaluation_lines(val, REPLAY, applied=True))
    assert "MCC 0.780 as served (calibrated; 0.801 raw)" in text


def test_the_student_lines_put_each_student_number_beside_its_teachers_with_what_it_was_measured_on() -> None:
    rows = [{"evaluation": "validation", "kind": "validation", "dataset": "validation:f", "n": 113,
             "student_mcc": 0.612, "teacher_mcc": 0.801, "student_expected_score": None,
             "teacher_expected_score": None},
            {"evaluation": "replay seed 0", "kind": "replay", "dataset": "replay:f", "n": 500, "student_mcc": 0.655,
             "teacher_mcc": 0.546, "student_expected_score": 0.41, "teacher_expected_score": 0.3}]
    lines = student_lines(rows)
    assert lines[0].strip() == "validation split, 113 images: MCC student 0.612, teacher 0.801"
    assert lines[1].strip() == ("the same validator-style replay, 500 challenges: MCC student 0.655, teacher 0.546; "
                                "expected validator score: student 0.410, teacher 0.300")
    missing = student_lines([rows[1] | {"teacher_mcc": None, "teacher_expected_score": None}])
    assert "MCC student 0.655, no teacher run" in missing[0] and "teacher 0.546" not in missing[0]

"""`roadwork distill` end to end: a registered tiny teacher -> the command line -> a registered student version
(parent: the teacher, config.student, the teacher's data fingerprint) evaluated on the validation split and on
the very replay its teacher was evaluated on; bad input exits 2 with one line and stores nothing."""

from __future__ import annotations

import json

import numpy as np
import pytest

from roadwork.db import repo
from roadwork.db.engine import read_session
from tests.helpers import as_json, distillable_teacher, jpeg_bytes, roadwork


@pytest.fixture
def teacher(engine, settings, home, tiny_checkpoint, synth_data):
    """The tiny checkpoint registered as a version with one replay evaluation (n 40, seed 5); a quick distill."""
    return distillable_teacher(engine, settings, home, tiny_checkpoint, synth_data)


def _versions(engine) -> list[repo.Version]:
    with read_session(engine) as session:
        return repo.list_versions(session)


@pytest.mark.slow
def test_distill_registers_a_student_of_the_teacher_evaluated_on_the_teachers_replay(engine, home, teacher,
                                                                                      tmp_path) -> None:
    done = roadwork(home, "distill", str(teacher.id), "--student", "vit", "--epochs", "1", "--json")
    report = as_json(done)
    student_id = report["version"]["id"]
    with read_session(engine) as session:
        student = repo.get_version(session, student_id)
        evaluations = repo.evaluations_of(session, student_id)
        teacher_evaluations = repo.evaluations_of(session, teacher.id)
    assert student.parent_id == teacher.id
    assert student.data_fingerprint == teacher.data_fingerprint
    info = student.config["student"]
    assert info["kind"] == "vit" and info["teacher"] == teacher.label and info["teacher_id"] == teacher.id
    assert info["epochs"] == 1 and 0 < info["threshold"] < 1 and info["threshold"] == report["threshold"]
    # Evaluated on validation and on the teacher's own replay (same n, seed and data: the same dataset key).
    teacher_replay = next(e for e in teacher_evaluations if e.kind == "replay")
    by_kind = {e.kind: e for e in evaluations}
    assert set(by_kind) == {"validation", "replay"}
    assert by_kind["replay"].dataset == teacher_replay.dataset
    assert (by_kind["replay"].metrics["replay"]["n"], by_kind["replay"].metrics["replay"]["seed"]) == (40, 5)
    assert by_kind["replay"].metrics["calibration"]["threshold"] == 0.5  # the cut is in the weights, not on top
    rows = {r["evaluation"]: r for r in report["evaluations"]}
    assert rows["replay seed 5"]["teacher_mcc"] == pytest.approx(teacher_replay.mcc)
    assert rows["replay seed 5"]["student_mcc"] == pytest.approx(by_kind["replay"].mcc)
    assert rows["validation"]["teacher_mcc"] is not None
    # Size and CPU latency of both, as stored in the student's metrics at distill time.
    footprint = {r["model"]: r for r in report["footprint"]}
    stored = student.metrics["distill"]
    assert [footprint[m]["version"] for m in ("teacher", "student")] == [teacher.label, student.label]
    for model in ("teacher", "student"):
        assert footprint[model]["parameters"] == stored["size"][model]["parameters"] > 0
        assert footprint[model]["weights_mb"] == stored["size"][model]["weights_mb"] > 0
        assert footprint[model]["cpu_ms_per_image"] == stored["latency_ms"][model] > 0

    # `roadwork predict` answers the student's stock score for the version, the same as for its folder.
    image = tmp_path / "orange.jpg"
    image.write_bytes(jpeg_bytes())
    by_version = as_json(roadwork(home, "predict", str(student_id), str(image), "--json"))
    folder = home / "cache" / student.artifact_sha256  # the verified copy `predict VERSION` just loaded
    meta = json.loads((folder / "roadwork.json").read_text())
    assert meta["format"] == "roadwork-student/1" and meta["teacher_id"] == teacher.id
    by_folder = as_json(roadwork(home, "predict", str(folder), str(image), "--json"))
    assert np.isclose(_score(by_version), _score(by_folder))
    # Test-time augmentation is not something the stock miner does: asking for it on a student is refused clearly.
    tta = roadwork(home, "evaluate", str(student_id), "--replay", "20", "--tta", check=False)
    assert tta.returncode == 2 and "is a student" in tta.stderr and "Traceback" not in tta.stderr


def _score(predict_json) -> float:
    return float(predict_json[0]["score"])


def test_an_unknown_teacher_or_student_kind_exits_2_with_one_line_and_stores_nothing(engine, home, teacher) -> None:
    before = len(_versions(engine))
    for args, named in ((["distill", "99"], "99"), (["distill", str(teacher.id), "--student", "resnet"], "resnet")):
        done = roadwork(home, *args, check=False)
        assert done.returncode == 2, done.stderr
        lines = [line for line in done.stderr.splitlines() if line.strip()]
        assert len(lines) == 1 and named in lines[0] and "Traceback" not in done.stderr
    assert len(_versions(engine)) == before

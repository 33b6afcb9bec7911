"""The student's validator-style training images: made by the replay's own renderer, deterministic by seed; and
what a distillation stores besides MCC: both models' size and CPU latency, in the student's metrics."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from roadwork.db import repo
from roadwork.db.engine import read_session
from roadwork.platform.distillation import (
    LATENCY_RUNS,
    cpu_latency_ms,
    distill_set,
    distill_version,
    footprint_rows,
    validator_renders,
)
from roadwork.platform.registry.service import checkout
from roadwork.platform.evaluation.challenge import (
    decode_jpeg,
    render_jpeg,
    sample_params,
)
from roadwork.trainer.data.records import decode_image, read_records
from tests.helpers import distillable_teacher


def test_renders_are_what_the_replay_renderer_makes_of_each_record_and_repeat_by_seed(synth_data) -> None:
    records = [r for r in read_records(synth_data)[0][:6]]
    images, labels = validator_renders(records, 2, seed=7, cache_resave=False)
    assert len(images) == 12 and labels == [r.label for r in records for _ in range(2)]
    assert all(img.size == (224, 224) for img in images)
    # Copy 1 of record 3 is the challenge the renderer draws from rng([seed, 3, 1]).
    source = decode_image(records[3].image_bytes)
    params = sample_params(np.random.default_rng([7, 3, 1]), source.width, source.height)
    expected = decode_jpeg(render_jpeg(source, params))
    assert np.array_equal(np.asarray(images[7]), np.asarray(expected))
    again, _ = validator_renders(records, 2, seed=7, cache_resave=False)
    other, _ = validator_renders(records, 2, seed=8, cache_resave=False)
    assert all(np.array_equal(np.asarray(a), np.asarray(b)) for a, b in zip(images, again, strict=True))
    assert any(not np.array_equal(np.asarray(a), np.asarray(b)) for a, b in zip(images, other, strict=True))


def test_a_distillation_set_holds_the_images_and_their_renders(synth_data) -> None:
    records = read_records(synth_data)[0][:5]
    data = distill_set(records, 3, seed=0, cache_resave=True)
    assert len(data) == 5 * 4 and data.labels.tolist()[:5] == [r.label for r in records]
    assert data.images[0].size == decode_image(records[0].image_bytes).size  # the original, as it is


def test_latency_is_timed_on_one_image_at_a_time_after_a_warm_up(synth_data) -> None:
    image = decode_image(read_records(synth_data)[0][0].image_bytes)
    batches = []
    ms = cpu_latency_ms(lambda images: batches.append(list(images)), image)
    assert batches == [[image]] * (LATENCY_RUNS + 1)  # one warm-up call, then the timed runs, each of batch 1
    assert ms >= 0


def _safetensors_mb(folder: Path) -> float:
    return sum(f.stat().st_size for f in folder.rglob("*.safetensors")) / 1_000_000


def test_a_distillation_stores_both_models_size_and_cpu_latency_in_the_students_metrics(
        engine, settings, home, tiny_checkpoint, synth_data) -> None:
    from roadwork.trainer.eval.predict import Predictor

    teacher = distillable_teacher(engine, settings, home, tiny_checkpoint, synth_data)
    outcome = distill_version(engine, settings, teacher.id, "dinov2", 1, show_progress=False, log=lambda _: None)
    with read_session(engine) as session:
        stored = repo.get_version(session, outcome.student.id).metrics["distill"]  # as the dashboard reads it

    # Size: every parameter of each model as it is served, and the bytes of its weights files.
    for role, version in (("teacher", teacher), ("student", outcome.student)):
        folder = checkout(settings, version)
        served = Predictor.load(folder).model
        assert stored["size"][role]["parameters"] == sum(p.numel() for p in served.parameters())
        assert stored["size"][role]["weights_mb"] == pytest.approx(_safetensors_mb(folder), abs=1e-3)
    assert stored["size"]["teacher"]["parameters"] != stored["size"]["student"]["parameters"]
    # Latency: CPU milliseconds per image at batch 1, both measured, and how they were measured.
    assert stored["latency_ms"]["teacher"] > 0 and stored["latency_ms"]["student"] > 0
    setup = stored["latency_setup"]
    assert (setup["device"], setup["batch"], setup["runs"], setup["statistic"]) == ("cpu", 1, LATENCY_RUNS, "median")
    assert setup["image_px"] == [224, 224]  # a validator-style render, the size validators send
    # What `roadwork distill` prints beside the MCC comparison.
    rows = {r["model"]: r for r in footprint_rows(outcome)}
    assert rows["teacher"]["version"] == teacher.label and rows["student"]["version"] == outcome.student.label
    assert rows["student"]["parameters"] == stored["size"]["student"]["parameters"]
    assert rows["teacher"]["cpu_ms_per_image"] == stored["latency_ms"]["teacher"]


def test_an_ensemble_teacher_is_distilled_like_any_other_version(
        engine, settings, home, tiny_checkpoint, synth_data, tmp_path) -> None:
    from types import SimpleNamespace

    from roadwork.trainer.eval.predict import Predictor
    from roadwork.trainer.model.ensemble import save_ensemble

    members = [tiny_checkpoint.checkpoint_dir, tiny_checkpoint.checkpoint_dir]
    ensemble_dir = save_ensemble(tmp_path / "ensemble", members, "mean", [0.5, 0.5], 0.0,
                                 extra={"data_fingerprint": tiny_checkpoint.data_fingerprint})
    as_checkpoint = SimpleNamespace(checkpoint_dir=ensemble_dir, data_fingerprint=tiny_checkpoint.data_fingerprint)
    teacher = distillable_teacher(engine, settings, home, as_checkpoint, synth_data)
    assert type(Predictor.load(checkout(settings, teacher))).__name__ != "StudentPredictor"

    outcome = distill_version(engine, settings, teacher.id, "dinov2", 1, show_progress=False, log=lambda _: None)
    with read_session(engine) as session:
        student = repo.get_version(session, outcome.student.id)
        replays = {e.dataset for e in repo.evaluations_of(session, student.id) if e.kind == "replay"}
        teacher_replays = {e.dataset for e in repo.evaluations_of(session, teacher.id) if e.kind == "replay"}
    assert student.parent_id == teacher.id and student.config["student"]["teacher_id"] == teacher.id
    assert replays == teacher_replays != set()  # evaluated on the very replay its teacher was

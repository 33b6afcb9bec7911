"""A version evaluated on a validator-style replay, end to end against the real registry."""

from __future__ import annotations

import json

import numpy as np
import pytest

from roadwork.db import repo
from roadwork.db.engine import read_session
from roadwork.platform.registry import service as registry
from roadwork.platform.evaluation.challenge import replay_from_params
from roadwork.platform.evaluation.calibration_check import TOLERANCE
from roadwork.platform.evaluation.replay import evaluate_replay, run_replay
from roadwork.platform.evaluation.scoring import summarize
from roadwork.platform.training import calibrate_checkpoint
from roadwork.trainer.eval.calibration import Calibration
from roadwork.trainer.model.checkpoint import read_meta
from roadwork.trainer.data.records import read_records, split_records
from roadwork.trainer.eval.predict import Predictor
from roadwork.trainer.eval.metrics import binary_metrics
from tests.conftest import tiny_config


@pytest.fixture
def calibrated_version(engine, settings, tiny_checkpoint, synth_data, tmp_path):  # noqa: ANN001, ANN201
    ckpt = tmp_path / "ckpt"
    ckpt.mkdir()
    for f in tiny_checkpoint.checkpoint_dir.iterdir():
        (ckpt / f.name).write_bytes(f.read_bytes())
    calibration = calibrate_checkpoint(ckpt, tiny_config(), synth_data, n=120)
    version = registry.register_version(engine, settings, ckpt, config={}, metrics={}, data_fingerprint=None,
                                        parent_id=None)
    return version, calibration


def test_calibration_is_fitted_on_a_replay_and_stored_in_the_checkpoint(calibrated_version, settings) -> None:
    version, calibration = calibrated_version
    meta = read_meta(registry.checkout(settings, version))
    assert meta["calibration"]["threshold"] == calibration["threshold"]
    assert meta["calibration"]["fitted_on"] == {"kind": "replay", "n": 120, "seed": 1, "cache_resave": True}
    Calibration.from_dict({k: v for k, v in meta["calibration"].items() if k != "fitted_on"})


def test_the_calibration_is_checked_on_a_held_out_replay_and_kept_only_when_it_helps(
    calibrated_version, settings, synth_data
) -> None:
    version, calibration = calibrated_version
    check = read_meta(registry.checkout(settings, version))["calibration"]["check"]
    held = check["held_out"]
    assert (check["fit"]["seed"], held["seed"], held["n"], held["cache_resave"]) == (1, 2, 120, True)
    # The held-out numbers are those of a fresh replay with the other seed, raw and with the fitted cut.
    _, val = split_records(read_records(synth_data)[0], tiny_config().data.val_fraction, tiny_config().data.split_seed)
    run = run_replay(Predictor.load(registry.checkout(settings, version)), val, 120, seed=2)
    fitted = Calibration(check["fitted_threshold"])
    assert held["mcc_before"] == pytest.approx(binary_metrics(run.labels, run.raw_probs)["mcc"])
    assert held["mcc_after"] == pytest.approx(binary_metrics(run.labels, fitted.apply(run.raw_probs))["mcc"])
    # The decision follows the rule, and what is saved is the fitted cut or the identity accordingly.
    helps = held["mcc_diff"] > 0 and held["ci_low"] > -TOLERANCE and check["fitted_threshold"] != 0.5
    assert check["applied"] is helps
    assert calibration["threshold"] == (check["fitted_threshold"] if helps else 0.5)


def test_replay_evaluation_is_stored_reproducible_and_consistent(engine, settings, calibrated_version,
                                                                 synth_data) -> None:
    version, calibration = calibrated_version
    evaluation = evaluate_replay(engine, settings, version.id, n=80, seed=4, data_path=synth_data)
    assert evaluation.kind == "replay" and evaluation.n == 80 and "seed=4" in evaluation.dataset
    m = evaluation.metrics

    # The replay log holds every challenge's parameters; re-rendering it gives the same bytes.
    log = [json.loads(line) for line in registry.store(settings).verify(m["replay"]["log_sha256"]).read_text().splitlines()]
    assert len(log) == 80 and {e["tags"]["level"] for e in log} <= {"0", "1", "2", "3"}
    records, _ = read_records(synth_data)
    again = list(replay_from_params({r.id: r for r in records}, log[:5]))
    assert [c.to_dict()["jpeg_sha256"] for c in again] == [e["jpeg_sha256"] for e in log[:5]]

    # Metrics after calibration are the raw scores cut at the calibrated threshold, and the validator
    # score is the scorer run over the calibrated answers in replay order.
    labels = np.array([e["label"] for e in log])
    raw = np.array([e["raw_prob"] for e in log])
    t = calibration["threshold"]
    assert m["mcc"] == pytest.approx(binary_metrics(labels, raw, cut=t)["mcc"])
    assert m["before_calibration"]["mcc"] == pytest.approx(binary_metrics(labels, raw)["mcc"])
    answers = Calibration(t).apply(raw)
    assert m["validator_score"]["final_score"] == pytest.approx(summarize(labels, answers)["final_score"])
    assert m["expected_reward"]["final_score"]["ci_low"] <= m["expected_reward"]["final_score"]["ci_high"]
    assert len(m["sweep"]["thresholds"]) == len(m["sweep"]["mcc"]) > 50

    with read_session(engine) as s:
        cells = repo.condition_cells(s, evaluation.id)
    names = {c.condition for c in cells}
    assert {"level", "CS", "CC", "JPEG", "GNC", "GB", "source", "weather", "daytime", "scene"} <= names
    assert sum(c.n for c in cells if c.condition == "level") == 80


def test_replay_is_deterministic_for_a_seed(engine, settings, calibrated_version, synth_data) -> None:
    version, _ = calibrated_version
    a = evaluate_replay(engine, settings, version.id, n=20, seed=9, data_path=synth_data)
    b = evaluate_replay(engine, settings, version.id, n=20, seed=9, data_path=synth_data)
    assert a.metrics["replay"]["log_sha256"] == b.metrics["replay"]["log_sha256"]
    assert a.mcc == b.mcc
    with pytest.raises(ValueError, match="at least 2"):
        evaluate_replay(engine, settings, version.id, n=1, seed=0, data_path=synth_data)


def test_tta_variants_are_measured_on_the_replay(engine, settings, calibrated_version, synth_data) -> None:
    version, _ = calibrated_version
    evaluation = evaluate_replay(engine, settings, version.id, n=40, seed=1, data_path=synth_data, tta=True)
    tta = evaluation.metrics["tta"]
    assert tta["fit_on"] == 20 and tta["measured_on"] == 20
    rows = {r["variant"]: r for r in tta["variants"]}
    assert list(rows)[0] == "none" and rows["none"]["mcc_delta_vs_none"] == 0 and rows["none"]["n_views"] == 1
    assert {"flips", "multiscale", "grid", "all_learned", "all_foods"} <= set(rows)
    assert all(r["ms_per_image"] > 0 for r in rows.values())
    assert rows["all_mean"]["n_views"] > rows["multiscale"]["n_views"]
    for r in rows.values():
        assert r["mcc_delta_vs_none"] == pytest.approx(r["mcc"] - rows["none"]["mcc"])


def test_the_cache_resave_setting_reaches_the_replay_and_its_log(engine, settings, calibrated_version,
                                                                 synth_data) -> None:
    from roadwork.settings import EvaluationSettings

    version, _ = calibrated_version
    off_settings = settings.model_copy(update={"evaluation": EvaluationSettings(cache_resave=False)})
    on = evaluate_replay(engine, settings, version.id, n=12, seed=3, data_path=synth_data)
    off = evaluate_replay(engine, off_settings, version.id, n=12, seed=3, data_path=synth_data)
    assert on.metrics["replay"]["cache_resave"] is True and off.metrics["replay"]["cache_resave"] is False

    def log(evaluation) -> list[dict]:  # noqa: ANN001
        blob = registry.store(settings).verify(evaluation.metrics["replay"]["log_sha256"])
        return [json.loads(line) for line in blob.read_text().splitlines()]

    log_on, log_off = log(on), log(off)
    assert all(e["params"]["cache_resave"] == (e["source"] == "real") for e in log_on)
    assert not any(e["params"]["cache_resave"] for e in log_off)
    # same draws, different pixels for the re-saved rows
    assert [e["record_id"] for e in log_on] == [e["record_id"] for e in log_off]
    assert any(a["jpeg_sha256"] != b["jpeg_sha256"] for a, b in zip(log_on, log_off) if a["source"] == "real")
    records, _ = read_records(synth_data)
    again = list(replay_from_params({r.id: r for r in records}, log_on[:4]))
    assert [c.to_dict()["jpeg_sha256"] for c in again] == [e["jpeg_sha256"] for e in log_on[:4]]

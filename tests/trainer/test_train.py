from __future__ import annotations

import numpy as np
import pytest
import torch
from sklearn.metrics import accuracy_score, matthews_corrcoef

from roadwork.trainer.eval import metrics
from roadwork.trainer.model.checkpoint import load_checkpoint, read_meta
from roadwork.trainer.config import ConfigError, TrainConfig, load_config
from roadwork.trainer.model.classifier import build_model
from roadwork.trainer.loop.train import lr_at, predict_probs, to_tensors
from roadwork.trainer.data.records import read_records, split_records
from tests.conftest import ROOT


def test_tiny_preset_file_equals_the_embedded_defaults() -> None:
    assert load_config(ROOT / "configs" / "tiny.yaml") == TrainConfig()


def test_competition_preset_is_valid() -> None:
    cfg = load_config(ROOT / "configs" / "competition.yaml")
    assert cfg.data.image_size == 224 and cfg.model.backbone.startswith("facebook/dinov3")


def test_bad_config_names_the_key(tmp_path) -> None:  # noqa: ANN001
    path = tmp_path / "c.yaml"
    path.write_text("optim:\n  lr: fast\nmodel:\n  hiden_size: 3\n")
    with pytest.raises(ConfigError) as info:
        load_config(path)
    assert "'optim.lr'" in str(info.value) and "'model.hiden_size'" in str(info.value)


@pytest.mark.parametrize("size", [32, 64, 224])
def test_model_shapes_and_no_nan(size: int) -> None:
    model = build_model(TrainConfig().model, size)
    logits = model(torch.rand(3, 3, size, size))
    assert logits.shape == (3,) and torch.isfinite(logits).all()


@pytest.mark.parametrize("seed", range(5))
def test_mcc_and_accuracy_match_scikit_learn(seed: int) -> None:
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 2, 200)
    probs = np.clip(labels * 0.3 + rng.random(200) * 0.7, 0, 1)
    preds = metrics.threshold(probs)
    assert metrics.mcc(labels, preds) == pytest.approx(matthews_corrcoef(labels, preds), abs=1e-12)
    assert metrics.accuracy(labels, preds) == pytest.approx(accuracy_score(labels, preds))


def test_threshold_counts_exactly_half_as_no_roadwork() -> None:
    assert metrics.threshold(np.array([0.5, 0.5000001, 0.49])).tolist() == [0, 1, 0]
    assert metrics.mcc(np.array([1, 1]), np.array([1, 1])) == 0.0  # undefined -> 0, as sklearn


def test_bootstrap_ci_brackets_the_estimate() -> None:
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 2, 300)
    preds = np.where(rng.random(300) < 0.85, labels, 1 - labels)
    low, high = metrics.bootstrap_mcc_ci(labels, preds)
    assert low < metrics.mcc(labels, preds) < high and high - low < 0.3


def test_lr_schedule_warms_up_then_decays_to_zero() -> None:
    values = [lr_at(s, 100, 10) for s in range(100)]
    assert values[0] == pytest.approx(0.1) and values[9] == pytest.approx(1.0)
    assert all(a >= b for a, b in zip(values[10:], values[11:], strict=False))
    assert lr_at(100, 100, 10) == pytest.approx(0.0)


def test_training_learns_and_checkpoint_reloads_identically(tiny_checkpoint, synth_data) -> None:
    result = tiny_checkpoint
    assert result.read_report.skipped, "the corrupt rows of the synthetic set are skipped and counted"
    assert len(result.history) == 2 and result.metrics["val_n"] == result.n_val
    meta = read_meta(result.checkpoint_dir)
    assert meta["data_fingerprint"] == result.data_fingerprint
    model, config = load_checkpoint(result.checkpoint_dir)
    records, _ = read_records(synth_data)
    _, val = split_records(records, config.data.val_fraction, config.data.split_seed)
    images, labels = to_tensors(val, config.data.image_size)
    probs = predict_probs(model, images)
    assert ((probs >= 0) & (probs <= 1)).all()
    assert metrics.binary_metrics(labels.numpy(), probs)["mcc"] == pytest.approx(result.metrics["val_mcc"])


@pytest.mark.slow
def test_tiny_preset_learns_the_synthetic_task(tmp_path) -> None:  # noqa: ANN001
    """The demo's data and preset: 600 rows, 30 epochs (measured: val MCC 0.89 in about 25 s)."""
    from roadwork.trainer.data.synth import synthesize
    from roadwork.trainer.loop.train import train

    synthesize(tmp_path / "data", 600, seed=0, corrupt_fraction=0.01)
    result = train(TrainConfig(), tmp_path / "data", tmp_path / "ckpt", show_progress=False, log=lambda _: None)
    assert result.metrics["val_mcc"] >= 0.85

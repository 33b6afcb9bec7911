"""Ensembles: the combination is exactly the weighted member logits, it survives a save/load, the learned
weighting finds the informative member, and bad member specs or mixed image sizes fail with a clear message."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from safetensors.torch import load_file
from sklearn.linear_model import LogisticRegression

from roadwork.trainer.model.checkpoint import load_checkpoint, read_meta, save_checkpoint
from roadwork.trainer.config import TrainConfig
from roadwork.trainer.model.ensemble import (
    L2,
    EnsembleClassifier,
    fit_weights,
    log_loss,
    parse_members,
    save_ensemble,
)
from roadwork.trainer.loop.ensemble import train_ensemble
from roadwork.trainer.model.classifier import build_model
from roadwork.trainer.eval.predict import Predictor, to_pixels

torch.set_num_threads(1)

DINO = TrainConfig().with_overrides({"data.image_size": 64})  # multiview, random-init DINOv3, 64 px
CONVNEXT = DINO.with_overrides({"model.kind": "convnextv2", "optim.seed": 1})


def _members(*configs: TrainConfig) -> list[torch.nn.Module]:
    models = []
    for cfg in configs:
        torch.manual_seed(cfg.optim.seed)
        models.append(build_model(cfg.model, cfg.data.image_size).eval())
    return models


def _member_checkpoints(tmp_path: Path, *configs: TrainConfig) -> list[Path]:
    dirs = []
    for i, (cfg, model) in enumerate(zip(configs, _members(*configs), strict=True)):
        dirs.append(save_checkpoint(tmp_path / f"m{i}", model, cfg, {"metrics": {"val_mcc": 0.1 * i}}))
    return dirs


def test_forward_is_the_weighted_sum_of_member_logits() -> None:
    members = _members(DINO, CONVNEXT)
    x = torch.rand(3, 3, 64, 64)
    with torch.no_grad():
        l0, l1 = members[0](x), members[1](x)
        learned = EnsembleClassifier(members, [0.25, 0.75], 0.5, "learned")(x)
        mean = EnsembleClassifier(members)(x)
    assert not torch.equal(l0, l1)
    assert torch.equal(learned, l0 * 0.25 + l1 * 0.75 + 0.5)
    assert torch.equal(mean, l0 * 0.5 + l1 * 0.5)


def test_save_load_round_trip_gives_identical_outputs(tmp_path: Path) -> None:
    dirs = _member_checkpoints(tmp_path, DINO, CONVNEXT)
    ckpt = save_ensemble(tmp_path / "ens", dirs, "learned", [0.3, 1.2], -0.1,
                         {"metrics": {"val_mcc": 0.5}, "data_fingerprint": "f" * 64})
    meta = read_meta(ckpt)
    assert meta["kind"] == "ensemble"
    assert meta["ensemble"] == {"combine": "learned", "weights": [0.3, 1.2], "bias": -0.1}
    assert [m["name"] for m in meta["members"]] == ["dinov3:0", "convnextv2:1"]
    assert [m["seed"] for m in meta["members"]] == [0, 1] and meta["members"][1]["metrics"] == {"val_mcc": 0.1}
    assert meta["train_config"] == DINO.to_dict() and meta["image_size"] == 64
    keys = load_file(str(ckpt / "model.safetensors"))
    assert {k.split(".")[1] for k in keys} == {"0", "1"} and all(k.startswith("members.") for k in keys)

    expected_model = EnsembleClassifier([load_checkpoint(d)[0] for d in dirs], [0.3, 1.2], -0.1, "learned").eval()
    model, config = load_checkpoint(ckpt)
    assert isinstance(model, EnsembleClassifier) and config == DINO
    images = [Image.new("RGB", (80, 60), (200, 120, 30)), Image.new("RGB", (64, 64), (20, 20, 20))]
    pixels = to_pixels(images, 64)
    with torch.no_grad():
        expected = expected_model(pixels)
        assert torch.equal(model(pixels), expected)
    raw = Predictor.load(ckpt).raw_probs(images)
    np.testing.assert_array_equal(raw, torch.sigmoid(expected).double().numpy())


def test_members_of_different_image_sizes_are_refused(tmp_path: Path) -> None:
    small = CONVNEXT.with_overrides({"data.image_size": 32})
    dirs = _member_checkpoints(tmp_path, DINO, small)
    with pytest.raises(ValueError, match=r"share data.image_size.*dinov3:0: 64, convnextv2:1: 32"):
        save_ensemble(tmp_path / "ens", dirs, "mean", [0.5, 0.5], 0.0)
    # A checkpoint edited by hand after saving is refused at load time too.
    ckpt = save_ensemble(tmp_path / "ens", _member_checkpoints(tmp_path / "same", DINO, CONVNEXT), "mean",
                         [0.5, 0.5], 0.0)
    meta = json.loads((ckpt / "roadwork.json").read_text())
    meta["members"][1]["train_config"]["data"]["image_size"] = 32
    (ckpt / "roadwork.json").write_text(json.dumps(meta))
    with pytest.raises(ValueError, match="share data.image_size"):
        load_checkpoint(ckpt)


def test_train_ensemble_refuses_members_that_change_the_data(tmp_path: Path) -> None:
    members = [{"optim.seed": 0}, {"optim.seed": 1, "data.split_seed": 3}]
    with pytest.raises(ValueError, match="share the data section"):
        train_ensemble(DINO, tmp_path / "no-data-needed", tmp_path / "out", members)


def _constructed_logits(seed: int = 0, n: int = 400) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 2, n)
    informative = (2 * labels - 1) * 1.5 + rng.normal(size=n)
    noise = 2.0 * rng.normal(size=n)
    return np.stack([noise, informative], axis=1), labels


def test_learned_weighting_trusts_the_informative_member() -> None:
    logits, labels = _constructed_logits()
    weights, bias = fit_weights(logits, labels)
    assert min(weights) >= 0 and weights[1] > 0.95 * sum(weights)
    learned = log_loss(logits @ np.asarray(weights) + bias, labels)
    assert learned <= log_loss(logits.mean(axis=1), labels) - 0.1
    assert fit_weights(logits, labels) == (weights, bias)  # deterministic


def test_learned_weighting_matches_scikit_learn_when_all_weights_are_positive() -> None:
    rng = np.random.default_rng(1)
    labels = rng.integers(0, 2, 300)
    logits = np.stack([(2 * labels - 1) * s + rng.normal(size=300) for s in (0.5, 1.0, 2.0)], axis=1)
    weights, bias = fit_weights(logits, labels)
    # The same objective: mean log-loss + L2 |w|^2 == (1 / (2 L2 N)) sum log-loss + |w|^2 / 2, bias unpenalised.
    ref = LogisticRegression(C=1 / (2 * L2 * len(labels)), tol=1e-10, max_iter=10_000).fit(logits, labels)
    np.testing.assert_allclose(weights, ref.coef_[0], atol=1e-4)
    assert bias == pytest.approx(ref.intercept_[0], abs=1e-4)


def test_learned_weighting_is_never_worse_than_the_mean() -> None:
    rng = np.random.default_rng(2)
    for _ in range(5):
        labels = rng.integers(0, 2, 40)
        logits = rng.normal(size=(40, 3)) + (labels[:, None] - 0.5) * rng.random(3)
        weights, bias = fit_weights(logits, labels)
        assert log_loss(logits @ np.asarray(weights) + bias, labels) <= log_loss(logits.mean(axis=1), labels)


def test_parse_members() -> None:
    assert parse_members("dinov3:0, convnextv2:1") == [
        {"model.kind": "dinov3", "optim.seed": 0}, {"model.kind": "convnextv2", "optim.seed": 1}]
    assert parse_members("dinov3:0,facebook/dinov2-small:2")[1] == {"model.backbone": "facebook/dinov2-small",
                                                                    "optim.seed": 2}


@pytest.mark.parametrize(("spec", "message"), [
    ("dinov3:0,resnet:1", "member 'resnet:1': unknown kind 'resnet'"),
    ("dinov3:0,convnextv2", "member 'convnextv2': expected kind:seed"),
    ("dinov3:0,dinov2:one", "member 'dinov2:one': seed 'one' is not an integer"),
    ("dinov3:0,dinov3:0", "member 'dinov3:0' is listed twice"),
    ("dinov3:0", "at least 2 members"),
])
def test_parse_members_names_the_bad_item(spec: str, message: str) -> None:
    with pytest.raises(ValueError) as info:
        parse_members(spec)
    assert message in str(info.value)

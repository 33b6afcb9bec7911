"""The multi-view classifier: every switch builds and runs, NULL metadata trains, pruning saves backbone work."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from roadwork.trainer.config import COMPONENTS, ConfigError, TrainConfig, toggle_component
from roadwork.trainer.model.classifier import build_model
from roadwork.trainer.model.multiview import MetadataBatch, MultiViewClassifier, tensor_views
from roadwork.trainer.data.crops import extract_views

torch.set_num_threads(1)
SIZE = 64

SWITCHES = [
    {},
    {"model.views.enabled": False},
    {"model.pruning.placement": "pre", "model.pruning.keep": 5},
    {"model.pruning.placement": "post", "model.pruning.keep": 5},
    {"model.pyramid": True},
    {"model.encoder.layers": 0},
    {"model.encoder.layers": 2, "model.encoder.moe_experts": 4, "model.encoder.rope": False},
    {"model.gafm": False},
    {"model.metadata.enabled": True, "model.weather_head": True, "model.segmentation_head": True},
    {"model.kind": "dinov2"},
    {"model.kind": "convnextv2"},
    {"model.architecture": "single"},
]


def _model(overrides: dict, vocab_sizes=(5, 3, 4)) -> torch.nn.Module:
    torch.manual_seed(0)
    config = TrainConfig().with_overrides(overrides)
    return build_model(config.model, SIZE, vocab_sizes=vocab_sizes)


@pytest.mark.parametrize("overrides", SWITCHES, ids=lambda o: ",".join(f"{k}={v}" for k, v in o.items()) or "base")
def test_every_switch_builds_runs_and_backpropagates(overrides: dict) -> None:
    model = _model(overrides)
    x = torch.rand(3, 3, SIZE, SIZE)
    logits = model(x)
    assert logits.shape == (3,) and torch.isfinite(logits).all()
    logits.sum().backward()
    trained = [p for p in model.parameters() if p.requires_grad]
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in trained)


def test_training_outputs_have_the_documented_shapes() -> None:
    model = _model({"model.metadata.enabled": True, "model.weather_head": True, "model.segmentation_head": True,
                    "model.pruning.placement": "post", "model.pruning.keep": 7})
    out = model.forward_train(torch.rand(2, 3, SIZE, SIZE))
    assert out.logits.shape == (2,)
    assert out.view_logits.shape == (2, 7) and out.view_index.shape == (2, 7)
    assert (out.view_index.diff(dim=1) > 0).all()  # kept views stay in their order (RoPE positions)
    assert out.weather_logits.shape == (2, 5)
    assert out.mask_logits.shape[:2] == (2, 1) and out.mask_logits.shape[-1] == 16  # 4x4 patches, upsampled x4


def test_tensor_views_match_the_pil_views_of_the_same_image() -> None:
    rng = np.random.default_rng(0)
    arr = (rng.random((48, 80, 3)) * 255).astype(np.uint8)
    pil = extract_views(Image.fromarray(arr), 32).pixels  # (12, 3, 32, 32)
    tensor = tensor_views(torch.from_numpy(arr).permute(2, 0, 1)[None].float() / 255, 32)[0]
    assert tensor.shape == pil.shape == (12, 3, 32, 32)
    # same boxes; Pillow's and torch's antialiased bilinear filters differ by a few grey levels on noise
    assert (tensor - pil).abs().mean() < 0.03


def _metadata(kind: str, n: int = 4) -> MetadataBatch:
    meta = MetadataBatch.missing(n)
    if kind == "missing":
        return meta
    full = MetadataBatch(
        gps=torch.tensor([[40.7, -74.0]] * n), weather=torch.full((n,), 2), daytime=torch.ones(n, dtype=torch.long),
        scene=torch.full((n,), 3), text=torch.randn(n, 384),
    )
    if kind == "complete":
        return full
    half = torch.arange(n) % 2 == 0  # mixed: even rows complete, odd rows missing
    return MetadataBatch(*(torch.where(half.view(-1, *[1] * (a.dim() - 1)), a, b)
                           for a, b in zip((full.gps, full.weather, full.daytime, full.scene, full.text),
                                           (meta.gps, meta.weather, meta.daytime, meta.scene, meta.text))))


@pytest.mark.parametrize("kind", ["missing", "mixed", "complete"])
def test_metadata_null_entries_get_gradients_and_nothing_is_nan(kind: str) -> None:
    model = _model({"model.metadata.enabled": True, "model.metadata.field_dropout": 0.0, "model.weather_head": True})
    model.train()
    meta = _metadata(kind)
    out = model.forward_train(torch.rand(4, 3, SIZE, SIZE), meta)
    assert torch.isfinite(out.logits).all() and torch.isfinite(out.weather_logits).all()
    (out.logits.sum() + out.weather_logits.sum()).backward()
    enc = model.metadata
    for p in model.parameters():
        assert p.grad is None or torch.isfinite(p.grad).all()
    null_rows = [enc.gps.null, enc.text_null, enc.weather.weight[0], enc.daytime.weight[0], enc.scene.weight[0]]
    null_grads = [enc.gps.null.grad, enc.text_null.grad, enc.weather.weight.grad[0], enc.daytime.weight.grad[0],
                  enc.scene.weight.grad[0]]
    assert len(null_rows) == len(null_grads)
    if kind == "complete":
        assert all(g is None or g.abs().sum() == 0 for g in null_grads)
    else:
        assert all(g is not None and g.abs().sum() > 0 for g in null_grads)


def test_competition_input_runs_without_metadata_at_224_px() -> None:
    config = TrainConfig().with_overrides({"data.image_size": 224, "model.views.size": 32,
                                           "model.metadata.enabled": True})
    model = build_model(config.model, 224).eval()
    with torch.no_grad():
        assert torch.isfinite(model(torch.rand(2, 3, 224, 224))).all()  # metadata=None: every field NULL


def test_pre_backbone_pruning_runs_the_backbone_on_the_kept_views_only() -> None:
    seen: list[int] = []
    for overrides in ({}, {"model.pruning.placement": "pre", "model.pruning.keep": 4}):
        model = _model(overrides)
        handle = model.backbone.register_forward_hook(lambda _m, args, _o: seen.append(args[0].shape[0]))
        model(torch.rand(2, 3, SIZE, SIZE))
        handle.remove()
    assert seen == [2 * 12, 2 * 4]


def test_pruning_scores_learn_through_the_straight_through_gates() -> None:
    model = _model({"model.pruning.placement": "pre", "model.pruning.keep": 4})
    model(torch.rand(2, 3, SIZE, SIZE)).sum().backward()
    assert model.pre_pruning.scorer.view_bias.grad.abs().sum() > 0


def test_each_ablation_component_flips_to_a_valid_config() -> None:
    base = TrainConfig()
    for name in COMPONENTS:
        variant, on = toggle_component(base, name)
        assert variant != base
        assert isinstance(build_model(variant.model, SIZE), torch.nn.Module), name
    with pytest.raises(ConfigError, match="unknown component 'nope'"):
        toggle_component(base, "nope")
    with pytest.raises(ConfigError, match="pruning needs views"):
        base.with_overrides({"model.views.enabled": False, "model.pruning.placement": "pre"})


def test_the_default_config_builds_the_multiview_model() -> None:
    assert isinstance(build_model(TrainConfig().model, SIZE), MultiViewClassifier)

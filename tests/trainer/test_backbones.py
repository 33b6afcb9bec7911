"""The backbone registry is the one place a kind is declared: every registered kind is accepted by the config
and the ensemble parser, builds a tiny model that runs, takes DoRA on exactly its declared targets, and
survives checkpoint -> export -> reload through the stock transformers pipeline."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
import torch
from peft.tuners.lora import LoraLayer
from PIL import Image
from torch import nn
from transformers import pipeline

from roadwork.trainer.config import ConfigError, TrainConfig
from roadwork.trainer.eval.predict import Predictor
from roadwork.trainer.export.repo import export_model
from roadwork.trainer.model.backbone import BackboneConfig, build_backbone
from roadwork.trainer.model.backbones import (
    BACKBONES,
    KINDS,
    TinySizes,
    spec_for_config,
    spec_for_kind,
)
from roadwork.trainer.model.checkpoint import save_checkpoint
from roadwork.trainer.model.classifier import build_model
from roadwork.trainer.model.ensemble import parse_members

CARD = {"model_name": "m", "description": "d", "version": "0", "submitted_by": "5H", "submission_time": 1}


def test_registry_specs_are_consistent() -> None:
    assert KINDS and set(KINDS) == set(BACKBONES)
    for kind, spec in BACKBONES.items():
        assert spec.kind == kind
        config = spec.tiny_config(TinySizes(hidden_size=32))
        assert spec_for_config(config) is spec  # model_type names the kind back, as a pretrained id's config does
        assert spec.width(config) == 32
        assert spec.dora_targets
    with pytest.raises(ValueError, match="unknown backbone kind 'vit'"):
        spec_for_kind("vit")


def test_config_and_ensemble_accept_exactly_the_registered_kinds() -> None:
    for kind in KINDS:
        assert TrainConfig().with_overrides({"model.kind": kind}).model.kind == kind
    with pytest.raises(ConfigError, match="model.kind") as error:
        TrainConfig().with_overrides({"model.kind": "vit"})
    assert all(kind in str(error.value) for kind in KINDS)  # the message lists what is allowed
    members = parse_members(",".join(f"{kind}:{i}" for i, kind in enumerate(KINDS)) + f",{KINDS[0]}:9")
    assert [m["model.kind"] for m in members] == [*KINDS, KINDS[0]]


@pytest.mark.parametrize("kind", KINDS)
def test_every_kind_runs_and_takes_dora_on_its_declared_targets(kind) -> None:
    spec = spec_for_kind(kind)
    torch.manual_seed(0)
    cfg = BackboneConfig(kind=kind, hidden_size=32, num_layers=2, num_heads=2, mode="dora", r=2, alpha=4)
    model = build_backbone(cfg)
    out = model(torch.rand(2, 3, 64, 64))
    assert out.pooled.shape == (2, 32) and out.tokens.shape[0::2] == (2, 32)
    assert torch.isfinite(out.pooled).all() and torch.isfinite(out.tokens).all()
    plain = build_backbone(replace(cfg, mode="frozen"))
    linear_suffixes = {name.rsplit(".", 1)[-1] for name, m in plain.named_modules() if isinstance(m, nn.Linear)}
    adapted = {name.rsplit(".", 1)[-1] for name, m in model.named_modules() if isinstance(m, LoraLayer)}
    # every declared target the architecture has is adapted, and nothing else
    assert adapted and adapted == set(spec.dora_targets) & linear_suffixes


@pytest.mark.parametrize("kind", KINDS)
def test_every_kind_survives_export_and_reload(kind, tmp_path) -> None:
    config = TrainConfig().with_overrides({"model.kind": kind})
    torch.manual_seed(0)
    model = build_model(config.model, config.data.image_size)
    with torch.no_grad():  # jitter every weight so no zero-initialised layer hides part of the network
        for param in model.parameters():
            param.add_(torch.randn_like(param) * 0.05)
    checkpoint = save_checkpoint(tmp_path / "checkpoint", model, config)
    exported = export_model(checkpoint, tmp_path / f"export_{kind}", model_card=CARD)
    rng = np.random.default_rng(0)
    images = [Image.fromarray(rng.integers(0, 256, (80, 96, 3), dtype=np.uint8)) for _ in range(3)]
    ours = Predictor.load(checkpoint).predict(images)
    assert np.ptp(ours) > 1e-4  # a network answering alike for every image would make the comparison vacuous
    classify = pipeline("image-classification", model=str(exported), trust_remote_code=True)
    served = [next(r["score"] for r in classify(image) if r["label"] == "Roadwork") for image in images]
    np.testing.assert_allclose(served, ours, atol=1e-5)

"""Backbones at tiny random sizes: shapes, trainable counts per mode, DoRA step/merge, the two stages."""

from __future__ import annotations

import importlib.util
import logging

import pytest
import torch
from peft import PeftModel
from peft.tuners.lora import LoraLayer

from roadwork.trainer.model.backbones import KINDS, spec_for_kind
from roadwork.trainer.model.backbone import (
    DEFAULT_TARGET_MODULES,
    Backbone,
    BackboneConfig,
    DoRAStages,
    apply_dora,
    build_backbone,
    domain_objective,
    merge_adapters,
    resolve_attn_implementation,
    trainable_parameters,
)

ADAPTER_KEYS = ("lora_A", "lora_B", "lora_magnitude_vector")
PX = 64


def tiny(kind: str, **overrides) -> BackboneConfig:
    fields = {
        "kind": kind,
        "hidden_size": 32,
        "num_layers": 2,
        "num_heads": 2,
        "num_register_tokens": 2,  # where the kind has register tokens (DINOv3); the others ignore it
    }
    fields |= {
        "r": 4,
        "alpha": 8,
        "dropout": 0.0,
    }  # no adapter dropout: merged and adapted outputs must agree
    return BackboneConfig(**{**fields, **overrides})


def images(batch: int = 2, seed: int = 0) -> torch.Tensor:
    return torch.randn(batch, 3, PX, PX, generator=torch.Generator().manual_seed(seed))


def is_adapter(name: str) -> bool:
    return any(key in name for key in ADAPTER_KEYS)


def expected_tokens(kind: str) -> int:
    # ViT (CLS pooling): (64 / 16)^2 patches; ConvNeXt (feature map): 4 px stem then /2 for the second stage -> 8 x 8.
    return (PX // 16) ** 2 if spec_for_kind(kind).pooling == "cls" else (PX // 8) ** 2


@pytest.mark.parametrize("kind", KINDS)
def test_output_shapes(kind):
    torch.manual_seed(0)
    backbone = build_backbone(tiny(kind))
    out = backbone(images())
    assert backbone.hidden_size == 32
    assert out.pooled.shape == (2, 32)
    assert out.tokens.shape == (2, expected_tokens(kind), 32)
    assert torch.isfinite(out.pooled).all() and torch.isfinite(out.tokens).all()


def test_vit_tokens_drop_cls_and_registers():
    torch.manual_seed(0)
    backbone = build_backbone(
        tiny("dinov3", num_register_tokens=3)
    ).eval()  # train mode jitters RoPE
    x = images()
    hidden = backbone.model(pixel_values=x).last_hidden_state  # (B, 1 + 3 + 16, D)
    out = backbone(x)
    assert torch.equal(out.pooled, hidden[:, 0])
    assert torch.equal(out.tokens, hidden[:, 4:])


@pytest.mark.parametrize("kind", KINDS)
def test_trainable_counts_per_mode(kind):
    torch.manual_seed(0)
    frozen = build_backbone(tiny(kind, mode="frozen"))
    full = build_backbone(tiny(kind, mode="full"))
    dora = build_backbone(tiny(kind, mode="dora"))
    base_total = trainable_parameters(full)[1]
    assert trainable_parameters(frozen) == (0, base_total)
    assert trainable_parameters(full) == (base_total, base_total)

    assert isinstance(dora, PeftModel)
    trainable, total = trainable_parameters(dora)
    adapter_size = sum(p.numel() for n, p in dora.named_parameters() if is_adapter(n))
    assert trainable == adapter_size == total - base_total
    assert 0 < trainable < 0.25 * total
    assert all(p.requires_grad == is_adapter(n) for n, p in dora.named_parameters())
    adapted = {
        name.rsplit(".", 1)[-1]
        for name, m in dora.named_modules()
        if isinstance(m, LoraLayer)
    }
    assert adapted and adapted <= set(DEFAULT_TARGET_MODULES[kind])


@pytest.mark.parametrize("kind", KINDS)
def test_dora_step_changes_only_adapters_and_merge_matches(kind):
    torch.manual_seed(0)
    model = build_backbone(tiny(kind, mode="dora"))
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    opt = torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=0.5)
    loss = model(images()).pooled.pow(2).mean()
    loss.backward()
    opt.step()

    changed = {n for n, p in model.named_parameters() if not torch.equal(p, before[n])}
    assert changed and all(is_adapter(n) for n in changed)
    assert any("lora_B" in n for n in changed)

    model.eval()
    merged = merge_adapters(model)
    assert type(merged) is Backbone
    assert not any(isinstance(m, LoraLayer) for m in merged.modules())
    assert not any("lora" in n for n in merged.state_dict())
    x = images(seed=1)
    with torch.no_grad():
        want, got = model(x), merged(x)
    torch.testing.assert_close(got.pooled, want.pooled, atol=1e-4, rtol=0)
    torch.testing.assert_close(got.tokens, want.tokens, atol=1e-4, rtol=0)
    assert isinstance(model, PeftModel)  # merging left the adapted model intact


def test_two_stages_fresh_task_adapter_on_merged_domain_weights():
    torch.manual_seed(0)
    cfg = tiny("dinov3", mode="dora")
    stages = DoRAStages(Backbone(cfg), cfg)
    batches = (images(seed=s) for s in range(10))
    losses = stages.train_domain(
        batches, steps=3, lr=1e-2, generator=torch.Generator().manual_seed(0)
    )
    assert len(losses) == 3 and all(torch.isfinite(torch.tensor(losses)))
    domain_b = [p for n, p in stages.domain_model.named_parameters() if "lora_B" in n]
    assert any(p.abs().sum() > 0 for p in domain_b)  # stage 1 actually adapted

    stages.domain_model.eval()
    merged_stage1 = merge_adapters(stages.domain_model)
    task = stages.begin_task().eval()
    assert isinstance(task, PeftModel)
    task_b = [p for n, p in task.named_parameters() if "lora_B" in n]
    assert task_b and all(torch.count_nonzero(p) == 0 for p in task_b)
    x = images(seed=42)
    with torch.no_grad():
        torch.testing.assert_close(
            task(x).pooled, merged_stage1(x).pooled, atol=1e-4, rtol=0
        )
        torch.testing.assert_close(
            task(x).tokens, merged_stage1(x).tokens, atol=1e-4, rtol=0
        )
    trainable, _ = trainable_parameters(task)
    assert (
        trainable
        == sum(p.numel() for n, p in task.named_parameters() if is_adapter(n))
        > 0
    )

    task.train()
    loss = domain_objective(
        task, images(seed=3), generator=torch.Generator().manual_seed(1)
    )
    assert loss.ndim == 0 and torch.isfinite(loss)
    loss.backward()
    adapter_grads = {n: p.grad for n, p in task.named_parameters() if is_adapter(n)}
    assert all(
        g is not None and torch.isfinite(g).all() for g in adapter_grads.values()
    )
    assert any(g.abs().sum() > 0 for n, g in adapter_grads.items() if "lora_B" in n)
    assert all(p.grad is None for n, p in task.named_parameters() if not is_adapter(n))


def test_gradient_checkpointing_with_dora():
    torch.manual_seed(0)
    model = build_backbone(tiny("dinov2", mode="dora", gradient_checkpointing=True))
    hf_model = model.base_model.model.model
    assert (
        getattr(hf_model, "is_activation_checkpointing", None)
        or hf_model.is_gradient_checkpointing
    )
    model.train()
    model(images()).pooled.sum().backward()
    assert any(
        p.grad is not None and p.grad.abs().sum() > 0
        for n, p in model.named_parameters()
        if "lora_B" in n
    )


def test_flash_attention_falls_back_to_sdpa(monkeypatch, caplog):
    real_find_spec = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util,
        "find_spec",
        lambda name, *a: None if name == "flash_attn" else real_find_spec(name, *a),
    )
    with caplog.at_level(logging.WARNING, logger="roadwork.trainer.model.backbone"):
        assert resolve_attn_implementation("flash_attention_2") == "sdpa"
        backbone = Backbone(tiny("dinov3", attn_implementation="flash_attention_2"))
    assert "falling back to sdpa" in caplog.text
    assert backbone.model.config._attn_implementation == "sdpa"
    assert resolve_attn_implementation("eager") == "eager"
    assert torch.isfinite(backbone(images()).pooled).all()


def test_apply_dora_honours_target_modules():
    torch.manual_seed(0)
    cfg = tiny("dinov3", mode="dora", target_modules=("q_proj", "v_proj"))
    model = apply_dora(Backbone(cfg), cfg)
    adapted = {
        name.rsplit(".", 1)[-1]
        for name, m in model.named_modules()
        if isinstance(m, LoraLayer)
    }
    assert adapted == {"q_proj", "v_proj"}

"""Hugging Face backbones (DINOv3 ViT, DINOv2, ConvNeXt V2) behind one interface, frozen, fully trained or
adapted with DoRA (peft), including the two-stage recipe: domain adaptation, then the task.

    backbone = build_backbone(BackboneConfig(kind="dinov3"))        # frozen / full: a Backbone
    out = backbone(pixel_values)                                    # BackboneOutput(pooled, tokens)

    stages = DoRAStages(Backbone(cfg), cfg)                         # stage 1: domain
    stages.train_domain(batches, steps=500)                         #   self-supervised, `domain_objective`
    task_model = stages.begin_task()                                # stage 2: merged stage 1 + fresh adapter
    export = merge_adapters(task_model)                             # a plain Backbone for export

What differs between kinds (config class, attention, pooling, DoRA targets) is declared once, in
`backbones.BACKBONES`; the inference half (`backbone_net.BackboneNet`) is shared with exported models.
"""

from __future__ import annotations

import copy
import importlib.util
import logging
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Literal

import torch
import torch.nn.functional as F
from peft import LoraConfig, PeftModel, get_peft_model
from torch import nn
from transformers import AutoConfig, AutoModel, PretrainedConfig

from roadwork.trainer.model.backbone_net import BackboneNet, BackboneOutput  # noqa: F401 (BackboneOutput: re-exported)
from roadwork.trainer.model.backbones import (
    BACKBONES,
    DEFAULT_KIND,
    TinySizes,
    spec_for_config,
    spec_for_kind,
)

log = logging.getLogger(__name__)

Mode = Literal["frozen", "full", "dora"]

# The Linear layers DoRA adapts, per kind (the registry's `dora_targets`; kept as a mapping for callers).
DEFAULT_TARGET_MODULES: dict[str, tuple[str, ...]] = {kind: spec.dora_targets for kind, spec in BACKBONES.items()}


@dataclass(frozen=True)
class BackboneConfig:
    name_or_path: str | None = None  # HF id, e.g. facebook/dinov3-vith16plus-pretrain-lvd1689m; None: random tiny
    kind: str = DEFAULT_KIND  # a key of backbones.BACKBONES: the random-init spec (an HF id names its own)
    hidden_size: int = 64  # ViT width / width of the last ConvNeXt stage
    num_layers: int = 2  # ViT depth / number of ConvNeXt stages (one block each, widths doubling)
    num_heads: int = 2  # ViT attention heads
    patch_size: int = 16  # ViT patch size (ConvNeXt: 4 px stem, /2 per further stage)
    image_size: int = 224  # ViT position-embedding size of the random spec (DINOv3's RoPE ignores it)
    num_register_tokens: int = 0  # DINOv3 register tokens of the random spec
    mode: Mode = "frozen"  # frozen: no grads; full: every parameter; dora: only adapter parameters
    r: int = 16  # DoRA rank
    alpha: int = 32  # DoRA scaling numerator (scale = alpha / r)
    dropout: float = 0.05  # dropout on the adapter input
    target_modules: tuple[str, ...] | None = None  # None: the kind's `dora_targets`
    attn_implementation: str = "sdpa"  # "flash_attention_2" only with flash_attn installed and CUDA present
    gradient_checkpointing: bool = False  # recompute activations in backward to save memory


def resolve_attn_implementation(requested: str) -> str:
    """`requested`, except flash_attention_2 without the flash_attn package or CUDA, which falls back to sdpa."""
    if requested != "flash_attention_2":
        return requested
    if importlib.util.find_spec("flash_attn") is not None and torch.cuda.is_available():
        return requested
    log.warning("flash_attention_2 needs the flash_attn package and CUDA; falling back to sdpa")
    return "sdpa"


def tiny_config(cfg: BackboneConfig) -> PretrainedConfig:
    """The Hugging Face config of the random-init spec."""
    sizes = TinySizes(
        hidden_size=cfg.hidden_size, num_layers=cfg.num_layers, num_heads=cfg.num_heads, patch_size=cfg.patch_size,
        image_size=cfg.image_size, num_register_tokens=cfg.num_register_tokens,
    )
    return spec_for_kind(cfg.kind).tiny_config(sizes)


def kind_of(config: PretrainedConfig) -> str:
    return spec_for_config(config).kind


class Backbone(BackboneNet):
    """pixel_values (B, 3, H, W), already normalised with the backbone's mean/std -> BackboneOutput; built from
    a BackboneConfig (a pretrained id or the random-init spec), trainable, with gradient checkpointing."""

    def __init__(self, cfg: BackboneConfig, model: nn.Module | None = None) -> None:
        super().__init__(model if model is not None else self._load(cfg))
        self.cfg = cfg
        if cfg.gradient_checkpointing:
            self.gradient_checkpointing_enable()

    @staticmethod
    def _load(cfg: BackboneConfig) -> nn.Module:
        config = AutoConfig.from_pretrained(cfg.name_or_path) if cfg.name_or_path else tiny_config(cfg)
        kwargs = spec_for_config(config).model_kwargs(resolve_attn_implementation(cfg.attn_implementation))
        if cfg.name_or_path:
            return AutoModel.from_pretrained(cfg.name_or_path, **kwargs)
        return AutoModel.from_config(config, **kwargs)

    def gradient_checkpointing_enable(self) -> bool:
        """Turn on activation checkpointing where the model supports it; returns whether it did."""
        if not getattr(self.model, "supports_gradient_checkpointing", False):
            log.warning("%s does not support gradient checkpointing", type(self.model).__name__)
            return False
        # Non-reentrant, so that checkpointed blocks still backpropagate into adapters when inputs need no grad.
        kwargs = {"use_reentrant": False}
        if hasattr(self.model, "activation_checkpointing_enable"):  # transformers >= 5.x name
            self.model.activation_checkpointing_enable(activation_checkpointing_kwargs=kwargs)
        else:
            self.model.gradient_checkpointing_enable(gradient_checkpointing_kwargs=kwargs)
        return True


def trainable_parameters(module: nn.Module) -> tuple[int, int]:
    """(number of parameters that require grad, number of parameters)."""
    params = list(module.parameters())
    return sum(p.numel() for p in params if p.requires_grad), sum(
        p.numel() for p in params
    )


def dora_config(cfg: BackboneConfig, kind: str) -> LoraConfig:
    targets = cfg.target_modules or spec_for_kind(kind).dora_targets
    return LoraConfig(
        r=cfg.r,
        lora_alpha=cfg.alpha,
        lora_dropout=cfg.dropout,
        target_modules=list(targets),
        use_dora=True,
    )


def apply_dora(backbone: Backbone, cfg: BackboneConfig) -> PeftModel:
    """`backbone` wrapped by peft with DoRA adapters; only the adapters (lora_A, lora_B, magnitude) train.
    The wrapper forwards like the Backbone and exposes its attributes (`hidden_size`, `kind`)."""
    return get_peft_model(backbone, dora_config(cfg, backbone.kind))


def merge_adapters(model: PeftModel) -> Backbone:
    """A plain Backbone with the adapters folded into its weights, for export; `model` is left untouched."""
    merged = copy.deepcopy(model).merge_and_unload()
    merged.requires_grad_(False)
    return merged


def build_backbone(cfg: BackboneConfig) -> nn.Module:
    """The backbone in `cfg.mode`: a Backbone (frozen / full) or its DoRA-wrapped PeftModel (dora)."""
    backbone = Backbone(cfg)
    if cfg.mode == "dora":
        return apply_dora(backbone, cfg)
    backbone.requires_grad_(cfg.mode == "full")
    return backbone


def two_views(
    images: torch.Tensor,
    min_scale: float = 0.5,
    generator: torch.Generator | None = None,
):
    """(B, 3, H, W) -> the horizontally flipped image, and a random crop (shared across the batch, at least
    `min_scale` of each side) resized back to H x W."""
    _, _, h, w = images.shape
    scale = min_scale + (1 - min_scale) * torch.rand((), generator=generator).item()
    ch, cw = max(int(h * scale), 1), max(int(w * scale), 1)
    top = int(torch.randint(0, h - ch + 1, (), generator=generator))
    left = int(torch.randint(0, w - cw + 1, (), generator=generator))
    crop = images[:, :, top : top + ch, left : left + cw]
    crop = F.interpolate(crop, size=(h, w), mode="bilinear", align_corners=False)
    return images.flip(-1), crop


def domain_objective(
    backbone: nn.Module, images: torch.Tensor, generator: torch.Generator | None = None
) -> torch.Tensor:
    """Self-distillation for stage 1: 1 - cosine similarity between the adapted backbone's pooled feature of a
    random crop and the *un-adapted* backbone's pooled feature (no grad) of the flipped image. Scalar loss.

    The target comes from the frozen base weights (peft's `disable_adapter`), so the adapters learn features of
    the street images that stay invariant to crop and flip without drifting from, or collapsing away from,
    the pretrained representation (a plain two-branch cosine loss has a trivial constant solution). For a
    module without adapters the target is the same model under no_grad (SimSiam without its predictor: only
    safe for a few steps)."""
    flipped, crop = two_views(images, generator=generator)
    with torch.no_grad():
        if isinstance(backbone, PeftModel):
            with backbone.disable_adapter():
                target = backbone(flipped).pooled  # (B, D)
        else:
            target = backbone(flipped).pooled
    pred = backbone(crop).pooled  # (B, D)
    return 1 - F.cosine_similarity(pred, target.detach(), dim=-1).mean()


class DoRAStages:
    """The two-stage DoRA recipe: stage 1 adapts to the street-image domain with `domain_objective`; stage 2
    merges the stage-1 adapters into the backbone weights and starts a *fresh* adapter for the task.

    Why merge, then a fresh adapter (rather than keep training one adapter or stack two): the task adapter
    starts at exactly the domain-adapted model (lora_B = 0), the stage-1 knowledge cannot be undone by a rank
    budget spent on the task, the exported model is still one plain backbone, and inference costs nothing extra.
    DoRA's magnitude vector of stage 2 is re-initialised from the merged weights' column norms."""

    def __init__(self, backbone: Backbone, cfg: BackboneConfig) -> None:
        self.cfg = cfg
        self.domain_model: PeftModel = apply_dora(backbone, cfg)
        self.task_model: PeftModel | None = None

    def train_domain(
        self,
        batches: Iterable[torch.Tensor],
        steps: int,
        lr: float = 1e-4,
        generator: torch.Generator | None = None,
    ) -> list[float]:
        """Stage 1: `steps` AdamW steps of `domain_objective` over `batches` (normalised images); the losses."""
        params = [p for p in self.domain_model.parameters() if p.requires_grad]
        opt = torch.optim.AdamW(params, lr=lr)
        self.domain_model.train()
        losses: list[float] = []
        for _, images in zip(range(steps), batches):
            loss = domain_objective(self.domain_model, images, generator=generator)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            losses.append(loss.item())
        return losses

    def begin_task(self) -> PeftModel:
        """Stage 2: merge the stage-1 adapters and wrap the result in a fresh DoRA adapter; returns it."""
        merged = merge_adapters(self.domain_model)
        self.task_model = apply_dora(merged, self.cfg)
        return self.task_model

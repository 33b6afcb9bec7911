"""The backbone kinds the trainer can build, one `BackboneSpec` each: the single place that knows how DINOv3,
DINOv2 and ConvNeXt V2 differ. Adding a kind means adding one entry to `BACKBONES`.

    spec = spec_for_kind("convnextv2")                      # or spec_for_config(hf_config), from a checkpoint
    config = spec.tiny_config(TinySizes(hidden_size=64))    # the random-init Hugging Face config
    spec.model_kwargs("sdpa")                               # {} : ConvNeXt V2 has no attention
    spec.width(config), spec.prefix_tokens(config)          # feature width, tokens before the patches

Why no transformers import at module level: `roadwork.trainer.config` validates `model.kind` against `KINDS`,
and reading a config must not cost the seconds importing transformers (and with it torch) takes. This module is
also copied into exported model repositories (`roadwork.trainer.export.code`), so it imports only the standard
library and transformers.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

Pooling = Literal["cls", "pooler"]


@dataclass(frozen=True)
class TinySizes:
    """The sizes of a randomly initialised backbone (tests, the tiny preset, and training from scratch)."""

    hidden_size: int = 64  # ViT width / width of the last ConvNeXt stage
    num_layers: int = 2  # ViT depth / number of ConvNeXt stages (one block each, widths doubling)
    num_heads: int = 2  # ViT attention heads
    patch_size: int = 16  # ViT patch size (ConvNeXt: 4 px stem, /2 per further stage)
    image_size: int = 224  # ViT position-embedding size (DINOv3's RoPE ignores it)
    num_register_tokens: int = 0  # register tokens, where the kind has them


@dataclass(frozen=True)
class BackboneSpec:
    """What distinguishes one backbone kind.

    `pooling`: "cls" takes the first token of `last_hidden_state` (B, 1 + R + N, D) as the pooled vector and the
    tokens after the CLS and register tokens as patches; "pooler" takes `pooler_output` (ConvNeXt's normalised
    global average) and the flattened last feature map (B, D, h, w) as patches."""

    kind: str  # our name, the value of `model.kind`
    model_type: str  # the Hugging Face config's `model_type`, so a checkpoint id resolves its own kind
    config_class: str  # the transformers config class of the random-init model
    tiny: Callable[[TinySizes], dict[str, Any]]  # TinySizes -> keyword arguments of `config_class`
    has_attention: bool  # takes `attn_implementation` (sdpa, eager, flash_attention_2); others reject it
    pooling: Pooling
    dora_targets: tuple[str, ...]  # the Linear layers DoRA adapts, matched by peft as module-name suffixes
    description: str = ""

    def tiny_config(self, sizes: TinySizes) -> Any:
        """The Hugging Face config (a `PretrainedConfig`) of a random-init model of these sizes."""
        import transformers  # here: config validation imports this registry and must stay light (module doc)

        return getattr(transformers, self.config_class)(**self.tiny(sizes))

    def model_kwargs(self, attn_implementation: str) -> dict[str, str]:
        """The keyword arguments `AutoModel.from_config` / `from_pretrained` take for this kind."""
        return {"attn_implementation": attn_implementation} if self.has_attention else {}

    def width(self, config: Any) -> int:
        """The width D of the pooled vector and of the patch tokens."""
        return config.hidden_sizes[-1] if self.pooling == "pooler" else config.hidden_size

    def features(self, out: Any, prefix_tokens: int) -> tuple[Any, Any]:
        """A Hugging Face model output -> (pooled (B, D), patch tokens (B, N, D)), as `pooling` says."""
        if self.pooling == "pooler":
            fmap = out.last_hidden_state  # (B, D, h, w)
            return out.pooler_output, fmap.flatten(2).transpose(1, 2)  # (B, D), (B, h*w, D)
        hidden = out.last_hidden_state  # (B, 1 + R + N, D)
        return hidden[:, 0], hidden[:, prefix_tokens:]  # (B, D), (B, N, D)

    def prefix_tokens(self, config: Any) -> int:
        """Tokens before the patch tokens in `last_hidden_state`: CLS + registers (ViT), none (feature map)."""
        return 1 + getattr(config, "num_register_tokens", 0) if self.pooling == "cls" else 0


def _dinov3(s: TinySizes) -> dict[str, Any]:
    return {
        "hidden_size": s.hidden_size, "num_hidden_layers": s.num_layers, "num_attention_heads": s.num_heads,
        "intermediate_size": s.hidden_size * 4, "patch_size": s.patch_size, "image_size": s.image_size,
        "num_register_tokens": s.num_register_tokens,
        # DINOv3's pretraining jitters RoPE (a random rescale per forward in train mode); a random-init model
        # trained from scratch on small images gains nothing from it, and it makes runs differ by batching.
        "pos_embed_rescale": None,
    }


def _dinov2(s: TinySizes) -> dict[str, Any]:
    return {
        "hidden_size": s.hidden_size, "num_hidden_layers": s.num_layers, "num_attention_heads": s.num_heads,
        "mlp_ratio": 4, "patch_size": s.patch_size, "image_size": s.image_size,
    }


def _convnextv2(s: TinySizes) -> dict[str, Any]:
    widths = [max(s.hidden_size >> (s.num_layers - 1 - i), 1) for i in range(s.num_layers)]  # doubling, last = D
    return {"hidden_sizes": widths, "depths": [1] * s.num_layers, "num_stages": s.num_layers,
            "image_size": s.image_size}


# Names a given config lacks (e.g. `gate_proj` without a gated MLP) are simply not matched by peft.
BACKBONES: dict[str, BackboneSpec] = {
    spec.kind: spec
    for spec in (
        BackboneSpec(
            kind="dinov3", model_type="dinov3_vit", config_class="DINOv3ViTConfig", tiny=_dinov3,
            has_attention=True, pooling="cls",
            # attention q/k/v/o projections, MLP up/down (+ gate_proj in the gated-MLP ViT-H+/7B variants)
            dora_targets=("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"),
            description="DINOv3 ViT (RoPE, register tokens); the default",
        ),
        BackboneSpec(
            kind="dinov2", model_type="dinov2", config_class="Dinov2Config", tiny=_dinov2,
            has_attention=True, pooling="cls",
            # attention q/k/v/o projections, MLP fc1/fc2 (or gate/up/down with `use_swiglu_ffn`)
            dora_targets=("q_proj", "k_proj", "v_proj", "o_proj", "fc1", "fc2", "gate_proj", "up_proj", "down_proj"),
            description="DINOv2 ViT",
        ),
        BackboneSpec(
            kind="convnextv2", model_type="convnextv2", config_class="ConvNextV2Config", tiny=_convnextv2,
            has_attention=False, pooling="pooler",
            # the pointwise convolutions, Linear layers over channels-last tensors; the 7x7 depthwise
            # convolutions hold few parameters and stay frozen
            dora_targets=("pwconv1", "pwconv2"),
            description="ConvNeXt V2 (no attention, global-average pooling); ensemble diversity",
        ),
    )
}
KINDS: tuple[str, ...] = tuple(BACKBONES)
DEFAULT_KIND = "dinov3"  # the backbone of the recipe; DINOv2 and ConvNeXt V2 bring diversity to ensembles


def spec_for_kind(kind: str) -> BackboneSpec:
    try:
        return BACKBONES[kind]
    except KeyError:
        raise ValueError(f"unknown backbone kind {kind!r}; expected one of {', '.join(KINDS)}") from None


def spec_for_config(config: Any) -> BackboneSpec:
    """The spec of a Hugging Face config (a pretrained id's or a checkpoint's), by its `model_type`."""
    for spec in BACKBONES.values():
        if spec.model_type == config.model_type:
            return spec
    raise ValueError(f"unsupported backbone model_type {config.model_type!r}")

"""A Hugging Face backbone behind one interface, for inference: normalised pixels (B, 3, H, W) ->
BackboneOutput(pooled, tokens), whatever the kind (`backbones.BACKBONES` says how each one pools).

The trainer's `backbone.Backbone` adds loading, DoRA and checkpointing on top of this class; an exported model
repository holds a copy of this file (`roadwork.trainer.export.code`) and rebuilds its backbone with it, so it
imports only torch, transformers and other modules of `roadwork.trainer.model`.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import torch
from torch import nn
from transformers import AutoConfig, AutoModel

from roadwork.trainer.model.backbones import spec_for_config


class BackboneOutput(NamedTuple):
    pooled: torch.Tensor  # (B, D): the CLS token (ViT) or the normalised global average (ConvNeXt)
    tokens: torch.Tensor | None  # (B, N, D): patch tokens without CLS/registers, or the flattened last map


def hf_model_from_dict(config: dict[str, Any], attn_implementation: str | None) -> nn.Module:
    """A randomly initialised Hugging Face model of a saved config dict (a checkpoint's `backbone_config`); the
    checkpoint fills in the weights. `attn_implementation`: asked for where the kind has attention; None asks
    for nothing (the single-image classifier's way, which accepts any model type)."""
    hf_config = AutoConfig.for_model(**config)
    kwargs = {} if attn_implementation is None else spec_for_config(hf_config).model_kwargs(attn_implementation)
    return AutoModel.from_config(hf_config, **kwargs)


class BackboneNet(nn.Module):
    """pixel_values (B, 3, H, W), already normalised with the backbone's mean/std -> BackboneOutput. Holds the
    Hugging Face model as `model`, so parameter names are `model.*` in every checkpoint and export."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model
        self.spec = spec_for_config(model.config)
        self.kind = self.spec.kind
        self.num_prefix_tokens = self.spec.prefix_tokens(model.config)

    @property
    def hidden_size(self) -> int:
        return self.spec.width(self.model.config)

    def forward(self, pixel_values: torch.Tensor) -> BackboneOutput:
        out = self.model(pixel_values=pixel_values)
        return BackboneOutput(*self.spec.features(out, self.num_prefix_tokens))  # (B, D), (B, N, D)

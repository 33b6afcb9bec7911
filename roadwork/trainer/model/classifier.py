"""The minimal classifier: a Hugging Face DINOv3 ViT backbone, pooled, then a linear head to one logit."""

from __future__ import annotations

import torch
from torch import nn
from transformers import AutoModel, DINOv3ViTConfig, DINOv3ViTModel

from roadwork.trainer.config import ModelConfig
from roadwork.trainer.model.backbone import Backbone, BackboneConfig
from roadwork.trainer.model.backbone_net import hf_model_from_dict
from roadwork.trainer.model.multiview import MultiViewClassifier

# ImageNet statistics, which DINOv3 was trained with; applied inside the model so every caller
# (trainer, evaluator, exported pipeline) feeds plain [0, 1] RGB tensors.
IMAGE_MEAN = (0.485, 0.456, 0.406)
IMAGE_STD = (0.229, 0.224, 0.225)


def backbone_config(cfg: ModelConfig, image_size: int) -> DINOv3ViTConfig:
    """The DINOv3 config of a random-init backbone of the given sizes."""
    return DINOv3ViTConfig(
        hidden_size=cfg.hidden_size,
        num_hidden_layers=cfg.num_layers,
        num_attention_heads=cfg.num_heads,
        intermediate_size=cfg.hidden_size * 4,
        patch_size=cfg.patch_size,
        image_size=image_size,
        num_register_tokens=0,
    )


class RoadworkClassifier(nn.Module):
    """pixel_values (B, 3, H, W) in [0, 1] -> roadwork logit (B,)."""

    def __init__(self, backbone: nn.Module, hidden_size: int, dropout: float = 0.0) -> None:
        super().__init__()
        self.backbone = backbone
        self.register_buffer("mean", torch.tensor(IMAGE_MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(IMAGE_STD).view(1, 3, 1, 1), persistent=False)
        self.dropout = nn.Dropout(dropout) if dropout > 0 else nn.Identity()
        self.head = nn.Linear(hidden_size, 1)

    def forward_features(self, pixel_values: torch.Tensor) -> torch.Tensor:
        x = (pixel_values - self.mean) / self.std
        tokens = self.backbone(pixel_values=x).last_hidden_state  # (B, 1 + R + N, D)
        return tokens[:, 0]  # the CLS token, (B, D)

    def forward(self, pixel_values: torch.Tensor) -> torch.Tensor:
        return self.head(self.dropout(self.forward_features(pixel_values))).squeeze(-1)


def backbone_spec(cfg: ModelConfig, image_size: int) -> BackboneConfig:
    """The `Backbone` settings of a model config; `image_size` is the side the backbone sees (the view size)."""
    return BackboneConfig(
        name_or_path=cfg.backbone,
        kind=cfg.kind,
        hidden_size=cfg.hidden_size,
        num_layers=cfg.num_layers,
        num_heads=cfg.num_heads,
        patch_size=cfg.patch_size,
        image_size=image_size,
        mode=cfg.backbone_mode,
        r=cfg.dora.r,
        alpha=cfg.dora.alpha,
        dropout=cfg.dora.dropout,
        attn_implementation=cfg.attn_implementation,
        gradient_checkpointing=cfg.gradient_checkpointing,
    )


def backbone_config_dict(model: nn.Module) -> dict:
    """The Hugging Face config of a model's backbone, as saved in a checkpoint."""
    backbone = model.backbone
    hf_model = backbone.model if isinstance(backbone, Backbone) else backbone
    return hf_model.config.to_dict()


def _multiview(cfg: ModelConfig, image_size: int, backbone_json: dict | None, vocab_sizes) -> nn.Module:
    spec = backbone_spec(cfg, cfg.views.size if cfg.views.enabled else image_size)
    hf_model = hf_model_from_dict(backbone_json, "sdpa") if backbone_json is not None else None
    backbone = Backbone(spec, model=hf_model)
    backbone.requires_grad_(cfg.backbone_mode == "full")  # dora: the trainer wraps it and trains the adapters
    return MultiViewClassifier(cfg, backbone, image_size=image_size, vocab_sizes=vocab_sizes or (8, 4, 8))


def build_model(
    cfg: ModelConfig, image_size: int, backbone_json: dict | None = None,
    vocab_sizes: tuple[int, int, int] | None = None,
) -> nn.Module:
    """A classifier from the model config (`architecture`: multiview or single). `backbone_json` (saved with a
    checkpoint) rebuilds the exact backbone architecture without downloading anything; weights then come from
    the checkpoint. `vocab_sizes` (weather, daytime, scene) size the metadata embeddings."""
    if cfg.architecture == "multiview":
        return _multiview(cfg, image_size, backbone_json, vocab_sizes)
    if backbone_json is not None:
        backbone = hf_model_from_dict(backbone_json, None)
    elif cfg.backbone:
        backbone = AutoModel.from_pretrained(cfg.backbone)
    else:
        backbone = DINOv3ViTModel(backbone_config(cfg, image_size))
    if cfg.freeze_backbone:
        backbone.requires_grad_(False)
    return RoadworkClassifier(backbone, backbone.config.hidden_size, cfg.dropout)

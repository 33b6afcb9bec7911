"""The minimal classifier: a Hugging Face DINOv3 ViT backbone, pooled, then a linear head to one logit."""

from __future__ import annotations

import torch
from torch import nn
from transformers import AutoConfig, AutoModel, DINOv3ViTConfig, DINOv3ViTModel

from roadwork.trainer.config import ModelConfig

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


def build_model(cfg: ModelConfig, image_size: int, backbone_json: dict | None = None) -> RoadworkClassifier:
    """A classifier from the model config. `backbone_json` (saved with a checkpoint) rebuilds the exact
    backbone architecture without downloading anything; weights then come from the checkpoint."""
    if backbone_json is not None:
        bb_config = AutoConfig.for_model(**backbone_json)
        backbone = AutoModel.from_config(bb_config)
    elif cfg.backbone:
        backbone = AutoModel.from_pretrained(cfg.backbone)
    else:
        backbone = DINOv3ViTModel(backbone_config(cfg, image_size))
    if cfg.freeze_backbone:
        backbone.requires_grad_(False)
    return RoadworkClassifier(backbone, backbone.config.hidden_size, cfg.dropout)

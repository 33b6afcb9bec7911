"""The multi-view roadwork classifier: the plan's recipe, each part a config switch.

    image (B, 3, H, W) in [0, 1]
      -> 12 views (global, 3x3 tiles with 25% overlap, centre square, right square), each S x S   `views`
      -> [pre-backbone pruning 12 -> K from thumbnails]                                          `pruning: pre`
      -> backbone (DINOv3 / DINOv2 / ConvNeXt V2; full, frozen or DoRA) per view: CLS + patches
      -> [multi-scale pyramid over each view's patches, added to its CLS]                         `pyramid`
      -> [post-backbone pruning 12 -> K]                                                          `pruning: post`
      -> gated-attention blocks over the view tokens (RoPE over view positions, SwiGLU or MoE)    `encoder`
      -> GAFM fusion (or the mean of the views)                                                   `gafm`
      -> [+ metadata vector (every field NULL at competition time)]                               `metadata`
      -> classifier head -> roadwork logit (B,);  [weather head], [segmentation head on the global view]

A switched-off part is `nn.Identity()` or absent, so `forward` reads top to bottom. The model takes the same
input as the minimal classifier (plain [0, 1] RGB, normalised inside), so the trainer, the evaluator, the
challenge replay and the exported pipeline call it the same way; metadata is an optional keyword.
"""

from __future__ import annotations

from dataclasses import dataclass
from dataclasses import fields as dataclass_fields
from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F
from torch import nn

from roadwork.trainer.model.layers import (
    GAFM,
    ClassifierHead,
    FeaturePyramid,
    GatedAttentionEncoder,
    MetadataEncoder,
    PostBackbonePruning,
    PreBackbonePruning,
    SegmentationHead,
    VisionMetadataFusion,
    WeatherHead,
    moe_aux_loss,
)
from roadwork.trainer.model.layers.metadata_encoder import TEXT_DIM
from roadwork.trainer.model.view_geometry import N_VIEWS, view_boxes

if TYPE_CHECKING:  # only a type: the exported copy of this file gets the same fields as a plain namespace
    from roadwork.trainer.config import ModelConfig

# ImageNet statistics (DINOv3, DINOv2 and ConvNeXt V2 were all trained with them). Plain constants, not
# buffers: transformers 5 leaves non-persistent buffers uninitialised when it loads an exported model.
IMAGE_MEAN = (0.485, 0.456, 0.406)
IMAGE_STD = (0.229, 0.224, 0.225)


def normalise(pixels: torch.Tensor) -> torch.Tensor:
    mean = torch.tensor(IMAGE_MEAN, device=pixels.device, dtype=pixels.dtype).view(1, 3, 1, 1)
    std = torch.tensor(IMAGE_STD, device=pixels.device, dtype=pixels.dtype).view(1, 3, 1, 1)
    return (pixels - mean) / std


def tensor_views(images: torch.Tensor, size: int) -> torch.Tensor:
    """images (B, 3, H, W) -> the 12 views (B, 12, 3, S, S), the boxes of `view_geometry.view_boxes`, each cropped then
    resized (bilinear, antialiased when shrinking) - the batch-tensor twin of `views.extract_views`."""
    B, C, H, W = images.shape
    crops = [
        F.interpolate(images[:, :, top:bottom, left:right], size=(size, size), mode="bilinear",
                      antialias=True, align_corners=False)
        for left, top, right, bottom in view_boxes(W, H)
    ]  # 12 x (B, 3, S, S)
    return torch.stack(crops, dim=1)  # (B, 12, 3, S, S)


@dataclass
class MetadataBatch:
    """A batch's metadata as tensors: gps (B, 2) NaN rows for missing; weather, daytime, scene (B,) vocabulary
    indices with 0 = NULL; text (B, 384) sentence embeddings with zero rows for missing."""

    gps: torch.Tensor
    weather: torch.Tensor
    daytime: torch.Tensor
    scene: torch.Tensor
    text: torch.Tensor

    @classmethod
    def missing(cls, batch_size: int, device: torch.device | str = "cpu") -> MetadataBatch:
        """Every field missing: what the model gets at competition time."""
        zeros = torch.zeros(batch_size, dtype=torch.long, device=device)
        return cls(
            gps=torch.full((batch_size, 2), float("nan"), device=device),
            weather=zeros, daytime=zeros.clone(), scene=zeros.clone(),
            text=torch.zeros(batch_size, TEXT_DIM, device=device),
        )

    def to(self, device: torch.device | str) -> MetadataBatch:
        return MetadataBatch(*(t.to(device) for t in (self.gps, self.weather, self.daytime, self.scene, self.text)))

    def index(self, idx: torch.Tensor) -> MetadataBatch:
        return MetadataBatch(*(t[idx] for t in (self.gps, self.weather, self.daytime, self.scene, self.text)))


@dataclass
class MultiViewOutput:
    logits: torch.Tensor  # (B,)
    view_logits: torch.Tensor  # (B, K): one roadwork logit per kept view, for the consistency loss
    view_index: torch.Tensor  # (B, K): which of the 12 views were kept
    weather_logits: torch.Tensor | None  # (B, num_weather)
    mask_logits: torch.Tensor | None  # (B, 1, h, w) of the global view
    moe_loss: torch.Tensor  # scalar, 0 without experts


class MeanPool(nn.Module):
    """(B, V, D) -> (B, D): the plain average of the views (GAFM switched off)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.mean(dim=1)


class MultiViewClassifier(nn.Module):
    """pixel_values (B, 3, H, W) in [0, 1], optional `MetadataBatch` -> roadwork logit (B,)."""

    def __init__(
        self,
        cfg: ModelConfig,
        backbone: nn.Module,
        *,
        image_size: int,
        vocab_sizes: tuple[int, int, int] = (8, 4, 8),  # weather, daytime, scene, NULL entry included
    ) -> None:
        super().__init__()
        self.cfg = cfg
        self.backbone = backbone  # a roadwork Backbone, or its peft DoRA wrapper while training
        dim = backbone.hidden_size
        self.image_size = image_size
        self.view_size = cfg.views.size if cfg.views.enabled else image_size
        num_views = N_VIEWS if cfg.views.enabled else 1
        keep = cfg.pruning.keep
        self.pre_pruning = (
            PreBackbonePruning(num_views=num_views, keep=keep) if cfg.pruning.placement == "pre" else None
        )
        self.pyramid = FeaturePyramid(dim) if cfg.pyramid else None
        self.post_pruning = (
            PostBackbonePruning(dim, num_views=num_views, keep=keep) if cfg.pruning.placement == "post" else None
        )
        enc = cfg.encoder
        self.encoder = (
            GatedAttentionEncoder(dim, depth=enc.layers, num_heads=enc.heads, rope=enc.rope,
                                  num_experts=enc.moe_experts, top_k=enc.moe_top_k, dropout=cfg.dropout)
            if enc.layers > 0 else None
        )
        self.view_head = nn.Linear(dim, 1)
        self.fusion = GAFM(dim, num_heads=enc.heads) if cfg.gafm else MeanPool()
        num_weather, num_daytime, num_scene = vocab_sizes
        if cfg.metadata.enabled:
            self.metadata = MetadataEncoder(dim, num_weather=num_weather, num_daytime=num_daytime,
                                            num_scene=num_scene, field_dropout=cfg.metadata.field_dropout)
            self.meta_fusion = VisionMetadataFusion(dim, meta_dim=dim)
        else:
            self.metadata, self.meta_fusion = None, None
        self.head = ClassifierHead(dim, dropout=cfg.dropout)
        self.weather_head = WeatherHead(dim, num_classes=num_weather) if cfg.weather_head else None
        self.segmentation_head = SegmentationHead(dim) if cfg.segmentation_head else None

    # ------------------------------------------------------------------------------------------ stages

    def views(self, pixel_values: torch.Tensor) -> torch.Tensor:
        """(B, 3, H, W) in [0, 1] -> normalised views (B, V, 3, S, S)."""
        x = normalise(pixel_values)
        if self.cfg.views.enabled:
            return tensor_views(x, self.view_size)
        if x.shape[-1] != self.view_size or x.shape[-2] != self.view_size:
            x = F.interpolate(x, size=(self.view_size,) * 2, mode="bilinear", antialias=True, align_corners=False)
        return x.unsqueeze(1)  # (B, 1, 3, S, S)

    def _encode_views(self, flat: torch.Tensor) -> torch.Tensor:
        """(M, 3, S, S) -> (M, 1 + N, D): the backbone's pooled token followed by its patch tokens."""
        out = self.backbone(flat)
        return torch.cat((out.pooled.unsqueeze(1), out.tokens), dim=1)

    def forward_features(self, pixel_values: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
        """-> view vectors (B, K, D), their view indices (B, K), the global view's patch tokens (B, N, D) or None."""
        views = self.views(pixel_values)  # (B, V, 3, S, S)
        B, V = views.shape[:2]
        if self.pre_pruning is not None:
            feats, index = self.pre_pruning(views, self._encode_views)  # (B, K, 1 + N, D), (B, K)
        else:
            feats = self._encode_views(views.flatten(0, 1))  # (B*V, 1 + N, D)
            feats = feats.view(B, V, *feats.shape[1:])  # (B, V, 1 + N, D)
            index = torch.arange(V, device=views.device).expand(B, V)  # (B, V)
        pooled, tokens = feats[:, :, 0], feats[:, :, 1:]  # (B, K, D), (B, K, N, D)
        global_tokens = tokens[:, 0] if self.pre_pruning is None else None  # view 0 is the global view
        if self.pyramid is not None and tokens.shape[2] > 0:
            pooled = pooled + self.pyramid(tokens).mean(dim=2)  # (B, K, D)
        if self.post_pruning is not None:
            pooled, index = self.post_pruning(pooled)  # (B, K, D), (B, K)
        if self.encoder is not None:
            pooled = self.encoder(pooled, index)  # (B, K, D)
        return pooled, index, global_tokens

    def forward_train(self, pixel_values: torch.Tensor, metadata: MetadataBatch | None = None) -> MultiViewOutput:
        """Everything the losses need."""
        view_vectors, index, global_tokens = self.forward_features(pixel_values)
        vision = self.fusion(view_vectors)  # (B, D)
        if self.metadata is not None:
            meta = metadata if metadata is not None else MetadataBatch.missing(len(vision), vision.device)
            meta_vec = self.metadata(gps=meta.gps, weather=meta.weather, daytime=meta.daytime, scene=meta.scene,
                                     text_embedding=meta.text)  # (B, D)
            vision = self.meta_fusion(vision, meta_vec)
        mask_logits = None
        if self.segmentation_head is not None and global_tokens is not None:
            mask_logits = self.segmentation_head(global_tokens)
        return MultiViewOutput(
            logits=self.head(vision),
            view_logits=self.view_head(view_vectors).squeeze(-1),  # (B, K)
            view_index=index,
            weather_logits=self.weather_head(vision) if self.weather_head is not None else None,
            mask_logits=mask_logits,
            moe_loss=moe_aux_loss(self).to(vision.device),
        )

    def forward(
        self, pixel_values: torch.Tensor, metadata: MetadataBatch | None = None, return_all: bool = False
    ) -> torch.Tensor | dict[str, torch.Tensor | None]:
        """The logits (B,); with `return_all` the fields of `forward_train`'s output as a dict (what the training
        loop asks for through a DDP or torch.compile wrapper, which only pass through a forward call)."""
        out = self.forward_train(pixel_values, metadata)
        if return_all:
            return {f.name: getattr(out, f.name) for f in dataclass_fields(out)}
        return out.logits

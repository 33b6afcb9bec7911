"""Heads on the fused view vector: vision + metadata fusion, the roadwork classifier, the auxiliary weather
head, and a segmentation head that decodes a view's patch tokens into a roadwork mask."""

from __future__ import annotations

import math

import torch
from torch import nn

from roadwork.trainer.model.layers.norms import RMSNorm


class VisionMetadataFusion(nn.Module):
    """vision (B, D), metadata (B, M) -> (B, D): vision + MLP([vision, metadata]).

    Residual on the vision vector, so that with metadata missing (as at competition time, where the metadata
    vector is the encoder's all-NULL output) the fusion is a learned shift of the vision features."""

    def __init__(self, dim: int, *, meta_dim: int, hidden_dim: int | None = None) -> None:
        super().__init__()
        hidden_dim = hidden_dim or dim
        self.norm = RMSNorm(dim + meta_dim)
        self.mlp = nn.Sequential(nn.Linear(dim + meta_dim, hidden_dim), nn.GELU(), nn.Linear(hidden_dim, dim))

    def forward(self, vision: torch.Tensor, metadata: torch.Tensor) -> torch.Tensor:
        return vision + self.mlp(self.norm(torch.cat((vision, metadata.to(vision.dtype)), dim=-1)))


class ClassifierHead(nn.Module):
    """(B, D) -> roadwork logit (B,): norm, Linear, GELU, dropout, Linear."""

    def __init__(self, dim: int, *, hidden_dim: int | None = None, dropout: float = 0.0) -> None:
        super().__init__()
        hidden_dim = hidden_dim or dim
        self.norm = RMSNorm(dim)
        self.fc1 = nn.Linear(dim, hidden_dim)
        self.act = nn.GELU()
        self.dropout = nn.Dropout(dropout) if dropout > 0 else nn.Identity()
        self.fc2 = nn.Linear(hidden_dim, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(self.dropout(self.act(self.fc1(self.norm(x))))).squeeze(-1)


class WeatherHead(nn.Module):
    """(B, D) -> weather logits (B, num_classes). Class 0 is the NULL entry of the metadata encoder, never a
    target (`losses.weather_loss` skips it), kept so that indices agree between encoder and head."""

    def __init__(self, dim: int, *, num_classes: int = 8, dropout: float = 0.0) -> None:
        super().__init__()
        self.norm = RMSNorm(dim)
        self.dropout = nn.Dropout(dropout) if dropout > 0 else nn.Identity()
        self.fc = nn.Linear(dim, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.dropout(self.norm(x)))


class UpBlock(nn.Module):
    """(M, C_in, h, w) -> (M, C_out, 2h, 2w): bilinear x2, 3x3 conv, GroupNorm, GELU."""

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__()
        self.up = nn.Upsample(scale_factor=2, mode="bilinear", align_corners=False)
        self.conv = nn.Conv2d(in_channels, out_channels, 3, padding=1)
        self.norm = nn.GroupNorm(1, out_channels)
        self.act = nn.GELU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(self.norm(self.conv(self.up(x))))


class SegmentationHead(nn.Module):
    """Patch tokens (B, N, D) of an h x w grid (square when not given) -> mask logits (B, 1, h*2^U, w*2^U)
    with U = num_upsamples; `losses.dice_loss` resizes targets or logits as needed."""

    def __init__(self, dim: int, *, hidden_dim: int = 64, num_upsamples: int = 2) -> None:
        super().__init__()
        self.proj = nn.Conv2d(dim, hidden_dim, kernel_size=1)
        self.up = nn.Sequential(*(UpBlock(hidden_dim, hidden_dim) for _ in range(num_upsamples)))
        self.out = nn.Conv2d(hidden_dim, 1, kernel_size=1)

    def forward(self, tokens: torch.Tensor, grid: tuple[int, int] | None = None) -> torch.Tensor:
        B, N, D = tokens.shape
        h, w = grid or (math.isqrt(N), math.isqrt(N))
        if h * w != N:
            raise ValueError(f"{N} tokens do not form a {h}x{w} grid; pass grid=(h, w)")
        x = tokens.transpose(1, 2).reshape(B, D, h, w)  # (B, D, h, w)
        return self.out(self.up(self.proj(x)))  # (B, 1, h * 2^U, w * 2^U)

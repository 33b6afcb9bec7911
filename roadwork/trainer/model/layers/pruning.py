"""View pruning, 12 -> K views by a learned importance score, with a straight-through top-k.

The forward pass keeps the K best-scored views exactly (a hard top-k, gate value 1.0); the backward pass
sends the gradient of each kept view's gate to the scores through a softmax over the views, so the scorer
learns which views help. Kept views stay in their original order and their indices are returned: they are
the view positions for RoPE.

Two placements:
- `PostBackbonePruning` scores view tokens the backbone already produced (saves the view transformer and
  fusion work, not the backbone's);
- `PreBackbonePruning` scores views from 32x32 thumbnails with a tiny conv net and runs the backbone on the
  K kept views only (saves (12 - K) / 12 of the backbone, which dominates the cost).
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn


def straight_through_topk(scores: torch.Tensor, k: int) -> tuple[torch.Tensor, torch.Tensor]:
    """scores (B, V) -> kept indices (B, K) in ascending order, gates (B, K) equal to 1 in the forward pass
    whose gradient is that of softmax(scores) at the kept views."""
    index = scores.topk(k, dim=-1).indices.sort(dim=-1).values  # (B, K)
    soft = scores.softmax(dim=-1).gather(1, index)  # (B, K)
    return index, soft - soft.detach() + 1.0


def gather_views(x: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
    """x (B, V, ...) and index (B, K) -> (B, K, ...)."""
    expanded = index.view(*index.shape, *([1] * (x.dim() - 2))).expand(-1, -1, *x.shape[2:])  # (B, K, ...)
    return x.gather(1, expanded)


def apply_gates(x: torch.Tensor, gates: torch.Tensor) -> torch.Tensor:
    """x (B, K, ...) times gates (B, K): a no-op in value that carries the straight-through gradient."""
    return x * gates.view(*gates.shape, *([1] * (x.dim() - 2))).to(x.dtype)


class PostBackbonePruning(nn.Module):
    """View features (B, V, D) or (B, V, N, D) -> kept (B, K, ...) and their view indices (B, K).

    A view's score is an MLP of its mean token plus a learned per-view bias (the global view may simply be
    worth more than a corner tile)."""

    def __init__(self, dim: int, *, num_views: int = 12, keep: int = 8, hidden_dim: int = 64) -> None:
        super().__init__()
        if not 1 <= keep <= num_views:
            raise ValueError(f"keep must be in 1..{num_views}, got {keep}")
        self.keep = keep
        self.scorer = nn.Sequential(nn.Linear(dim, hidden_dim), nn.GELU(), nn.Linear(hidden_dim, 1))
        self.view_bias = nn.Parameter(torch.zeros(num_views))

    def scores(self, x: torch.Tensor) -> torch.Tensor:
        B, V, D = x.shape[0], x.shape[1], x.shape[-1]
        pooled = x.reshape(B, V, -1, D).mean(dim=2)  # (B, V, D)
        return self.scorer(pooled).squeeze(-1).float() + self.view_bias  # (B, V)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        index, gates = straight_through_topk(self.scores(x), self.keep)
        return apply_gates(gather_views(x, index), gates), index


class ThumbnailScorer(nn.Module):
    """Views (B, V, 3, H, W) -> importance scores (B, V), from thumb_size x thumb_size thumbnails."""

    def __init__(self, *, num_views: int = 12, thumb_size: int = 32, channels: int = 16) -> None:
        super().__init__()
        self.thumb_size = thumb_size
        self.features = nn.Sequential(
            nn.Conv2d(3, channels, 3, stride=2, padding=1), nn.GELU(),
            nn.Conv2d(channels, channels, 3, stride=2, padding=1), nn.GELU(),
            nn.AdaptiveAvgPool2d(1), nn.Flatten(),
        )
        self.head = nn.Linear(channels, 1)
        self.view_bias = nn.Parameter(torch.zeros(num_views))

    def forward(self, views: torch.Tensor) -> torch.Tensor:
        B, V = views.shape[:2]
        thumbs = F.interpolate(
            views.flatten(0, 1), size=(self.thumb_size, self.thumb_size), mode="bilinear", antialias=True
        )  # (B*V, 3, t, t)
        scores = self.head(self.features(thumbs)).view(B, V)  # (B, V)
        return scores.float() + self.view_bias


class PreBackbonePruning(nn.Module):
    """Views (B, V, 3, H, W) and a backbone (B*K, 3, H, W) -> (B*K, ...) give the backbone's features of the
    kept views (B, K, ...) and their view indices (B, K). The backbone is passed in, not owned, so its
    weights stay in one place of the model's state dict; it is called once, on the K kept views."""

    def __init__(self, *, num_views: int = 12, keep: int = 8, thumb_size: int = 32, channels: int = 16) -> None:
        super().__init__()
        if not 1 <= keep <= num_views:
            raise ValueError(f"keep must be in 1..{num_views}, got {keep}")
        self.keep = keep
        self.scorer = ThumbnailScorer(num_views=num_views, thumb_size=thumb_size, channels=channels)

    def forward(
        self, views: torch.Tensor, backbone: Callable[[torch.Tensor], torch.Tensor]
    ) -> tuple[torch.Tensor, torch.Tensor]:
        B = views.shape[0]
        index, gates = straight_through_topk(self.scorer(views), self.keep)
        kept = gather_views(views, index)  # (B, K, 3, H, W)
        features = backbone(kept.flatten(0, 1))  # (B*K, ...)
        features = features.view(B, self.keep, *features.shape[1:])  # (B, K, ...)
        return apply_gates(features, gates), index

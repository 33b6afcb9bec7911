"""Multi-scale feature pyramid on a view's patch tokens.

Each level average-pools the patch grid to 1/s of its width (s = 1, 2, 4: full, half, quarter), projects it,
and upsamples it back; the levels are concatenated, fused by a linear layer and added to the input. A token
thus sees its neighbourhood at three scales (a cone next to a barrier, a sign across the lane) before the
views are pooled.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from roadwork.trainer.model.layers.norms import RMSNorm


class PyramidLevel(nn.Module):
    """Grid (M, D, h, w) -> (M, D, h, w): pooled to ceil(h/s) x ceil(w/s), projected, upsampled back."""

    def __init__(self, dim: int, *, scale: int) -> None:
        super().__init__()
        self.scale = scale
        self.proj = nn.Conv2d(dim, dim, kernel_size=1)

    def forward(self, grid: torch.Tensor) -> torch.Tensor:
        h, w = grid.shape[-2:]
        pooled = F.adaptive_avg_pool2d(grid, (math.ceil(h / self.scale), math.ceil(w / self.scale)))
        return F.interpolate(self.proj(pooled), size=(h, w), mode="nearest")


class FeaturePyramid(nn.Module):
    """Patch tokens (B, V, N, D) of an h x w grid (square when not given) -> (B, V, N, D)."""

    def __init__(self, dim: int, *, scales: tuple[int, ...] = (1, 2, 4)) -> None:
        super().__init__()
        self.norm = RMSNorm(dim)
        self.levels = nn.ModuleList(PyramidLevel(dim, scale=s) for s in scales)
        self.fuse = nn.Linear(len(scales) * dim, dim)

    def forward(self, x: torch.Tensor, grid: tuple[int, int] | None = None) -> torch.Tensor:
        B, V, N, D = x.shape
        h, w = grid or (math.isqrt(N), math.isqrt(N))
        if h * w != N:
            raise ValueError(f"{N} tokens do not form a {h}x{w} grid; pass grid=(h, w)")
        grid_x = self.norm(x).reshape(B * V, h, w, D).permute(0, 3, 1, 2)  # (B*V, D, h, w)
        levels = torch.cat([level(grid_x) for level in self.levels], dim=1)  # (B*V, S*D, h, w)
        levels = levels.permute(0, 2, 3, 1).reshape(B, V, N, -1)  # (B, V, N, S*D)
        return x + self.fuse(levels)

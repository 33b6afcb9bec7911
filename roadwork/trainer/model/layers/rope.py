"""Rotary position embedding (Su et al. 2021, RoFormer) over view positions.

A view's position is its index among the 12 views (0 = the global view, 1..9 the 3x3 tiles, ...). After view
pruning the kept views keep their original indices, so positions are passed per sample, (B, N). Rotating
queries and keys by angles proportional to the position makes their dot product depend only on the
difference of positions; position 0 is the identity.
"""

from __future__ import annotations

import torch
from torch import nn


def rotate_half(x: torch.Tensor) -> torch.Tensor:
    """(x1, x2) -> (-x2, x1) on the two halves of the last dimension."""
    x1, x2 = x.chunk(2, dim=-1)
    return torch.cat((-x2, x1), dim=-1)


class RotaryEmbedding(nn.Module):
    """x (B, H, N, Dh), positions (N,) or (B, N) -> x rotated, same shape. Dh must be even."""

    def __init__(self, head_dim: int, *, base: float = 10000.0) -> None:
        super().__init__()
        if head_dim % 2:
            raise ValueError(f"RoPE needs an even head dimension, got {head_dim}")
        self.head_dim, self.base = head_dim, base

    def inv_freq(self, device: torch.device) -> torch.Tensor:
        """(Dh/2,) angular frequencies base^(-2i/Dh). Computed per call, not a buffer: transformers 5 leaves
        non-persistent buffers uninitialised when it loads an exported model."""
        return (self.base ** (-torch.arange(0, self.head_dim, 2, dtype=torch.float32) / self.head_dim)).to(device)

    def forward(self, x: torch.Tensor, positions: torch.Tensor) -> torch.Tensor:
        angles = positions.float().unsqueeze(-1) * self.inv_freq(x.device)  # (..., N, Dh/2)
        angles = torch.cat((angles, angles), dim=-1)  # (..., N, Dh)
        angles = angles.reshape(-1, 1, *angles.shape[-2:])  # (1 or B, 1, N, Dh): broadcast over heads
        cos, sin = angles.cos().to(x.dtype), angles.sin().to(x.dtype)
        return x * cos + rotate_half(x) * sin


class NoRotaryEmbedding(nn.Module):
    """RoPE switched off: the same call, x unchanged (nn.Identity takes no positions)."""

    def forward(self, x: torch.Tensor, positions: torch.Tensor) -> torch.Tensor:  # noqa: ARG002
        return x

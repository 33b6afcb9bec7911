"""SwiGLU feed-forward (Shazeer 2020, "GLU Variants Improve Transformer"): w2(silu(w1 x) * w3 x)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def swiglu_hidden_dim(dim: int, multiple_of: int = 8) -> int:
    """LLaMA's width: 8/3 of the model width (same parameters as a 4x GELU MLP), rounded up to `multiple_of`."""
    hidden = int(8 * dim / 3)
    return multiple_of * ((hidden + multiple_of - 1) // multiple_of)


class SwiGLU(nn.Module):
    """x (..., D) -> (..., D)."""

    def __init__(self, dim: int, *, hidden_dim: int | None = None, dropout: float = 0.0, bias: bool = False) -> None:
        super().__init__()
        hidden_dim = hidden_dim or swiglu_hidden_dim(dim)
        self.w12 = nn.Linear(dim, 2 * hidden_dim, bias=bias)  # the gate (w1) and value (w3) in one matmul
        self.w2 = nn.Linear(hidden_dim, dim, bias=bias)
        self.dropout = nn.Dropout(dropout) if dropout > 0 else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        gate, value = self.w12(x).chunk(2, dim=-1)  # 2 x (..., H)
        return self.dropout(self.w2(F.silu(gate) * value))

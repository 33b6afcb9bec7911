"""RMSNorm (Zhang & Sennrich 2019): scale by the root mean square, no centring, no bias."""

from __future__ import annotations

import torch
from torch import nn


class RMSNorm(nn.Module):
    """x (..., D) -> x / rms(x) * weight, computed in float32 so bf16 activations do not lose the small norms."""

    def __init__(self, dim: int, *, eps: float = 1e-6) -> None:
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x32 = x.float()
        normed = x32 * torch.rsqrt(x32.pow(2).mean(-1, keepdim=True) + self.eps)
        return normed.type_as(x) * self.weight

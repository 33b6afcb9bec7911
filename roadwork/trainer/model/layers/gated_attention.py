"""The gated-attention transformer block over view tokens.

Gated attention (Qiu et al. 2025, "Gated Attention for Large Language Models", the G1 placement): the output
of scaled dot-product attention is multiplied element-wise by sigmoid(W_g x + b_g), computed from the
block's (normalised) input, before the output projection. The gate lets a head output nothing, which
removes attention sinks and the massive activations they cause. Pre-norm with RMSNorm, RoPE over view
positions, a SwiGLU or mixture-of-experts feed-forward.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from roadwork.trainer.model.layers.moe import MixtureOfExperts
from roadwork.trainer.model.layers.norms import RMSNorm
from roadwork.trainer.model.layers.rope import NoRotaryEmbedding, RotaryEmbedding
from roadwork.trainer.model.layers.swiglu import SwiGLU


class GatedSelfAttention(nn.Module):
    """x (B, N, D), positions (B, N) or (N,) -> (B, N, D)."""

    def __init__(
        self, dim: int, *, num_heads: int, rope: bool = True, qkv_bias: bool = False, dropout: float = 0.0
    ) -> None:
        super().__init__()
        if dim % num_heads:
            raise ValueError(f"dim {dim} is not a multiple of num_heads {num_heads}")
        self.num_heads = num_heads
        self.head_dim = dim // num_heads
        self.dropout = dropout
        self.qkv = nn.Linear(dim, 3 * dim, bias=qkv_bias)
        self.gate = nn.Linear(dim, dim)  # one gate per head and channel
        self.rope = RotaryEmbedding(self.head_dim) if rope else NoRotaryEmbedding()
        # No bias: a closed gate then makes the whole attention branch exactly zero.
        self.proj = nn.Linear(dim, dim, bias=False)

    def forward(self, x: torch.Tensor, positions: torch.Tensor) -> torch.Tensor:
        B, N, D = x.shape
        q, k, v = self.qkv(x).view(B, N, 3, self.num_heads, self.head_dim).permute(2, 0, 3, 1, 4)  # 3 x (B, H, N, Dh)
        q, k = self.rope(q, positions), self.rope(k, positions)
        y = F.scaled_dot_product_attention(q, k, v, dropout_p=self.dropout if self.training else 0.0)  # (B, H, N, Dh)
        y = y.transpose(1, 2).reshape(B, N, D)  # (B, N, D)
        return self.proj(y * torch.sigmoid(self.gate(x)))


class GatedAttentionBlock(nn.Module):
    """x (B, N, D) -> (B, N, D): x + attn(norm(x)), then + ffn(norm(x)). `num_experts` > 0 makes the
    feed-forward a mixture of experts (its load-balancing loss is then in `block.ffn.aux_loss`)."""

    def __init__(
        self,
        dim: int,
        *,
        num_heads: int,
        rope: bool = True,
        hidden_dim: int | None = None,
        num_experts: int = 0,
        top_k: int = 2,
        dropout: float = 0.0,
    ) -> None:
        super().__init__()
        self.norm1 = RMSNorm(dim)
        self.attn = GatedSelfAttention(dim, num_heads=num_heads, rope=rope, dropout=dropout)
        self.norm2 = RMSNorm(dim)
        self.ffn = (
            MixtureOfExperts(dim, num_experts=num_experts, top_k=top_k, hidden_dim=hidden_dim, dropout=dropout)
            if num_experts > 0
            else SwiGLU(dim, hidden_dim=hidden_dim, dropout=dropout)
        )

    def forward(self, x: torch.Tensor, positions: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(self.norm1(x), positions)
        return x + self.ffn(self.norm2(x))


class GatedAttentionEncoder(nn.Module):
    """A stack of blocks and a final RMSNorm: view tokens (B, V, D), view positions (B, V) -> (B, V, D)."""

    def __init__(
        self,
        dim: int,
        *,
        depth: int,
        num_heads: int,
        rope: bool = True,
        hidden_dim: int | None = None,
        num_experts: int = 0,
        top_k: int = 2,
        dropout: float = 0.0,
    ) -> None:
        super().__init__()
        self.blocks = nn.ModuleList(
            GatedAttentionBlock(
                dim, num_heads=num_heads, rope=rope, hidden_dim=hidden_dim,
                num_experts=num_experts, top_k=top_k, dropout=dropout,
            )
            for _ in range(depth)
        )
        self.norm = RMSNorm(dim)

    def forward(self, x: torch.Tensor, positions: torch.Tensor) -> torch.Tensor:
        for block in self.blocks:
            x = block(x, positions)
        return self.norm(x)

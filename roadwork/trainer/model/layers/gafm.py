"""GAFM: gated attention fusion of the views into one vector.

1. A gate per view, g_v = sigmoid(MLP(x_v)) in (0, 1): how much the view is to be trusted.
2. Cross-view attention: each view attends to the *other* views (itself masked out), each key weighted by
   its gate (log g added to the attention logits, so a view with g = 0 is never attended to).
3. Self-attention refinement over all views with the same gate weighting.
4. Gate-weighted pooling: sum_v g_v x_v / sum_v g_v, then RMSNorm.
A view whose gate is 0 therefore has no effect on the output.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from roadwork.trainer.model.layers.norms import RMSNorm

# Added to the logit of a view attending to itself in cross-view attention. Finite, unlike a gate of 0 (-inf),
# so a view whose every other view is gated off still has a row to attend to instead of a NaN softmax.
SELF_PENALTY = -1e4


class ViewAttention(nn.Module):
    """Pre-norm multi-head attention of views with an additive bias: x (B, V, D), bias (B, 1, V, V) -> (B, V, D),
    the residual included."""

    def __init__(self, dim: int, *, num_heads: int, dropout: float = 0.0) -> None:
        super().__init__()
        if dim % num_heads:
            raise ValueError(f"dim {dim} is not a multiple of num_heads {num_heads}")
        self.num_heads = num_heads
        self.dropout = dropout
        self.norm = RMSNorm(dim)
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
        B, V, D = x.shape
        q, k, v = self.qkv(self.norm(x)).view(B, V, 3, self.num_heads, D // self.num_heads).permute(2, 0, 3, 1, 4)
        # q, k, v: (B, H, V, Dh)
        y = F.scaled_dot_product_attention(
            q, k, v, attn_mask=bias.to(q.dtype), dropout_p=self.dropout if self.training else 0.0
        )  # (B, H, V, Dh)
        return x + self.proj(y.transpose(1, 2).reshape(B, V, D))  # (B, V, D)


class GAFM(nn.Module):
    """View tokens (B, V, D) -> one fused vector (B, D)."""

    def __init__(self, dim: int, *, num_heads: int, gate_hidden_dim: int = 64, dropout: float = 0.0) -> None:
        super().__init__()
        self.gate = nn.Sequential(nn.Linear(dim, gate_hidden_dim), nn.GELU(), nn.Linear(gate_hidden_dim, 1))
        self.cross_attn = ViewAttention(dim, num_heads=num_heads, dropout=dropout)
        self.self_attn = ViewAttention(dim, num_heads=num_heads, dropout=dropout)
        self.norm = RMSNorm(dim)

    def view_gates(self, x: torch.Tensor) -> torch.Tensor:
        """(B, V, D) -> gate logits (B, V); the gates are their sigmoid."""
        return self.gate(x).squeeze(-1).float()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        V = x.shape[1]
        gate_logits = self.view_gates(x)  # (B, V)
        key_bias = F.logsigmoid(gate_logits)[:, None, None, :]  # (B, 1, 1, V): log g of each key view
        self_mask = torch.eye(V, device=x.device) * SELF_PENALTY  # (V, V)
        x = self.cross_attn(x, key_bias + self_mask)  # (B, V, D)
        x = self.self_attn(x, key_bias.expand(-1, -1, V, -1))  # (B, V, D)
        weights = torch.sigmoid(gate_logits)  # (B, V)
        weights = weights / weights.sum(dim=1, keepdim=True).clamp_min(1e-6)
        pooled = (weights.unsqueeze(-1).to(x.dtype) * x).sum(dim=1)  # (B, D)
        return self.norm(pooled)

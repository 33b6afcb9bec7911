"""Mixture-of-experts feed-forward: top-k routing over SwiGLU experts (Shazeer et al. 2017) with the
Switch/GShard load-balancing loss (Fedus et al. 2021; Lepikhin et al. 2020).

The block's `forward` returns only the activations so that a dense feed-forward and this one are
interchangeable; the auxiliary loss of the last forward is kept in `aux_loss`, and `moe_aux_loss(model)`
sums it over every expert layer of a model for the training loss.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from roadwork.trainer.model.layers.swiglu import SwiGLU


def load_balancing_loss(router_probs: torch.Tensor, expert_index: torch.Tensor, num_experts: int) -> torch.Tensor:
    """num_experts * sum_e f_e * P_e.

    router_probs (T, E): softmax of the router; expert_index (T, k): the experts each token was sent to.
    f_e is the share of the T * k assignments that went to expert e (not differentiable), P_e the mean router
    probability of e (differentiable). Dividing by k keeps the uniform value at 1 for every k (Switch's
    formula with k = 1; Mixtral's code without the division gives k).
    """
    assignments = F.one_hot(expert_index, num_experts).float()  # (T, k, E)
    fraction_routed = assignments.sum(dim=(0, 1)) / assignments.sum()  # (E,)
    mean_prob = router_probs.float().mean(dim=0)  # (E,)
    return num_experts * (fraction_routed * mean_prob).sum()


class MixtureOfExperts(nn.Module):
    """x (..., D) -> (..., D); each token goes to its top-k experts, outputs mixed by renormalised router
    probabilities. No capacity limit: with a dozen view tokens per image no token is ever dropped."""

    def __init__(
        self, dim: int, *, num_experts: int = 4, top_k: int = 2, hidden_dim: int | None = None, dropout: float = 0.0
    ) -> None:
        super().__init__()
        if not 1 <= top_k <= num_experts:
            raise ValueError(f"top_k must be in 1..{num_experts}, got {top_k}")
        self.num_experts = num_experts
        self.top_k = top_k
        self.router = nn.Linear(dim, num_experts, bias=False)
        self.experts = nn.ModuleList(
            SwiGLU(dim, hidden_dim=hidden_dim, dropout=dropout) for _ in range(num_experts)
        )
        self.aux_loss = torch.zeros(())
        self.expert_index = torch.zeros(0, top_k, dtype=torch.long)  # the last routing, for tests and logs

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        shape = x.shape
        tokens = x.reshape(-1, shape[-1])  # (T, D)
        probs = self.router(tokens).float().softmax(dim=-1)  # (T, E)
        top_probs, top_index = probs.topk(self.top_k, dim=-1)  # (T, k), (T, k)
        weights = (top_probs / top_probs.sum(dim=-1, keepdim=True)).to(x.dtype)  # (T, k)
        out = torch.zeros_like(tokens)
        for e, expert in enumerate(self.experts):
            token_idx, slot = (top_index == e).nonzero(as_tuple=True)  # the tokens routed to e
            expert_out = expert(tokens[token_idx]) * weights[token_idx, slot, None]  # (T_e, D)
            out = out.index_add(0, token_idx, expert_out)
        self.aux_loss = load_balancing_loss(probs, top_index, self.num_experts)
        self.expert_index = top_index.detach()
        return out.reshape(shape)  # (..., D)


def moe_aux_loss(model: nn.Module) -> torch.Tensor:
    """The sum of the load-balancing losses of every MixtureOfExperts in `model` (0 when there is none)."""
    losses = [m.aux_loss for m in model.modules() if isinstance(m, MixtureOfExperts)]
    return torch.stack(losses).sum() if losses else torch.zeros(())

"""The training losses of the multi-view model, as pure functions of tensors.

- `focal_loss`: binary focal loss (Lin et al. 2017) on logits, with optional alpha weighting and label smoothing;
- `consistency_loss`: the mean KL divergence of each view's roadwork probability to the mean over views;
- `weather_loss`: auxiliary weather cross-entropy that skips rows without a weather label;
- `dice_loss`: soft Dice loss of a segmentation mask, skipping samples without a mask;
- `total_loss`: their weighted sum plus the mixture-of-experts load-balancing loss.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F

MISSING_LABELS = (0, -100)  # weather index 0 is the NULL entry; -100 is torch's usual ignore index


def smooth_targets(targets: torch.Tensor, eps: float) -> torch.Tensor:
    """Binary label smoothing: 0 -> eps/2, 1 -> 1 - eps/2."""
    return targets.float() * (1 - eps) + eps / 2


def focal_loss(
    logits: torch.Tensor,
    targets: torch.Tensor,
    *,
    gamma: float = 2.0,
    alpha: float | None = None,
    label_smoothing: float = 0.0,
) -> torch.Tensor:
    """Mean of alpha_t * (1 - p_t)^gamma * BCE(logits, t) over the batch. logits, targets (B,).

    t is the smoothed target, p_t = p t + (1 - p)(1 - t), alpha_t = alpha t + (1 - alpha)(1 - t); alpha None
    weights both classes by 1. gamma = 0, alpha None is plain BCE."""
    t = smooth_targets(targets, label_smoothing)
    logits = logits.float()
    bce = F.binary_cross_entropy_with_logits(logits, t, reduction="none")
    p = torch.sigmoid(logits)
    p_t = p * t + (1 - p) * (1 - t)
    alpha_t = 1.0 if alpha is None else alpha * t + (1 - alpha) * (1 - t)
    return (alpha_t * (1 - p_t).pow(gamma) * bce).mean()


def consistency_loss(view_logits: torch.Tensor) -> torch.Tensor:
    """view_logits (B, V) -> mean over views and batch of KL(Bernoulli(p_v) || Bernoulli(mean_v p_v)).

    Computed in log space (logsigmoid, logsumexp) so saturated views do not give log(0). 0 when all views agree."""
    V = view_logits.shape[1]
    log_p, log_q = F.logsigmoid(view_logits.float()), F.logsigmoid(-view_logits.float())  # (B, V): log p, log 1-p
    log_mean_p = torch.logsumexp(log_p, dim=1, keepdim=True) - math.log(V)  # (B, 1)
    log_mean_q = torch.logsumexp(log_q, dim=1, keepdim=True) - math.log(V)  # (B, 1)
    kl = log_p.exp() * (log_p - log_mean_p) + log_q.exp() * (log_q - log_mean_q)  # (B, V)
    return kl.mean()


def weather_loss(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Cross-entropy of logits (B, C) against labels (B,), averaged over labelled rows only (label 0 or -100:
    missing); 0, not NaN, when no row is labelled."""
    labels = labels.long()
    labelled = ~torch.isin(labels, torch.tensor(MISSING_LABELS, device=labels.device))  # (B,)
    ce = F.cross_entropy(logits.float(), torch.where(labelled, labels, 0), reduction="none")  # (B,)
    return (ce * labelled).sum() / labelled.sum().clamp_min(1)


def dice_loss(
    mask_logits: torch.Tensor, masks: torch.Tensor, *, valid: torch.Tensor | None = None, smooth: float = 1.0
) -> torch.Tensor:
    """Soft Dice loss 1 - (2 |P.T| + s) / (|P| + |T| + s) per sample, averaged over samples with a mask.

    mask_logits (B, 1, h, w), resized bilinearly to the masks' size; masks (B, 1, H, W) or (B, H, W) in [0, 1];
    valid (B,) bool marks the samples that have a mask (None: all). 0 when none has."""
    B = mask_logits.shape[0]
    masks = masks.reshape(B, 1, *masks.shape[-2:]).float()  # (B, 1, H, W)
    if mask_logits.shape[-2:] != masks.shape[-2:]:
        mask_logits = F.interpolate(mask_logits.float(), size=masks.shape[-2:], mode="bilinear", align_corners=False)
    probs = torch.sigmoid(mask_logits.float()).flatten(1)  # (B, H*W)
    masks = masks.flatten(1)  # (B, H*W)
    intersection = (probs * masks).sum(dim=1)
    dice = (2 * intersection + smooth) / (probs.sum(dim=1) + masks.sum(dim=1) + smooth)  # (B,)
    valid = torch.ones(B, dtype=torch.bool, device=dice.device) if valid is None else valid.bool()
    return ((1 - dice) * valid).sum() / valid.sum().clamp_min(1)


@dataclass(frozen=True)
class LossWeights:
    """Weights of the loss terms and the focal loss's parameters; a weight of 0 switches a term off."""

    focal: float = 1.0  # the roadwork classification loss
    consistency: float = 0.1  # agreement of the per-view predictions
    weather: float = 0.1  # auxiliary weather classification
    segmentation: float = 0.1  # Dice of the roadwork mask
    moe: float = 0.01  # load balancing of the experts (Switch uses 0.01)
    gamma: float = 2.0  # focal exponent; 0 gives BCE
    alpha: float | None = None  # focal weight of the positive class; None weighs both classes by 1
    label_smoothing: float = 0.0  # targets become eps/2 and 1 - eps/2


def total_loss(
    *,
    logits: torch.Tensor,
    targets: torch.Tensor,
    weights: LossWeights = LossWeights(),
    view_logits: torch.Tensor | None = None,
    weather_logits: torch.Tensor | None = None,
    weather_labels: torch.Tensor | None = None,
    mask_logits: torch.Tensor | None = None,
    masks: torch.Tensor | None = None,
    mask_valid: torch.Tensor | None = None,
    moe_loss: torch.Tensor | None = None,
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """The weighted sum of the terms whose inputs are given and whose weight is not 0, and each term's
    unweighted value, detached (for logging; a tensor, so that no device sync is forced). logits, targets (B,);
    the other inputs as in the term functions."""
    terms: dict[str, tuple[float, torch.Tensor]] = {
        "focal": (
            weights.focal,
            focal_loss(
                logits, targets, gamma=weights.gamma, alpha=weights.alpha, label_smoothing=weights.label_smoothing
            ),
        )
    }
    if view_logits is not None and weights.consistency:
        terms["consistency"] = (weights.consistency, consistency_loss(view_logits))
    if weather_logits is not None and weather_labels is not None and weights.weather:
        terms["weather"] = (weights.weather, weather_loss(weather_logits, weather_labels))
    if mask_logits is not None and masks is not None and weights.segmentation:
        terms["segmentation"] = (weights.segmentation, dice_loss(mask_logits, masks, valid=mask_valid))
    if moe_loss is not None and weights.moe:
        terms["moe"] = (weights.moe, moe_loss.float())
    total = torch.stack([w * value.to(logits.device) for w, value in terms.values()]).sum()
    return total, {name: value.detach() for name, (_, value) in terms.items()}

"""Ensembles: N members differing in backbone and seed, combined by a weighted mean of their logits.

    image (B, 3, H, W) in [0, 1] -> member i -> logit_i (B,) -> sum_i w_i * logit_i + b -> ensemble logit (B,)

`combine: mean` sets w_i = 1/N, b = 0. `combine: learned` fits w (non-negative) and b by logistic regression on the
members' validation logits (`fit_weights`). The weights are plain numbers in the checkpoint's JSON, not tensors,
so every reader of the checkpoint (the Predictor, the Hugging Face export) sees the same combination.
Training one (members, then the weights) is `roadwork.trainer.loop.ensemble.train_ensemble`.

Checkpoint (one directory, `roadwork-checkpoint/1`):
    model.safetensors  keys `members.{i}.{member state_dict key}`
    roadwork.json      {"format", "kind": "ensemble", "train_config" and "backbone_config" of member 0,
                        "members": [{"name", "train_config", "backbone_config", "metadata_vocab", "metrics", "seed"}],
                        "ensemble": {"combine", "weights", "bias"}, "metrics", "data_fingerprint", "image_size"}
"""

from __future__ import annotations

import json
import math
import os
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors.torch import load_file, save_file
from torch import nn
from torch.nn import functional as F

from roadwork.trainer.config import TrainConfig
from roadwork.trainer.model.backbones import KINDS
from roadwork.trainer.model.checkpoint_format import (
    FORMAT,
    META,
    WEIGHTS,
    atomic_write_bytes,
    checkpoint_config,
    read_meta,
    vocab_sizes,
)
from roadwork.trainer.model.classifier import build_model

KIND = "ensemble"
COMBINES = ("mean", "learned")
L2 = 1e-3  # ridge on the learned weights: keeps them finite when the validation split is separable


# --- member specs ---------------------------------------------------------------------------------------------


def parse_members(spec: str) -> list[dict[str, Any]]:
    """`"dinov3:0,convnextv2:1"` -> [{"model.kind": "dinov3", "optim.seed": 0}, ...], one override dict per member.

    An item is `kind:seed`; kind is a random-init backbone kind (a key of `backbones.BACKBONES`) or a Hugging Face id
    (`facebook/dinov3-vits16-pretrain-lvd1689m:0`, which sets `model.backbone`). Raises ValueError naming the item."""
    members: list[dict[str, Any]] = []
    seen: set[tuple[str, int]] = set()
    items = [item.strip() for item in spec.split(",")]
    for item in items:
        kind, sep, seed_text = item.rpartition(":")
        if not sep or not kind:
            raise ValueError(f"member {item!r}: expected kind:seed, e.g. dinov3:0")
        try:
            seed = int(seed_text)
        except ValueError:
            raise ValueError(f"member {item!r}: seed {seed_text!r} is not an integer") from None
        if kind in KINDS:
            members.append({"model.kind": kind, "optim.seed": seed})
        elif "/" in kind:
            members.append({"model.backbone": kind, "optim.seed": seed})
        else:
            raise ValueError(f"member {item!r}: unknown kind {kind!r}; known: {', '.join(KINDS)} "
                             "or a Hugging Face model id")
        if (kind, seed) in seen:
            raise ValueError(f"member {item!r} is listed twice")
        seen.add((kind, seed))
    if len(members) < 2:
        raise ValueError(f"an ensemble needs at least 2 members, got {len(members)} in {spec!r}")
    return members


def member_name(config: TrainConfig) -> str:
    """`kind:seed` of a member's config, as `parse_members` reads it."""
    return f"{config.model.backbone or config.model.kind}:{config.optim.seed}"


# --- the model ------------------------------------------------------------------------------------------------


class EnsembleClassifier(nn.Module):
    """pixel_values (B, 3, H, W) in [0, 1] -> sum_i w_i * logit_i + b (B,)."""

    def __init__(
        self, members: Sequence[nn.Module], weights: Sequence[float] | None = None, bias: float = 0.0,
        combine: str = "mean",
    ) -> None:
        super().__init__()
        self.members = nn.ModuleList(members)
        weights = [1.0 / len(members)] * len(members) if weights is None else weights
        self.set_combination(weights, bias, combine)

    def set_combination(self, weights: Sequence[float], bias: float, combine: str) -> None:
        if combine not in COMBINES:
            raise ValueError(f"combine must be one of {COMBINES}, got {combine!r}")
        if len(weights) != len(self.members):
            raise ValueError(f"{len(weights)} weights for {len(self.members)} members")
        # Plain floats, not buffers: they are saved in the JSON, and nothing can leave them uninitialised.
        self.weights = tuple(float(w) for w in weights)
        self.bias = float(bias)
        self.combine = combine

    def member_logits(self, pixel_values: torch.Tensor) -> torch.Tensor:
        return torch.stack([member(pixel_values) for member in self.members], dim=-1)  # (B, M)

    def forward(self, pixel_values: torch.Tensor) -> torch.Tensor:
        logits = self.member_logits(pixel_values)  # (B, M)
        weights = torch.tensor(self.weights, dtype=logits.dtype, device=logits.device)  # (M,)
        return (logits * weights).sum(dim=-1) + self.bias  # (B,)

    def extra_repr(self) -> str:
        return f"combine={self.combine}, weights={list(self.weights)}, bias={self.bias}"


# --- the learned weighting --------------------------------------------------------------------------------------


def log_loss(logits: np.ndarray, labels: np.ndarray) -> float:
    """Mean binary cross-entropy of logits against 0/1 labels (natural log)."""
    x = torch.as_tensor(np.asarray(logits, dtype=np.float64))
    y = torch.as_tensor(np.asarray(labels, dtype=np.float64))
    return float(F.binary_cross_entropy_with_logits(x, y))


def fit_weights(member_logits: np.ndarray, labels: np.ndarray, max_iter: int = 500) -> tuple[list[float], float]:
    """Weights (M,) and bias of the learned combination, fitted on members' validation logits (N, M).

    Logistic regression of the labels on the member logits, with each weight w_i = softplus(u_i) >= 0 (a negative
    weight would bet against a member: noise the small validation split cannot support), a free bias, and a small
    ridge on w. Minimised from the mean combination (w_i = 1/M, b = 0) by L-BFGS in float64, so the fit is
    deterministic. If the result's validation log-loss is not below the mean combination's, the mean is returned:
    the learned ensemble is never worse than the mean on the data it was fitted on."""
    x = torch.as_tensor(np.asarray(member_logits, dtype=np.float64))
    y = torch.as_tensor(np.asarray(labels, dtype=np.float64)).reshape(-1)
    if x.ndim != 2 or len(x) != len(y) or len(x) == 0:
        raise ValueError(f"member_logits must be (N, M) with N = len(labels) > 0, got {tuple(x.shape)} and {len(y)}")
    m = x.shape[1]
    mean = [1.0 / m] * m
    raw = torch.full((m,), math.log(math.expm1(1.0 / m)), dtype=torch.float64, requires_grad=True)  # softplus^-1
    bias = torch.zeros((), dtype=torch.float64, requires_grad=True)
    optimizer = torch.optim.LBFGS([raw, bias], lr=1.0, max_iter=max_iter, tolerance_grad=1e-10,
                                  tolerance_change=1e-14, history_size=20, line_search_fn="strong_wolfe")

    def objective() -> torch.Tensor:
        optimizer.zero_grad()
        w = F.softplus(raw)
        loss = F.binary_cross_entropy_with_logits(x @ w + bias, y) + L2 * (w * w).sum()
        loss.backward()
        return loss

    optimizer.step(objective)
    weights = [float(w) for w in F.softplus(raw).detach()]
    b = float(bias.detach())
    xs, ys = x.numpy(), y.numpy()
    if not all(map(math.isfinite, [*weights, b])) or log_loss(xs @ weights + b, ys) > log_loss(xs @ mean, ys):
        return mean, 0.0
    return weights, b


# --- checkpoint -------------------------------------------------------------------------------------------------


def _check_image_sizes(configs: Sequence[TrainConfig], names: Sequence[str]) -> int:
    sizes = {c.data.image_size for c in configs}
    if len(sizes) != 1:
        listed = ", ".join(f"{n}: {c.data.image_size}" for n, c in zip(names, configs, strict=True))
        raise ValueError(f"ensemble members must share data.image_size, got {listed}")
    return sizes.pop()


def save_ensemble(
    out_dir: Path, member_dirs: list[Path], combine: str, weights: Sequence[float], bias: float,
    extra: dict[str, Any] | None = None,
) -> Path:
    """Write the members' weights and JSON (read from their checkpoints) as one ensemble checkpoint; returns it.

    `extra` adds top-level keys (metrics, data_fingerprint, ...); the format keys above cannot be overridden."""
    if combine not in COMBINES:
        raise ValueError(f"combine must be one of {COMBINES}, got {combine!r}")
    if len(weights) != len(member_dirs) or len(member_dirs) < 2:
        raise ValueError(f"an ensemble needs >= 2 members and one weight each, got {len(member_dirs)} members "
                         f"and {len(weights)} weights")
    metas = [read_meta(d) for d in member_dirs]
    configs = [checkpoint_config(meta, str(Path(d) / META)) for meta, d in zip(metas, member_dirs, strict=True)]
    names = [member_name(c) for c in configs]
    size = _check_image_sizes(configs, names)
    tensors: dict[str, torch.Tensor] = {}
    for i, d in enumerate(member_dirs):
        tensors |= {f"members.{i}.{k}": v.contiguous() for k, v in load_file(str(Path(d) / WEIGHTS)).items()}
    members = [
        {"name": name, "train_config": meta["train_config"], "backbone_config": meta["backbone_config"],
         "metadata_vocab": meta.get("metadata_vocab"), "metrics": meta.get("metrics", {}), "seed": cfg.optim.seed}
        for name, meta, cfg in zip(names, metas, configs, strict=True)
    ]
    meta = {"image_size": size, **(extra or {}), "format": FORMAT, "kind": KIND,
            "train_config": metas[0]["train_config"], "backbone_config": metas[0]["backbone_config"],
            "members": members,
            "ensemble": {"combine": combine, "weights": [float(w) for w in weights], "bias": float(bias)}}
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=out_dir, prefix=f".{WEIGHTS}.")
    os.close(fd)
    save_file(tensors, tmp, metadata={"format": "pt"})
    os.replace(tmp, out_dir / WEIGHTS)
    atomic_write_bytes(out_dir / META, json.dumps(meta, indent=2, sort_keys=True).encode())
    return out_dir


def load_ensemble(
    ckpt_dir: Path, meta: dict[str, Any], device: str | torch.device = "cpu"
) -> tuple[EnsembleClassifier, TrainConfig]:
    """Rebuild an ensemble checkpoint (`meta` is its roadwork.json): the model and member 0's config."""
    source = str(Path(ckpt_dir) / META)
    configs = [checkpoint_config(m, f"{source} member {i}") for i, m in enumerate(meta["members"])]
    _check_image_sizes(configs, [m.get("name", str(i)) for i, m in enumerate(meta["members"])])
    members = [build_model(c.model, c.data.image_size, backbone_json=m["backbone_config"], vocab_sizes=vocab_sizes(m))
               for c, m in zip(configs, meta["members"], strict=True)]
    spec = meta["ensemble"]
    model = EnsembleClassifier(members, spec["weights"], spec["bias"], spec["combine"])
    model.load_state_dict(load_file(str(Path(ckpt_dir) / WEIGHTS), device=str(device)))
    return model.to(device).eval(), checkpoint_config(meta, source)

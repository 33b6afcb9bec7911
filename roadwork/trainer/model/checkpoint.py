"""Checkpoints as safetensors + JSON: the weights, and everything needed to rebuild the model without a download."""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file
from torch import nn

from roadwork.trainer.config import TrainConfig
from roadwork.trainer.model.checkpoint_format import (  # re-exported: callers read checkpoints through this module
    FORMAT,
    META,
    WEIGHTS,
    atomic_write_bytes,
    checkpoint_config,
    read_meta,
    vocab_sizes,
)
from roadwork.trainer.model.classifier import backbone_config_dict, build_model
from roadwork.trainer.model.ensemble import KIND as ENSEMBLE_KIND
from roadwork.trainer.model.ensemble import load_ensemble

__all__ = [
    "FORMAT",
    "META",
    "WEIGHTS",
    "atomic_write_bytes",
    "checkpoint_config",
    "load_checkpoint",
    "read_meta",
    "save_checkpoint",
    "vocab_sizes",
]


def save_checkpoint(
    out_dir: Path, model: nn.Module, config: TrainConfig, extra: dict[str, Any] | None = None
) -> Path:
    """Write `model.safetensors` and `roadwork.json` into `out_dir`; returns `out_dir`."""
    out_dir.mkdir(parents=True, exist_ok=True)
    tensors = {k: v.detach().to("cpu").contiguous() for k, v in model.state_dict().items()}
    fd, tmp = tempfile.mkstemp(dir=out_dir, prefix=f".{WEIGHTS}.")
    os.close(fd)
    save_file(tensors, tmp, metadata={"format": "pt"})
    os.replace(tmp, out_dir / WEIGHTS)
    meta = {
        "format": FORMAT,
        "train_config": config.to_dict(),
        "backbone_config": backbone_config_dict(model),
        **(extra or {}),
    }
    atomic_write_bytes(out_dir / META, json.dumps(meta, indent=2, sort_keys=True).encode())
    return out_dir


def load_checkpoint(ckpt_dir: Path, device: str | torch.device = "cpu") -> tuple[nn.Module, TrainConfig]:
    """Rebuild the model from `roadwork.json` and load its weights (no network, nothing unpickled)."""
    meta = read_meta(ckpt_dir)
    if meta.get("kind") == ENSEMBLE_KIND:
        return load_ensemble(ckpt_dir, meta, device)
    config = checkpoint_config(meta, str(Path(ckpt_dir) / META))
    model = build_model(config.model, config.data.image_size, backbone_json=meta["backbone_config"],
                        vocab_sizes=vocab_sizes(meta))
    state = load_file(str(Path(ckpt_dir) / WEIGHTS), device=str(device))
    model.load_state_dict(state)
    return model.to(device).eval(), config

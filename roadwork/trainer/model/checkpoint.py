"""Checkpoints as safetensors + JSON: the weights, and everything needed to rebuild the model without a download."""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any

import torch
from torch import nn
from safetensors.torch import load_file, save_file

from roadwork.trainer.config import TrainConfig, parse_config
from roadwork.trainer.model.classifier import backbone_config_dict, build_model

WEIGHTS = "model.safetensors"
META = "roadwork.json"
FORMAT = "roadwork-checkpoint/1"


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write to a temp file in the same directory, fsync, then rename over `path`."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


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


def read_meta(ckpt_dir: Path) -> dict[str, Any]:
    path = Path(ckpt_dir) / META
    if not path.exists():
        raise FileNotFoundError(f"not a roadwork checkpoint (no {META}): {ckpt_dir}")
    meta = json.loads(path.read_text())
    if meta.get("format") != FORMAT:
        raise ValueError(f"{path}: unsupported checkpoint format {meta.get('format')!r}")
    return meta


def checkpoint_config(meta: dict[str, Any], source: str = "") -> TrainConfig:
    """The training config stored in a checkpoint's JSON. Checkpoints written before the multi-view model
    existed carry no `model.architecture`: they hold the single-image classifier."""
    data = json.loads(json.dumps(meta["train_config"]))
    data.setdefault("model", {}).setdefault("architecture", "single")
    return parse_config(data, source)


def vocab_sizes(meta: dict[str, Any]) -> tuple[int, int, int] | None:
    """(weather, daytime, scene) table sizes of the metadata vocabulary stored with a checkpoint, if any."""
    vocab = meta.get("metadata_vocab")
    return None if vocab is None else tuple(len(vocab[k]) for k in ("weather", "daytime", "scene"))


def load_checkpoint(ckpt_dir: Path, device: str | torch.device = "cpu") -> tuple[nn.Module, TrainConfig]:
    """Rebuild the model from `roadwork.json` and load its weights (no network, nothing unpickled)."""
    meta = read_meta(ckpt_dir)
    if meta.get("kind") == "ensemble":
        from roadwork.trainer.model.ensemble import load_ensemble  # noqa: PLC0415 (ensemble imports this module)

        return load_ensemble(ckpt_dir, meta, device)
    config = checkpoint_config(meta, str(Path(ckpt_dir) / META))
    model = build_model(config.model, config.data.image_size, backbone_json=meta["backbone_config"],
                        vocab_sizes=vocab_sizes(meta))
    state = load_file(str(Path(ckpt_dir) / WEIGHTS), device=str(device))
    model.load_state_dict(state)
    return model.to(device).eval(), config

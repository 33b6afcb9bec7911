"""Training presets: a YAML file (`configs/tiny.yaml`) validated into `TrainConfig` and stored in every run."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError


class ConfigError(ValueError):
    """A training config is wrong; the message names the key."""


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class DataConfig(_Section):
    path: str | None = Field(None, description="Parquet file or folder; empty: the home's synthetic dataset.")
    val_fraction: float = Field(0.2, gt=0, lt=1, description="Share of rows held out for validation (by id hash).")
    image_size: int = Field(64, ge=16, description="Side of the square input image, in pixels.")
    split_seed: int = Field(0, description="Seed of the train/validation split.")


class ModelConfig(_Section):
    backbone: str | None = Field(
        None,
        description="Hugging Face model id of a pretrained DINOv3 ViT (e.g. facebook/dinov3-vits16-pretrain-lvd1689m);"
        " empty: a randomly initialised DINOv3 ViT built from the sizes below.",
    )
    hidden_size: int = Field(64, ge=8, description="Width of the random-init backbone.")
    num_layers: int = Field(2, ge=1, description="Transformer blocks of the random-init backbone.")
    num_heads: int = Field(2, ge=1, description="Attention heads of the random-init backbone.")
    patch_size: int = Field(8, ge=2, description="Patch size of the random-init backbone.")
    freeze_backbone: bool = Field(False, description="Train only the head.")
    dropout: float = Field(0.0, ge=0, lt=1, description="Dropout before the classifier head.")


class OptimConfig(_Section):
    epochs: int = Field(30, ge=1, description="Passes over the training split.")
    batch_size: int = Field(32, ge=1, description="Images per optimiser step.")
    lr: float = Field(2e-3, gt=0, description="Peak learning rate (AdamW).")
    weight_decay: float = Field(0.05, ge=0, description="AdamW weight decay.")
    warmup_fraction: float = Field(0.1, ge=0, lt=1, description="Share of steps with linear warm-up before cosine decay.")
    seed: int = Field(0, description="Seed of initialisation, shuffling and augmentation.")
    device: Literal["auto", "cpu", "cuda"] = Field("auto", description="Where to train; auto picks CUDA when present.")
    hflip: bool = Field(True, description="Random horizontal flips of training images.")
    num_threads: int = Field(
        1, ge=0, description="torch CPU threads; small models train fastest on 1; 0 leaves torch's default."
    )


class TrainConfig(_Section):
    name: str = Field("tiny", description="Name of the preset, recorded in lineage.")
    data: DataConfig = Field(default_factory=DataConfig)
    model: ModelConfig = Field(default_factory=ModelConfig)
    optim: OptimConfig = Field(default_factory=OptimConfig)

    def to_dict(self) -> dict[str, Any]:
        return self.model_dump(mode="json")


def _format(exc: ValidationError, source: str) -> str:
    lines = []
    for err in exc.errors():
        key = ".".join(str(p) for p in err["loc"])
        msg = "unknown key" if err["type"] == "extra_forbidden" else err["msg"]
        lines.append(f"'{key}': {msg}" + ("" if err["type"] == "extra_forbidden" else f" (got {err.get('input')!r})"))
    return f"invalid training config {source}:\n  " + "\n  ".join(lines)


def parse_config(data: dict[str, Any], source: str = "") -> TrainConfig:
    try:
        return TrainConfig.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(_format(exc, source)) from exc


def load_config(path: Path | str, overrides: dict[str, Any] | None = None) -> TrainConfig:
    """Read a preset, apply dotted overrides ({"optim.epochs": 2}), validate. Raises `ConfigError`."""
    path = Path(path)
    if not path.exists():
        raise ConfigError(f"training config not found: {path}")
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML: {exc}") from exc
    for dotted, value in (overrides or {}).items():
        node = data
        *parents, leaf = dotted.split(".")
        for key in parents:
            node = node.setdefault(key, {})
        node[leaf] = value
    return parse_config(data, str(path))

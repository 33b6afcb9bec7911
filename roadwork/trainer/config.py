"""Training presets: a YAML file (`configs/tiny.yaml`) validated into `TrainConfig` and stored in every run."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from roadwork.trainer.model.backbones import DEFAULT_KIND, KINDS

# The allowed `model.kind` values are the registry's keys (a Literal built at runtime, so that the JSON schema and
# the validation error list them exactly as a hand-written Literal would).
BackboneKind = Literal[KINDS]  # type: ignore[valid-type]


class ConfigError(ValueError):
    """A training config is wrong; the message names the key."""


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class DataConfig(_Section):
    path: str | None = Field(None, description="Parquet file or folder; empty: the home's synthetic dataset.")
    val_fraction: float = Field(0.2, gt=0, lt=1, description="Share of rows held out for validation (by id hash).")
    image_size: int = Field(96, ge=16, description="Side of the square input image, in pixels.")
    split_seed: int = Field(0, description="Seed of the train/validation split.")
    masks: str | None = Field(
        None, description="A pseudo-label folder (index.json + masks/, from the pseudo_label job) whose roadwork"
        " masks train the segmentation head; empty: no masks.",
    )


class DoRAConfig(_Section):
    r: int = Field(16, ge=1, description="DoRA rank.")
    alpha: int = Field(32, ge=1, description="DoRA scaling numerator (scale = alpha / r).")
    dropout: float = Field(0.05, ge=0, lt=1, description="Dropout on the adapter input.")
    domain_steps: int = Field(
        0, ge=0, description="Stage 1 steps of self-distillation on all images (labels unused); 0: one stage."
    )
    domain_lr: float = Field(1e-4, gt=0, description="Learning rate of stage 1.")
    domain_data: str | None = Field(
        None, description="Extra images for stage 1, labels not needed: a folder of image files, or any dataset;"
        " the training images are always used.",
    )


class ViewsConfig(_Section):
    enabled: bool = Field(True, description="12 views (global, 3x3 tiles, centre, right); off: the image alone.")
    size: int = Field(32, ge=16, description="Side each view is resized to before the backbone, in pixels.")


class PruningConfig(_Section):
    placement: Literal["none", "post", "pre"] = Field(
        "none", description="Keep K of 12 views by a learned score: after the backbone, or before it (saves compute)."
    )
    keep: int = Field(8, ge=1, le=12, description="Views kept (K).")


class EncoderConfig(_Section):
    layers: int = Field(1, ge=0, description="Gated-attention blocks over the view tokens; 0: none.")
    heads: int = Field(2, ge=1, description="Attention heads of those blocks (and of GAFM).")
    rope: bool = Field(True, description="Rotary position embedding over view positions.")
    moe_experts: int = Field(0, ge=0, description="Mixture-of-experts feed-forward with this many experts; 0: SwiGLU.")
    moe_top_k: int = Field(2, ge=1, description="Experts each token is routed to.")


class MetadataModelConfig(_Section):
    enabled: bool = Field(False, description="Encode GPS/weather/daytime/scene/text and fuse with the image vector.")
    field_dropout: float = Field(0.3, ge=0, lt=1, description="Chance a present field is hidden while training.")
    text: bool = Field(False, description="Embed scene_description with all-MiniLM-L6-v2 (zeros when missing).")


class ModelConfig(_Section):
    architecture: Literal["multiview", "single"] = Field(
        "multiview", description="multiview: the full recipe below; single: backbone + linear head on one image."
    )
    backbone: str | None = Field(
        None,
        description="Hugging Face model id of a pretrained backbone (e.g. facebook/dinov3-vits16-pretrain-lvd1689m);"
        " empty: a randomly initialised one built from the sizes below.",
    )
    kind: BackboneKind = Field(
        DEFAULT_KIND, description="Architecture of the random-init backbone (an id names its own)."
    )
    hidden_size: int = Field(64, ge=8, description="Width of the random-init backbone.")
    num_layers: int = Field(2, ge=1, description="Transformer blocks of the random-init backbone.")
    num_heads: int = Field(2, ge=1, description="Attention heads of the random-init backbone.")
    patch_size: int = Field(8, ge=2, description="Patch size of the random-init backbone.")
    mode: Literal["full", "frozen", "dora"] = Field(
        "full", description="Train every backbone weight, none, or DoRA adapters only."
    )
    freeze_backbone: bool = Field(False, description="Train only the head (same as mode: frozen).")
    dora: DoRAConfig = Field(default_factory=DoRAConfig)
    attn_implementation: Literal["sdpa", "eager", "flash_attention_2"] = Field(
        "sdpa", description="Backbone attention kernel; flash_attention_2 needs the gpu extra and CUDA."
    )
    gradient_checkpointing: bool = Field(False, description="Recompute backbone activations in backward.")
    views: ViewsConfig = Field(default_factory=ViewsConfig)
    pruning: PruningConfig = Field(default_factory=PruningConfig)
    pyramid: bool = Field(False, description="Multi-scale pyramid (full, half, quarter) over each view's patches.")
    encoder: EncoderConfig = Field(default_factory=EncoderConfig)
    gafm: bool = Field(True, description="Gated attention fusion of the views; off: mean of the views.")
    metadata: MetadataModelConfig = Field(default_factory=MetadataModelConfig)
    weather_head: bool = Field(False, description="Auxiliary weather head (trained where weather is labelled).")
    segmentation_head: bool = Field(False, description="Segmentation head (trained where masks exist).")
    dropout: float = Field(0.0, ge=0, lt=1, description="Dropout in the classifier head.")

    @model_validator(mode="after")
    def _check(self) -> ModelConfig:
        if self.pruning.placement != "none" and not self.views.enabled:
            raise ValueError("pruning needs views.enabled")
        if self.encoder.moe_experts and self.encoder.moe_top_k > self.encoder.moe_experts:
            raise ValueError("encoder.moe_top_k exceeds encoder.moe_experts")
        return self

    @property
    def backbone_mode(self) -> str:
        return "frozen" if self.freeze_backbone else self.mode


class LossConfig(_Section):
    gamma: float = Field(2.0, ge=0, description="Focal loss exponent; 0 is plain BCE.")
    alpha: float | None = Field(None, gt=0, lt=1, description="Focal weight of the roadwork class; empty: 1 for both.")
    label_smoothing: float = Field(0.0, ge=0, lt=1, description="Targets become eps/2 and 1 - eps/2.")
    consistency: float = Field(0.1, ge=0, description="Weight of the multi-view consistency (KL to the mean view).")
    weather: float = Field(0.1, ge=0, description="Weight of the auxiliary weather cross-entropy.")
    segmentation: float = Field(0.1, ge=0, description="Weight of the Dice segmentation loss.")
    moe: float = Field(0.01, ge=0, description="Weight of the experts' load-balancing loss.")


class AugmentSection(_Section):
    enabled: bool = Field(
        False, description="Heavy batch augmentation on the training device (kornia); off in the tiny preset."
    )
    probabilities: dict[str, float] = Field(
        default_factory=dict,
        description="Overrides of the augmenter's settings, e.g. {rain_p: 0.1, validator_p: 0.3}.",
    )
    strength: float = Field(1.0, ge=0, le=1, description="Multiplies every probability (1: as configured).")


class GpsSamplingConfig(_Section):
    enabled: bool = Field(False, description="Weight training rows by GPS distance to the target set's clusters.")
    targets: str = Field(
        "val",
        description="Coordinates to weight toward: 'val' (the validation split), a CSV/JSON file of lat,lon, or a"
        " dataset (parquet, image folder, dataset:owner/name:split) whose rows' GPS are the targets.",
    )
    n_clusters: int = Field(8, ge=1, description="k-means centres fitted on the targets.")
    weights: tuple[float, float, float, float] = Field(
        (5.0, 2.5, 1.0, 0.3), description="Weights of rows < 50 km, 50-200, 200-500 and > 500 km from a centre."
    )
    no_gps_weight: float = Field(1.0, ge=0, description="Weight of rows without GPS.")


class SamplingConfig(_Section):
    gps: GpsSamplingConfig = Field(default_factory=GpsSamplingConfig)


class OptimConfig(_Section):
    optimizer: Literal["adamw", "lion", "sophia"] = Field("adamw", description="AdamW, Lion or Sophia-H.")
    epochs: int = Field(30, ge=1, description="Passes over the training split.")
    batch_size: int = Field(32, ge=1, description="Images per forward pass.")
    grad_accum: int = Field(1, ge=1, description="Forward passes per optimiser step (effective batch = product).")
    lr: float = Field(1e-3, gt=0, description="Peak learning rate.")
    weight_decay: float = Field(0.05, ge=0, description="Decoupled weight decay.")
    warmup_fraction: float = Field(0.1, ge=0, lt=1, description="Share of steps with linear warm-up before cosine decay.")
    seed: int = Field(0, description="Seed of initialisation, shuffling and augmentation.")
    device: Literal["auto", "cpu", "cuda"] = Field("auto", description="Where to train; auto picks CUDA when present.")
    precision: Literal["auto", "bf16", "fp32"] = Field(
        "auto", description="auto: bf16 autocast on CUDA, fp32 on CPU."
    )
    compile: bool = Field(False, description="torch.compile the model before training.")
    early_stopping: int = Field(0, ge=0, description="Stop after this many epochs without a better val MCC; 0: never.")
    hflip: bool = Field(True, description="Random horizontal flips of training images (when augment is off).")
    num_threads: int = Field(
        1, ge=0, description="torch CPU threads; small models train fastest on 1; 0 leaves torch's default."
    )


class TrainConfig(_Section):
    name: str = Field("tiny", description="Name of the preset, recorded in lineage.")
    data: DataConfig = Field(default_factory=DataConfig)
    model: ModelConfig = Field(default_factory=ModelConfig)
    loss: LossConfig = Field(default_factory=LossConfig)
    augment: AugmentSection = Field(default_factory=AugmentSection)
    sampling: SamplingConfig = Field(default_factory=SamplingConfig)
    optim: OptimConfig = Field(default_factory=OptimConfig)

    def to_dict(self) -> dict[str, Any]:
        return self.model_dump(mode="json")

    def with_overrides(self, overrides: dict[str, Any]) -> TrainConfig:
        """A copy with dotted keys replaced ({"model.pyramid": True}); raises `ConfigError` naming a bad key."""
        return parse_config(apply_overrides(self.to_dict(), overrides), f"{self.name} + {sorted(overrides)}")


def apply_overrides(data: dict[str, Any], overrides: dict[str, Any]) -> dict[str, Any]:
    """`data` (nested dicts, modified in place and returned) with dotted keys set."""
    for dotted, value in overrides.items():
        node = data
        *parents, leaf = dotted.split(".")
        for key in parents:
            node = node.setdefault(key, {})
            if not isinstance(node, dict):
                raise ConfigError(f"'{dotted}': '{key}' is not a section")
        node[leaf] = value
    return data


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
    apply_overrides(data, overrides or {})
    return parse_config(data, str(path))


# ------------------------------------------------------------------------------------------ ablation switches

# component -> (dotted key, value when the component is on, value when off). `roadwork ablate` flips each named
# component relative to the base config: on in the base -> the variant turns it off, and the other way round.
COMPONENTS: dict[str, tuple[str, Any, Any]] = {
    "views": ("model.views.enabled", True, False),
    "view_pruning": ("model.pruning.placement", "post", "none"),
    "pre_backbone_pruning": ("model.pruning.placement", "pre", "none"),
    "pyramid": ("model.pyramid", True, False),
    "gated_attention": ("model.encoder.layers", 1, 0),
    "rope": ("model.encoder.rope", True, False),
    "moe": ("model.encoder.moe_experts", 4, 0),
    "gafm": ("model.gafm", True, False),
    "metadata": ("model.metadata.enabled", True, False),
    "weather_head": ("model.weather_head", True, False),
    "focal_loss": ("loss.gamma", 2.0, 0.0),
    "consistency": ("loss.consistency", 0.1, 0.0),
    "augmentation": ("augment.enabled", True, False),
    "gps_sampling": ("sampling.gps.enabled", True, False),
    "dora": ("model.mode", "dora", "full"),
}


def _get_dotted(data: dict[str, Any], dotted: str) -> Any:
    for key in dotted.split("."):
        data = data[key]
    return data


def component_enabled(config: TrainConfig, component: str) -> bool:
    """Whether `component` (a key of COMPONENTS) is on in `config`."""
    if component not in COMPONENTS:
        raise ConfigError(f"unknown component {component!r}; known: {', '.join(sorted(COMPONENTS))}")
    key, _, off = COMPONENTS[component]
    return _get_dotted(config.to_dict(), key) != off


def toggle_component(config: TrainConfig, component: str) -> tuple[TrainConfig, bool]:
    """`config` with `component` flipped, and whether the variant has it on. Raises `ConfigError` for an
    unknown name or a combination the config rejects (e.g. pruning without views)."""
    key, on, off = COMPONENTS[component] if component in COMPONENTS else (None, None, None)
    now = component_enabled(config, component)
    return config.with_overrides({key: off if now else on}), not now

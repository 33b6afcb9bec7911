"""The networks an exported Roadwork Ops model can hold, rebuilt from `config.json` alone (no download).

    single     backbone -> CLS token -> linear head -> logit                 (roadwork.trainer.model.classifier)
    multiview  the multi-view classifier, from copies of roadwork's own code  (roadwork.trainer.model.multiview)
    ensemble   members (single or multiview) -> sum_i w_i * logit_i + b      (roadwork.trainer.model.ensemble)

Each network's parameter names are those of roadwork's checkpoint, so the exported `model.safetensors` is the
checkpoint's file unchanged. `roadwork_multiview.py`, `roadwork_backbone_net.py` (the backbone, with the
registry of backbone kinds `roadwork_backbones.py`) and the modules they import are written beside this file by
the export (roadwork's source, imports made relative); everything else here is self-contained.
"""

from types import SimpleNamespace

import torch
from torch import nn

from .configuration_roadwork import RoadworkConfig
from .roadwork_backbone_net import BackboneNet, hf_model_from_dict

IMAGE_MEAN = (0.485, 0.456, 0.406)
IMAGE_STD = (0.229, 0.224, 0.225)


def normalise(pixels: torch.Tensor) -> torch.Tensor:
    """(B, 3, H, W) in [0, 1] -> ImageNet-normalised. Constants, not buffers: transformers builds the model on
    the meta device and only fills in what the checkpoint holds, so a non-persistent buffer would stay empty."""
    mean = torch.tensor(IMAGE_MEAN, dtype=pixels.dtype, device=pixels.device).view(1, 3, 1, 1)
    std = torch.tensor(IMAGE_STD, dtype=pixels.dtype, device=pixels.device).view(1, 3, 1, 1)
    return (pixels - mean) / std


class Backbone(BackboneNet):
    """The inference part of `roadwork.trainer.model.backbone.Backbone` (which also trains, with peft), rebuilt
    from the checkpoint's backbone config dict with sdpa attention where the kind has attention, as roadwork's
    multi-view model builder does: normalised pixels (B, 3, H, W) -> BackboneOutput."""

    def __init__(self, config: dict) -> None:
        super().__init__(hf_model_from_dict(config, "sdpa"))


class SingleImageClassifier(nn.Module):
    """`roadwork.trainer.model.classifier.RoadworkClassifier`: pixels (B, 3, S, S) in [0, 1] -> CLS token -> logit (B,)."""

    def __init__(self, backbone_config: dict) -> None:
        super().__init__()
        self.backbone = hf_model_from_dict(backbone_config, None)  # as roadwork's single-image builder: no kwargs
        self.head = nn.Linear(self.backbone.config.hidden_size, 1)

    def forward(self, pixel_values: torch.Tensor) -> torch.Tensor:
        tokens = self.backbone(pixel_values=normalise(pixel_values)).last_hidden_state  # (B, 1 + R + N, D)
        return self.head(tokens[:, 0]).squeeze(-1)  # (B,)


class Ensemble(nn.Module):
    """`roadwork.trainer.model.ensemble.EnsembleClassifier`: pixels -> sum_i w_i * logit_i + b (B,). The weights are
    plain numbers from the config, not tensors."""

    def __init__(self, members: list[nn.Module], weights: list[float], bias: float) -> None:
        super().__init__()
        if len(weights) != len(members):
            raise ValueError(f"{len(weights)} ensemble weights for {len(members)} members")
        self.members = nn.ModuleList(members)
        self.weights = tuple(float(w) for w in weights)
        self.bias = float(bias)

    def forward(self, pixel_values: torch.Tensor) -> torch.Tensor:
        logits = torch.stack([member(pixel_values) for member in self.members], dim=-1)  # (B, M)
        weights = torch.tensor(self.weights, dtype=logits.dtype, device=logits.device)  # (M,)
        return (logits * weights).sum(dim=-1) + self.bias  # (B,)


def namespace(data: dict) -> SimpleNamespace:
    """A nested dict as attributes (`cfg.views.size`), the shape of roadwork's ModelConfig."""
    return SimpleNamespace(**{k: namespace(v) if isinstance(v, dict) else v for k, v in data.items()})


def build_network(
    architecture: str, backbone: dict, image_size: int, model: dict | None = None, vocab_sizes: list | None = None
) -> nn.Module:
    """One single or multiview network: `backbone` the Hugging Face config dict, `model` the model section of the
    training config (multiview), `vocab_sizes` the metadata tables' sizes (None: the model's defaults)."""
    if architecture == "single":
        return SingleImageClassifier(backbone)
    if architecture == "multiview":
        # Imported here: the module exists only in an exported directory, written there by the export.
        from .roadwork_multiview import MultiViewClassifier

        kwargs = {"vocab_sizes": tuple(vocab_sizes)} if vocab_sizes else {}
        return MultiViewClassifier(namespace(model or {}), Backbone(backbone), image_size=image_size, **kwargs)
    raise ValueError(f"unknown architecture {architecture!r}; expected single, multiview or ensemble")


def build_from_config(config: RoadworkConfig) -> nn.Module:
    """The network a RoadworkConfig describes, with the checkpoint's parameter names."""
    if config.architecture == "ensemble":
        members = [build_network(m["architecture"], m["backbone"], config.image_size, m.get("model"),
                                 m.get("vocab_sizes")) for m in config.members]
        return Ensemble(members, config.ensemble["weights"], config.ensemble["bias"])
    return build_network(config.architecture, config.backbone, config.image_size, config.model, config.vocab_sizes)

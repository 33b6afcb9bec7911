"""An exported Roadwork Ops classifier: network (single, multiview or ensemble) -> one roadwork logit ->
calibrated probability.

`forward` returns two logits, [0, logit(q)], so that the image-classification pipeline's softmax gives
score("Roadwork") = q, the calibrated probability the product itself predicts.
"""

import json

import torch
from torch import nn
from transformers import PreTrainedModel
from transformers.modeling_outputs import ImageClassifierOutput
from transformers.utils import cached_file

from .configuration_roadwork import RoadworkConfig, check_transformers
from .roadwork_networks import build_from_config

EPS = 1e-7
WEIGHTS = "model.safetensors"
HUB_KWARGS = ("cache_dir", "force_download", "proxies", "token", "revision", "local_files_only", "subfolder")


class IncompleteWeightsError(ValueError):
    """The checkpoint does not hold every weight of the model: those would stay at their random initialisation."""


def stored_keys(path: str) -> set:
    """The tensor names in a safetensors file (its header: 8 bytes of length, then JSON)."""
    with open(path, "rb") as f:
        header = json.loads(f.read(int.from_bytes(f.read(8), "little")))
    return {key for key in header if key != "__metadata__"}


def missing_weights(model: nn.Module, stored: set) -> list:
    """The model's state-dict keys that the checkpoint's keys `stored` do not cover, sorted."""
    return sorted(set(model.state_dict()) - set(stored))


def calibrate(probs: torch.Tensor, threshold: float) -> torch.Tensor:
    """Piecewise-linear monotone map with threshold -> 0.5, 0 -> 0, 1 -> 1 (as roadwork's Calibration.apply).

    Anything above the threshold maps strictly above 0.5, so it stays "roadwork" at the validators' cut."""
    t = float(threshold)
    p = probs.double().clamp(0.0, 1.0)
    low = (p / t) * 0.5
    above_half = torch.nextafter(torch.tensor(0.5, dtype=torch.float64), torch.tensor(1.0, dtype=torch.float64))
    high = torch.maximum(0.5 + 0.5 * ((p - t) / (1.0 - t)), above_half)
    return torch.where(p <= t, low, high)


class RoadworkForImageClassification(PreTrainedModel):
    config_class = RoadworkConfig
    main_input_name = "pixel_values"
    base_model_prefix = "roadwork"  # no submodule has this name, so checkpoint keys load as they are

    def __init__(self, config: RoadworkConfig) -> None:
        super().__init__(config)
        network = build_from_config(config)
        # The network's submodules become this model's own, so parameter names are exactly the checkpoint's
        # (`model.safetensors` is roadwork's file, which roadwork's Predictor reads too). The network object is
        # kept in a tuple, outside the module tree, only for its forward.
        for name, child in network.named_children():
            self.add_module(name, child)
        self._network = (network,)
        self.post_init()

    @classmethod
    def from_pretrained(cls, pretrained_model_name_or_path, *args, **kwargs):
        """transformers' loading, then a refusal when any weight was not in the checkpoint (a release that names
        the weights differently loads the model with those weights random, and only warns)."""
        check_transformers()
        loaded = super().from_pretrained(pretrained_model_name_or_path, *args, **kwargs)
        model = loaded[0] if isinstance(loaded, tuple) else loaded
        hub = {k: kwargs[k] for k in HUB_KWARGS if k in kwargs}
        stored = stored_keys(cached_file(pretrained_model_name_or_path, WEIGHTS, **hub))
        missing = missing_weights(model, stored)
        if missing:
            unused = len(stored - set(model.state_dict()))
            shown = ", ".join(missing[:5]) + (f" and {len(missing) - 5} more" if len(missing) > 5 else "")
            raise IncompleteWeightsError(
                f"{pretrained_model_name_or_path}: {len(missing)} weights of the model are not in {WEIGHTS} and "
                f"would stay random: {shown} ({unused} weights of the file are unused)")
        return loaded

    def train(self, mode: bool = True) -> "RoadworkForImageClassification":
        super().train(mode)
        self._network[0].train(mode)  # the network's own flag (its children are ours, already set)
        return self

    def roadwork_probability(self, pixel_values: torch.Tensor) -> torch.Tensor:
        """pixel_values (B, 3, S, S) in [0, 1] -> calibrated roadwork probability (B,)."""
        probs = torch.sigmoid(self._network[0](pixel_values).float())  # (B,)
        return calibrate(probs, self.config.calibration_threshold)

    def forward(self, pixel_values: torch.Tensor, labels: torch.Tensor | None = None, **_: object):
        q = self.roadwork_probability(pixel_values).clamp(EPS, 1.0 - EPS)
        logit = (torch.log(q) - torch.log1p(-q)).float()
        logits = torch.stack([torch.zeros_like(logit), logit], dim=-1)  # (B, 2): None, Roadwork
        loss = None
        if labels is not None:
            loss = nn.functional.cross_entropy(logits, labels)
        return ImageClassifierOutput(loss=loss, logits=logits)

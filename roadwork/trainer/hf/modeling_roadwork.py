"""An exported Roadwork Ops classifier: backbone -> CLS token -> one roadwork logit -> calibrated probability.

`forward` returns two logits, [0, logit(q)], so that the image-classification pipeline's softmax gives
score("Roadwork") = q, the calibrated probability the product itself predicts.
"""

import torch
from torch import nn
from transformers import AutoConfig, AutoModel, PreTrainedModel
from transformers.modeling_outputs import ImageClassifierOutput

from .configuration_roadwork import RoadworkConfig

IMAGE_MEAN = (0.485, 0.456, 0.406)
IMAGE_STD = (0.229, 0.224, 0.225)
EPS = 1e-7


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
    base_model_prefix = "backbone"

    def __init__(self, config: RoadworkConfig) -> None:
        super().__init__(config)
        backbone_config = AutoConfig.for_model(**config.backbone)
        self.backbone = AutoModel.from_config(backbone_config)
        self.head = nn.Linear(backbone_config.hidden_size, 1)
        self.post_init()

    def roadwork_probability(self, pixel_values: torch.Tensor) -> torch.Tensor:
        """pixel_values (B, 3, S, S) in [0, 1] -> calibrated roadwork probability (B,)."""
        # Constants, not buffers: transformers builds the model on the meta device and only fills in what the
        # checkpoint holds, so a non-persistent buffer would be left uninitialised.
        mean = torch.tensor(IMAGE_MEAN, dtype=pixel_values.dtype, device=pixel_values.device).view(1, 3, 1, 1)
        std = torch.tensor(IMAGE_STD, dtype=pixel_values.dtype, device=pixel_values.device).view(1, 3, 1, 1)
        x = (pixel_values - mean) / std
        tokens = self.backbone(pixel_values=x).last_hidden_state  # (B, 1 + R + N, D)
        probs = torch.sigmoid(self.head(tokens[:, 0]).squeeze(-1).float())
        return calibrate(probs, self.config.calibration_threshold)

    def forward(self, pixel_values: torch.Tensor, labels: torch.Tensor | None = None, **_: object):
        q = self.roadwork_probability(pixel_values).clamp(EPS, 1.0 - EPS)
        logit = (torch.log(q) - torch.log1p(-q)).float()
        logits = torch.stack([torch.zeros_like(logit), logit], dim=-1)  # (B, 2): None, Roadwork
        loss = None
        if labels is not None:
            loss = nn.functional.cross_entropy(logits, labels)
        return ImageClassifierOutput(loss=loss, logits=logits)

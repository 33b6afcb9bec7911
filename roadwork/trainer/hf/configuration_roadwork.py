"""Config of an exported Roadwork Ops classifier (Hugging Face `trust_remote_code` model)."""

from transformers import PretrainedConfig


class RoadworkConfig(PretrainedConfig):
    model_type = "roadwork"

    def __init__(
        self,
        backbone: dict | None = None,  # the backbone's own config (e.g. a dinov3_vit config dict)
        image_size: int = 224,
        calibration_threshold: float = 0.5,  # raw probability that is mapped onto the validators' 0.5 cut
        roadwork_version: str = "",
        **kwargs,
    ) -> None:
        kwargs.setdefault("id2label", {0: "None", 1: "Roadwork"})
        kwargs.setdefault("label2id", {"None": 0, "Roadwork": 1})
        super().__init__(**kwargs)
        self.backbone = backbone or {}
        self.image_size = image_size
        self.calibration_threshold = calibration_threshold
        self.roadwork_version = roadwork_version

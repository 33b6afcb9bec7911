"""Config of an exported Roadwork Ops classifier (Hugging Face `trust_remote_code` model)."""

from transformers import PretrainedConfig


class RoadworkConfig(PretrainedConfig):
    """What `roadwork_networks.build_from_config` needs to rebuild the network without a download.

    architecture "single" or "multiview": `backbone`, `model`, `vocab_sizes` describe the one network;
    "ensemble": `members` holds one such description per member ({"architecture", "backbone", "model",
    "vocab_sizes"}) and `ensemble` the combination {"combine", "weights", "bias"}."""

    model_type = "roadwork"

    def __init__(
        self,
        architecture: str = "single",  # single, multiview or ensemble (not transformers' `architectures`)
        backbone: dict | None = None,  # the backbone's own config (e.g. a dinov3_vit config dict)
        model: dict | None = None,  # the model section of roadwork's training config (multiview)
        vocab_sizes: list | None = None,  # weather, daytime, scene table sizes of the metadata encoder
        members: list | None = None,  # ensemble members, each {"architecture", "backbone", "model", "vocab_sizes"}
        ensemble: dict | None = None,  # {"combine", "weights": [w_i], "bias": b}: logit = sum w_i logit_i + b
        image_size: int = 224,  # side of the square image the processor feeds the model
        calibration_threshold: float = 0.5,  # raw probability that is mapped onto the validators' 0.5 cut
        roadwork_version: str = "",
        **kwargs,
    ) -> None:
        kwargs.setdefault("id2label", {0: "None", 1: "Roadwork"})
        kwargs.setdefault("label2id", {"None": 0, "Roadwork": 1})
        super().__init__(**kwargs)
        self.architecture = architecture
        self.backbone = backbone or {}
        self.model = model or {}
        self.vocab_sizes = vocab_sizes
        self.members = members or []
        self.ensemble = ensemble or {}
        self.image_size = image_size
        self.calibration_threshold = calibration_threshold
        self.roadwork_version = roadwork_version

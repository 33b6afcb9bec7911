"""Config of an exported Roadwork Ops classifier (Hugging Face `trust_remote_code` model).

This code works with the transformers releases in TRANSFORMERS_RANGE (checked when a model is loaded): older
ones name the backbone's weights differently and would leave them at their random initialisation.
"""

import re

import transformers
from transformers import PretrainedConfig

TRANSFORMERS_RANGE = ((5, 17), (6, 0))  # >= 5.17 (5.0 cannot import this code from a local folder), < 6.0


def transformers_problem(version: str = transformers.__version__) -> str | None:
    """Why this code cannot run under transformers `version` (None: it can)."""
    low, high = TRANSFORMERS_RANGE
    match = re.match(r"(\d+)\.(\d+)", version)
    found = (int(match[1]), int(match[2])) if match else None
    if found is None or not low <= found < high:
        return (f"this Roadwork Ops model needs transformers >={low[0]}.{low[1]},<{high[0]}.{high[1]} (found "
                f"{version}); in another release, serve its stock student (deploy.format: stock) instead")
    return None


def check_transformers() -> None:
    """Raise ImportError when the running transformers is outside TRANSFORMERS_RANGE."""
    problem = transformers_problem()
    if problem is not None:
        raise ImportError(problem)


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
        check_transformers()
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

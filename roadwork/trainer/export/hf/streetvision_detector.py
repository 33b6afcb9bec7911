"""A detector for the StreetVision base miner that serves a model exported by Roadwork Ops.

Drop this file into the base miner's `base_miner/detectors/` folder, import it from that package's
`__init__.py`, and select the detector `ROADWORK_OPS` in the miner's configuration. It reads the exported
model directory from `$ROADWORK_MODEL_DIR` (e.g. `~/.roadwork/publish/current`, which Roadwork Ops switches
atomically on every deploy and rollback) or from a `model_dir:` key in its YAML config.
"""

import os

import torch
from PIL import Image
from transformers import AutoImageProcessor, AutoModelForImageClassification

try:  # inside the base miner
    from base_miner.detectors import FeatureDetector
    from base_miner.registry import DETECTOR_REGISTRY
except ImportError:  # anywhere else: a plain class with the same interface
    FeatureDetector = object
    DETECTOR_REGISTRY = None

ROADWORK_LABEL = "Roadwork"


class RoadworkOpsDetector(FeatureDetector):
    """`detector(image) -> float in [0, 1]`, the calibrated probability of roadwork."""

    def __init__(self, model_name: str = "ROADWORK_OPS", config_name: str | None = None, device: str = "cpu",
                 model_dir: str | None = None) -> None:
        self.model_dir = model_dir or os.environ.get("ROADWORK_MODEL_DIR")
        self.model_name = model_name
        self.device = torch.device(device if device == "cuda" and torch.cuda.is_available() else "cpu")
        if FeatureDetector is not object:
            super().__init__(model_name, config_name, str(self.device))  # sets YAML keys, calls load_model
        else:
            self.load_model()

    def load_model(self) -> None:
        model_dir = getattr(self, "model_dir", None)
        if not model_dir:
            raise ValueError("set ROADWORK_MODEL_DIR or model_dir: to the exported Roadwork Ops model directory")
        # Resolve the `current` link once, so a deploy that switches it mid-load cannot mix two versions.
        path = os.path.realpath(model_dir)
        self.processor = AutoImageProcessor.from_pretrained(path, trust_remote_code=True)
        self.model = AutoModelForImageClassification.from_pretrained(path, trust_remote_code=True)
        self.model.to(self.device).eval()
        self.roadwork_index = self.model.config.label2id[ROADWORK_LABEL]
        self.loaded_from = path

    def __call__(self, image: Image.Image) -> float:
        inputs = self.processor(images=image.convert("RGB"), return_tensors="pt").to(self.device)
        with torch.no_grad():
            probs = self.model(**inputs).logits.softmax(-1)[0]
        return float(probs[self.roadwork_index])


if DETECTOR_REGISTRY is not None:
    DETECTOR_REGISTRY.register_module(module_name="ROADWORK_OPS")(RoadworkOpsDetector)

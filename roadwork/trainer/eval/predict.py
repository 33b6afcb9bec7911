"""The product's own prediction: a checkpoint or an exported directory -> calibrated roadwork probability.

Used by `roadwork predict`, the deploy smoke test and the challenge replay; the exported model's pipeline
gives the same number (tested). A student folder (`roadwork distill`, a stock architecture) answers exactly what
the stock miner's `pipeline("image-classification")` answers: the softmax score of "Roadwork", its calibration
already inside the weights.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from roadwork.trainer.model.checkpoint import load_checkpoint, read_meta
from roadwork.trainer.data.records import BadImageError, decode_image
from roadwork.trainer.eval.calibration import Calibration
from roadwork.trainer.export.repo import checkpoint_calibration
from roadwork.trainer.export.hf.image_processing_roadwork import square_resize
from roadwork.trainer.model.classifier import RoadworkClassifier
from roadwork.trainer.student.model import is_student_dir, load_student, pixel_values, roadwork_probability


def to_pixels(images: Sequence[Image.Image], size: int) -> torch.Tensor:
    """PIL images -> (B, 3, S, S) float in [0, 1], exactly as the exported image processor does."""
    arrays = [np.asarray(square_resize(img, size), dtype=np.float32) / 255.0 for img in images]
    return torch.from_numpy(np.stack(arrays).transpose(0, 3, 1, 2).copy())


class Predictor:
    """A loaded model plus its input size and calibration. Thread-compatible for inference."""

    def __init__(self, model: RoadworkClassifier, image_size: int, calibration: Calibration | None = None) -> None:
        self.model = model.eval()
        self.image_size = image_size
        self.calibration = calibration or Calibration.identity()

    @classmethod
    def load(cls, path: Path) -> Predictor:
        """From a checkpoint directory or an exported model directory (both hold roadwork.json)."""
        path = Path(path)
        if is_student_dir(path):
            return StudentPredictor.load(path)
        model, config = load_checkpoint(path)
        return cls(model, config.data.image_size, checkpoint_calibration(read_meta(path)))

    @torch.no_grad()
    def raw_probs(self, images: Sequence[Image.Image], batch_size: int = 64) -> np.ndarray:
        out = []
        for i in range(0, len(images), batch_size):
            pixels = to_pixels(images[i : i + batch_size], self.image_size)
            out.append(torch.sigmoid(self.model(pixels)).double().numpy())
        return np.concatenate(out) if out else np.zeros(0)

    def predict(self, images: Sequence[Image.Image]) -> np.ndarray:
        """Calibrated probabilities, what the miner answers."""
        return self.calibration.apply(self.raw_probs(images))

    def predict_bytes(self, data: bytes, *, is_base64: bool = False) -> float:
        """One encoded image (JPEG/PNG bytes, or base64 text as validators send) -> probability.

        Raises `BadImageError` with the reason for data that is not a usable image; nothing else breaks."""
        if is_base64:
            try:
                data = base64.b64decode(data, validate=True)
            except (binascii.Error, ValueError) as exc:
                raise BadImageError("undecodable", f"not base64: {exc}") from None
        return float(self.predict([decode_image(data)])[0])


class StudentPredictor(Predictor):
    """A student (stock architecture): its own image processor, the softmax score of "Roadwork", and no calibration
    on top (the calibrated cut is already at 0.5 in the head's bias), as the stock pipeline answers."""

    def __init__(self, model: torch.nn.Module, processor: object, meta: dict | None = None) -> None:
        size = getattr(processor, "size", None) or {}
        super().__init__(model, int(size.get("height", 224)))  # type: ignore[arg-type]
        self.processor = processor
        self.meta = dict(meta or {})

    @classmethod
    def load(cls, path: Path) -> StudentPredictor:
        model, processor, meta = load_student(path)
        return cls(model, processor, meta)

    @torch.no_grad()
    def raw_probs(self, images: Sequence[Image.Image], batch_size: int = 64) -> np.ndarray:
        out = []
        for i in range(0, len(images), batch_size):
            logits = self.model(pixel_values=pixel_values(self.processor, images[i : i + batch_size])).logits
            out.append(roadwork_probability(logits).double().numpy())
        return np.concatenate(out) if out else np.zeros(0)

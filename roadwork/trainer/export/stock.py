"""Export a student folder as the plain model repository the stock miner loads with no code of ours.

    pipeline("image-classification",
             model=AutoModelForImageClassification.from_pretrained(DIR),
             feature_extractor=AutoImageProcessor.from_pretrained(DIR, use_fast=True))(image)
        -> [{"label": "Roadwork", "score": q}, {"label": "None", "score": 1 - q}]

with no `trust_remote_code`, under the miner's transformers (4.45.2). q is the softmax score of "Roadwork"; the
calibrated cut is already inside the head's bias (`roadwork.trainer.student.model.shift_threshold`). The folder
holds exactly what the student was trained and evaluated with, copied byte for byte:
- `config.json` (a stock `model_type`, id2label {0: "None", 1: "Roadwork"}, no `auto_map`),
- `preprocessor_config.json` (the stock processor of the model_type, with the settings it was trained with),
- `model.safetensors`,
- `roadwork.json` (our own tools read it; the miner ignores it),
plus the competition's `model_card.json`.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

from roadwork.trainer.student.model import (
    ID2LABEL,
    META,
    PROCESSOR_CONFIG,
    STUDENTS,
    is_student_dir,
)

CONFIG = "config.json"
WEIGHTS = "model.safetensors"
MODEL_CARD = "model_card.json"
STOCK_FILES = (CONFIG, PROCESSOR_CONFIG, WEIGHTS, META)  # what a stock repository copies from the student folder


class StockExportError(ValueError):
    """A folder is not a student the stock miner could load; the message names what is wrong."""


def _read_json(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise StockExportError(f"{path}: unreadable ({exc})") from None
    if not isinstance(data, dict):
        raise StockExportError(f"{path}: not a JSON object")
    return data


def stock_problem(folder: Path) -> str | None:
    """Why the stock miner could not load `folder` as it is (None: it can): a known architecture and processor,
    the miner's labels, no remote code, weights present."""
    folder = Path(folder)
    missing = [name for name in (CONFIG, PROCESSOR_CONFIG, WEIGHTS) if not (folder / name).is_file()]
    if missing:
        return f"{folder} lacks {', '.join(missing)}"
    config = _read_json(folder / CONFIG)
    processor = _read_json(folder / PROCESSOR_CONFIG)
    specs = [s for s in STUDENTS.values() if s.model_class in config.get("architectures", [])]
    if not specs:
        known = ", ".join(s.model_class for s in STUDENTS.values())
        return f"{folder / CONFIG}: architectures {config.get('architectures')} is none of {known}"
    spec = specs[0]
    expected_labels = {str(k): v for k, v in ID2LABEL.items()}
    if config.get("id2label") != expected_labels:
        return f"{folder / CONFIG}: id2label is {config.get('id2label')}, the miner needs {expected_labels}"
    for name, data in ((CONFIG, config), (PROCESSOR_CONFIG, processor)):
        if "auto_map" in data:
            return f"{folder / name}: has an auto_map (remote code), which the stock miner does not run"
    named = processor.get("image_processor_type")
    if named is not None:  # see save_student: a named class breaks `use_fast=True` under 4.45.2 for DINOv2
        return (f"{folder / PROCESSOR_CONFIG}: names the processor class {named!r}; the stock miner needs it "
                f"chosen by the model_type ({spec.processor_class} under transformers 4.45.2)")
    return None


def export_stock(student_dir: Path, out_dir: Path, *, model_card: dict[str, Any]) -> Path:
    """Write the stock model repository of the student folder `student_dir` into `out_dir` (new or empty)."""
    student_dir, out_dir = Path(student_dir), Path(out_dir)
    if not is_student_dir(student_dir):
        raise StockExportError(f"{student_dir} is not a student folder (no {META} of a student)")
    problem = stock_problem(student_dir)
    if problem is not None:
        raise StockExportError(problem)
    if out_dir.exists() and any(out_dir.iterdir()):
        raise FileExistsError(f"export directory is not empty: {out_dir}")
    out_dir.mkdir(parents=True, exist_ok=True)
    for name in STOCK_FILES:
        shutil.copyfile(student_dir / name, out_dir / name)
    (out_dir / MODEL_CARD).write_text(json.dumps(model_card, indent=2) + "\n")
    return out_dir

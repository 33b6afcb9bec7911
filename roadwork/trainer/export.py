"""Export a checkpoint as a Hugging Face model repository the competition's stock miner path can load.

    pipeline("image-classification", model=DIR, trust_remote_code=True)(image)
        -> [{"label": "Roadwork", "score": q}, {"label": "None", "score": 1 - q}]

where q is the calibrated roadwork probability, the same number `roadwork predict` gives. The directory holds
`config.json` (id2label {0: "None", 1: "Roadwork"}, the backbone's config, the calibration),
`model.safetensors`, `preprocessor_config.json`, the model code, `roadwork.json` (our checkpoint metadata),
the base-miner detector module and `model_card.json`.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

from safetensors.torch import load_file, save_file

from roadwork.trainer.calibration import Calibration
from roadwork.trainer.checkpoint import META, WEIGHTS, read_meta
from roadwork.trainer.hf import DETECTOR_FILE, HERE, REMOTE_CODE_FILES

ID2LABEL = {"0": "None", "1": "Roadwork"}
CALIBRATION_KEY = "calibration"


def checkpoint_calibration(meta: dict[str, Any]) -> Calibration:
    """The checkpoint's calibration (the identity when it was never calibrated)."""
    cal = meta.get(CALIBRATION_KEY)
    return Calibration.from_dict(cal) if cal else Calibration.identity()


def export_model(checkpoint_dir: Path, out_dir: Path, *, model_card: dict[str, Any], version: str = "") -> Path:
    """Write the model repository into `out_dir` (new or empty). Returns `out_dir`."""
    checkpoint_dir, out_dir = Path(checkpoint_dir), Path(out_dir)
    meta = read_meta(checkpoint_dir)
    if out_dir.exists() and any(out_dir.iterdir()):
        raise FileExistsError(f"export directory is not empty: {out_dir}")
    out_dir.mkdir(parents=True, exist_ok=True)

    # Same tensors, same names; `metadata={"format": "pt"}` is what transformers expects of a torch file.
    save_file(load_file(str(checkpoint_dir / WEIGHTS)), str(out_dir / WEIGHTS), metadata={"format": "pt"})
    shutil.copyfile(checkpoint_dir / META, out_dir / META)
    for name in (*REMOTE_CODE_FILES, DETECTOR_FILE):
        shutil.copyfile(HERE / name, out_dir / name)

    size = int(meta["train_config"]["data"]["image_size"])
    config = {
        "architectures": ["RoadworkForImageClassification"],
        "model_type": "roadwork",
        "auto_map": {
            "AutoConfig": "configuration_roadwork.RoadworkConfig",
            "AutoModelForImageClassification": "modeling_roadwork.RoadworkForImageClassification",
        },
        "id2label": ID2LABEL,
        "label2id": {v: int(k) for k, v in ID2LABEL.items()},
        "backbone": meta["backbone_config"],
        "image_size": size,
        "calibration_threshold": checkpoint_calibration(meta).threshold,
        "roadwork_version": version,
    }
    processor = {
        "image_processor_type": "RoadworkImageProcessor",
        "auto_map": {"AutoImageProcessor": "image_processing_roadwork.RoadworkImageProcessor"},
        "size": size,
    }
    for name, data in (("config.json", config), ("preprocessor_config.json", processor),
                       ("model_card.json", model_card)):
        (out_dir / name).write_text(json.dumps(data, indent=2) + "\n")
    return out_dir

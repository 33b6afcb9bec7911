"""Export a version as a model repository directory: weights, configs and the competition's model_card.json."""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path

from roadwork.config import Settings
from roadwork.db.repo import Version
from roadwork.trainer.checkpoint import META, WEIGHTS, read_meta
from roadwork.trainer.model import IMAGE_MEAN, IMAGE_STD

ID2LABEL = {"0": "None", "1": "Roadwork"}


def model_card(version: Version, settings: Settings, submission_time: int | None = None) -> dict:
    """The competition's `model_card.json` (COMPETITION.md)."""
    return {
        "model_name": version.name,
        "description": f"Roadwork Ops {version.label}; data {str(version.data_fingerprint)[:12]}",
        "version": version.version,
        "submitted_by": settings.hotkey or "",
        "submission_time": int(submission_time if submission_time is not None else time.time()),
    }


def export_version(checkpoint_dir: Path, version: Version, settings: Settings, out_dir: Path) -> Path:
    """Write the model repository for `version` into `out_dir` (created; must not exist or be empty)."""
    meta = read_meta(checkpoint_dir)
    out_dir = Path(out_dir)
    if out_dir.exists() and any(out_dir.iterdir()):
        raise FileExistsError(f"export directory is not empty: {out_dir}")
    out_dir.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(checkpoint_dir / WEIGHTS, out_dir / WEIGHTS)
    shutil.copyfile(checkpoint_dir / META, out_dir / META)
    size = meta["train_config"]["data"]["image_size"]
    config = {
        "architectures": ["RoadworkClassifier"],
        "model_type": "roadwork",
        "id2label": ID2LABEL,
        "label2id": {v: int(k) for k, v in ID2LABEL.items()},
        "image_size": size,
        "backbone": meta["backbone_config"],
        "roadwork_version": version.version,
    }
    processor = {
        "do_resize": True,
        "size": {"height": size, "width": size},
        "do_normalize": True,
        "image_mean": list(IMAGE_MEAN),
        "image_std": list(IMAGE_STD),
        "do_rescale": True,
        "rescale_factor": 1 / 255,
    }
    for name, data in (
        ("config.json", config),
        ("preprocessor_config.json", processor),
        ("model_card.json", model_card(version, settings)),
    ):
        (out_dir / name).write_text(json.dumps(data, indent=2) + "\n")
    return out_dir

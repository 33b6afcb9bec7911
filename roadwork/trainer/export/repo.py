"""Export a checkpoint as a Hugging Face model repository the competition's stock miner path can load.

    pipeline("image-classification", model=DIR, trust_remote_code=True)(image)
        -> [{"label": "Roadwork", "score": q}, {"label": "None", "score": 1 - q}]

where q is the calibrated roadwork probability, the same number `roadwork predict` gives, for every
architecture: single, multiview, and ensembles of those. The directory holds
- `config.json`: id2label {0: "None", 1: "Roadwork"}, the architecture, each network's backbone config, model
  section and metadata vocabulary sizes, the ensemble weights, the image size and the calibration;
- `model.safetensors` and `roadwork.json`: the checkpoint itself, unchanged (roadwork's Predictor reads them);
- the model code (`hf/`, verbatim) and portable copies of roadwork's multi-view model code (`export_code`),
  which import only the standard library, torch, transformers, numpy and Pillow;
- `preprocessor_config.json`, the base-miner detector module and `model_card.json`.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

from safetensors.torch import load_file, save_file

from roadwork.trainer.eval.calibration import Calibration
from roadwork.trainer.model.checkpoint import (
    META,
    WEIGHTS,
    checkpoint_config,
    read_meta,
    vocab_sizes,
)
from roadwork.trainer.export.code import check_portable, write_model_code
from roadwork.trainer.export.hf import DETECTOR_FILE, HERE, REMOTE_CODE_FILES

ID2LABEL = {"0": "None", "1": "Roadwork"}
CALIBRATION_KEY = "calibration"
ENSEMBLE_KIND = "ensemble"  # roadwork.json's "kind" of an ensemble checkpoint (roadwork.trainer.model.ensemble)


def checkpoint_calibration(meta: dict[str, Any]) -> Calibration:
    """The checkpoint's calibration (the identity when it was never calibrated)."""
    cal = meta.get(CALIBRATION_KEY)
    return Calibration.from_dict(cal) if cal else Calibration.identity()


def network_spec(meta: dict[str, Any], source: str) -> tuple[dict[str, Any], int]:
    """What the exported code needs to rebuild one (non-ensemble) network of a checkpoint's JSON, and the
    network's input size. The model section is read through the config schema, so defaults are filled in
    exactly as `load_checkpoint` fills them."""
    config = checkpoint_config(meta, source)
    sizes = vocab_sizes(meta)
    spec = {
        "architecture": config.model.architecture,
        "backbone": meta["backbone_config"],
        "model": config.model.model_dump(mode="json"),
        "vocab_sizes": list(sizes) if sizes is not None else None,
    }
    return spec, config.data.image_size


def model_config(meta: dict[str, Any], source: str) -> dict[str, Any]:
    """The roadwork-specific part of config.json: the architecture and what rebuilds it, and the image size."""
    if meta.get("kind") != ENSEMBLE_KIND:
        spec, size = network_spec(meta, source)
        return {**spec, "image_size": size}
    members = [network_spec(m, f"{source} member {i}") for i, m in enumerate(meta["members"])]
    sizes = {size for _, size in members}
    if len(sizes) != 1:  # the processor feeds every member the same image
        raise ValueError(f"{source}: ensemble members must share the image size, got {sorted(sizes)}")
    ensemble = meta["ensemble"]
    if len(ensemble["weights"]) != len(members):
        raise ValueError(f"{source}: {len(ensemble['weights'])} ensemble weights for {len(members)} members")
    return {
        "architecture": ENSEMBLE_KIND,
        "members": [spec for spec, _ in members],
        "ensemble": {"combine": ensemble.get("combine"), "weights": [float(w) for w in ensemble["weights"]],
                     "bias": float(ensemble.get("bias", 0.0))},
        "image_size": sizes.pop(),
    }


def check_export_dir(out_dir: Path) -> None:
    """FileExistsError unless `out_dir` is new or an empty directory: an export never mixes with other files."""
    out_dir = Path(out_dir)
    if out_dir.exists() and not out_dir.is_dir():
        raise FileExistsError(f"export directory {out_dir} is a file; give a new or empty directory")
    if out_dir.is_dir() and any(out_dir.iterdir()):
        raise FileExistsError(f"export directory {out_dir} is not empty; give a new or empty directory")


def export_model(checkpoint_dir: Path, out_dir: Path, *, model_card: dict[str, Any], version: str = "") -> Path:
    """Write the model repository into `out_dir` (new or empty). Returns `out_dir`."""
    checkpoint_dir, out_dir = Path(checkpoint_dir), Path(out_dir)
    meta = read_meta(checkpoint_dir)
    roadwork = model_config(meta, str(checkpoint_dir / META))
    check_export_dir(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)

    # Same tensors, same names; `metadata={"format": "pt"}` is what transformers expects of a torch file.
    save_file(load_file(str(checkpoint_dir / WEIGHTS)), str(out_dir / WEIGHTS), metadata={"format": "pt"})
    shutil.copyfile(checkpoint_dir / META, out_dir / META)
    for name in (*REMOTE_CODE_FILES, DETECTOR_FILE):
        shutil.copyfile(HERE / name, out_dir / name)
    write_model_code(out_dir)
    check_portable(out_dir)

    config = {
        "architectures": ["RoadworkForImageClassification"],
        "model_type": "roadwork",
        "auto_map": {
            "AutoConfig": "configuration_roadwork.RoadworkConfig",
            "AutoModelForImageClassification": "modeling_roadwork.RoadworkForImageClassification",
        },
        "id2label": ID2LABEL,
        "label2id": {v: int(k) for k, v in ID2LABEL.items()},
        **roadwork,
        "calibration_threshold": checkpoint_calibration(meta).threshold,
        "roadwork_version": version,
    }
    processor = {
        "image_processor_type": "RoadworkImageProcessor",
        "auto_map": {"AutoImageProcessor": "image_processing_roadwork.RoadworkImageProcessor"},
        "size": roadwork["image_size"],
    }
    for name, data in (("config.json", config), ("preprocessor_config.json", processor),
                       ("model_card.json", model_card)):
        (out_dir / name).write_text(json.dumps(data, indent=2) + "\n")
    return out_dir

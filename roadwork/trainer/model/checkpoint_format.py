"""What a checkpoint directory holds, for every kind of checkpoint (single model or ensemble): the file names,
the format tag, atomic writes, and reading its JSON and the training config stored in it. Kept apart from
`checkpoint` (which builds models) so that `ensemble` can write and read its checkpoints without importing the
module that dispatches to it."""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any

from roadwork.trainer.config import TrainConfig, parse_config

WEIGHTS = "model.safetensors"
META = "roadwork.json"
FORMAT = "roadwork-checkpoint/1"


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write to a temp file in the same directory, fsync, then rename over `path`."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def read_meta(ckpt_dir: Path) -> dict[str, Any]:
    path = Path(ckpt_dir) / META
    if not path.exists():
        raise FileNotFoundError(f"not a roadwork checkpoint (no {META}): {ckpt_dir}")
    meta = json.loads(path.read_text())
    if meta.get("format") != FORMAT:
        raise ValueError(f"{path}: unsupported checkpoint format {meta.get('format')!r}")
    return meta


def checkpoint_config(meta: dict[str, Any], source: str = "") -> TrainConfig:
    """The training config stored in a checkpoint's JSON. Checkpoints written before the multi-view model
    existed carry no `model.architecture`: they hold the single-image classifier."""
    data = json.loads(json.dumps(meta["train_config"]))
    data.setdefault("model", {}).setdefault("architecture", "single")
    return parse_config(data, source)


def vocab_sizes(meta: dict[str, Any]) -> tuple[int, int, int] | None:
    """(weather, daytime, scene) table sizes of the metadata vocabulary stored with a checkpoint, if any."""
    vocab = meta.get("metadata_vocab")
    return None if vocab is None else tuple(len(vocab[k]) for k in ("weather", "daytime", "scene"))

"""Resumable training state, safetensors + JSON: model, best weights, optimizer, scheduler, step, RNG.

Written at the end of every epoch into `<out_dir>/.resume/` (a new folder renamed over the old one, so an
interruption mid-write leaves the previous epoch's state intact). `roadwork train --resume` continues from
it: the same steps follow with the same random numbers, so the result equals an uninterrupted run's.
"""

from __future__ import annotations

import hashlib
import json
import random
import shutil
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors.torch import load_file, save_file

from roadwork.trainer.config import TrainConfig
from roadwork.trainer.loop.optim import load_optimizer_state, optimizer_state_tensors

RESUME_DIR = ".resume"


@dataclass
class LoopState:
    """The loop's own counters, JSON-able."""

    epoch: int = 0  # epochs finished
    step: int = 0  # optimiser steps taken
    best_mcc: float | None = None
    best_epoch: int = 0
    epochs_without_gain: int = 0
    history: list[dict[str, Any]] = field(default_factory=list)


def config_digest(config: TrainConfig) -> str:
    """What must not change between an interrupted run and its resume (everything but the epoch budget)."""
    data = config.to_dict()
    data["optim"].pop("epochs")
    return hashlib.sha256(json.dumps(data, sort_keys=True).encode()).hexdigest()


def _rng_state(generators: dict[str, torch.Generator]) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    tensors = {"torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        for i, s in enumerate(torch.cuda.get_rng_state_all()):
            tensors[f"cuda.{i}"] = s
    tensors |= {f"gen.{name}": g.get_state() for name, g in generators.items()}
    kind, keys, pos, has_gauss, gauss = np.random.get_state()
    py_version, py_state, py_gauss = random.getstate()
    meta = {
        "numpy": [kind, keys.tolist(), pos, has_gauss, gauss],
        "python": [py_version, list(py_state), py_gauss],
    }
    return tensors, meta


def _set_rng_state(tensors: dict[str, torch.Tensor], meta: dict[str, Any], generators: dict[str, torch.Generator]) -> None:
    torch.set_rng_state(tensors["torch"])
    cuda = [tensors[k] for k in sorted(k for k in tensors if k.startswith("cuda."))]
    if cuda and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(cuda)
    for name, g in generators.items():
        g.set_state(tensors[f"gen.{name}"])
    kind, keys, pos, has_gauss, gauss = meta["numpy"]
    np.random.set_state((kind, np.asarray(keys, dtype=np.uint32), pos, has_gauss, gauss))
    py_version, py_state, py_gauss = meta["python"]
    random.setstate((py_version, tuple(py_state), py_gauss))


def _cpu(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    return {k: v.detach().to("cpu").contiguous() for k, v in state.items()}


def save_state(
    out_dir: Path,
    *,
    config: TrainConfig,
    loop: LoopState,
    model: torch.nn.Module,
    best: dict[str, torch.Tensor] | None,
    optimizer: torch.optim.Optimizer,
    scheduler: torch.optim.lr_scheduler.LRScheduler,
    generators: dict[str, torch.Generator],
) -> Path:
    """Write the state of a finished epoch; returns the resume folder."""
    final = Path(out_dir) / RESUME_DIR
    tmp = Path(out_dir) / f"{RESUME_DIR}.tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    save_file(_cpu(model.state_dict()), str(tmp / "model.safetensors"))
    if best is not None:
        save_file(_cpu(best), str(tmp / "best.safetensors"))
    opt_tensors, opt_meta = optimizer_state_tensors(optimizer)
    save_file(_cpu(opt_tensors), str(tmp / "optimizer.safetensors"))
    rng_tensors, rng_meta = _rng_state(generators)
    save_file(_cpu(rng_tensors), str(tmp / "rng.safetensors"))
    sched = {k: v for k, v in scheduler.state_dict().items() if k != "lr_lambdas"}
    meta = {
        "config_digest": config_digest(config),
        "loop": asdict(loop),
        "optimizer": opt_meta,
        "scheduler": sched,
        "rng": rng_meta,
    }
    (tmp / "state.json").write_text(json.dumps(meta, indent=1))
    old = Path(out_dir) / f"{RESUME_DIR}.old"
    shutil.rmtree(old, ignore_errors=True)
    if final.exists():
        final.rename(old)
    tmp.rename(final)
    shutil.rmtree(old, ignore_errors=True)
    return final


def has_state(out_dir: Path) -> bool:
    return (Path(out_dir) / RESUME_DIR / "state.json").exists()


def load_state(
    out_dir: Path,
    *,
    config: TrainConfig,
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    scheduler: torch.optim.lr_scheduler.LRScheduler,
    generators: dict[str, torch.Generator],
    device: torch.device,
) -> tuple[LoopState, dict[str, torch.Tensor] | None]:
    """Restore everything `save_state` wrote into the given objects; returns the loop state and best weights.
    Raises ValueError when the folder was written under a different config."""
    folder = Path(out_dir) / RESUME_DIR
    meta = json.loads((folder / "state.json").read_text())
    if meta["config_digest"] != config_digest(config):
        raise ValueError(
            f"{folder} was written by a run with a different training config; "
            "resume with the same config (only optim.epochs may change) or start a new output folder"
        )
    model.load_state_dict(load_file(str(folder / "model.safetensors"), device=str(device)))
    load_optimizer_state(optimizer, load_file(str(folder / "optimizer.safetensors"), device=str(device)),
                         meta["optimizer"])
    scheduler.load_state_dict(meta["scheduler"] | {"lr_lambdas": [None] * len(optimizer.param_groups)})
    _set_rng_state(load_file(str(folder / "rng.safetensors")), meta["rng"], generators)
    best_path = folder / "best.safetensors"
    best = load_file(str(best_path)) if best_path.exists() else None
    return LoopState(**meta["loop"]), best


def clear_state(out_dir: Path) -> None:
    shutil.rmtree(Path(out_dir) / RESUME_DIR, ignore_errors=True)

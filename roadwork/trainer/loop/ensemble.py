"""Training an ensemble: each member trained as a run of its own, then combined on the shared validation split
and saved as one ensemble checkpoint (`roadwork.trainer.model.ensemble` holds the model and its checkpoint)."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from roadwork.trainer.config import TrainConfig
from roadwork.trainer.data.records import ReadReport, read_records, split_records
from roadwork.trainer.eval.metrics import binary_metrics
from roadwork.trainer.loop.train import predict_probs, to_tensors, train
from roadwork.trainer.model.checkpoint import load_checkpoint
from roadwork.trainer.model.ensemble import (
    COMBINES,
    EnsembleClassifier,
    fit_weights,
    log_loss,
    member_name,
    save_ensemble,
)


@dataclass(frozen=True)
class MemberResult:
    name: str  # kind:seed
    kind: str  # the backbone kind, or its Hugging Face id
    seed: int
    overrides: dict[str, Any]
    checkpoint_dir: Path
    val_mcc: float  # on the ensemble's validation split
    weight: float
    metrics: dict[str, Any]  # the member's own training metrics


@dataclass(frozen=True)
class EnsembleResult:
    checkpoint_dir: Path
    combine: str
    weights: list[float]
    bias: float
    metrics: dict[str, Any]  # validation metrics of the ensemble, plus member_val_mcc
    members: list[MemberResult]
    data_fingerprint: str
    read_report: ReadReport
    n_train: int
    n_val: int
    seconds: float


@torch.no_grad()
def _member_logits(model: EnsembleClassifier, images: torch.Tensor, batch_size: int = 128) -> np.ndarray:
    chunks = [model.member_logits(images[i : i + batch_size]).double() for i in range(0, len(images), batch_size)]
    return torch.cat(chunks).numpy()  # (N, M)


def train_ensemble(
    config: TrainConfig,
    data_path: Path,
    out_dir: Path,
    members: list[dict[str, Any]],
    combine: str = "mean",
    *,
    hard_negative_ids: Sequence[str] = (),
    oversample: int = 3,
    show_progress: bool = True,
    log: Callable[[str], None] = print,
) -> EnsembleResult:
    """Train each member (`config` with its overrides) into `out_dir/members/<i>`, combine them by `combine`
    on the shared validation split, and save the ensemble checkpoint to `out_dir/ensemble`.

    Members may change the model and the optimiser, not the data section: they must see the same split, or one
    member's training rows would sit in the validation split the weights are fitted on."""
    if combine not in COMBINES:
        raise ValueError(f"combine must be one of {COMBINES}, got {combine!r}")
    if len(members) < 2:
        raise ValueError(f"an ensemble needs at least 2 members, got {len(members)}")
    configs = [config.with_overrides(m) for m in members]
    for overrides, cfg in zip(members, configs, strict=True):
        if cfg.data != config.data:
            raise ValueError(f"member {overrides}: members must share the data section (same images and split)")
    started = time.perf_counter()
    out_dir = Path(out_dir)
    results = []
    for i, cfg in enumerate(configs):
        log(f"member {i + 1}/{len(configs)}: {member_name(cfg)}")
        results.append(train(cfg, data_path, out_dir / "members" / str(i), hard_negative_ids=hard_negative_ids,
                             oversample=oversample, show_progress=show_progress, log=log))

    records, _ = read_records(Path(data_path))
    _, val = split_records(records, config.data.val_fraction, config.data.split_seed)
    x_val, y_val = to_tensors(val, config.data.image_size)
    model = EnsembleClassifier([load_checkpoint(r.checkpoint_dir)[0] for r in results])
    logits = _member_logits(model, x_val)  # (N_val, M)
    weights, bias = fit_weights(logits, y_val.numpy()) if combine == "learned" else (list(model.weights), 0.0)
    model.set_combination(weights, bias, combine)
    labels = y_val.numpy()
    member_probs = torch.sigmoid(torch.from_numpy(logits)).numpy()  # (N_val, M)
    member_mcc = [binary_metrics(labels, member_probs[:, i])["mcc"] for i in range(len(results))]
    metrics = {f"val_{k}": v for k, v in binary_metrics(labels, predict_probs(model, x_val)).items()}
    metrics |= {"val_log_loss": log_loss(logits @ np.asarray(weights) + bias, labels), "member_val_mcc": member_mcc}
    fingerprint = results[0].data_fingerprint
    ckpt = save_ensemble(out_dir / "ensemble", [r.checkpoint_dir for r in results], combine, weights, bias,
                         {"metrics": metrics, "data_fingerprint": fingerprint})
    return EnsembleResult(
        checkpoint_dir=ckpt, combine=combine, weights=weights, bias=bias, metrics=metrics,
        members=[MemberResult(member_name(c), c.model.backbone or c.model.kind, c.optim.seed, dict(o),
                              r.checkpoint_dir, mcc, w, r.metrics)
                 for c, o, r, mcc, w in zip(configs, members, results, member_mcc, weights, strict=True)],
        data_fingerprint=fingerprint, read_report=results[0].read_report, n_train=results[0].n_train,
        n_val=len(val), seconds=time.perf_counter() - started,
    )

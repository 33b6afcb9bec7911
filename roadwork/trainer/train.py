"""The minimal training loop: AdamW, warm-up then cosine, best-validation-MCC checkpoint, a progress bar."""

from __future__ import annotations

import hashlib
import math
import random
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from torch.nn import functional as F

from roadwork.trainer.checkpoint import save_checkpoint
from roadwork.trainer.config import TrainConfig
from roadwork.trainer.data import ImageDataset, Record, ReadReport, read_records, split_records
from roadwork.trainer.metrics import binary_metrics
from roadwork.trainer.model import RoadworkClassifier, build_model


@dataclass(frozen=True)
class TrainResult:
    checkpoint_dir: Path
    metrics: dict[str, Any]  # validation metrics of the saved (best) epoch
    history: list[dict[str, Any]]
    data_fingerprint: str
    read_report: ReadReport
    n_train: int
    n_val: int
    seconds: float
    hard_negative_ids: list[str] = field(default_factory=list)


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def pick_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise RuntimeError("optim.device is 'cuda' but no CUDA device is available; use 'auto' or 'cpu'")
    return torch.device(name)


def data_fingerprint(records: Sequence[Record]) -> str:
    """sha256 over (id, label, image sha256) of every record, in id order: names the data a model saw."""
    digest = hashlib.sha256()
    for rec in sorted(records, key=lambda r: r.id):
        digest.update(f"{rec.id}\t{rec.label}\t{hashlib.sha256(rec.image_bytes).hexdigest()}\n".encode())
    return digest.hexdigest()


def to_tensors(records: Sequence[Record], image_size: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Decode every record once: images (N, 3, S, S) float in [0, 1], labels (N,) float."""
    dataset = ImageDataset(list(records), image_size)
    if len(dataset) == 0:
        return torch.zeros(0, 3, image_size, image_size), torch.zeros(0)
    images, labels = zip(*(dataset[i] for i in range(len(dataset))), strict=True)
    return torch.stack(images), torch.stack(labels).float()


def lr_at(step: int, total: int, warmup: int) -> float:
    """Learning-rate multiplier: linear warm-up, then cosine to zero (a pure function of the step)."""
    if step < warmup:
        return (step + 1) / warmup
    progress = (step - warmup) / max(1, total - warmup)
    return 0.5 * (1.0 + math.cos(math.pi * min(1.0, progress)))


@torch.no_grad()
def predict_probs(model: RoadworkClassifier, images: torch.Tensor, batch_size: int = 128) -> np.ndarray:
    """Roadwork probability per image, in [0, 1]."""
    model.eval()
    device = next(model.parameters()).device
    out = [
        torch.sigmoid(model(images[i : i + batch_size].to(device))).float().cpu()
        for i in range(0, len(images), batch_size)
    ]
    return torch.cat(out).numpy() if out else np.zeros(0)


def train(
    config: TrainConfig,
    data_path: Path,
    out_dir: Path,
    *,
    hard_negative_ids: Sequence[str] = (),
    oversample: int = 3,
    show_progress: bool = True,
    log: Callable[[str], None] = print,
) -> TrainResult:
    """Train on `data_path` (NATIX parquet), keep the epoch with the best validation MCC, save it to `out_dir`.

    Records whose id is in `hard_negative_ids` appear `oversample` times per epoch.
    """
    started = time.perf_counter()
    opt = config.optim
    seed_everything(opt.seed)
    if opt.num_threads:
        torch.set_num_threads(opt.num_threads)
    device = pick_device(opt.device)

    records, report = read_records(Path(data_path))
    skipped = sum(report.skipped.values())
    if skipped:
        log(f"skipped {skipped} bad rows of {report.n_read}: {report.skipped}")
    train_recs, val_recs = split_records(records, config.data.val_fraction, config.data.split_seed)
    if not train_recs or not val_recs:
        raise ValueError(f"{data_path}: too few usable rows to train ({len(records)} after skipping bad ones)")
    hard = set(hard_negative_ids)
    if hard:
        extra = [r for r in train_recs if r.id in hard] * max(0, oversample - 1)
        log(f"oversampling {len(extra) // max(1, oversample - 1)} hard negatives x{oversample}")
        train_recs = train_recs + extra

    size = config.data.image_size
    x_train, y_train = to_tensors(train_recs, size)
    x_val, y_val = to_tensors(val_recs, size)

    model = build_model(config.model, size).to(device)
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=opt.lr, weight_decay=opt.weight_decay)
    steps_per_epoch = math.ceil(len(x_train) / opt.batch_size)
    total = steps_per_epoch * opt.epochs
    warmup = int(total * opt.warmup_fraction)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: lr_at(s, total, warmup))
    generator = torch.Generator().manual_seed(opt.seed)

    history: list[dict[str, Any]] = []
    best: tuple[float, int, dict[str, torch.Tensor]] | None = None
    columns = (TextColumn("[bold]train"), BarColumn(), MofNCompleteColumn(), TextColumn("{task.fields[status]}"))
    with Progress(*columns, TimeElapsedColumn(), disable=not show_progress, transient=False) as bar:
        task = bar.add_task("train", total=total, status="")
        for epoch in range(opt.epochs):
            model.train()
            order = torch.randperm(len(x_train), generator=generator)
            losses = []
            for i in range(0, len(order), opt.batch_size):
                idx = order[i : i + opt.batch_size]
                xb, yb = x_train[idx].to(device), y_train[idx].to(device)
                if opt.hflip:
                    flip = torch.rand(len(idx), generator=generator) < 0.5
                    xb[flip.to(device)] = xb[flip.to(device)].flip(-1)
                loss = F.binary_cross_entropy_with_logits(model(xb), yb)
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                torch.nn.utils.clip_grad_norm_(params, 1.0)
                optimizer.step()
                scheduler.step()
                losses.append(loss.item())
                bar.update(task, advance=1, status=f"epoch {epoch + 1}/{opt.epochs} loss {loss.item():.3f}")
            val = binary_metrics(y_val.numpy(), predict_probs(model, x_val))
            history.append({"epoch": epoch + 1, "loss": float(np.mean(losses)), "val_mcc": val["mcc"],
                            "val_accuracy": val["accuracy"]})
            bar.update(task, status=f"epoch {epoch + 1}/{opt.epochs} val MCC {val['mcc']:.3f}")
            if best is None or val["mcc"] > best[0]:
                best = (val["mcc"], epoch + 1, {k: v.detach().clone() for k, v in model.state_dict().items()})

    assert best is not None
    model.load_state_dict(best[2])
    val = binary_metrics(y_val.numpy(), predict_probs(model, x_val))
    metrics = {"val_" + k: v for k, v in val.items()} | {"best_epoch": best[1]}
    fingerprint = data_fingerprint(records)
    extra = {"metrics": metrics, "history": history, "data_fingerprint": fingerprint, "image_size": size}
    save_checkpoint(out_dir, model.cpu(), config, extra)
    return TrainResult(
        checkpoint_dir=out_dir,
        metrics=metrics,
        history=history,
        data_fingerprint=fingerprint,
        read_report=report,
        n_train=len(train_recs),
        n_val=len(val_recs),
        seconds=time.perf_counter() - started,
        hard_negative_ids=sorted(hard),
    )

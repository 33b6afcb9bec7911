"""Distillation: a stock-architecture student learns the teacher's calibrated probabilities.

The teacher is any model version (single, multi-view, ensemble) seen through its `Predictor`: its CALIBRATED
probability of roadwork is the soft target. The loss of one image is

    alpha * T^2 * KL(teacher_T || student_T) + (1 - alpha) * CE(student, label)

where `_T` means "at temperature T" (the teacher's two-class distribution is [1 - p, p], its logit difference
logit(p) is divided by T). The data are whatever images the caller hands over: the platform gives the training
images AND validator-style renders of them (the replay's own renderer), because the student must handle what
validators send. Every input goes through the student's own image processor (`pixel_values`), the stock
pipeline's preprocessing. After training, the student's own cut is fitted on the validation images
(`fit_calibration`, the MCC-best threshold) and baked into the head (`shift_threshold`), so the stock
pipeline's 0.5 is the calibrated cut.

Deterministic for a given seed (model init, order of batches), on one device.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
)

from roadwork.trainer.eval.calibration import fit_calibration
from roadwork.trainer.eval.metrics import binary_metrics
from roadwork.trainer.eval.predict import Predictor
from roadwork.trainer.student.model import (
    pixel_values,
    roadwork_probability,
    shift_threshold,
)

EPS = 1e-6  # teacher probabilities are clipped to [EPS, 1 - EPS] before taking their logit


@dataclass(frozen=True)
class DistillConfig:
    """The knobs of a distillation run (settings `distill.*`)."""

    epochs: int = 3
    lr: float = 5e-4
    batch_size: int = 32
    alpha: float = 0.7  # weight of the KL term; 1 - alpha weighs the hard-label cross-entropy
    temperature: float = 1.0
    render_copies: int = 2  # validator-style renders per training image, besides the image itself
    weight_decay: float = 0.01
    image_size: int = 224  # the student's input size (validators send 224 px)
    seed: int = 0

    def __post_init__(self) -> None:
        checks = {"epochs": self.epochs >= 1, "lr": self.lr > 0, "batch_size": self.batch_size >= 1,
                  "alpha": 0.0 <= self.alpha <= 1.0, "temperature": self.temperature > 0,
                  "render_copies": self.render_copies >= 0, "weight_decay": self.weight_decay >= 0,
                  "image_size": self.image_size >= 16, "seed": self.seed >= 0}
        bad = [name for name, ok in checks.items() if not ok]
        if bad:
            raise ValueError(f"distill.{bad[0]}: invalid value {getattr(self, bad[0])!r}")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class DistillSet:
    """Images with their labels and (for training) the teacher's calibrated probability of roadwork."""

    images: list[Image.Image]
    labels: np.ndarray  # (N,) int 0/1
    soft: np.ndarray | None = None  # (N,) teacher's calibrated probabilities, training only

    def __len__(self) -> int:
        return len(self.images)


@dataclass(frozen=True)
class DistillResult:
    model: torch.nn.Module  # shifted: softmax > 0.5 exactly where the raw softmax was > threshold
    processor: Any
    threshold: float  # the calibrated cut baked into the head
    history: list[dict[str, float]]  # per epoch: loss, kl, ce, val_mcc (at 0.5, before the shift)
    metrics: dict[str, Any]  # the student on the validation images after the shift, plus the fit
    seconds: float
    n_train: int
    n_val: int
    config: dict[str, Any] = field(default_factory=dict)


def teacher_targets(teacher: Predictor, images: Sequence[Image.Image], batch_size: int = 64) -> np.ndarray:
    """The teacher's calibrated probability of roadwork for each image (what it would answer a validator)."""
    out = [teacher.predict(images[i : i + batch_size]) for i in range(0, len(images), batch_size)]
    return np.concatenate(out) if out else np.zeros(0)


def distill_loss(logits: torch.Tensor, soft: torch.Tensor, labels: torch.Tensor, alpha: float,
                 temperature: float) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(total, KL term, CE term) of a batch: `logits` (B, 2) of the student, `soft` (B,) teacher probabilities."""
    p = soft.clamp(EPS, 1 - EPS)
    teacher_logit = torch.log(p) - torch.log1p(-p)
    target = torch.sigmoid(teacher_logit / temperature)
    target = torch.stack([1 - target, target], dim=1)
    log_student = F.log_softmax(logits.float() / temperature, dim=1)
    kl = F.kl_div(log_student, target, reduction="batchmean") * temperature**2
    ce = F.cross_entropy(logits.float(), labels)
    return alpha * kl + (1 - alpha) * ce, kl, ce


@torch.no_grad()
def student_probs(model: torch.nn.Module, processor: Any, images: Sequence[Image.Image],
                  batch_size: int = 64) -> np.ndarray:
    """The stock pipeline's score (softmax of "Roadwork") for each image."""
    model.eval()
    out = [roadwork_probability(model(pixel_values=pixel_values(processor, images[i : i + batch_size])).logits)
           .double().numpy() for i in range(0, len(images), batch_size)]
    return np.concatenate(out) if out else np.zeros(0)


def _cosine(step: int, total: int, warmup: int) -> float:
    if step < warmup:
        return (step + 1) / warmup
    return 0.5 * (1.0 + math.cos(math.pi * min(1.0, (step - warmup) / max(1, total - warmup))))


def distill_student(
    model: torch.nn.Module,
    processor: Any,
    train: DistillSet,
    val: DistillSet,
    config: DistillConfig,
    *,
    show_progress: bool = True,
    log: Callable[[str], None] = print,
) -> DistillResult:
    """Train `model` on `train` (with `train.soft`), fit its cut on `val`, shift its head; returns it shifted."""
    if train.soft is None or len(train.soft) != len(train):
        raise ValueError("train: every training image needs the teacher's probability")
    if len(train) == 0 or len(val) == 0:
        raise ValueError("distillation needs training and validation images")
    if len(set(val.labels.tolist())) < 2:
        raise ValueError("validation images: both labels are needed to fit the cut")
    start = time.perf_counter()
    torch.manual_seed(config.seed)
    order_rng = np.random.default_rng(config.seed)
    optimizer = torch.optim.AdamW(model.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    steps_per_epoch = math.ceil(len(train) / config.batch_size)
    total = steps_per_epoch * config.epochs
    schedule = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda s: _cosine(s, total, max(1, total // 20)))
    soft = torch.as_tensor(train.soft, dtype=torch.float32)
    labels = torch.as_tensor(train.labels, dtype=torch.long)
    history: list[dict[str, float]] = []
    columns = (TextColumn("distill epoch {task.fields[epoch]}"), BarColumn(), MofNCompleteColumn(),
               TextColumn("{task.fields[status]}"))
    with Progress(*columns, TimeElapsedColumn(), disable=not show_progress, transient=False) as bar:
        task = bar.add_task("distill", total=total, epoch=f"1/{config.epochs}", status="")
        for epoch in range(config.epochs):
            model.train()
            order = order_rng.permutation(len(train))
            sums = np.zeros(3)
            for b in range(steps_per_epoch):
                idx = order[b * config.batch_size : (b + 1) * config.batch_size]
                x = pixel_values(processor, [train.images[i] for i in idx])
                logits = model(pixel_values=x).logits
                loss, kl, ce = distill_loss(logits, soft[idx], labels[idx], config.alpha, config.temperature)
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
                schedule.step()
                sums += np.array([loss.item(), kl.item(), ce.item()]) * len(idx)
                bar.update(task, advance=1, epoch=f"{epoch + 1}/{config.epochs}", status=f"loss {loss.item():.3f}")
            probs = student_probs(model, processor, val.images)
            val_mcc = binary_metrics(val.labels, probs)["mcc"]
            loss_avg, kl_avg, ce_avg = (sums / len(train)).tolist()
            history.append({"epoch": epoch + 1, "loss": loss_avg, "kl": kl_avg, "ce": ce_avg, "val_mcc": val_mcc})
            bar.update(task, status=f"loss {loss_avg:.3f}, val MCC {val_mcc:.3f}")
            log(f"epoch {epoch + 1}/{config.epochs}: loss {loss_avg:.4f} (KL {kl_avg:.4f}, CE {ce_avg:.4f}), "
                f"val MCC {val_mcc:.3f} at 0.5 before the shift")
    raw = student_probs(model, processor, val.images)
    threshold = fit_calibration(val.labels, raw).threshold
    shift_threshold(model, threshold)
    model.eval()
    after = student_probs(model, processor, val.images)
    metrics = {f"val_{k}": v for k, v in binary_metrics(val.labels, after).items()}
    metrics |= {"val_mcc_before_shift": binary_metrics(val.labels, raw)["mcc"], "threshold": threshold}
    log(f"student cut {threshold:.4f} on {len(val)} validation images baked into the head: "
        f"val MCC {metrics['val_mcc_before_shift']:.3f} at 0.5 -> {metrics['val_mcc']:.3f}")
    return DistillResult(model, processor, threshold, history, metrics, time.perf_counter() - start, len(train),
                         len(val), config.to_dict())

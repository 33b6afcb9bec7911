"""The training loop: focal + consistency (+ weather, Dice, MoE) losses, AdamW / Lion / Sophia-H, warm-up then
cosine, bf16 autocast on CUDA, gradient accumulation, optional torch.compile, DoRA (one or two stages),
GPS-weighted sampling, kornia batch augmentation, early stopping on validation MCC, resumable state, DDP
under torchrun, a progress bar with loss and MCC.

The weights kept are those of the epoch with the best validation MCC, measured as the competition would
(pixels only, metadata missing).
"""

from __future__ import annotations

import contextlib
import math
import random
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from torch import nn
from torch.nn.attention import SDPBackend, sdpa_kernel

from roadwork.trainer.loop import distributed as dist
from roadwork.trainer.data.augment import AugmentConfig, Augmenter
from roadwork.trainer.data.batches import PreparedData, Split, data_fingerprint, decode_images, prepare_data
from roadwork.trainer.model.checkpoint import save_checkpoint
from roadwork.trainer.config import TrainConfig
from roadwork.trainer.data.images import BadImageError, center_square, decode_image
from roadwork.trainer.data.records import ReadReport, Record, read_records
from roadwork.trainer.loop.losses import LossWeights, total_loss
from roadwork.trainer.eval.metrics import binary_metrics
from roadwork.trainer.model.classifier import build_model
from roadwork.trainer.model.multiview import MetadataBatch, MultiViewClassifier
from roadwork.trainer.loop.optim import build_optimizer
from roadwork.trainer.loop.state import LoopState, clear_state, has_state, load_state, save_state

__all__ = ["TrainResult", "data_fingerprint", "lr_at", "predict_probs", "to_tensors", "train"]


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
    report: dict[str, Any] = field(default_factory=dict)  # parameter counts, sampling report, DoRA stage 1, ...


class Interrupted(RuntimeError):
    """Raised by an `on_epoch_end` hook to stop a run (its state stays resumable)."""


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


def to_tensors(records: Sequence[Record], image_size: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Decode every record once: images (N, 3, S, S) float in [0, 1], labels (N,) float."""
    images, labels = decode_images(records, image_size)
    return images.float().div_(255.0), labels


def lr_at(step: int, total: int, warmup: int) -> float:
    """Learning-rate multiplier: linear warm-up, then cosine to zero (a pure function of the step)."""
    if step < warmup:
        return (step + 1) / warmup
    progress = (step - warmup) / max(1, total - warmup)
    return 0.5 * (1.0 + math.cos(math.pi * min(1.0, progress)))


def autocast(device: torch.device, precision: str) -> contextlib.AbstractContextManager:
    """bf16 autocast on CUDA (precision auto or bf16); fp32 otherwise (CPU bf16 is slower than fp32 here)."""
    if device.type == "cuda" and precision in ("auto", "bf16"):
        return torch.autocast("cuda", dtype=torch.bfloat16)
    return contextlib.nullcontext()


@torch.no_grad()
def predict_probs(model: nn.Module, images: torch.Tensor, batch_size: int = 128, precision: str = "fp32") -> np.ndarray:
    """Roadwork probability per image, in [0, 1]; images float in [0, 1] or uint8."""
    model.eval()
    device = next(model.parameters()).device
    out = []
    for i in range(0, len(images), batch_size):
        x = images[i : i + batch_size].to(device)
        x = x.float().div_(255.0) if x.dtype == torch.uint8 else x
        with autocast(device, precision):
            out.append(torch.sigmoid(model(x).float()).cpu())
    return torch.cat(out).numpy() if out else np.zeros(0)


def augmenter_for(config: TrainConfig) -> Augmenter | None:
    """The batch augmenter of the config (probabilities times `strength`), or None when switched off."""
    section = config.augment
    if not section.enabled:
        return None
    names = {f.name for f in fields(AugmentConfig)}
    unknown = set(section.probabilities) - names
    if unknown:
        raise ValueError(f"augment.probabilities: unknown keys {sorted(unknown)}; known: {sorted(names)}")
    base = AugmentConfig(**section.probabilities)
    scaled = {n: getattr(base, n) * section.strength for n in names if n.endswith("_p")}
    return Augmenter(replace(base, **scaled), seed=config.optim.seed + 7)


def loss_weights(config: TrainConfig) -> LossWeights:
    c = config.loss
    return LossWeights(consistency=c.consistency, weather=c.weather, segmentation=c.segmentation, moe=c.moe,
                       gamma=c.gamma, alpha=c.alpha, label_smoothing=c.label_smoothing)


def unwrap(model: nn.Module) -> nn.Module:
    """The model inside DDP's and torch.compile's wrappers."""
    model = model.module if isinstance(model, nn.parallel.DistributedDataParallel) else model
    return getattr(model, "_orig_mod", model)


def batch_loss(model: nn.Module, images: torch.Tensor, labels: torch.Tensor, metadata: MetadataBatch,
               weights: LossWeights, masks: torch.Tensor | None = None, mask_valid: torch.Tensor | None = None,
               ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """The training loss of one batch for either architecture; (total, unweighted terms). `masks` (B, 1, S, S)
    with `mask_valid` (B,) train the segmentation head where the row has a mask."""
    if isinstance(unwrap(model), MultiViewClassifier):
        out = model(images, metadata, return_all=True)  # through the wrapper: DDP syncs what forward touched
        return total_loss(logits=out["logits"], targets=labels, weights=weights, view_logits=out["view_logits"],
                          weather_logits=out["weather_logits"], weather_labels=metadata.weather,
                          mask_logits=out["mask_logits"], masks=masks, mask_valid=mask_valid,
                          moe_loss=out["moe_loss"])
    return total_loss(logits=model(images), targets=labels, weights=weights)


# ------------------------------------------------------------------------------------------------- model


def _backbone_mode_setup(model: nn.Module, config: TrainConfig, data: PreparedData, device: torch.device,
                         generator: torch.Generator, log: Callable[[str], None]) -> dict[str, Any]:
    """Apply DoRA to a multi-view model's backbone (after a stage-1 domain adaptation when configured);
    returns what to report (trainable parameter counts, stage-1 losses)."""
    from roadwork.trainer.model.backbone import DoRAStages, apply_dora, trainable_parameters  # noqa: PLC0415

    report: dict[str, Any] = {}
    if not isinstance(model, MultiViewClassifier) or config.model.backbone_mode != "dora":
        return report
    spec = model.backbone.cfg
    dora = config.model.dora
    if dora.domain_steps > 0:
        stages = DoRAStages(model.backbone, spec)
        stages.domain_model.to(device)
        images = domain_images(config, data)
        batches = _domain_batches(model, images, config.optim.batch_size, device, generator)
        losses = stages.train_domain(batches, steps=dora.domain_steps, lr=dora.domain_lr, generator=generator)
        report["dora_stage1"] = {"steps": len(losses), "first_loss": losses[0], "last_loss": losses[-1],
                                 "images": len(images)}
        log(f"DoRA stage 1: {len(losses)} steps on {len(images)} images, loss {losses[0]:.4f} -> {losses[-1]:.4f}")
        model.backbone = stages.begin_task()
    else:
        model.backbone = apply_dora(model.backbone, spec)
    trainable, total = trainable_parameters(model.backbone)
    report["backbone_trainable_params"], report["backbone_params"] = trainable, total
    log(f"DoRA: {trainable:,} of {total:,} backbone parameters train ({trainable / total:.2%})")
    return report


def domain_images(config: TrainConfig, data: PreparedData) -> torch.Tensor:
    """Stage-1 images (uint8): the training split plus `model.dora.domain_data` (labels not used)."""
    extra = config.model.dora.domain_data
    if not extra:
        return data.train.images
    return torch.cat((data.train.images, unlabelled_images(extra, config.data.image_size)))


IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".webp")


def unlabelled_images(source: str | Path, size: int) -> torch.Tensor:
    """Images (N, 3, S, S) uint8 of a stage-1 pool: a plain folder of image files (no labels needed; files
    that do not decode are skipped), or any dataset `read_records` reads (its rows' images)."""
    folder = Path(source)
    is_plain = folder.is_dir() and not any(folder.rglob("*.parquet")) and not (folder / "metadata.jsonl").exists()
    if not is_plain:
        records, _ = read_records(source)
        return decode_images(records, size)[0]
    arrays = []
    for path in sorted(p for p in folder.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES):
        try:
            arrays.append(np.asarray(center_square(decode_image(path.read_bytes()), size), dtype=np.uint8))
        except BadImageError:
            continue
    if not arrays:
        raise ValueError(f"model.dora.domain_data: no decodable images in {folder}")
    return torch.from_numpy(np.stack(arrays)).permute(0, 3, 1, 2).contiguous()  # (N, 3, S, S)


def _domain_batches(model: MultiViewClassifier, images: torch.Tensor, batch_size: int, device: torch.device,
                    generator: torch.Generator):
    """Endless batches of normalised views (random view per image) for the backbone's stage 1."""
    while True:
        order = torch.randperm(len(images), generator=generator)
        for i in range(0, len(order), batch_size):
            x = images[order[i : i + batch_size]].to(device).float().div_(255.0)
            views = model.views(x)  # (b, V, 3, S, S), normalised
            pick = torch.randint(views.shape[1], (len(x),), generator=generator).to(device)
            yield views[torch.arange(len(x), device=device), pick]  # (b, 3, S, S)


def _merged_for_saving(model: MultiViewClassifier | nn.Module) -> nn.Module:
    """The model with any DoRA adapters folded into the backbone weights (what checkpoints and exports hold)."""
    from peft import PeftModel  # noqa: PLC0415

    from roadwork.trainer.model.backbone import merge_adapters  # noqa: PLC0415

    if isinstance(getattr(model, "backbone", None), PeftModel):
        model.backbone = merge_adapters(model.backbone)
    return model


# -------------------------------------------------------------------------------------------------- loop


def epoch_order(split: Split, generator: torch.Generator, rank: int = 0, world: int = 1) -> torch.Tensor:
    """The row order of one epoch: GPS-weighted draws with replacement when the split has weights, else a
    shuffle; under DDP each rank takes every world-th row of the same order (all ranks draw identically)."""
    n = len(split)
    if split.weights is not None:
        order = torch.multinomial(split.weights, n, replacement=True, generator=generator)
    else:
        order = torch.randperm(n, generator=generator)
    if world > 1:
        order = order[: n - n % world][rank::world]  # equal length on every rank, so steps stay in lockstep
    return order


def epoch_length(n: int, world: int = 1) -> int:
    """Rows one rank sees per epoch: `len(epoch_order(...))` without drawing the order."""
    return n // world if world > 1 else n


def train(
    config: TrainConfig,
    data_path: Path,
    out_dir: Path,
    *,
    hard_negative_ids: Sequence[str] = (),
    oversample: int = 3,
    resume: bool = False,
    keep_state: bool = False,
    show_progress: bool = True,
    log: Callable[[str], None] = print,
    on_epoch_end: Callable[[int], None] | None = None,
) -> TrainResult:
    """Train on `data_path`, keep the epoch with the best validation MCC, save it to `out_dir`.

    With `resume`, continue from `out_dir`'s resumable state when there is one (a state whose training already
    finished runs no more epochs: the checkpoint is rebuilt from it). The state is removed once the checkpoint
    is saved, unless `keep_state`: then the caller removes it (`clear_state`) when the result is safe, e.g.
    registered. Under torchrun (WORLD_SIZE > 1) this runs data-parallel; rank 0 writes the checkpoint.
    `on_epoch_end(epoch)` runs after each epoch's state is saved (raise `Interrupted` to stop)."""
    started = time.perf_counter()
    out_dir = Path(out_dir)
    opt = config.optim
    seed_everything(opt.seed)
    if opt.num_threads:
        torch.set_num_threads(opt.num_threads)
    ddp = dist.setup(opt.device)
    device = ddp.device if ddp.enabled else pick_device(opt.device)
    if not ddp.is_main:
        show_progress, log = False, (lambda _: None)

    data = prepare_data(config, data_path, hard_negative_ids=hard_negative_ids, oversample=oversample, log=log)
    vocab = data.vocab
    model = build_model(config.model, config.data.image_size, vocab_sizes=data.vocab_sizes).to(device)
    generator = torch.Generator().manual_seed(opt.seed)
    report = _backbone_mode_setup(model, config, data, device, generator, log)
    model.to(device)
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    report |= {"trainable_params": trainable, "params": sum(p.numel() for p in model.parameters())}
    if data.sampling_report is not None:
        report["gps_sampling"] = data.sampling_report

    optimizer = build_optimizer(opt.optimizer, model, lr=opt.lr, weight_decay=opt.weight_decay)
    steps_per_epoch = math.ceil(epoch_length(len(data.train), ddp.world) / (opt.batch_size * opt.grad_accum))
    total = steps_per_epoch * opt.epochs
    warmup = int(total * opt.warmup_fraction)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: lr_at(s, total, warmup))
    augmenter = augmenter_for(config)
    generators = {"order": generator} | ({"augment": augmenter.generator} if augmenter is not None else {})

    loop, best = LoopState(), None
    if resume and has_state(out_dir):
        loop, best = load_state(out_dir, config=config, model=model, optimizer=optimizer, scheduler=scheduler,
                                generators=generators, device=device)
        log(f"resuming after epoch {loop.epoch} (step {loop.step})")
    runner: nn.Module = model
    if opt.compile:
        runner = torch.compile(runner)
    if ddp.enabled:
        runner = ddp.wrap(runner)
    weights = loss_weights(config)

    columns = (TextColumn("[bold]train"), BarColumn(), MofNCompleteColumn(), TextColumn("{task.fields[status]}"))
    # a resumed state that had stopped early is finished: no more epochs
    last_epoch = loop.epoch if _stopped_early(loop, opt.early_stopping) else opt.epochs
    with Progress(*columns, TimeElapsedColumn(), disable=not show_progress, transient=False) as bar:
        task = bar.add_task("train", total=total, completed=loop.step, status="")
        for epoch in range(loop.epoch, last_epoch):
            losses = _train_epoch(runner, model, optimizer, scheduler, data.train, augmenter, weights, config,
                                  device, generator, ddp, loop, lambda status: bar.update(task, advance=1,
                                  status=f"epoch {epoch + 1}/{opt.epochs} {status}"))
            val = binary_metrics(data.val.labels.numpy(), predict_probs(model, data.val.images, precision=opt.precision))
            loop.epoch = epoch + 1
            loop.history.append({"epoch": epoch + 1, "loss": float(np.mean(losses)), "val_mcc": val["mcc"],
                                 "val_accuracy": val["accuracy"], "lr": scheduler.get_last_lr()[0]})
            if loop.best_mcc is None or val["mcc"] > loop.best_mcc:
                loop.best_mcc, loop.best_epoch, loop.epochs_without_gain = val["mcc"], epoch + 1, 0
                best = {k: v.detach().to("cpu", copy=True) for k, v in model.state_dict().items()}
            else:
                loop.epochs_without_gain += 1
            # this epoch's val MCC and the best so far (the weights kept), each labelled: they differ often
            bar.update(task, status=f"epoch {epoch + 1}/{opt.epochs} loss {np.mean(losses):.3f} "
                                    f"val MCC {val['mcc']:.3f} (best {loop.best_mcc:.3f} at {loop.best_epoch})")
            if ddp.is_main:
                save_state(out_dir, config=config, loop=loop, model=model, best=best, optimizer=optimizer,
                           scheduler=scheduler, generators=generators)
            ddp.barrier()
            if on_epoch_end is not None:
                on_epoch_end(epoch + 1)
            if _stopped_early(loop, opt.early_stopping):
                log(f"early stop: no better val MCC for {opt.early_stopping} epochs (best {loop.best_mcc:.3f} "
                    f"at epoch {loop.best_epoch})")
                break

    assert best is not None
    model.load_state_dict(best)
    val = binary_metrics(data.val.labels.numpy(), predict_probs(model, data.val.images, precision=opt.precision))
    metrics = {"val_" + k: v for k, v in val.items()} | {"best_epoch": loop.best_epoch, "epochs_run": loop.epoch}
    report["weights_sha256"] = dist.state_digest(model)
    if ddp.enabled:
        report |= ddp.check_replicas(model, out_dir.parent / "ddp")
    fingerprint = data_fingerprint(data.records)
    if ddp.is_main:
        model = _merged_for_saving(model)
        extra = {"metrics": metrics, "history": loop.history, "data_fingerprint": fingerprint,
                 "image_size": config.data.image_size, "report": report}
        if vocab is not None:
            extra["metadata_vocab"] = vocab.to_json()
        save_checkpoint(out_dir, model.cpu(), config, extra)
        if not keep_state:
            clear_state(out_dir)
    ddp.teardown()
    return TrainResult(
        checkpoint_dir=out_dir,
        metrics=metrics,
        history=loop.history,
        data_fingerprint=fingerprint,
        read_report=data.read_report,
        n_train=len(data.train),
        n_val=len(data.val),
        seconds=time.perf_counter() - started,
        hard_negative_ids=data.hard_negative_ids,
        report=report,
    )


def _stopped_early(loop: LoopState, patience: int) -> bool:
    return bool(patience) and loop.epochs_without_gain >= patience


def _train_epoch(runner: nn.Module, model: nn.Module, optimizer: torch.optim.Optimizer,
                 scheduler: torch.optim.lr_scheduler.LRScheduler, split: Split, augmenter: Augmenter | None,
                 weights: LossWeights, config: TrainConfig, device: torch.device, generator: torch.Generator,
                 ddp: dist.DDPContext, loop: LoopState, progress: Callable[[str], None]) -> list[float]:
    """One pass over the training split; returns the loss of every optimiser step."""
    opt = config.optim
    runner.train()
    order = epoch_order(split, generator, ddp.rank, ddp.world)
    params = [p for p in model.parameters() if p.requires_grad]
    sophia = hasattr(optimizer, "update_hessian")
    chunk = opt.batch_size * opt.grad_accum
    losses: list[float] = []
    for start in range(0, len(order), chunk):
        micro = order[start : start + chunk].split(opt.batch_size)
        need_hessian = sophia and optimizer.needs_hessian()
        step_loss = 0.0
        for i, idx in enumerate(micro):
            images, labels, metadata = split.batch(idx, device)
            masks, mask_valid = split.masks_for(idx, device)
            if augmenter is not None:
                images = augmenter(images)
                masks = mask_valid = None  # the augmenter moves pixels; the masks would no longer line up
            elif opt.hflip:
                flip = (torch.rand(len(idx), generator=generator) < 0.5).to(device)
                images = torch.where(flip.view(-1, 1, 1, 1), images.flip(-1), images)
                if masks is not None:
                    masks = torch.where(flip.view(-1, 1, 1, 1), masks.flip(-1), masks)
            sync = ddp.no_sync(runner) if (ddp.enabled and i < len(micro) - 1) else contextlib.nullcontext()
            # Sophia-H's Hessian-vector products differentiate the backward pass; only SDPA's math kernel has a
            # second derivative
            kernel = sdpa_kernel(SDPBackend.MATH) if need_hessian else contextlib.nullcontext()
            with sync, kernel:  # accumulate locally; DDP all-reduces on the last micro-batch's backward only
                with autocast(device, opt.precision):
                    loss, _ = batch_loss(runner, images, labels, metadata, weights, masks, mask_valid)
                    loss = loss * (len(idx) / sum(len(m) for m in micro))
                loss.backward(create_graph=need_hessian)
            step_loss += loss.item()
        if need_hessian:
            with sdpa_kernel(SDPBackend.MATH):
                optimizer.update_hessian()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        scheduler.step()
        loop.step += 1
        losses.append(step_loss)
        progress(f"loss {step_loss:.3f}")
    return losses

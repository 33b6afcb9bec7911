"""What to look at before a long run: the learning-rate range test, the largest batch that fits (CUDA), and a
contact sheet of augmented training images. Each runs the training loop's own pieces on the config's data."""

from __future__ import annotations

import itertools
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import torch

from roadwork.trainer.data.augment import AugmentConfig, contact_sheet
from roadwork.trainer.data.batches import prepare_data
from roadwork.trainer.config import TrainConfig
from roadwork.trainer.loop.finders import BatchSizeResult, LRFinderResult, find_batch_size, lr_range_test
from roadwork.trainer.model.classifier import build_model
from roadwork.trainer.loop.train import augmenter_for, batch_loss, loss_weights, pick_device, seed_everything


def _setup(config: TrainConfig, data_path: Path | str, log: Callable[[str], None]):  # noqa: ANN202
    seed_everything(config.optim.seed)
    if config.optim.num_threads:
        torch.set_num_threads(config.optim.num_threads)
    device = pick_device(config.optim.device)
    data = prepare_data(config, data_path, log=log)
    model = build_model(config.model, config.data.image_size, vocab_sizes=data.vocab_sizes).to(device)
    return device, data, model


def lr_find(
    config: TrainConfig, data_path: Path | str, *, steps: int = 100, start_lr: float = 1e-7, end_lr: float = 1.0,
    log: Callable[[str], None] = print,
) -> LRFinderResult:
    """The range test on the config's model, optimiser, loss and augmentation, one training batch per step
    (batches cycle through shuffled epochs). The suggestion is a starting point for `optim.lr`."""
    device, data, model = _setup(config, data_path, log)
    augmenter, weights = augmenter_for(config), loss_weights(config)
    generator = torch.Generator().manual_seed(config.optim.seed)
    n, bs = len(data.train), config.optim.batch_size
    order = itertools.cycle(range(0, n, bs))
    perm = torch.randperm(n, generator=generator)

    def loss_fn(trial: torch.nn.Module, step: int) -> torch.Tensor:  # noqa: ARG001
        start = next(order)
        images, labels, metadata = data.train.batch(perm[start : start + bs], device)
        if augmenter is not None:
            images = augmenter(images)
        return batch_loss(trial, images, labels, metadata, weights)[0]

    return lr_range_test(model, loss_fn, optimizer=config.optim.optimizer, weight_decay=config.optim.weight_decay,
                         start_lr=start_lr, end_lr=end_lr, steps=steps)


def batch_size_find(config: TrainConfig, data_path: Path | str, *, max_batch: int = 1024,
                    log: Callable[[str], None] = print) -> BatchSizeResult:
    """The largest batch whose forward + backward fits on the CUDA device (raises ValueError without CUDA)."""
    device = pick_device(config.optim.device)
    if device.type != "cuda":
        raise ValueError("the batch-size finder needs a CUDA device (optim.device cuda or auto on a GPU machine)")
    device, data, model = _setup(config, data_path, log)
    weights = loss_weights(config)
    size = config.data.image_size

    def step(batch: int) -> None:
        images = torch.rand(batch, 3, size, size, device=device)
        labels = torch.randint(0, 2, (batch,), device=device).float()
        idx = torch.arange(batch) % len(data.train)
        metadata = data.train.metadata.index(idx).to(device)
        with torch.autocast("cuda", dtype=torch.bfloat16, enabled=config.optim.precision != "fp32"):
            loss = batch_loss(model, images, labels, metadata, weights)[0]
        loss.backward()
        model.zero_grad(set_to_none=True)

    return find_batch_size(step, max_batch=max_batch, device=device)


def augment_preview(config: TrainConfig, data_path: Path | str, out: Path | str, *, n: int = 32,
                    every_family: bool = False, log: Callable[[str], None] = print) -> Path:
    """A contact sheet PNG: the first row the original training images, each further row the same images
    through the config's augmentation (`every_family`: every family at probability 1, to see each one fire)."""
    data = prepare_data(config, data_path, log=log)
    images = data.train.images[: min(8, n)].float().div(255.0)
    if every_family:
        config = config.model_copy(update={"augment": config.augment.model_copy(update={"enabled": True})})
    augmenter = augmenter_for(config)
    if augmenter is None:
        raise ValueError("augmentation is switched off in this config (augment.enabled: false)")
    if every_family:
        augmenter.__init__(replace(AugmentConfig.full(), **{k: v for k, v in config.augment.probabilities.items()
                                                           if not k.endswith("_p")}), seed=config.optim.seed)
    rows = [images] + [augmenter(images.clone()) for _ in range(max(1, n // len(images) - 1))]
    return contact_sheet(torch.cat(rows), out, columns=len(images))

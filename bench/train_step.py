"""Benchmark: forward and forward+backward throughput of the tiny config on CPU, per recipe component.

    python bench/train_step.py [--batch 32] [--repeats 10] [--threads 1] [--size 96]

Baseline: the single-image classifier (backbone + linear head on the whole image). Every other row is the
tiny multi-view recipe (`configs/tiny.yaml`) with one switch changed; its ratio says how many times the
baseline's time a step costs (forward: eval mode, no grad; train: forward + backward + AdamW step).
Random weights and random images: throughput does not depend on what the model has learned.
"""

from __future__ import annotations

import argparse
import platform
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from roadwork.trainer.config import TrainConfig
from roadwork.trainer.model.classifier import build_model
from roadwork.trainer.loop.optim import build_optimizer

VARIANTS: list[tuple[str, dict]] = [
    ("single image (baseline)", {"model.architecture": "single"}),
    ("multi-view tiny recipe", {}),
    ("  views off (1 view)", {"model.views.enabled": False}),
    ("  pre-backbone pruning 12->8", {"model.pruning.placement": "pre", "model.pruning.keep": 8}),
    ("  pre-backbone pruning 12->4", {"model.pruning.placement": "pre", "model.pruning.keep": 4}),
    ("  post-backbone pruning 12->8", {"model.pruning.placement": "post", "model.pruning.keep": 8}),
    ("  + pyramid", {"model.pyramid": True}),
    ("  + MoE (4 experts, top 2)", {"model.encoder.moe_experts": 4}),
    ("  + metadata encoder", {"model.metadata.enabled": True}),
    ("  gated attention off", {"model.encoder.layers": 0}),
    ("  GAFM off (mean)", {"model.gafm": False}),
]


def _median_seconds(fn, repeats: int) -> float:
    fn()  # warm-up
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def measure(overrides: dict, batch: int, size: int, repeats: int) -> tuple[float, float]:
    """(forward seconds, train-step seconds) per batch, medians."""
    torch.manual_seed(0)
    config = TrainConfig().with_overrides({"data.image_size": size} | overrides)
    model = build_model(config.model, size)
    optimizer = build_optimizer("adamw", model, lr=1e-4, weight_decay=0.05)
    x = torch.rand(batch, 3, size, size)

    def forward() -> None:
        model.eval()
        with torch.no_grad():
            model(x)

    def step() -> None:
        model.train()
        model(x).float().mean().backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)

    return _median_seconds(forward, repeats), _median_seconds(step, repeats)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--repeats", type=int, default=10)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--size", type=int, default=96, help="Image side (the tiny preset: 96).")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    print(f"# train step, tiny config at {args.size} px, batch {args.batch}, {args.threads} thread(s), torch "
          f"{torch.__version__}, {platform.processor() or platform.machine()}")
    print(f"{'variant':34} {'fwd img/s':>10} {'fwd x base':>10} {'train img/s':>12} {'train x base':>12}")
    base = None
    for name, overrides in VARIANTS:
        fwd, train = measure(overrides, args.batch, args.size, args.repeats)
        base = base or (fwd, train)
        print(f"{name:34} {args.batch / fwd:10.0f} {fwd / base[0]:10.2f} {args.batch / train:12.0f} "
              f"{train / base[1]:12.2f}")


if __name__ == "__main__":
    main()

"""GPU benchmark of the classifier at the competition's 224 px, random weights (no download).

For each DINOv3 ViT size (architecture of the published checkpoints, weights random): inference ms per image
at batch 1 and 32, training images/s at batch 32 (forward + backward + AdamW step), peak memory, and the
12-view layout of the plan (32 samples x 12 views of 224 px). bf16 autocast is compared with fp32 in the same
run and the ratio printed. The plan's targets: < 100 ms per image and < 10 GB per batch of 32.

The recipe section builds `configs/competition.yaml` (multi-view, DoRA, pyramid, MoE, GAFM, metadata) on a
random-weight backbone of each size in --recipe-sizes, and measures it with and without pre-backbone pruning
(12 -> 8 views): bf16 ms per image at batch 1 and 32, training images/s at batch 32, peak memory.

    python bench/gpu.py                       # on a CUDA machine
    python bench/gpu.py --device cpu --sizes tiny --recipe-sizes tiny --repeats 2   # smoke run anywhere
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch
from transformers import DINOv3ViTConfig, DINOv3ViTModel

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from roadwork.trainer.model.classifier import RoadworkClassifier  # noqa: E402

# hidden, layers, heads, mlp, gated MLP, register tokens: as in the facebook/dinov3-vit*16*-pretrain configs
SIZES = {
    "tiny": (64, 2, 2, 256, False, 0),
    "vits16": (384, 12, 6, 1536, False, 4),
    "vitb16": (768, 12, 12, 3072, False, 4),
    "vitl16": (1024, 24, 16, 4096, False, 4),
    "vith16plus": (1280, 32, 20, 5120, True, 4),
}


def build(size: str, device: torch.device) -> RoadworkClassifier:
    hidden, layers, heads, mlp, gated, regs = SIZES[size]
    cfg = DINOv3ViTConfig(hidden_size=hidden, num_hidden_layers=layers, num_attention_heads=heads,
                          intermediate_size=mlp, use_gated_mlp=gated, num_register_tokens=regs, patch_size=16,
                          image_size=224, attn_implementation="sdpa")
    return RoadworkClassifier(DINOv3ViTModel(cfg), hidden).to(device)


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def timed(fn, device: torch.device, repeats: int, warmup: int = 3) -> float:  # noqa: ANN001
    """Median seconds of `fn()` over `repeats` after `warmup` calls."""
    for _ in range(warmup):
        fn()
    sync(device)
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        sync(device)
        times.append(time.perf_counter() - t)
    return sorted(times)[len(times) // 2]


def peak_gb(device: torch.device) -> float | None:
    return torch.cuda.max_memory_allocated() / 2**30 if device.type == "cuda" else None


def reset_peak(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()


def bench_size(size: str, device: torch.device, repeats: int) -> dict:
    model = build(size, device)
    n_params = sum(p.numel() for p in model.parameters())
    out: dict = {"size": size, "params_m": round(n_params / 1e6, 1)}
    autocast = dict(device_type=device.type, dtype=torch.bfloat16)

    model.eval()
    for batch in (1, 32):
        x = torch.rand(batch, 3, 224, 224, device=device)
        for precision in ("fp32", "bf16"):
            reset_peak(device)
            with torch.no_grad(), torch.autocast(**autocast, enabled=precision == "bf16"):
                sec = timed(lambda x=x: model(x), device, repeats)
            out[f"infer_b{batch}_{precision}_ms_per_image"] = round(1000 * sec / batch, 3)
            out[f"infer_b{batch}_{precision}_peak_gb"] = peak_gb(device)

    views = torch.rand(32 * 12, 3, 224, 224, device=device)  # (B*V, 3, 224, 224): 32 samples x 12 views
    reset_peak(device)
    with torch.no_grad(), torch.autocast(**autocast):
        sec = timed(lambda: model(views), device, max(2, repeats // 2))
    out["infer_12views_b32_bf16_ms_per_sample"] = round(1000 * sec / 32, 3)
    out["infer_12views_b32_bf16_peak_gb"] = peak_gb(device)

    model.train()
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4, fused=device.type == "cuda")
    x = torch.rand(32, 3, 224, 224, device=device)
    y = torch.randint(0, 2, (32,), device=device).float()
    for precision in ("fp32", "bf16"):
        def step() -> None:
            with torch.autocast(**autocast, enabled=precision == "bf16"):
                loss = torch.nn.functional.binary_cross_entropy_with_logits(model(x).float(), y)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()

        reset_peak(device)
        sec = timed(step, device, repeats)
        out[f"train_b32_{precision}_images_per_s"] = round(32 / sec, 1)
        out[f"train_b32_{precision}_peak_gb"] = peak_gb(device)
    out["bf16_vs_fp32_train_speedup"] = round(out["train_b32_bf16_images_per_s"] / out["train_b32_fp32_images_per_s"], 2)
    out["bf16_vs_fp32_infer_b32_speedup"] = round(
        out["infer_b32_fp32_ms_per_image"] / out["infer_b32_bf16_ms_per_image"], 2)
    return out


def recipe_model(size: str, pruning: str, device: torch.device, config_path: Path) -> torch.nn.Module:
    """The competition recipe with a random-weight backbone of `size` (the config's DoRA adapters applied)."""
    from roadwork.trainer.model.backbone import apply_dora
    from roadwork.trainer.config import load_config
    from roadwork.trainer.model.classifier import build_model

    hidden, layers, heads, mlp, gated, regs = SIZES[size]
    config = load_config(config_path, {"model.pruning.placement": pruning, "model.backbone": None,
                                       "model.encoder.heads": 2 if size == "tiny" else 8})
    backbone = DINOv3ViTConfig(hidden_size=hidden, num_hidden_layers=layers, num_attention_heads=heads,
                               intermediate_size=mlp, use_gated_mlp=gated, num_register_tokens=regs,
                               patch_size=16, image_size=224, pos_embed_rescale=None)
    model = build_model(config.model, config.data.image_size, backbone_json=backbone.to_dict())
    if config.model.gradient_checkpointing:
        model.backbone.gradient_checkpointing_enable()
    if config.model.mode == "dora":
        model.backbone = apply_dora(model.backbone, model.backbone.cfg)
    return model.to(device)


def measure_recipe(model: torch.nn.Module, device: torch.device, repeats: int) -> dict:
    """bf16 inference ms per image at batch 1 and 32, training images/s at batch 32, peak memory of each."""
    out: dict = {}
    autocast = dict(device_type=device.type, dtype=torch.bfloat16)
    model.eval()
    for batch in (1, 32):
        x = torch.rand(batch, 3, 224, 224, device=device)
        reset_peak(device)
        with torch.no_grad(), torch.autocast(**autocast):
            sec = timed(lambda x=x: model(x), device, repeats)
        out[f"infer_b{batch}_bf16_ms_per_image"] = round(1000 * sec / batch, 2)
        out[f"infer_b{batch}_bf16_peak_gb"] = peak_gb(device)
    model.train()
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-4)
    x = torch.rand(32, 3, 224, 224, device=device)
    y = torch.randint(0, 2, (32,), device=device).float()

    def step() -> None:
        with torch.autocast(**autocast):
            loss = torch.nn.functional.binary_cross_entropy_with_logits(model(x).float(), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    reset_peak(device)
    sec = timed(step, device, max(2, repeats // 2), warmup=2)
    out["train_b32_bf16_images_per_s"] = round(32 / sec, 1)
    out["train_b32_bf16_peak_gb"] = peak_gb(device)
    return out


def bench_recipe(size: str, device: torch.device, repeats: int, config_path: Path) -> list[dict]:
    rows = []
    for pruning in ("none", "pre"):
        model = recipe_model(size, pruning, device, config_path)
        trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
        row = {"recipe": config_path.name, "size": size, "pruning": pruning,
               "params_m": round(sum(p.numel() for p in model.parameters()) / 1e6, 1),
               "trainable_m": round(trainable / 1e6, 2)} | measure_recipe(model, device, repeats)
        rows.append(row)
        print(json.dumps(row), flush=True)
        model = None  # free the first model's memory before the second is built
        reset_peak(device)
    base, pruned = rows
    print(json.dumps({"size": size, "pre_pruning_speedup_infer_b32": round(
        base["infer_b32_bf16_ms_per_image"] / pruned["infer_b32_bf16_ms_per_image"], 2),
        "pre_pruning_speedup_train": round(pruned["train_b32_bf16_images_per_s"] / base["train_b32_bf16_images_per_s"], 2)}))
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--sizes", default="vits16,vitb16,vitl16,vith16plus")
    parser.add_argument("--repeats", type=int, default=10)
    parser.add_argument("--recipe-sizes", default="vits16,vith16plus", help="Backbone sizes of the recipe rows; "
                        "empty: skip the recipe section.")
    parser.add_argument("--recipe-config", type=Path, default=Path(__file__).resolve().parents[1] / "configs" /
                        "competition.yaml")
    parser.add_argument("--out", type=Path, help="Also write the results as JSON here.")
    args = parser.parse_args()
    device = torch.device(args.device)
    torch.backends.cuda.matmul.allow_tf32 = False  # fp32 baseline is real fp32
    info = {"torch": torch.__version__, "device": torch.cuda.get_device_name() if device.type == "cuda" else "cpu"}
    print(json.dumps(info))
    results = []
    for size in args.sizes.split(","):
        row = bench_size(size, device, args.repeats)
        results.append(row)
        print(json.dumps(row), flush=True)
    recipe = []
    for size in filter(None, args.recipe_sizes.split(",")):
        recipe += bench_recipe(size, device, args.repeats, args.recipe_config)
    if args.out:
        args.out.write_text(json.dumps({"info": info, "results": results, "recipe": recipe}, indent=2))


if __name__ == "__main__":
    main()

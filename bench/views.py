"""Benchmark: the 12-view fast path (reduced JPEG decode) vs a full-resolution decode + crop + resize.

    python bench/views.py [--images 4] [--repeats 3] [--sizes 224,518]

The test images are phone-sized (4032 x 3024) JPEGs at quality 90: synthetic road scenes from
`roadwork.trainer.data.synth` upscaled (bicubic) with added fine detail (a high-frequency texture and sensor-like
noise), so the JPEG carries as much high-frequency content as a real photo does. Both paths start from the
same bytes and produce the same `(12, 3, S, S)` tensor: `views_from_bytes(data, S, fast=False)` decodes in full
then crops and resizes each view; `fast=True` decodes at 1/r in the DCT (`Image.draft`) first. Times are the
median of `--repeats` runs per image, averaged over the images.
"""

from __future__ import annotations

import argparse
import io
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import PIL
import torch
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from roadwork.trainer.data.records import decode_image, read_records
from roadwork.trainer.data.synth import synthesize
from roadwork.trainer.data.crops import draft_reduction, views_from_bytes

WIDTH, HEIGHT = 4032, 3024
QUALITY = 90
SEED = 0


def make_photos(n: int, seed: int = SEED) -> list[bytes]:
    """``n`` 4032 x 3024 JPEGs (quality 90) made from synthetic scenes with photo-like fine detail."""
    rng = np.random.default_rng(seed)
    with tempfile.TemporaryDirectory() as tmp:
        synthesize(Path(tmp), n, seed=seed)
        records, _ = read_records(Path(tmp))
    photos = []
    for rec in records:
        img = decode_image(rec.image_bytes).resize((WIDTH, HEIGHT), Image.Resampling.BICUBIC)
        arr = np.asarray(img, dtype=np.float32)
        # texture at 1/4 resolution (asphalt, foliage), upscaled, plus per-pixel luminance noise
        tex = rng.normal(0.0, 6.0, (HEIGHT // 4, WIDTH // 4)).astype(np.float32)
        tex = np.asarray(Image.fromarray(tex, mode="F").resize((WIDTH, HEIGHT), Image.Resampling.BICUBIC))
        noise = rng.normal(0.0, 3.0, (HEIGHT, WIDTH)).astype(np.float32)
        arr += (tex + noise)[:, :, None]
        buf = io.BytesIO()
        Image.fromarray(arr.clip(0, 255).astype(np.uint8)).save(buf, format="JPEG", quality=QUALITY)
        photos.append(buf.getvalue())
    return photos


def _median_time(fn, repeats: int) -> tuple[float, object]:
    times, out = [], None
    for _ in range(repeats):
        start = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times), out


def run(photos: list[bytes], size: int, repeats: int) -> dict[str, float]:
    views_from_bytes(photos[0], size)  # warm-up
    t_full, t_fast, t_decode, diffs = [], [], [], []
    for data in photos:
        t, full = _median_time(lambda d=data: views_from_bytes(d, size, fast=False), repeats)
        t_full.append(t)
        t, fast = _median_time(lambda d=data: views_from_bytes(d, size, fast=True), repeats)
        t_fast.append(t)
        t_decode.append(_median_time(lambda d=data: decode_image(d), repeats)[0])
        diffs.append((fast.pixels - full.pixels).abs())  # (12, 3, S, S)
    d = torch.stack(diffs)
    mse = float((d.double() ** 2).mean())
    return {
        "size": size,
        "reduction": draft_reduction(WIDTH, HEIGHT, size),
        "decoded": fast.decoded_size,
        "full_ms": 1000 * statistics.mean(t_full),
        "fast_ms": 1000 * statistics.mean(t_fast),
        "decode_ms": 1000 * statistics.mean(t_decode),
        "max_abs": float(d.max()) * 255,
        "mean_abs": float(d.mean()) * 255,
        "worst_view_mean_abs": float(d.mean(dim=(2, 3, 4)).max()) * 255,
        "psnr": 10 * np.log10(1.0 / mse) if mse > 0 else float("inf"),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--images", type=int, default=4)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--sizes", default="224,518", help="backbone input sides S, comma-separated")
    args = ap.parse_args()
    torch.set_num_threads(1)
    photos = make_photos(args.images)
    rows = [run(photos, int(s), args.repeats) for s in args.sizes.split(",")]

    mb = statistics.mean(len(p) for p in photos) / 1e6
    print(f"### 12 views from {WIDTH} x {HEIGHT} JPEGs: reduced decode (`Image.draft`) vs full decode + crop + resize")
    print()
    print(f"- data: {len(photos)} synthetic scenes upscaled to {WIDTH} x {HEIGHT} with texture and noise, JPEG quality "
          f"{QUALITY} ({mb:.1f} MB each); times are the median of {args.repeats} runs per image, mean over images")
    print(f"- machine: {platform.machine()}, {os.cpu_count()} CPUs (one thread used), Python "
          f"{platform.python_version()}, Pillow {PIL.__version__}, torch {torch.__version__}")
    print("- differences are over all views of all images, in 8-bit levels (0-255)")
    print()
    print("| S | reduction (decoded size) | full decode + crop + resize, ms/img | full decode alone, ms | fast path, ms/img "
          "| speed-up | max abs diff | mean abs diff | worst view mean | PSNR, dB |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        w, h = r["decoded"]
        print(f"| {r['size']} | 1/{r['reduction']} ({w} x {h}) | {r['full_ms']:.0f} | {r['decode_ms']:.0f} | "
              f"{r['fast_ms']:.0f} | {r['full_ms'] / r['fast_ms']:.1f}x | {r['max_abs']:.0f} | {r['mean_abs']:.2f} | "
              f"{r['worst_view_mean_abs']:.2f} | {r['psnr']:.1f} |")


if __name__ == "__main__":
    main()

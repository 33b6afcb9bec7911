"""Benchmark: the validator-cache re-save in the challenge replay, against the replay without it (same run).

    python bench/cache_resave.py [--size 4032x3024] [--images 4] [--challenges 24]

Camera-like sources (quality 95, 4:4:4, smooth gradients plus sensor-like noise, which is not a real street
photo: the PSNR printed here is for these pictures, COMPETITION.md gives 37-43 dB median on the dataset).
The same seeded replay is rendered with ``cache_resave`` off (the baseline) and on; printed: time per
challenge of each and their ratio, and the PSNR between the two renders of each real challenge (decoded as
the miner decodes them), i.e. how far a replay without the re-save is from what validators send.  Wall time
on a shared machine swings with the load; CPU time (all threads of the process) is steadier.
"""

from __future__ import annotations

import argparse
import io
import math
import platform
import sys
import time
from pathlib import Path

import numpy as np
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from roadwork.platform.evaluation.challenge import build_replay, decode_jpeg  # noqa: E402
from roadwork.trainer.data.records import Record  # noqa: E402


def camera_jpeg(w: int, h: int, seed: int) -> bytes:
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    img = np.stack([120 + 80 * np.sin(xx / (w / 9)), 100 + 60 * np.cos(yy / (h / 7)), 0.03 * (xx + yy) % 200], -1)
    for _ in range(40):  # blocks: signs, cones, cars
        x0, y0 = rng.integers(0, w - w // 8), rng.integers(0, h - h // 8)
        img[y0:y0 + rng.integers(8, h // 8), x0:x0 + rng.integers(8, w // 8)] = rng.integers(0, 256, 3)
    img += rng.normal(0, 4, img.shape).astype(np.float32)  # sensor noise
    buf = io.BytesIO()
    Image.fromarray(np.clip(img, 0, 255).astype(np.uint8)).save(buf, format="JPEG", quality=95, subsampling=0)
    return buf.getvalue()


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2)
    return math.inf if mse == 0 else 10 * math.log10(255.0**2 / mse)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--size", default="4032x3024")
    parser.add_argument("--images", type=int, default=4)
    parser.add_argument("--challenges", type=int, default=24)
    args = parser.parse_args()
    w, h = (int(v) for v in args.size.split("x"))
    records = [Record(id=f"r{i}", image_bytes=camera_jpeg(w, h, i), label=i % 2, width=w, height=h, gps=None,
                      city=None, scene_description=None, daytime=None, scene=None, travel_alteration=None,
                      weather=None, source="real") for i in range(args.images)]
    list(build_replay(records, 2, seed=99))  # warm-up (imports, allocator)
    times, cpu, renders = {}, {}, {}
    for switch in (False, True):  # baseline first
        start, start_cpu = time.perf_counter(), time.process_time()
        renders[switch] = list(build_replay(records, args.challenges, seed=0, cache_resave=switch))
        times[switch] = (time.perf_counter() - start) / args.challenges
        cpu[switch] = (time.process_time() - start_cpu) / args.challenges
    values = [psnr(np.asarray(decode_jpeg(a.jpeg)), np.asarray(decode_jpeg(b.jpeg)))
              for a, b in zip(renders[False], renders[True], strict=True)]
    finite = [v for v in values if math.isfinite(v)]
    print(f"# cache re-save, {args.images} sources {w}x{h} (q95, 4:4:4), {args.challenges} challenges, "
          f"python {platform.python_version()}, {platform.machine()}")
    print(f"replay without re-save (baseline): {1000 * times[False]:8.1f} ms/challenge wall, "
          f"{1000 * cpu[False]:8.1f} ms CPU")
    print(f"replay with re-save:               {1000 * times[True]:8.1f} ms/challenge wall, "
          f"{1000 * cpu[True]:8.1f} ms CPU  (x{times[True] / times[False]:.2f} wall, "
          f"x{cpu[True] / cpu[False]:.2f} CPU)")
    print(f"PSNR without vs with re-save: median {np.median(finite):.1f} dB, min {min(finite):.1f}, "
          f"max {max(finite):.1f} ({len(values) - len(finite)} identical)")


if __name__ == "__main__":
    main()

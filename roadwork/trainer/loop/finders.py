"""Finders run before training: a learning-rate range test (Smith 2017 "Cyclical Learning Rates", as popularised
by fast.ai) and a search for the largest batch that fits in CUDA memory."""

from __future__ import annotations

import copy
import gc
import math
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import torch
from torch import nn

from roadwork.trainer.loop.optim import SophiaH, build_optimizer

# --- learning-rate range test


@dataclass(frozen=True)
class LRFinderResult:
    """The curve of a range test: `losses[i]` is the smoothed, bias-corrected loss of the batch run at `lrs[i]`.

    `suggested_lr`: where the smoothed loss falls fastest against log(lr); `min_loss_lr`: where it is lowest
    (a good learning rate is usually about 10x below that). `raw_losses`: the unsmoothed losses.
    `diverged`: the test stopped early because the loss blew up (or stopped being finite).
    """

    lrs: list[float]
    losses: list[float]
    suggested_lr: float
    min_loss_lr: float
    raw_losses: list[float] = field(default_factory=list)
    diverged: bool = False

    def to_dict(self) -> dict[str, Any]:
        """A JSON-able dict of every field."""
        return asdict(self)


def _suggest(lrs: list[float], losses: list[float]) -> tuple[float, float]:
    """(suggested_lr, min_loss_lr) of a smoothed curve.

    The suggestion is the steepest negative slope d loss / d log10(lr) (np.gradient, central differences),
    searched between the first 10% of points (the start is dominated by the smoothing's warm-up) and the
    minimum (past it the curve climbs towards divergence, and its wiggles must not win). When that window is
    too short to have a slope, it falls back to min_loss_lr / 10, the usual rule of thumb.
    """
    best = int(np.argmin(losses))
    min_loss_lr = lrs[best]
    lo, hi = len(losses) // 10, best + 1
    if hi - lo < 3:
        return min_loss_lr / 10.0, min_loss_lr
    slopes = np.gradient(np.asarray(losses, dtype=np.float64), np.log10(np.asarray(lrs, dtype=np.float64)))
    steepest = lo + int(np.argmin(slopes[lo:hi]))
    return lrs[steepest], min_loss_lr


def lr_range_test(
    model: nn.Module,
    loss_fn: Callable[[nn.Module, int], torch.Tensor],
    *,
    optimizer: str = "adamw",
    weight_decay: float = 0.0,
    start_lr: float = 1e-7,
    end_lr: float = 1.0,
    steps: int = 100,
    smoothing: float = 0.05,
    divergence: float = 4.0,
) -> LRFinderResult:
    """Train a deep copy of `model` for up to `steps` batches while the learning rate grows exponentially from
    `start_lr` to `end_lr`, and record the loss at each.

    `loss_fn(model_copy, step)` returns the scalar loss of the batch the caller picks for `step`. The optimizer
    is built by `build_optimizer(optimizer, model_copy, ...)` (SophiaH gets its Hessian updates). The loss is
    smoothed by an exponential moving average giving weight `smoothing` to each new batch, bias-corrected as in
    Adam; the test stops once the smoothed loss exceeds `divergence` times the best so far or the loss is not
    finite. `model` is never modified (the copy needs as much memory again). Returns an `LRFinderResult`.
    """
    if not 0 < start_lr < end_lr:
        raise ValueError(f"need 0 < start_lr < end_lr, got {start_lr} and {end_lr}")
    if steps < 2:
        raise ValueError(f"steps must be >= 2, got {steps}")
    if not 0 < smoothing <= 1:
        raise ValueError(f"smoothing must be in (0, 1], got {smoothing}")
    if divergence <= 1:
        raise ValueError(f"divergence must be > 1, got {divergence}")

    work = copy.deepcopy(model)
    work.train()
    opt = build_optimizer(optimizer, work, lr=start_lr, weight_decay=weight_decay)
    ratio = end_lr / start_lr
    lrs: list[float] = []
    losses: list[float] = []
    raw: list[float] = []
    avg, best, diverged = 0.0, math.inf, False
    for step in range(steps):
        lr = start_lr * ratio ** (step / (steps - 1))
        for group in opt.param_groups:
            group["lr"] = lr
        opt.zero_grad(set_to_none=True)
        loss = loss_fn(work, step)
        value = float(loss.detach())
        if not math.isfinite(value):
            diverged = True
            break
        if isinstance(opt, SophiaH) and opt.needs_hessian():
            loss.backward(create_graph=True)
            opt.update_hessian()
        else:
            loss.backward()
        opt.step()
        # Exponential moving average started at 0, so divide by the weight it has accumulated (Adam's correction).
        avg = (1 - smoothing) * avg + smoothing * value
        smoothed = avg / (1 - (1 - smoothing) ** (step + 1))
        lrs.append(lr)
        losses.append(smoothed)
        raw.append(value)
        best = min(best, smoothed)
        if smoothed > divergence * best:
            diverged = True
            break
    if not losses:
        raise RuntimeError(f"the loss at the first learning rate ({start_lr:g}) is not finite")
    suggested, min_loss_lr = _suggest(lrs, losses)
    return LRFinderResult(lrs, losses, suggested, min_loss_lr, raw, diverged)


def _y_range(losses: list[float]) -> tuple[float, float]:
    """The loss range to draw: from the minimum to the highest point before it, so that a divergent tail does not
    squash the interesting part (the tail is clipped at the top)."""
    best = int(np.argmin(losses))
    low, high = min(losses), max(losses[: best + 1])
    pad = 0.05 * (high - low) if high > low else max(abs(high), 1.0) * 0.05
    return low - pad, high + pad


def _plot_matplotlib(result: LRFinderResult, path: Path) -> None:
    from matplotlib.figure import Figure  # a Figure without pyplot: no global backend or state is touched

    fig = Figure(figsize=(8, 5), dpi=100)
    ax = fig.add_subplot()
    ax.plot(result.lrs, result.losses, color="tab:blue")
    ax.set_xscale("log")
    ax.set_ylim(*_y_range(result.losses))
    ax.axvline(result.suggested_lr, color="tab:red", linestyle="--", label=f"suggested lr {result.suggested_lr:.2g}")
    ax.set_xlabel("learning rate")
    ax.set_ylabel("smoothed loss")
    ax.set_title("LR range test")
    ax.legend()
    fig.savefig(path, format="png")


def _plot_pillow(result: LRFinderResult, path: Path) -> None:
    from PIL import Image, ImageDraw

    width, height = 800, 500
    left, right, top, bottom = 80, 30, 40, 60  # margins for tick labels and the title
    img = Image.new("RGB", (width, height), "white")
    draw = ImageDraw.Draw(img)
    x_lo, x_hi = math.log10(result.lrs[0]), math.log10(result.lrs[-1])
    if x_hi - x_lo < 1e-12:
        x_lo, x_hi = x_lo - 0.5, x_hi + 0.5
    y_lo, y_hi = _y_range(result.losses)

    def to_px(lr: float, loss: float) -> tuple[float, float]:
        fx = (math.log10(lr) - x_lo) / (x_hi - x_lo)
        fy = min(max((loss - y_lo) / (y_hi - y_lo), 0.0), 1.0)  # clip the divergent tail to the frame
        return left + fx * (width - left - right), height - bottom - fy * (height - top - bottom)

    frame = (left, top, width - right, height - bottom)
    draw.rectangle(frame, outline="black")
    for decade in range(math.ceil(x_lo), math.floor(x_hi) + 1):
        x, _ = to_px(10.0**decade, y_lo)
        draw.line([(x, frame[3]), (x, frame[3] + 5)], fill="black")
        draw.text((x - 14, frame[3] + 8), f"1e{decade}", fill="black")
    for i in range(5):
        loss = y_lo + (y_hi - y_lo) * i / 4
        _, y = to_px(result.lrs[0], loss)
        draw.line([(left - 5, y), (left, y)], fill="black")
        draw.text((8, y - 6), f"{loss:.3g}", fill="black")
    draw.text((width // 2 - 40, height - 22), "learning rate", fill="black")
    curve = [to_px(lr, loss) for lr, loss in zip(result.lrs, result.losses, strict=True)]
    draw.line(curve, fill=(31, 119, 180), width=2)
    x, _ = to_px(result.suggested_lr, y_lo)
    draw.line([(x, top), (x, height - bottom)], fill=(214, 39, 40), width=2)
    draw.text((left + 5, 12), f"LR range test: suggested lr {result.suggested_lr:.2g} (red)", fill="black")
    img.save(path, format="PNG")


def plot_lr_finder(result: LRFinderResult, path: str | Path) -> Path:
    """Draw smoothed loss against log learning rate, with a vertical marker at the suggestion, as a PNG at `path`
    (parents created): with matplotlib when it is installed, else with Pillow. Returns the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        _plot_pillow(result, path)
    else:
        _plot_matplotlib(result, path)
    return path


# --- batch-size finder


@dataclass(frozen=True)
class BatchSizeResult:
    """`batch_size`: the largest size that ran; `tried`: every size in the order tried; `failed`: those that ran
    out of memory; `peak_memory`: bytes allocated at the peak of each try (failed ones included)."""

    batch_size: int
    tried: list[int]
    failed: list[int]
    peak_memory: dict[int, int]

    def to_dict(self) -> dict[str, Any]:
        """A JSON-able dict (peak_memory keys become strings in JSON)."""
        return asdict(self)


class MemoryProbe(Protocol):
    """What the finder needs of the device's allocator."""

    def reset(self) -> None: ...

    def peak(self) -> int: ...

    def release(self) -> None: ...


class _CudaProbe:
    """The CUDA caching allocator's peak-allocation counter for one device."""

    def __init__(self, device: torch.device) -> None:
        self.device = device

    def reset(self) -> None:
        torch.cuda.reset_peak_memory_stats(self.device)

    def peak(self) -> int:
        return int(torch.cuda.max_memory_allocated(self.device))

    def release(self) -> None:
        # Collect first: cycles may still hold the failed try's tensors, which empty_cache cannot return.
        gc.collect()
        torch.cuda.empty_cache()


class _NullProbe:
    """Stands in for the allocator off CUDA (tests): no peak to read."""

    def reset(self) -> None:
        pass

    def peak(self) -> int:
        return 0

    def release(self) -> None:
        gc.collect()


# Allocation failures inside cuBLAS/cuDNN surface as these statuses rather than as OutOfMemoryError.
_OOM_MARKERS = ("out of memory", "cublas_status_alloc_failed", "cudnn_status_alloc_failed")


def is_oom(exc: BaseException) -> bool:
    """True when `exc` is the device running out of memory (torch.cuda.OutOfMemoryError, or a RuntimeError
    whose message says so)."""
    if isinstance(exc, torch.cuda.OutOfMemoryError):
        return True
    return isinstance(exc, RuntimeError) and any(m in str(exc).lower() for m in _OOM_MARKERS)


def find_batch_size(
    step_fn: Callable[[int], None],
    *,
    start: int = 8,
    max_batch: int = 1024,
    device: torch.device | str,
    _allow_cpu: bool = False,
    _probe: MemoryProbe | None = None,
) -> BatchSizeResult:
    """The largest batch size in [1, max_batch] for which `step_fn(batch_size)` (one forward and backward at that
    size) does not run out of CUDA memory.

    Doubles from `start` (capped at `max_batch`) until a size fails, then bisects between the last size that ran
    and the first that failed (down to 1 when `start` itself fails). Errors other than out-of-memory propagate.
    Returns a `BatchSizeResult`. Raises ValueError off CUDA, RuntimeError when even batch size 1 does not fit.
    `_allow_cpu` and `_probe` are for tests: run the search logic on CPU, with a fake allocator.
    """
    device = torch.device(device)
    if not _allow_cpu and (device.type != "cuda" or not torch.cuda.is_available()):
        raise ValueError(
            f"the batch-size finder needs a CUDA device (got {device}, CUDA available: {torch.cuda.is_available()}); "
            "on CPU memory is not the limit, pick the batch size by throughput instead"
        )
    if not 1 <= start <= max_batch:
        raise ValueError(f"need 1 <= start <= max_batch, got start={start}, max_batch={max_batch}")
    probe = _probe or (_CudaProbe(device) if device.type == "cuda" else _NullProbe())
    tried: list[int] = []
    failed: list[int] = []
    peaks: dict[int, int] = {}

    def fits(size: int) -> bool:
        tried.append(size)
        probe.reset()
        ok = True
        try:
            step_fn(size)
        except Exception as exc:
            if not is_oom(exc):
                raise
            ok = False
        # Outside the except block: by now the exception and the frames holding the failed try's tensors are gone.
        peaks[size] = probe.peak()
        if not ok:
            failed.append(size)
            probe.release()
        return ok

    good, bad = 0, None  # 0: the empty batch, which always "fits", so bisection can go below `start`
    size = start
    while True:
        if not fits(size):
            bad = size
            break
        good = size
        if size >= max_batch:
            break
        size = min(2 * size, max_batch)
    if bad is not None:
        while bad - good > 1:
            mid = (good + bad) // 2
            if fits(mid):
                good = mid
            else:
                bad = mid
    if good == 0:
        raise RuntimeError("even batch size 1 runs out of memory")
    return BatchSizeResult(good, tried, failed, peaks)

"""The LR range test on a convex problem, its suggestion rule on a curve with a known steepest point, its plot,
and the batch-size search against a fake step that runs out of memory above a known size."""

from __future__ import annotations

import json
import warnings
from collections.abc import Callable

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image
from torch import nn

from roadwork.trainer.loop.finders import (
    BatchSizeResult,
    LRFinderResult,
    _suggest,
    find_batch_size,
    is_oom,
    lr_range_test,
    plot_lr_finder,
)

torch.set_num_threads(1)


def regression_batches() -> tuple[torch.Tensor, torch.Tensor]:
    """y = x . w + noise with w spread over [-1, 1]: least squares, a convex loss."""
    g = torch.Generator().manual_seed(0)
    x = torch.randn(4096, 4, generator=g)
    y = x @ torch.linspace(-1, 1, 4).unsqueeze(1) + 0.1 * torch.randn(4096, 1, generator=g)
    return x, y


X, Y = regression_batches()


def mse_batch(model: nn.Module, step: int) -> torch.Tensor:
    """The loss of batch `step` (64 rows, cycling through the data)."""
    i = (step * 64) % len(X)
    return F.mse_loss(model(X[i : i + 64]), Y[i : i + 64])


@pytest.fixture(scope="module")
def adamw_result() -> tuple[nn.Module, dict[str, torch.Tensor], LRFinderResult]:
    torch.manual_seed(0)
    model = nn.Linear(4, 1)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    result = lr_range_test(model, mse_batch, optimizer="adamw", start_lr=1e-5, end_lr=100.0, steps=100)
    return model, before, result


def test_range_test_suggests_a_sensible_lr_and_leaves_the_model_alone(adamw_result) -> None:  # noqa: ANN001
    model, before, result = adamw_result
    # Adam on unit-scale least squares learns well at 1e-2..0.5; far below it barely moves, far above it diverges.
    assert 1e-2 <= result.suggested_lr <= 0.5
    assert result.suggested_lr < result.min_loss_lr
    # the curve came down by more than half before blowing up
    assert min(result.losses) < 0.5 * result.losses[0]
    for key, value in model.state_dict().items():
        assert torch.equal(value, before[key])
    assert all(p.grad is None for p in model.parameters())


def test_range_test_stops_at_divergence(adamw_result) -> None:  # noqa: ANN001
    _, _, result = adamw_result
    assert result.diverged
    assert len(result.lrs) < 100
    assert result.losses[-1] > 4.0 * min(result.losses)
    assert all(v <= 4.0 * min(result.losses[: i + 1]) for i, v in enumerate(result.losses[:-1]))


def test_range_test_lrs_grow_exponentially_and_losses_are_bias_corrected(adamw_result) -> None:  # noqa: ANN001
    _, _, result = adamw_result
    # lr_i = 1e-5 * (1e7) ** (i / 99)
    assert result.lrs[:3] == pytest.approx([1e-5, 1e-5 * 1e7 ** (1 / 99), 1e-5 * 1e7 ** (2 / 99)])
    # bias correction makes the first smoothed value the first raw loss, not 5% of it
    assert result.losses[0] == pytest.approx(result.raw_losses[0])
    avg = 0.05 * result.raw_losses[1] + 0.95 * 0.05 * result.raw_losses[0]
    assert result.losses[1] == pytest.approx(avg / (1 - 0.95**2))
    assert json.loads(json.dumps(result.to_dict()))["suggested_lr"] == result.suggested_lr


@pytest.mark.parametrize("name", ["lion", "sophia"])
def test_range_test_runs_sign_like_optimizers(name: str) -> None:
    torch.manual_seed(0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # create_graph=True's reference-cycle warning
        result = lr_range_test(nn.Linear(4, 1), mse_batch, optimizer=name, start_lr=1e-5, end_lr=100.0, steps=100)
    # Lion/Sophia move each weight by about lr per step: with unit-scale weights a good lr is 1e-3..0.3
    assert 1e-3 <= result.suggested_lr <= 0.3
    assert result.diverged


def test_suggestion_is_the_steepest_descent_before_the_minimum() -> None:
    # A tanh drop centred at lr = 1e-3 (slope -2 per decade there, the steepest before the minimum at 1e-1), then
    # a climb with a sharp dip in it (slope about -10) that a global search would pick.
    log_lrs = np.linspace(-6, 0, 121)  # steps of 0.05 decade
    climb = np.where(log_lrs > -1, 30 * (log_lrs + 1) ** 2, 0) - 5 * np.exp(-(((log_lrs + 0.5) / 0.1) ** 2))
    losses = 2 - np.tanh(2 * (log_lrs + 3)) + climb
    lrs = (10**log_lrs).tolist()
    assert np.argmin(np.gradient(losses, log_lrs)) > np.argmin(losses)  # the trap is there
    suggested, min_loss_lr = _suggest(lrs, losses.tolist())
    assert suggested == pytest.approx(1e-3)
    assert min_loss_lr == pytest.approx(1e-1)


def test_suggestion_falls_back_to_a_tenth_of_the_minimum_on_a_short_curve() -> None:
    assert _suggest([1e-3, 1e-2, 1e-1], [1.0, 0.5, 2.0]) == (pytest.approx(1e-3), 1e-2)


def test_plot_is_a_png_with_the_curve_and_the_marker(adamw_result, tmp_path) -> None:  # noqa: ANN001
    _, _, result = adamw_result
    path = plot_lr_finder(result, tmp_path / "plots" / "lr.png")
    with Image.open(path) as img:
        assert img.format == "PNG" and img.size[0] >= 400
        pixels = np.asarray(img.convert("RGB")).astype(int)
    red = (pixels[..., 0] > 180) & (pixels[..., 1] < 80) & (pixels[..., 2] < 80)
    blue = (pixels[..., 2] > 150) & (pixels[..., 0] < 80)
    assert red.sum() > 100 and blue.sum() > 100
    # the red marker is a vertical line: one column holds most of the plot's height in red
    assert np.bincount(np.nonzero(red)[1]).max() > 0.25 * pixels.shape[0]


def test_bad_range_is_refused() -> None:
    with pytest.raises(ValueError, match="start_lr"):
        lr_range_test(nn.Linear(4, 1), mse_batch, start_lr=1.0, end_lr=0.1)


# --- batch size


class FakeAllocator:
    """Pretends a batch of n uses n MB at its peak."""

    def __init__(self) -> None:
        self.current = 0
        self.released = 0

    def step(self, limit: int) -> Callable[[int], None]:
        """A step function that runs out of memory above `limit`."""

        def run(batch: int) -> None:
            self.current = batch * 2**20
            if batch > limit:
                raise torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 MiB")
        return run

    def reset(self) -> None:
        self.current = 0

    def peak(self) -> int:
        return self.current

    def release(self) -> None:
        self.released += 1


def test_batch_search_doubles_then_bisects_to_the_exact_limit() -> None:
    fake = FakeAllocator()
    result = find_batch_size(fake.step(96), start=8, max_batch=1024, device="cpu", _allow_cpu=True, _probe=fake)
    assert result.batch_size == 96
    # doubling 8..128 (fails), then bisection of (64, 128): 96 ok, 112, 104, 100, 98, 97 fail
    assert result.tried == [8, 16, 32, 64, 128, 96, 112, 104, 100, 98, 97]
    assert result.failed == [128, 112, 104, 100, 98, 97]
    assert result.peak_memory[96] == 96 * 2**20 and result.peak_memory[8] == 8 * 2**20
    assert fake.released == 6  # the cache is emptied after every OOM


def test_batch_search_stops_at_max_batch() -> None:
    fake = FakeAllocator()
    result = find_batch_size(fake.step(10_000), start=8, max_batch=100, device="cpu", _allow_cpu=True, _probe=fake)
    assert result == BatchSizeResult(100, [8, 16, 32, 64, 100], [], {n: n * 2**20 for n in (8, 16, 32, 64, 100)})


def test_batch_search_goes_below_start_when_start_fails() -> None:
    fake = FakeAllocator()
    result = find_batch_size(fake.step(5), start=8, device="cpu", _allow_cpu=True, _probe=fake)
    assert result.batch_size == 5 and result.tried == [8, 4, 6, 5]
    with pytest.raises(RuntimeError, match="batch size 1"):
        find_batch_size(fake.step(0), start=8, device="cpu", _allow_cpu=True, _probe=fake)


def test_batch_search_lets_other_errors_through() -> None:
    def broken(batch: int) -> None:
        raise RuntimeError("mat1 and mat2 shapes cannot be multiplied")

    with pytest.raises(RuntimeError, match="shapes"):
        find_batch_size(broken, device="cpu", _allow_cpu=True)


def test_batch_search_needs_cuda() -> None:
    with pytest.raises(ValueError, match="needs a CUDA device"):
        find_batch_size(lambda n: None, device=torch.device("cpu"))


def test_is_oom() -> None:
    assert is_oom(torch.cuda.OutOfMemoryError("CUDA out of memory"))
    assert is_oom(RuntimeError("CUDA error: out of memory"))
    assert is_oom(RuntimeError("CUDA error: CUBLAS_STATUS_ALLOC_FAILED when calling `cublasCreate(handle)`"))
    assert not is_oom(RuntimeError("expected scalar type Float but found Half"))
    assert not is_oom(ValueError("out of memory"))

"""Before a long run: the LR range test, the CUDA batch-size finder, the augmentation contact sheet."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from PIL import Image

from roadwork.trainer.config import TrainConfig
from roadwork.trainer.loop.probe import augment_preview, batch_size_find, lr_find
from tests.helpers import roadwork

FAST = {"data.image_size": 32, "model.views.size": 16, "model.hidden_size": 32}
QUIET = {"log": lambda _: None}


def test_lr_find_runs_the_presets_model_and_suggests_a_rate_inside_the_range(synth_data: Path) -> None:
    result = lr_find(TrainConfig().with_overrides(FAST), synth_data, steps=25, start_lr=1e-6, end_lr=1.0, **QUIET)
    assert 1e-6 <= result.suggested_lr <= 1.0 and 1e-6 <= result.min_loss_lr <= 1.0
    assert len(result.lrs) == len(result.losses) <= 25
    assert result.lrs == sorted(result.lrs)  # exponentially increasing


def test_batch_size_finder_needs_cuda(synth_data: Path) -> None:
    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA; the finder itself is tested in test_finders.py")
    with pytest.raises(ValueError, match="needs a CUDA device"):
        batch_size_find(TrainConfig().with_overrides(FAST), synth_data, **QUIET)


def test_augment_preview_puts_the_originals_above_their_augmented_copies(synth_data: Path, tmp_path: Path) -> None:
    config = TrainConfig().with_overrides(FAST | {"augment.enabled": True})
    sheet = augment_preview(config, synth_data, tmp_path / "sheet.png", n=24, **QUIET)
    with Image.open(sheet) as img:
        assert img.size == (8 * 34 + 2, 3 * 34 + 2)  # 8 columns, 3 rows of 32 px tiles with 2 px gaps


def test_augment_preview_refuses_a_config_without_augmentation(synth_data: Path, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="augment.enabled: false"):
        augment_preview(TrainConfig().with_overrides(FAST), synth_data, tmp_path / "x.png", **QUIET)


def test_lr_find_command_prints_the_suggestion_and_writes_the_plot(synth_data: Path, tmp_path: Path) -> None:
    config = tmp_path / "fast.yaml"
    config.write_text(json.dumps(TrainConfig().with_overrides(FAST).to_dict()))
    done = roadwork(tmp_path / "home", "lr-find", "--config", str(config), "--data", str(synth_data), "--steps", "15",
                    "--plot", str(tmp_path / "lr.png"), "--json")
    out = json.loads(done.stdout)
    assert out["suggested_lr"] > 0 and out["steps"] <= 15 and Path(out["plot"]).exists()

"""Ablation studies: the paired delta and its t interval by hand, the variants each component gives, the service
against a real registry (with a scripted trainer, then with real training of the tiny preset)."""

from __future__ import annotations

import math
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
from scipy import stats

from roadwork.db.repo import ablations as store
from roadwork.db.engine import read_session
from roadwork.platform import ablation
from roadwork.trainer.config import COMPONENTS, ConfigError, TrainConfig
from tests.conftest import tiny_config as _tiny_config


def tiny_config(epochs: int = 3) -> TrainConfig:
    """The tiny preset with augmentation switched on, so that ablating it turns it off."""
    return _tiny_config(epochs).with_overrides({"augment.enabled": True})

# --- paired delta -----------------------------------------------------------------------------------------------

T_975_DF2 = 4.302653  # Student t 97.5% quantile, 2 degrees of freedom (printed tables)
T_975_DF1 = 12.706205


def test_paired_delta_three_seeds_by_hand() -> None:
    # Differences 0.1, 0.2, 0.3: mean 0.2, sample sd 0.1, half-width t(0.975, 2) * 0.1 / sqrt(3) = 0.248414.
    delta, low, high = ablation.paired_delta([0.50, 0.40, 0.60], [0.60, 0.60, 0.90])
    assert delta == pytest.approx(0.2)
    assert low == pytest.approx(0.2 - 0.248414, abs=1e-6)
    assert high == pytest.approx(0.2 + 0.248414, abs=1e-6)
    assert stats.t.ppf(0.975, 2) == pytest.approx(T_975_DF2, abs=1e-6)
    assert high - delta == pytest.approx(T_975_DF2 * 0.1 / math.sqrt(3), abs=1e-6)


def test_paired_delta_two_seeds_and_a_worse_variant() -> None:
    # Differences -0.1, -0.3: mean -0.2, sd sqrt(0.02), standard error 0.1, half-width 12.7062 * 0.1.
    delta, low, high = ablation.paired_delta([0.7, 0.6], [0.6, 0.3])
    assert delta == pytest.approx(-0.2)
    assert (low, high) == (pytest.approx(-0.2 - T_975_DF1 * 0.1, abs=1e-5), pytest.approx(-0.2 + T_975_DF1 * 0.1, abs=1e-5))


def test_pairing_by_seed_removes_the_noise_both_runs_share() -> None:
    # Seeds move MCC from 0.3 to 0.7, the variant adds 0.01 at each: the paired interval is exactly 0.01, where
    # comparing the two means unpaired would drown that gain in the seed spread.
    delta, low, high = ablation.paired_delta([0.3, 0.5, 0.7], [0.31, 0.51, 0.71])
    assert (delta, low, high) == (pytest.approx(0.01), pytest.approx(0.01), pytest.approx(0.01))


def test_paired_delta_with_one_seed_has_no_interval() -> None:
    assert ablation.paired_delta([0.4], [0.55]) == (pytest.approx(0.15), None, None)


def test_paired_delta_refuses_unpaired_input() -> None:
    with pytest.raises(ValueError, match="equal lengths"):
        ablation.paired_delta([0.1, 0.2], [0.3])
    with pytest.raises(ValueError):
        ablation.paired_delta([], [])


# --- variants -------------------------------------------------------------------------------------------------------


def _changed(a: TrainConfig, b: TrainConfig) -> dict[str, tuple]:
    """Dotted keys whose values differ between two configs."""
    def flat(d: dict, prefix: str = "") -> dict:
        items = {}
        for k, v in d.items():
            items |= flat(v, f"{prefix}{k}.") if isinstance(v, dict) and v else {f"{prefix}{k}": v}
        return items
    fa, fb = flat(a.to_dict()), flat(b.to_dict())
    return {k: (fa[k], fb[k]) for k in fa if fa[k] != fb[k]}


def test_each_variant_flips_exactly_its_component() -> None:
    base = tiny_config(epochs=2)  # augmentation on (here), GPS sampling off, no pruning
    variants = ablation.plan_variants(base, ["augmentation", "gps_sampling", "view_pruning"])
    assert [(c, d) for c, _, d in variants] == [("augmentation", "off"), ("gps_sampling", "on"), ("view_pruning", "on")]
    assert [_changed(base, v) for _, v, _ in variants] == [
        {"augment.enabled": (True, False)},
        {"sampling.gps.enabled": (False, True)},
        {"model.pruning.placement": ("none", "post")},
    ]


def test_unknown_components_are_all_named_with_the_known_ones() -> None:
    with pytest.raises(ConfigError) as info:
        ablation.plan_variants(tiny_config(), ["gps_sampling", "gps", "augmentaton"])
    message = str(info.value)
    assert "'gps'" in message and "'augmentaton'" in message
    assert all(name in message for name in COMPONENTS)


def test_empty_or_repeated_components_and_seeds_are_refused() -> None:
    with pytest.raises(ValueError, match="at least one component"):
        ablation.plan_variants(tiny_config(), [])
    with pytest.raises(ValueError, match="more than once: augmentation"):
        ablation.plan_variants(tiny_config(), ["augmentation", "gps_sampling", "augmentation"])
    with pytest.raises(ValueError, match="distinct"):
        ablation.check_seeds([0, 1, 0])
    with pytest.raises(ValueError, match="at least one seed"):
        ablation.check_seeds([])


# --- the service with a scripted trainer ------------------------------------------------------------------------------


class ScriptedTrainer:
    """Stands in for `train`: MCC 0.4 + 0.1 * seed for the base; GPS sampling adds 0.05 at every seed; turning
    augmentation off costs 0.1 * (seed + 1). Records every call and writes a file into each checkpoint folder."""

    def __init__(self, fail_on: tuple[bool, int] | None = None) -> None:
        self.calls: list[tuple[TrainConfig, Path, Path]] = []
        self.fail_on = fail_on  # (augment.enabled, seed) that raises

    def __call__(self, config: TrainConfig, data_path: Path, out_dir: Path, **_: object) -> SimpleNamespace:
        self.calls.append((config, data_path, out_dir))
        seed = config.optim.seed
        if self.fail_on == (config.augment.enabled, seed):
            raise RuntimeError("out of memory")
        out_dir.mkdir(parents=True)
        (out_dir / "weights.safetensors").write_bytes(b"x")
        mcc = 0.4 + 0.1 * seed + 0.05 * config.sampling.gps.enabled - (0 if config.augment.enabled else 0.1 * (seed + 1))
        return SimpleNamespace(metrics={"val_mcc": mcc}, seconds=1.5, data_fingerprint="f" * 64,
                               checkpoint_dir=out_dir)


def test_study_pairs_every_variant_with_the_base_by_seed(engine, settings, synth_data, monkeypatch) -> None:
    trainer = ScriptedTrainer()
    monkeypatch.setattr(ablation, "train", trainer)
    base = tiny_config(epochs=30)
    study = ablation.run_ablation(engine, settings, base, ["gps_sampling", "augmentation"], [0, 1, 2],
                                  data_path=synth_data, epochs=2, actor="tester", log=lambda _: None)

    assert study.status == "finished" and study.error is None and study.finished_at is not None
    assert (study.seeds, study.components, study.actor) == ([0, 1, 2], ["gps_sampling", "augmentation"], "tester")
    assert study.data_fingerprint == "f" * 64 and study.config["optim"]["epochs"] == 2
    base_row, gps, aug = study.rows
    assert (base_row.component, base_row.direction, base_row.delta, base_row.ci_low) == ("base", "base", None, None)
    assert base_row.mcc == pytest.approx([0.4, 0.5, 0.6]) and base_row.mean_mcc == pytest.approx(0.5)
    assert (gps.component, gps.direction) == ("gps_sampling", "on")
    assert gps.mcc == pytest.approx([0.45, 0.55, 0.65])
    assert (gps.delta, gps.ci_low, gps.ci_high) == (pytest.approx(0.05), pytest.approx(0.05), pytest.approx(0.05))
    # Augmentation off: differences -0.1, -0.2, -0.3 -> -0.2 +- t(0.975, 2) * 0.1 / sqrt(3).
    assert (aug.component, aug.direction) == ("augmentation", "off")
    assert aug.mcc == pytest.approx([0.3, 0.3, 0.3]) and aug.mean_mcc == pytest.approx(0.3)
    assert aug.delta == pytest.approx(-0.2)
    assert (aug.ci_low, aug.ci_high) == (pytest.approx(-0.2 - 0.248414, abs=1e-6), pytest.approx(-0.2 + 0.248414, abs=1e-6))
    assert [r.seconds for r in study.rows] == [4.5, 4.5, 4.5]

    # Every run: the same data and split, its seed, two epochs; the base first, then one variant at a time.
    assert len(trainer.calls) == 9
    assert [c.optim.seed for c, _, _ in trainer.calls] == [0, 1, 2] * 3
    assert [(c.sampling.gps.enabled, c.augment.enabled) for c, _, _ in trainer.calls[::3]] == [
        (False, True), (True, True), (False, False)]
    assert {(c.data.split_seed, c.data.val_fraction, c.optim.epochs, d) for c, d, _ in trainer.calls} == {
        (0, 0.2, 2, synth_data)}
    # Checkpoints were scratch under the home, and are gone.
    scratch = settings.home / "temp" / "ablation"
    assert all(out.is_relative_to(scratch) and not out.exists() for _, _, out in trainer.calls)
    with read_session(engine) as session:
        assert store.get_study(session, study.id) == study
        assert [s.id for s in store.list_studies(session)] == [study.id]


def test_a_crash_keeps_the_finished_rows_and_marks_the_study_failed(engine, settings, synth_data, monkeypatch) -> None:
    monkeypatch.setattr(ablation, "train", ScriptedTrainer(fail_on=(False, 1)))
    with pytest.raises(RuntimeError, match="out of memory"):
        ablation.run_ablation(engine, settings, tiny_config(), ["gps_sampling", "augmentation"], [0, 1],
                              data_path=synth_data, log=lambda _: None)
    with read_session(engine) as session:
        (study,) = store.list_studies(session)
    assert study.status == "failed" and study.error == "RuntimeError: out of memory"
    assert [r.component for r in study.rows] == ["base", "gps_sampling"]
    assert study.rows[1].mcc == pytest.approx([0.45, 0.55])
    assert not (settings.home / "temp" / "ablation" / f"study-{study.id}").exists()


def test_bad_requests_fail_before_anything_trains_or_is_stored(engine, settings, synth_data, monkeypatch) -> None:
    trainer = ScriptedTrainer()
    monkeypatch.setattr(ablation, "train", trainer)
    with pytest.raises(ConfigError, match="unknown component 'views_pruning'"):
        ablation.run_ablation(engine, settings, tiny_config(), ["augmentation", "views_pruning"], [0],
                              data_path=synth_data)
    with pytest.raises(FileNotFoundError, match="dataset not found"):  # no data given, none in the home
        ablation.run_ablation(engine, settings, tiny_config(), ["augmentation"], [0])
    with pytest.raises(ConfigError, match="optim.epochs"):
        ablation.run_ablation(engine, settings, tiny_config(), ["augmentation"], [0], data_path=synth_data, epochs=0)
    assert trainer.calls == []
    with read_session(engine) as session:
        assert store.list_studies(session) == []


def test_one_seed_stores_no_interval(engine, settings, synth_data, monkeypatch) -> None:
    monkeypatch.setattr(ablation, "train", ScriptedTrainer())
    study = ablation.run_ablation(engine, settings, tiny_config(), ["augmentation"], [2], data_path=synth_data,
                                  log=lambda _: None)
    variant = study.rows[1]
    assert variant.mcc == pytest.approx([0.3]) and variant.delta == pytest.approx(-0.3)
    assert (variant.ci_low, variant.ci_high) == (None, None)


# --- real training -----------------------------------------------------------------------------------------------------


def test_real_study_of_the_tiny_preset(engine, settings, synth_data, tiny_checkpoint) -> None:
    study = ablation.run_ablation(engine, settings, _tiny_config(epochs=2), ["gps_sampling", "augmentation"], [0, 1],
                                  data_path=synth_data, show_progress=False, log=lambda _: None)
    assert study.status == "finished" and [r.component for r in study.rows] == ["base", "gps_sampling", "augmentation"]
    base = study.base
    # Seed 0 of the base is the tiny preset trained for two epochs: the same run as the shared checkpoint.
    assert base.mcc[0] == pytest.approx(tiny_checkpoint.metrics["val_mcc"], abs=1e-9)
    assert study.data_fingerprint == tiny_checkpoint.data_fingerprint
    for row in study.rows[1:]:
        assert len(row.mcc) == 2 and all(-1 <= v <= 1 for v in row.mcc)
        diffs = np.subtract(row.mcc, base.mcc)
        assert row.delta == pytest.approx(diffs.mean())
        half = stats.t.ppf(0.975, 1) * diffs.std(ddof=1) / math.sqrt(2)
        assert (row.ci_low, row.ci_high) == (pytest.approx(diffs.mean() - half), pytest.approx(diffs.mean() + half))
        assert row.seconds > 0
    assert not any((settings.home / "temp" / "ablation").glob("*"))

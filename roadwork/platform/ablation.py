"""Ablation studies: what each switchable component of the recipe is worth, measured instead of assumed.

The base config and one variant per component (the base with that component flipped: on -> off, off -> on)
train on the same data, the same train/validation split (`data.split_seed` is left alone) and the same seeds
(`optim.seed`). A variant's effect is the mean over seeds of (variant MCC - base MCC at that seed): pairing by
seed cancels the part of the seed-to-seed noise (initialisation, shuffling) that both runs share. Its 95%
confidence interval is the Student t interval of those paired differences, undefined with one seed.

The study row is written first (running), each row as soon as its seeds have trained, so that a crash leaves
the finished part visible, then the study is closed as finished, or failed with the error. The checkpoints are
scratch: they live under `<home>/temp/ablation/` and are deleted once their MCC is recorded; no version is
registered.
"""

from __future__ import annotations

import math
import shutil
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
from scipy import stats
from sqlalchemy import Engine

from roadwork.settings import Settings
from roadwork.db.repo import ablations
from roadwork.db.repo.ablations import BASE, AblationStudy
from roadwork.db.engine import read_session, write_session
from roadwork.platform.evaluation.validation import resolve_data_path
from roadwork.trainer.config import (
    COMPONENTS,
    ConfigError,
    TrainConfig,
    toggle_component,
)
from roadwork.trainer.data.readers import canonical_source
from roadwork.trainer.loop.train import train

CONFIDENCE = 0.95


def paired_delta(
    base: Sequence[float], variant: Sequence[float], confidence: float = CONFIDENCE
) -> tuple[float, float | None, float | None]:
    """(mean of variant[i] - base[i], CI low, CI high): the Student t interval of the paired differences with
    n - 1 degrees of freedom. With one pair the interval is undefined: (delta, None, None)."""
    if len(base) != len(variant):
        raise ValueError(f"paired values need equal lengths, got {len(base)} base and {len(variant)} variant")
    if not len(base):
        raise ValueError("paired_delta needs at least one pair")
    diffs = np.asarray(variant, dtype=float) - np.asarray(base, dtype=float)
    delta = float(diffs.mean())
    if diffs.size < 2:
        return delta, None, None
    half = float(stats.t.ppf((1 + confidence) / 2, diffs.size - 1) * diffs.std(ddof=1) / math.sqrt(diffs.size))
    return delta, delta - half, delta + half


def plan_variants(config: TrainConfig, components: Sequence[str]) -> list[tuple[str, TrainConfig, str]]:
    """(component, variant config, "on" | "off") for each component, in order. Raises `ConfigError` naming every
    unknown component (and the known ones) or a flip the config rejects, and `ValueError` for an empty or
    repeated list, so that a bad request fails before anything trains."""
    if not components:
        raise ValueError(f"name at least one component to ablate; known: {', '.join(sorted(COMPONENTS))}")
    unknown = [c for c in components if c not in COMPONENTS]
    if unknown:
        raise ConfigError(f"unknown component{'s' if len(unknown) > 1 else ''} {', '.join(map(repr, unknown))}; "
                          f"known: {', '.join(sorted(COMPONENTS))}")
    repeated = sorted({c for c in components if list(components).count(c) > 1})
    if repeated:
        raise ValueError(f"component named more than once: {', '.join(repeated)}")
    variants = []
    for component in components:
        variant, has_it_on = toggle_component(config, component)
        variants.append((component, variant, "on" if has_it_on else "off"))
    return variants


def check_seeds(seeds: Sequence[int]) -> list[int]:
    seeds = [int(s) for s in seeds]
    if not seeds:
        raise ValueError("name at least one seed")
    if len(set(seeds)) != len(seeds):
        raise ValueError(f"seeds must be distinct (they pair the runs), got {seeds}")
    return seeds


def run_ablation(
    engine: Engine,
    settings: Settings,
    config: TrainConfig,
    components: Sequence[str],
    seeds: Sequence[int],
    *,
    data_path: Path | None = None,
    epochs: int | None = None,
    actor: str = "cli",
    show_progress: bool = True,
    log: Callable[[str], None] = print,
) -> AblationStudy:
    """Train the base config and one variant per component on every seed, store each row as it finishes, and
    return the stored study. `epochs` overrides optim.epochs of every run; `data_path` the config's data.path
    (default: the home's synthetic dataset). On any error the study is marked failed and the error re-raised."""
    seeds = check_seeds(seeds)
    if epochs is not None:
        config = config.with_overrides({"optim.epochs": epochs})
    path = Path(data_path) if data_path else resolve_data_path(settings, config.data.path)
    # The config as run records the data it actually used; the variants inherit it.
    config = config.with_overrides({"data.path": canonical_source(path)})
    variants = plan_variants(config, components)
    with write_session(engine) as session:
        study = ablations.create_study(session, config_name=config.name, config=config.to_dict(), seeds=seeds,
                                       components=list(components), actor=actor)
    scratch = settings.home / "temp" / "ablation" / f"study-{study.id}"
    runner = _Runner(engine, study.id, seeds, path, scratch, show_progress, log, total=len(seeds) * (1 + len(variants)))
    try:
        base_mcc, seconds = runner.train_seeds(BASE, config)
        with write_session(engine) as session:
            ablations.add_row(session, study.id, component=BASE, direction=BASE, mcc=base_mcc,
                              mean_mcc=float(np.mean(base_mcc)), delta=None, ci_low=None, ci_high=None,
                              seconds=seconds)
        for component, variant, direction in variants:
            mcc, seconds = runner.train_seeds(component, variant)
            delta, low, high = paired_delta(base_mcc, mcc)
            with write_session(engine) as session:
                ablations.add_row(session, study.id, component=component, direction=direction, mcc=mcc,
                                  mean_mcc=float(np.mean(mcc)), delta=delta, ci_low=low, ci_high=high,
                                  seconds=seconds)
            log(f"ablation {study.id}: {component} {direction}: mean MCC {np.mean(mcc):.3f}, delta {delta:+.3f}")
        with write_session(engine) as session:
            ablations.finish_study(session, study.id, "finished")
    except BaseException as exc:  # KeyboardInterrupt too: a stopped study must not stay "running"
        with write_session(engine) as session:
            ablations.finish_study(session, study.id, "failed", error=f"{type(exc).__name__}: {exc}")
        raise
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    with read_session(engine) as session:
        return ablations.get_study(session, study.id)


class _Runner:
    """Trains one config on every seed of a study into scratch folders and keeps only the MCCs."""

    def __init__(self, engine: Engine, study_id: int, seeds: list[int], data_path: Path, scratch: Path,
                 show_progress: bool, log: Callable[[str], None], total: int) -> None:
        self.engine, self.study_id, self.seeds, self.data_path, self.scratch = engine, study_id, seeds, data_path, scratch
        self.show_progress, self.log, self.total, self.done = show_progress, log, total, 0
        self.fingerprint: str | None = None

    def train_seeds(self, label: str, config: TrainConfig) -> tuple[list[float], float]:
        """(validation MCC per seed, training seconds of all seeds)."""
        mccs, seconds = [], 0.0
        for seed in self.seeds:
            out_dir = self.scratch / f"{label}-seed{seed}"
            result = train(config.with_overrides({"optim.seed": seed}), self.data_path, out_dir,
                           show_progress=self.show_progress, log=self.log)
            shutil.rmtree(out_dir, ignore_errors=True)
            self._check_data(result.data_fingerprint)
            mccs.append(float(result.metrics["val_mcc"]))
            seconds += result.seconds
            self.done += 1
            self.log(f"ablation {self.study_id}: {label} seed {seed} ({self.done}/{self.total}): "
                     f"val MCC {mccs[-1]:.3f} in {result.seconds:.0f} s")
        return mccs, seconds

    def _check_data(self, fingerprint: str) -> None:
        if self.fingerprint is None:
            self.fingerprint = fingerprint
            with write_session(self.engine) as session:
                ablations.set_data_fingerprint(session, self.study_id, fingerprint)
        elif fingerprint != self.fingerprint:
            raise RuntimeError(f"the dataset changed during the study (fingerprint {self.fingerprint[:12]} -> "
                               f"{fingerprint[:12]}): its runs are no longer comparable")

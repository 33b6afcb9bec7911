"""The synthetic dataset with a progress bar on stderr: shared by `roadwork data synth` and the demo."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from roadwork.trainer.data.synth import SynthReport


def synthesize_with_progress(out_dir: Path, n: int, seed: int, corrupt_fraction: float,
                             show: bool = True) -> SynthReport:
    """Write `n` synthetic rows under `out_dir` (see trainer.data.synth.synthesize); the bar goes to stderr, so
    that stdout stays clean for --json."""
    from rich.console import Console
    from rich.progress import Progress

    from roadwork.trainer.data.synth import synthesize

    with Progress(disable=not show, console=Console(stderr=True, soft_wrap=True)) as bar:
        task = bar.add_task("synthesising", total=n)
        return synthesize(out_dir, n, seed=seed, corrupt_fraction=corrupt_fraction,
                          progress=lambda k: bar.update(task, completed=k))

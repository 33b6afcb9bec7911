"""`roadwork data ...` and `roadwork mine`: the datasets the trainer reads, synthetic and hard-negative.

Top-level commands are plain functions here; `roadwork.cli.app` registers them in the order `--help` lists."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from roadwork.cli.context import actor, current_settings, migrated_engine
from roadwork.cli.output import JsonOpt, emit_json, jsonable, out

data_app = typer.Typer(help="Datasets.", no_args_is_help=True)


@data_app.command("synth")
def data_synth(
    out_dir: Annotated[Path, typer.Option("--out", help="Folder to write (parquet under data/).")],
    n: Annotated[int, typer.Option("--n", min=2, help="Number of rows.")] = 1200,
    seed: Annotated[int, typer.Option(help="Random seed; the same seed gives the same dataset.")] = 0,
    corrupt_fraction: Annotated[float, typer.Option(min=0.0, max=0.5, help="Share of rows with broken image bytes.")] = 0.01,
    as_json: JsonOpt = False,
) -> None:
    """Write a synthetic roadwork dataset in the NATIX parquet schema (works offline)."""
    from roadwork.platform.synthetic_data import synthesize_with_progress

    report = synthesize_with_progress(out_dir, n, seed, corrupt_fraction, show=not as_json)
    if as_json:
        emit_json(report)
    else:
        out.print(f"wrote {report.n_rows} rows ({report.n_positive} roadwork, {report.n_corrupt} corrupt) to {report.path}")


def mine(
    pool: Annotated[Path | None, typer.Option(help="Dataset or image folder (default: mining.pool or the training data).")] = None,
    as_json: JsonOpt = False,
) -> None:
    """Mine hard negatives with the champion now (the scheduler's `mine` job does this on its cron)."""
    from roadwork.platform.mining import mine_hard_negatives

    settings = current_settings()
    found = mine_hard_negatives(migrated_engine(settings), settings, pool=pool, actor=actor())
    emit_json(found) if as_json else out.print(f"hard-negative set: {jsonable(found)}")

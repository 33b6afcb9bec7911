"""`roadwork ...`: a thin command line over the platform services. Every listing command has `--json`."""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import os
import sys
import time
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from roadwork.clock import to_local

app = typer.Typer(
    help="Roadwork Ops: train, evaluate, deploy, roll back and watch a StreetVision roadwork-detection miner.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
db_app = typer.Typer(help="The registry database.", no_args_is_help=True)
data_app = typer.Typer(help="Datasets.", no_args_is_help=True)
jobs_app = typer.Typer(help="Scheduled jobs (changes go through the scheduler's commands table).", no_args_is_help=True)
settings_app = typer.Typer(help="Settings of this installation.", no_args_is_help=True)
app.add_typer(db_app, name="db")
app.add_typer(data_app, name="data")
app.add_typer(jobs_app, name="jobs")
app.add_typer(settings_app, name="settings")

out = Console(soft_wrap=True)
err = Console(stderr=True, soft_wrap=True)
JsonOpt = Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")]
ACTOR = f"cli:{os.environ.get('USER', 'unknown')}"


# --- plumbing ----------------------------------------------------------------------------------------------


@app.callback()
def main_options(
    settings: Annotated[
        Path | None, typer.Option("--settings", help="Settings YAML (default: $ROADWORK_SETTINGS or <home>/roadwork.yaml).")
    ] = None,
    home: Annotated[Path | None, typer.Option("--home", help="Home directory (default: $ROADWORK_HOME or ~/.roadwork).")] = None,
) -> None:
    # Passed on through the environment so that the scheduler's jobs and the dashboard see the same settings.
    if settings is not None:
        os.environ["ROADWORK_SETTINGS"] = str(settings.expanduser().resolve())
    if home is not None:
        os.environ["ROADWORK_HOME"] = str(home.expanduser().resolve())


def _settings():  # noqa: ANN202
    from roadwork.platform.jobs.catalog import check_overrides
    from roadwork.settings import load_settings

    settings = load_settings(os.environ.get("ROADWORK_SETTINGS"))
    check_overrides(settings.scheduler)  # `scheduler.crons` / `timeouts_s` must name jobs of the catalog
    return settings


def _engine(settings):  # noqa: ANN001, ANN202 - migrations are applied at every process start
    from roadwork.db.engine import get_engine, migrate

    engine = get_engine(settings.db_url)
    migrate(engine)
    return engine


def jsonable(value: Any) -> Any:
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: jsonable(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, dt.datetime):
        return (value if value.tzinfo else value.replace(tzinfo=dt.UTC)).isoformat().replace("+00:00", "Z")
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [jsonable(v) for v in value]
    return value


def emit_json(value: Any) -> None:
    print(json.dumps(jsonable(value), indent=2))


def local(value: dt.datetime | None) -> str:
    return "" if value is None else to_local(value).strftime("%Y-%m-%d %H:%M:%S %Z")


def table(title: str, columns: list[str], rows: list[list[Any]]) -> None:
    t = Table(title=title, title_justify="left")
    for c in columns:
        t.add_column(c)
    for r in rows:
        t.add_row(*("" if v is None else str(v) for v in r))
    out.print(t)


# --- db, data, settings -----------------------------------------------------------------------------------


@db_app.command("upgrade")
def db_upgrade(as_json: JsonOpt = False) -> None:
    """Apply database migrations (every command also does this at start)."""
    from roadwork.db.engine import current_revision

    settings = _settings()
    engine = _engine(settings)
    result = {"database": settings.public_dict()["database_url"], "revision": current_revision(engine)}
    emit_json(result) if as_json else out.print(f"database {result['database']} at revision {result['revision']}")


@data_app.command("synth")
def data_synth(
    out_dir: Annotated[Path, typer.Option("--out", help="Folder to write (parquet under data/).")],
    n: Annotated[int, typer.Option("--n", min=2, help="Number of rows.")] = 1200,
    seed: Annotated[int, typer.Option(help="Random seed; the same seed gives the same dataset.")] = 0,
    corrupt_fraction: Annotated[float, typer.Option(min=0.0, max=0.5, help="Share of rows with broken image bytes.")] = 0.01,
    as_json: JsonOpt = False,
) -> None:
    """Write a synthetic roadwork dataset in the NATIX parquet schema (works offline)."""
    report = synthesize_with_progress(out_dir, n, seed, corrupt_fraction, show=not as_json)
    if as_json:
        emit_json(report)
    else:
        out.print(f"wrote {report.n_rows} rows ({report.n_positive} roadwork, {report.n_corrupt} corrupt) to {report.path}")


def synthesize_with_progress(out_dir: Path, n: int, seed: int, corrupt_fraction: float, show: bool = True):  # noqa: ANN201
    from rich.progress import Progress

    from roadwork.trainer.data.synth import synthesize

    with Progress(disable=not show, console=err) as bar:
        task = bar.add_task("synthesising", total=n)
        return synthesize(out_dir, n, seed=seed, corrupt_fraction=corrupt_fraction,
                          progress=lambda k: bar.update(task, completed=k))


@settings_app.command("show")
def settings_show(as_json: JsonOpt = False) -> None:
    """Show the settings in force (secrets masked) and where each can be set."""
    from roadwork.settings import describe_settings, settings_path

    settings = _settings()
    if as_json:
        emit_json(settings.public_dict())
        return
    out.print(f"settings file: {settings_path(os.environ.get('ROADWORK_SETTINGS'))}")
    values = settings.public_dict()
    rows = []
    for key, _default, desc in describe_settings():
        node: Any = values
        for part in key.split("."):
            node = node.get(part) if isinstance(node, dict) else None
        if isinstance(node, dict):
            continue
        rows.append([key, json.dumps(node), desc])
    table("settings", ["key", "value", "description"], rows)


# --- train, evaluate, registry ---------------------------------------------------------------------------


@app.command()
def train(
    config: Annotated[Path, typer.Option("--config", help="Training preset, e.g. configs/tiny.yaml.")],
    data: Annotated[Path | None, typer.Option(help="Dataset (parquet file or folder); default: data.path of the config.")] = None,
    epochs: Annotated[int | None, typer.Option(help="Override optim.epochs.")] = None,
    resume: Annotated[bool, typer.Option(help="Continue the newest interrupted run from its last finished epoch.")] = False,
    as_json: JsonOpt = False,
) -> None:
    """Train a model and register it as a candidate version (the champion is its parent).

    Multi-GPU / multi-node: `torchrun --nproc_per_node N -m roadwork.cli train --config ...` (rank 0 registers)."""
    from roadwork.platform.training import train_and_register
    from roadwork.trainer.config import load_config

    cfg = load_config(config, {"optim.epochs": epochs} if epochs else None)
    settings = _settings()
    engine = _engine(settings)
    log = (lambda s: err.print(s)) if as_json else out.print
    version, result = train_and_register(engine, settings, cfg, data_path=data, actor=ACTOR,
                                         show_progress=not as_json, log=log, resume=resume)
    if version is None:  # a torchrun rank other than 0
        return
    if as_json:
        emit_json({"version": version, "seconds": round(result.seconds, 2)})
    else:
        out.print(f"registered {version.label} (id {version.id}): val MCC {result.metrics['val_mcc']:.3f}, "
                  f"accuracy {result.metrics['val_accuracy']:.3f} in {result.seconds:.0f} s")


def _preset(config: Path, data: Path | None, overrides: dict[str, Any] | None = None):  # noqa: ANN202
    """(config, data path) for the trainer's probes: the data is --data, else the config's, else the home's."""
    from roadwork.platform.evaluation.validation import resolve_data_path
    from roadwork.trainer.config import load_config

    cfg = load_config(config, overrides)
    return cfg, (data if data else resolve_data_path(_settings(), cfg.data.path))


@app.command("lr-find")
def lr_find(
    config: Annotated[Path, typer.Option("--config", help="Training preset, e.g. configs/tiny.yaml.")],
    data: Annotated[Path | None, typer.Option(help="Dataset; default: data.path of the config, else the home's.")] = None,
    steps: Annotated[int, typer.Option(min=10, help="Batches in the range test.")] = 100,
    plot: Annotated[Path | None, typer.Option(help="Write the loss-vs-LR curve as a PNG here.")] = None,
    as_json: JsonOpt = False,
) -> None:
    """Learning-rate range test: raise the LR exponentially over --steps batches and suggest a starting optim.lr."""
    from roadwork.trainer.loop.finders import plot_lr_finder
    from roadwork.trainer.loop.probe import lr_find as run

    cfg, path = _preset(config, data)
    result = run(cfg, path, steps=steps, log=(lambda s: err.print(s)) if as_json else out.print)
    if plot:
        plot_lr_finder(result, plot)
    if as_json:
        emit_json({k: v for k, v in result.to_dict().items() if k in ("suggested_lr", "min_loss_lr", "diverged")}
                  | {"steps": len(result.lrs), "plot": str(plot) if plot else None})
        return
    out.print(f"suggested optim.lr {result.suggested_lr:.2e} (steepest descent); lowest loss at {result.min_loss_lr:.2e}"
              f"{'; the loss diverged after that' if result.diverged else ''}" + (f"; curve: {plot}" if plot else ""))


@app.command("batch-size")
def batch_size(
    config: Annotated[Path, typer.Option("--config", help="Training preset, e.g. configs/competition.yaml.")],
    data: Annotated[Path | None, typer.Option(help="Dataset; default: data.path of the config, else the home's.")] = None,
    max_batch: Annotated[int, typer.Option(help="Stop searching above this batch size.")] = 1024,
    as_json: JsonOpt = False,
) -> None:
    """Largest batch whose forward + backward fits in CUDA memory (doubling, then bisection). Needs a GPU."""
    from roadwork.trainer.loop.probe import batch_size_find

    cfg, path = _preset(config, data)
    result = batch_size_find(cfg, path, max_batch=max_batch)
    if as_json:
        emit_json(result.to_dict())
        return
    out.print(f"largest batch that fits: {result.batch_size} (tried {result.tried})")


@app.command("augment-preview")
def augment_preview(
    config: Annotated[Path, typer.Option("--config", help="Training preset whose augment section to preview.")],
    out_path: Annotated[Path, typer.Option("--out", help="PNG contact sheet to write.")] = Path("augment-preview.png"),
    data: Annotated[Path | None, typer.Option(help="Dataset; default: data.path of the config, else the home's.")] = None,
    n: Annotated[int, typer.Option(min=8, help="Images on the sheet (8 per row; row 1 the originals).")] = 32,
    every_family: Annotated[bool, typer.Option(help="Fire every augmentation family on every image.")] = False,
) -> None:
    """Write a contact sheet of augmented training images: row 1 the originals, then augmented copies."""
    from roadwork.trainer.loop.probe import augment_preview as run

    cfg, path = _preset(config, data)
    written = run(cfg, path, out_path, n=n, every_family=every_family, log=out.print)
    out.print(f"wrote {written}")


@app.command()
def ensemble(
    config: Annotated[Path, typer.Option("--config", help="Training preset every member starts from.")],
    members: Annotated[str, typer.Option("--members", help="kind:seed,... e.g. dinov3:0,convnextv2:1 (kind: dinov3, "
                                         "dinov2, convnextv2 or a Hugging Face id).")],
    combine: Annotated[str, typer.Option(help="mean, or learned: weights fitted on the validation split.")] = "mean",
    data: Annotated[Path | None, typer.Option(help="Dataset (parquet file or folder); default: data.path of the config.")] = None,
    epochs: Annotated[int | None, typer.Option(help="Override optim.epochs of every member.")] = None,
    as_json: JsonOpt = False,
) -> None:
    """Train N members, combine their logits, and register the ensemble as ONE candidate version."""
    from roadwork.platform.training import train_ensemble_and_register
    from roadwork.trainer.config import load_config
    from roadwork.trainer.model.ensemble import COMBINES, parse_members

    if combine not in COMBINES:
        raise typer.BadParameter(f"must be one of {', '.join(COMBINES)}", param_hint="--combine")
    try:
        specs = parse_members(members)
    except ValueError as exc:
        raise typer.BadParameter(str(exc), param_hint="--members") from None
    cfg = load_config(config, {"optim.epochs": epochs} if epochs else None)
    settings = _settings()
    engine = _engine(settings)
    log = (lambda s: err.print(s)) if as_json else out.print
    version, result = train_ensemble_and_register(engine, settings, cfg, specs, combine, data_path=data, actor=ACTOR,
                                                  show_progress=not as_json, log=log)
    if as_json:
        emit_json({"version": version, "combine": result.combine, "bias": result.bias,
                   "val_mcc": result.metrics["val_mcc"], "seconds": round(result.seconds, 2),
                   "members": [{"name": m.name, "weight": m.weight, "val_mcc": m.val_mcc} for m in result.members]})
        return
    table(f"ensemble ({result.combine})", ["member", "weight", "val MCC"],
          [[m.name, f"{m.weight:.3f}", f"{m.val_mcc:.3f}"] for m in result.members]
          + [["ensemble", f"bias {result.bias:+.3f}", f"{result.metrics['val_mcc']:.3f}"]])
    out.print(f"registered {version.label} (id {version.id}): val MCC {result.metrics['val_mcc']:.3f}, "
              f"accuracy {result.metrics['val_accuracy']:.3f} in {result.seconds:.0f} s")


def _comma_list(text: str, what: str, cast=str) -> list:  # noqa: ANN001
    try:
        return [cast(part.strip()) for part in text.split(",") if part.strip()]
    except ValueError as exc:
        raise ValueError(f"{what} must be a comma-separated list, e.g. 0,1,2: {exc}") from exc


def _compact_table(title: str, columns: list[str], rows: list[list[Any]], no_wrap: tuple[str, ...] = ()) -> None:
    """A table without vertical rules, so that an ablation's seeds and interval fit an 80-column terminal."""
    from rich import box

    t = Table(title=title, title_justify="left", box=box.SIMPLE_HEAD, pad_edge=False, collapse_padding=True)
    for c in columns:
        t.add_column(c, no_wrap=c in no_wrap)
    for r in rows:
        t.add_row(*("" if v is None else str(v) for v in r))
    out.print(t)


def _print_ablation(study) -> None:  # noqa: ANN001 - db.ablations.AblationStudy
    def ci(row) -> str:  # noqa: ANN001
        if row.delta is None:
            return ""
        return "n/a" if row.ci_low is None else f"{row.ci_low:+.3f}..{row.ci_high:+.3f}"

    _compact_table(f"ablation study {study.id}: {study.config_name}, seeds {', '.join(map(str, study.seeds))}, "
                   f"{study.status}", ["component", "direction", "MCC per seed", "mean", "delta", "95% CI"],
                   [[r.component, r.direction, " ".join(f"{v:+.3f}" for v in r.mcc), f"{r.mean_mcc:+.3f}",
                     "" if r.delta is None else f"{r.delta:+.3f}", ci(r)] for r in study.rows],
                   no_wrap=("component", "direction", "MCC per seed", "mean", "delta", "95% CI"))
    done = {r.component for r in study.rows}
    missing = [c for c in study.components if c not in done]
    out.print(f"data {(study.data_fingerprint or 'unknown')[:12]}, {study.config['optim']['epochs']} epochs, "
              f"trained {sum(r.seconds for r in study.rows):.0f} s" + (f"; not run: {', '.join(missing)}" if missing else ""))
    if study.error:
        out.print(f"[red]failed:[/red] {study.error}", highlight=False)


@app.command()
def ablate(
    config: Annotated[Path, typer.Option("--config", help="Base training preset, e.g. configs/tiny.yaml.")],
    components: Annotated[str, typer.Option(
        help="Components to flip one at a time, comma-separated, e.g. gps_sampling,augmentation "
             "(an unknown name lists the known ones).")],
    seeds: Annotated[str, typer.Option(help="optim.seed of the runs, comma-separated; every config trains on each.")] = "0,1,2",
    data: Annotated[Path | None, typer.Option(help="Dataset (parquet file or folder); default: data.path of the config.")] = None,
    epochs: Annotated[int | None, typer.Option(min=1, help="Override optim.epochs of every run.")] = None,
    as_json: JsonOpt = False,
) -> None:
    """Measure what each component is worth: train the base config and, per component, the base with it flipped.

    Every config trains on the same data, split and seeds; checkpoints are deleted, nothing is registered.
    Prints and stores the validation MCC per seed, the mean, and the delta to the base paired by seed.
    The 95% CI is the Student t interval of the paired deltas (n/a with one seed). See `roadwork ablations`."""
    from roadwork.platform.ablation import run_ablation
    from roadwork.trainer.config import load_config

    cfg = load_config(config)
    settings = _settings()
    engine = _engine(settings)
    log = (lambda s: err.print(s)) if as_json else out.print
    study = run_ablation(engine, settings, cfg, _comma_list(components, "--components"),
                         _comma_list(seeds, "--seeds", int), data_path=data, epochs=epochs, actor=ACTOR,
                         show_progress=not as_json, log=log)
    emit_json(study) if as_json else _print_ablation(study)


@app.command()
def ablations(
    show: Annotated[int | None, typer.Option("--show", help="Print this study's table.")] = None,
    limit: Annotated[int, typer.Option(help="How many, newest first.")] = 30,
    as_json: JsonOpt = False,
) -> None:
    """List stored ablation studies (from `roadwork ablate`), or print one with --show ID."""
    from roadwork.db import ablations as store
    from roadwork.db.engine import read_session

    with read_session(_engine(_settings())) as session:
        studies = [store.get_study(session, show)] if show is not None else store.list_studies(session, limit)
    if as_json:
        emit_json(studies[0] if show is not None else studies)
    elif show is not None:
        _print_ablation(studies[0])
    else:
        _compact_table("ablation studies", ["id", "created", "config", "seeds", "components", "status"],
                       [[s.id, local(s.created_at), s.config_name, ",".join(map(str, s.seeds)),
                         ", ".join(s.components), s.status] for s in studies], no_wrap=("id", "status"))


@app.command()
def evaluate(
    version: Annotated[str, typer.Argument(help="Version: id, X.Y.Z or name:X.Y.Z.")],
    replay: Annotated[int, typer.Option(help="Challenges in a validator-style replay (0: plain validation split).")] = 0,
    seed: Annotated[int, typer.Option(help="Seed of the replay.")] = 0,
    flips: Annotated[bool, typer.Option(help="Let the replay flip images (validators configure flips; none fire today).")] = False,
    tta: Annotated[bool, typer.Option(help="With --replay: also measure each test-time augmentation against none.")] = False,
    data: Annotated[Path | None, typer.Option(help="Dataset; default: the version's training data.")] = None,
    as_json: JsonOpt = False,
) -> None:
    """Evaluate a version and store overall and per-condition metrics.

    With --replay N: N challenges rendered exactly as validators build them (levels, distortions, JPEG 75) from
    the validation split, no metadata; reports metrics before and after calibration, the threshold sweep,
    the validator score of the stream and the expected reward over random orderings."""
    from rich.progress import Progress

    from roadwork.db import repo
    from roadwork.db.engine import read_session
    from roadwork.platform.evaluation.validation import evaluate_version
    from roadwork.platform.evaluation.replay import evaluate_replay

    settings = _settings()
    engine = _engine(settings)
    if replay:
        with Progress(disable=as_json, console=err) as bar:
            task = bar.add_task("replay", total=replay)
            evaluation = evaluate_replay(engine, settings, version, n=replay, seed=seed, flips=flips, data_path=data,
                                         tta=tta, progress=lambda k: bar.update(task, completed=k))
    elif tta:
        raise ValueError("--tta is measured on a replay: add --replay N")
    else:
        evaluation = evaluate_version(engine, settings, version, data_path=data)
    with read_session(engine) as session:
        cells = repo.condition_cells(session, evaluation.id)
    if as_json:
        emit_json({"evaluation": evaluation, "conditions": cells})
        return
    m = evaluation.metrics
    out.print(f"evaluation {evaluation.id} ({evaluation.dataset}): n={evaluation.n} MCC {evaluation.mcc:.3f} "
              f"[{m['mcc_ci_low']:.3f}, {m['mcc_ci_high']:.3f}] accuracy {evaluation.accuracy:.3f}")
    before = m.get("before_calibration")
    if before:
        out.print(f"  before calibration (cut 0.5 on raw scores): MCC {before['mcc']:.3f} accuracy {before['accuracy']:.3f}; "
                  f"calibrated cut {m['calibration']['threshold']:.3f}")
    if "sweep" in m:
        exp = m["expected_reward"]["final_score"]
        out.print(f"  best cut on this replay {m['sweep']['best_threshold']:.3f} (MCC {m['sweep']['best_mcc']:.3f}); "
                  f"validator score of the stream {m['validator_score']['final_score']:.3f}; expected final score "
                  f"{exp['mean']:.3f} [{exp['ci_low']:.3f}, {exp['ci_high']:.3f}]")
    table("per condition", ["condition", "value", "n", "MCC", "95% CI", "accuracy"],
          [[c.condition, c.value, c.n, f"{c.mcc:.3f}", f"{c.mcc_ci_low:.2f}..{c.mcc_ci_high:.2f}", f"{c.accuracy:.3f}"]
           for c in cells])
    if "tta" in m:
        table(f"test-time augmentation (fitted on {m['tta']['fit_on']}, measured on {m['tta']['measured_on']} challenges)",
              ["variant", "views", "MCC", "vs none", "ms/image"],
              [[r["variant"], r["n_views"], f"{r['mcc']:.3f}", f"{r['mcc_delta_vs_none']:+.3f}", f"{r['ms_per_image']:.1f}"]
               for r in m["tta"]["variants"]])


challenge_app = typer.Typer(help="Challenges as validators build them.", no_args_is_help=True)
app.add_typer(challenge_app, name="challenge")


@challenge_app.command("render")
def challenge_render(
    image: Annotated[Path, typer.Argument(help="Source image (any size).")],
    out_file: Annotated[Path, typer.Option("--out", help="Where to write the challenge JPEG (224 px, quality 75).")],
    seed: Annotated[int | None, typer.Option(help="Draw the parameters from this seed.")] = None,
    params: Annotated[str | None, typer.Option(help="Replay logged parameters (JSON object or @file).")] = None,
    flips: Annotated[bool, typer.Option(help="Allow flips when drawing (validators never flip today).")] = False,
    as_json: JsonOpt = False,
) -> None:
    """Render one challenge exactly as a validator would send it, and print its parameters."""
    import numpy as np

    from roadwork.platform.evaluation.challenge import ChallengeParams, render_jpeg, sample_params
    from roadwork.trainer.data.records import decode_image

    if seed is not None and params is not None:
        raise ValueError("give --seed or --params, not both")
    source = decode_image(image.read_bytes())
    if params is not None:
        text = Path(params[1:]).read_text() if params.startswith("@") else params
        try:
            chosen = ChallengeParams.from_dict(json.loads(text))
        except json.JSONDecodeError as exc:
            raise ValueError(f"--params is not valid JSON: {exc}") from exc
    else:
        rng = np.random.default_rng(seed if seed is not None else int.from_bytes(os.urandom(4), "little"))
        chosen = sample_params(rng, *source.size, flips=flips)
    data = render_jpeg(source, chosen)
    out_file.parent.mkdir(parents=True, exist_ok=True)
    out_file.write_bytes(data)
    result = {"image": str(image), "out": str(out_file), "seed": seed, "params": chosen.to_dict(), "bytes": len(data)}
    if as_json:
        emit_json(result)
    else:
        out.print(f"wrote {out_file} ({len(data)} bytes); parameters: {json.dumps(chosen.to_dict())}")


def _print_deploy(result, as_json: bool, verb: str) -> None:  # noqa: ANN001
    if as_json:
        emit_json(result)
        return
    prev = result.previous.label if result.previous else "none"
    out.print(f"{verb} {result.version.label} (was {prev}); published to:")
    for path in result.published:
        out.print(f"  {path}")


@app.command()
def deploy(
    version: Annotated[str, typer.Argument(help="Version: id, X.Y.Z or name:X.Y.Z.")],
    reason: Annotated[str, typer.Option(help="Why (stored in the alias history).")] = "",
    as_json: JsonOpt = False,
) -> None:
    """Publish a version to every target and make it the champion."""
    from roadwork.platform.registry.service import deploy as do_deploy

    settings = _settings()
    result = do_deploy(_engine(settings), settings, version, actor=ACTOR, reason=reason)
    _print_deploy(result, as_json, "deployed")


@app.command()
def rollback(
    reason: Annotated[str, typer.Option(help="Why (required).")],
    to: Annotated[str | None, typer.Option(help="Version to restore; default: the previous champion.")] = None,
    as_json: JsonOpt = False,
) -> None:
    """Make an earlier version the champion again and republish it."""
    from roadwork.platform.registry.service import rollback as do_rollback

    settings = _settings()
    result = do_rollback(_engine(settings), settings, to=to, reason=reason, actor=ACTOR)
    _print_deploy(result, as_json, "rolled back to")


@app.command()
def versions(
    limit: Annotated[int, typer.Option(help="How many, newest first.")] = 50, as_json: JsonOpt = False
) -> None:
    """List registered versions, newest first."""
    from roadwork.db import repo
    from roadwork.db.engine import read_session

    settings = _settings()
    with read_session(_engine(settings)) as session:
        items = repo.list_versions(session, limit)
        champion = repo.alias_holder(session)
        evals = repo.latest_evaluations(session)
    if as_json:
        emit_json([jsonable(v) | {"champion": champion is not None and v.id == champion.id} for v in items])
        return
    rows = []
    for v in items:
        e = evals.get(v.id)
        rows.append([v.id, v.label, "champion" if champion and v.id == champion.id else "", local(v.created_at),
                     f"{v.metrics.get('val_mcc', 0):.3f}", f"{e.mcc:.3f} (n={e.n})" if e else "",
                     v.parent_id or "", (v.data_fingerprint or "")[:12]])
    table("versions", ["id", "version", "alias", "created", "train val MCC", "last eval MCC", "parent", "data"], rows)


@app.command()
def history(
    alias: Annotated[str, typer.Option(help="Alias.")] = "champion",
    limit: Annotated[int, typer.Option(help="How many, newest first.")] = 50,
    as_json: JsonOpt = False,
) -> None:
    """The alias history: every deploy and rollback, who, when, why."""
    from roadwork.db import repo
    from roadwork.db.engine import read_session

    settings = _settings()
    with read_session(_engine(settings)) as session:
        events = repo.alias_history(session, alias, limit)
        holder = repo.alias_holder(session, alias)
        names = repo.versions_by_id(session, {e.to_version_id for e in events} | {e.from_version_id for e in events if e.from_version_id})
    if as_json:
        emit_json({"alias": alias, "current": holder, "events": events})
        return
    out.print(f"{alias}: {holder.label if holder else 'not set'}")
    table("history", ["when", "action", "from", "to", "actor", "reason"],
          [[local(e.created_at), e.action, names[e.from_version_id].version if e.from_version_id else "",
            names[e.to_version_id].version, e.actor, e.reason] for e in events])


@app.command()
def export(
    version: Annotated[str, typer.Argument(help="Version: id, X.Y.Z or name:X.Y.Z.")],
    out_dir: Annotated[Path, typer.Option("--out", help="New (or empty) directory to write the model repository to.")],
    as_json: JsonOpt = False,
) -> None:
    """Export a version as a Hugging Face model repository the stock miner can load (trust_remote_code)."""
    from roadwork.db import repo
    from roadwork.db.engine import read_session
    from roadwork.platform.registry.packaging import export_version
    from roadwork.platform.registry.service import checkout

    settings = _settings()
    with read_session(_engine(settings)) as session:
        v = repo.get_version(session, version)
    path = export_version(checkout(settings, v), v, settings, out_dir)
    result = {"version": v.label, "path": str(path.resolve()), "files": sorted(p.name for p in path.iterdir())}
    emit_json(result) if as_json else out.print(f"exported {v.label} to {result['path']}")


@app.command()
def predict(
    model: Annotated[str, typer.Argument(help="An exported model directory, or a version (id, X.Y.Z, name:X.Y.Z).")],
    images: Annotated[list[Path], typer.Argument(help="Image files (JPEG, PNG, ...).")],
    b64: Annotated[bool, typer.Option("--base64", help="The files hold base64 text, as validators send.")] = False,
    as_json: JsonOpt = False,
) -> None:
    """Print the calibrated roadwork probability of each image, one per line (what the miner would answer)."""
    from roadwork.trainer.data.records import BadImageError
    from roadwork.trainer.eval.predict import Predictor

    path = Path(model)
    if path.is_dir():
        predictor = Predictor.load(path)
    else:
        from roadwork.db import repo
        from roadwork.db.engine import read_session
        from roadwork.platform.registry.service import checkout

        settings = _settings()
        with read_session(_engine(settings)) as session:
            predictor = Predictor.load(checkout(settings, repo.get_version(session, model)))
    results, failed = [], 0
    for image in images:
        try:
            score: float | None = predictor.predict_bytes(image.read_bytes(), is_base64=b64)
        except (OSError, BadImageError) as exc:
            err.print(f"[red]error:[/red] {image}: {exc}", highlight=False)
            score, failed = None, failed + 1
        results.append({"image": str(image), "score": score})
        if not as_json and score is not None:
            print(f"{score:.6f}")
    if as_json:
        emit_json(results)
    if failed:
        raise typer.Exit(1)


@app.command()
def score(
    predictions: Annotated[Path, typer.Argument(help="CSV with columns label,prediction in challenge order.")],
    orderings: Annotated[int, typer.Option(help="Random challenge orderings for the expected-reward estimate.")] = 200,
    seed: Annotated[int, typer.Option(help="Seed of the orderings.")] = 0,
    as_json: JsonOpt = False,
) -> None:
    """Score a stream of answers exactly as a validator does (windows, cube, moving average)."""
    from roadwork.platform.evaluation.scoring import expected_reward, read_predictions_csv, summarize

    labels, preds = read_predictions_csv(predictions)
    result = summarize(labels, preds)
    result["expected"] = expected_reward(labels, preds, n_orderings=orderings, seed=seed)
    if as_json:
        emit_json(result)
        return
    exp = result["expected"]["final_score"]
    table(f"score of {predictions.name}", ["metric", "value"], [
        ["challenges", result["n"]], ["final score (moving average)", f"{result['final_score']:.4f}"],
        ["mean reward", f"{result['mean_reward']:.4f}"], ["mcc_100 at the end", f"{result['mcc_100']:.4f}"],
        ["accuracy_10 at the end", f"{result['accuracy_10']:.4f}"], ["MCC overall", f"{result['mcc']:.4f}"],
        ["accuracy overall", f"{result['accuracy']:.4f}"],
        [f"expected final score ({orderings} orderings)", f"{exp['mean']:.4f} [{exp['ci_low']:.4f}, {exp['ci_high']:.4f}]"],
    ])


# --- scheduler, jobs --------------------------------------------------------------------------------------


@app.command()
def scheduler(
    max_seconds: Annotated[float | None, typer.Option(help="Stop after this long (default: run until Ctrl-C).")] = None,
) -> None:
    """Run the scheduler: owns the job store (one per database), runs jobs, applies commands."""
    import logging
    import signal

    from roadwork.platform.jobs.scheduler import SchedulerService

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("alembic").setLevel(logging.WARNING)
    settings = _settings()
    service = SchedulerService(_engine(settings), settings)
    service.start()
    signal.signal(signal.SIGTERM, lambda *_: service._stop.set())
    out.print(f"scheduler {service.holder} running on {settings.public_dict()['database_url']} (Ctrl-C stops)")
    try:
        service.serve(max_seconds=max_seconds)
    except KeyboardInterrupt:
        pass
    finally:
        service.stop()
        out.print("scheduler stopped; lease released")


def _submit(kind: str, payload: dict[str, Any], reason: str = "", wait: float = 0.0) -> Any:
    from roadwork.db import repo
    from roadwork.db.engine import read_session
    from roadwork.platform import commands
    from roadwork.platform.users import local_actor

    settings = _settings()
    engine = _engine(settings)
    command = commands.submit(engine, kind, payload, actor=local_actor(), reason=reason)
    deadline = time.monotonic() + wait
    while wait and time.monotonic() < deadline:
        with read_session(engine) as session:
            command = repo.get_command(session, command.id)
        if command.status in ("applied", "failed"):
            break
        time.sleep(0.5)
    return command


def _print_command(command, as_json: bool) -> None:  # noqa: ANN001
    if as_json:
        emit_json(command)
    elif command.status == "pending":
        out.print(f"command #{command.id} ({command.kind}) queued; the running scheduler applies it")
    else:
        out.print(f"command #{command.id} ({command.kind}) {command.status}: {command.outcome}")
    if command.status == "failed":
        raise typer.Exit(1)


WaitOpt = Annotated[float, typer.Option(help="Seconds to wait for the scheduler to apply it (0: don't wait).")]


@jobs_app.command("list")
def jobs_list(as_json: JsonOpt = False) -> None:
    """Scheduled jobs with their trigger and next run."""
    from roadwork.platform.jobs.store import stored_jobs

    items = stored_jobs(_engine(_settings()))
    if as_json:
        emit_json(items)
        return
    table("jobs", ["id", "trigger", "next run", "state"],
          [[j["id"], j["trigger"], local(j["next_run_time"]), j["error"] or ("paused" if j["paused"] else "scheduled")]
           for j in items])


@jobs_app.command("run")
def jobs_run(
    job_id: str,
    kwargs: Annotated[str | None, typer.Option(help='Arguments as JSON, e.g. \'{"config": "configs/tiny.yaml"}\'.')] = None,
    wait: WaitOpt = 0.0,
    as_json: JsonOpt = False,
) -> None:
    """Ask the scheduler to run a job now (also on-demand jobs: pseudo_label, ab_test)."""
    payload: dict[str, Any] = {"job_id": job_id}
    if kwargs:
        try:
            payload["kwargs"] = json.loads(kwargs)
        except json.JSONDecodeError as exc:
            raise ValueError(f"--kwargs is not valid JSON: {exc}") from exc
    _print_command(_submit("run_now", payload, wait=wait), as_json)


@jobs_app.command("cancel")
def jobs_cancel(job_id: str, wait: WaitOpt = 0.0, as_json: JsonOpt = False) -> None:
    """Kill a running subprocess job (recorded as failed: cancelled)."""
    _print_command(_submit("cancel", {"job_id": job_id}, wait=wait), as_json)


@jobs_app.command("logs")
def jobs_logs(
    run_id: Annotated[int | None, typer.Argument(help="Job run id (default: the newest run with a log).")] = None,
    tail: Annotated[int, typer.Option(help="Lines from the end (0: all).")] = 0,
) -> None:
    """Print the log of a job run."""
    from roadwork.db import repo
    from roadwork.db.engine import read_session

    with read_session(_engine(_settings())) as session:
        runs = [r for r in repo.list_job_runs(session, limit=500) if run_id is None or r.id == run_id]
    run = next((r for r in runs if r.log_path), None)
    if run is None:
        raise ValueError(f"no job run {run_id} with a log" if run_id else "no job run has a log yet")
    lines = Path(run.log_path).read_text().splitlines()
    print("\n".join(lines[-tail:] if tail else lines))


@jobs_app.command("pause")
def jobs_pause(job_id: str, wait: WaitOpt = 0.0, as_json: JsonOpt = False) -> None:
    """Pause a job."""
    _print_command(_submit("pause", {"job_id": job_id}, wait=wait), as_json)


@jobs_app.command("resume")
def jobs_resume(job_id: str, wait: WaitOpt = 0.0, as_json: JsonOpt = False) -> None:
    """Resume a paused job."""
    _print_command(_submit("resume", {"job_id": job_id}, wait=wait), as_json)


@jobs_app.command("schedule")
def jobs_schedule(
    job_id: str,
    cron: Annotated[str, typer.Option(help="Cron expression in UTC, e.g. '0 3 * * *'.")],
    wait: WaitOpt = 0.0,
    as_json: JsonOpt = False,
) -> None:
    """Change a job's schedule (previews the next fire times)."""
    from roadwork.cron import next_fire_times

    times = next_fire_times(cron, 3)
    if not as_json:
        out.print("next runs: " + ", ".join(local(t.replace(tzinfo=None)) for t in times))
    _print_command(_submit("reschedule", {"job_id": job_id, "cron": cron}, wait=wait), as_json)


@jobs_app.command("history")
def jobs_history(
    job_id: Annotated[str | None, typer.Option("--job", help="Only this job.")] = None,
    limit: Annotated[int, typer.Option(help="How many, newest first.")] = 30,
    as_json: JsonOpt = False,
) -> None:
    """Recent job runs with status and duration."""
    from roadwork.db import repo
    from roadwork.db.engine import read_session

    with read_session(_engine(_settings())) as session:
        runs = repo.list_job_runs(session, job_id=job_id, limit=limit)
    if as_json:
        emit_json(runs)
        return
    table("job runs", ["id", "job", "status", "trigger", "scheduled", "duration", "error / result"],
          [[r.id, r.job_id, r.status, r.trigger, local(r.scheduled_at),
            f"{r.duration_s:.1f} s" if r.duration_s is not None else "",
            (r.error or "").splitlines()[0] if r.error else json.dumps(r.result or {})[:80]] for r in runs])


@app.command()
def candidates(as_json: JsonOpt = False) -> None:
    """Candidates that passed the gate and wait for an operator (gate.policy manual)."""
    from roadwork.db.engine import read_session
    from roadwork.platform.evaluation.gate import latest_gate_event, pending_candidates

    with read_session(_engine(_settings())) as session:
        items = [(v, latest_gate_event(session, v.id)) for v in pending_candidates(session)]
    if as_json:
        emit_json([{"version": v, "gate": e} for v, e in items])
        return
    table("waiting for approval", ["version", "gated", "reasons"],
          [[v.label, local(e.created_at), e.reason[:120]] for v, e in items])


@app.command()
def approve(
    version: Annotated[str, typer.Argument(help="A candidate that passed the gate.")],
    reason: Annotated[str, typer.Option(help="Why (stored with the deploy).")] = "approved",
    wait: WaitOpt = 0.0,
    as_json: JsonOpt = False,
) -> None:
    """Ask the scheduler to deploy a gated candidate."""
    _print_command(_submit("approve", {"version": version}, reason=reason, wait=wait), as_json)


@app.command()
def reject(
    version: Annotated[str, typer.Argument(help="A candidate that passed the gate.")],
    reason: Annotated[str, typer.Option(help="Why (required).")],
    wait: WaitOpt = 0.0,
    as_json: JsonOpt = False,
) -> None:
    """Ask the scheduler to reject a gated candidate."""
    if not reason.strip():
        raise ValueError("a rejection needs a reason (--reason)")
    _print_command(_submit("reject", {"version": version}, reason=reason, wait=wait), as_json)


ab_app = typer.Typer(help="A/B tests: two versions on the same replay stream.", no_args_is_help=True)
app.add_typer(ab_app, name="ab")


@ab_app.command("create")
def ab_create(
    a: Annotated[str, typer.Argument(help="Version A (e.g. the champion).")],
    b: Annotated[str, typer.Argument(help="Version B (the challenger).")],
    n: Annotated[int, typer.Option("--n", min=2, help="Challenges in the shared replay.")] = 1000,
    wait: WaitOpt = 0.0,
    as_json: JsonOpt = False,
) -> None:
    """Ask the scheduler to create and run an A/B test."""
    _print_command(_submit("create_ab_test", {"a": a, "b": b, "sample_size": n}, wait=wait), as_json)


@ab_app.command("list")
def ab_list(as_json: JsonOpt = False) -> None:
    """A/B tests with their latest verdict."""
    from roadwork.db.engine import read_session
    from roadwork.platform.ab.service import latest_results, list_ab_tests

    with read_session(_engine(_settings())) as session:
        tests = list_ab_tests(session)
        results = {t.id: latest_results(session, t.id) for t in tests}
    if as_json:
        emit_json([{"test": t, "result": results[t.id]} for t in tests])
        return
    table("A/B tests", ["id", "A", "B", "n", "status", "verdict"],
          [[t.id, t.version_a_id, t.version_b_id, t.sample_size, t.status,
            results[t.id].verdict if results[t.id] else ""] for t in tests])


@app.command()
def mine(
    pool: Annotated[Path | None, typer.Option(help="Dataset or image folder (default: mining.pool or the training data).")] = None,
    as_json: JsonOpt = False,
) -> None:
    """Mine hard negatives with the champion now (the scheduler's `mine` job does this on its cron)."""
    from roadwork.platform.mining import mine_hard_negatives

    settings = _settings()
    found = mine_hard_negatives(_engine(settings), settings, pool=pool, actor=ACTOR)
    emit_json(found) if as_json else out.print(f"hard-negative set: {jsonable(found)}")


user_app = typer.Typer(help="Dashboard users (run on the server: changes are made as the local account).",
                       no_args_is_help=True)
app.add_typer(user_app, name="user")


def _password(password_file: Path | None, prompt: str) -> str:
    """A password from a file (first line) or a hidden prompt with confirmation; never from the command line."""
    if password_file is not None:
        return password_file.read_text().splitlines()[0] if password_file.read_text() else ""
    return typer.prompt(prompt, hide_input=True, confirmation_prompt=True)


PasswordFileOpt = Annotated[Path | None, typer.Option(help="Read the password from this file instead of a prompt.")]
ReasonOpt = Annotated[str, typer.Option(help="Why (stored in the audit log).")]


@user_app.command("add")
def user_add(
    name: str,
    role: Annotated[str, typer.Option(help="viewer or operator.")] = "viewer",
    password_file: PasswordFileOpt = None,
    reason: ReasonOpt = "",
) -> None:
    """Add a user (the first operator is created this way)."""
    from roadwork.platform import users

    engine = _engine(_settings())
    info = users.create_user(engine, name, _password(password_file, "Password"), role, users.local_actor(),
                             reason=reason)
    out.print(f"user {info.username} ({info.role}) added")


@user_app.command("list")
def user_list(as_json: JsonOpt = False) -> None:
    """Users and their roles (never a password or a hash)."""
    from roadwork.platform import users

    items = users.list_users(_engine(_settings()))
    if as_json:
        emit_json(items)
        return
    table("users", ["name", "role", "created", "disabled"],
          [[u.username, u.role, local(u.created_at), "yes" if u.disabled else ""] for u in items])


@user_app.command("set-role")
def user_set_role(name: str, role: str, reason: ReasonOpt = "") -> None:
    """Change a user's role."""
    from roadwork.platform import users

    info = users.set_role(_engine(_settings()), name, role, users.local_actor(), reason)
    out.print(f"user {info.username} is now {info.role}")


@user_app.command("reset-password")
def user_reset_password(name: str, password_file: PasswordFileOpt = None, reason: ReasonOpt = "") -> None:
    """Set a new password (also lifts a sign-in lock-out)."""
    from roadwork.platform import users

    users.reset_password(_engine(_settings()), name, _password(password_file, "New password"),
                         users.local_actor(), reason)
    out.print(f"password of {name} reset")


@user_app.command("disable")
def user_disable(name: str, reason: ReasonOpt = "") -> None:
    """Disable a user (signed out at their next page load)."""
    from roadwork.platform import users

    users.disable_user(_engine(_settings()), name, users.local_actor(), reason)
    out.print(f"user {name} disabled")


# --- dashboard, demo -------------------------------------------------------------------------------------


@app.command()
def dashboard(
    port: Annotated[int | None, typer.Option(help="Port (default: the dashboard_port setting).")] = None,
) -> None:
    """Start the web dashboard (Streamlit)."""
    settings = _settings()
    _engine(settings)  # migrate before the first page asks
    script = Path(__file__).with_name("dashboard") / "app.py"
    cmd = [sys.executable, "-m", "streamlit", "run", str(script),
           "--server.port", str(port or settings.dashboard_port),
           "--server.address", settings.dashboard_address,
           "--server.headless", "true", "--browser.gatherUsageStats", "false", "--client.toolbarMode", "minimal"]
    out.print(f"dashboard on http://{settings.dashboard_address}:{port or settings.dashboard_port}")
    sys.stdout.flush()
    # Become the Streamlit server (no child left behind when this process is stopped or killed).
    os.execv(sys.executable, cmd)


@app.command()
def demo(
    n: Annotated[int, typer.Option(help="Rows of synthetic data.")] = 1200,
    config: Annotated[Path | None, typer.Option(help="Training preset; default: the embedded tiny preset.")] = None,
    queue: Annotated[bool, typer.Option(help="Queue a first run of train, mine and leaderboard for the scheduler.")] = True,
    as_json: JsonOpt = False,
) -> None:
    """The whole loop on the embedded defaults: migrate, synthesise, train, register, evaluate, deploy.

    On a home without a settings file it also writes one that reads standings from a local sample, and it
    queues train, mine and leaderboard, so that `roadwork scheduler` runs the whole operations loop at once."""
    from roadwork.platform.demo import run_demo

    summary = run_demo(_settings(), n=n, config_path=config, show_progress=not as_json, queue_jobs=queue,
                       log=(lambda s: err.print(s)) if as_json else out.print)
    if as_json:
        emit_json(summary)


@app.command()
def standings(
    refresh: Annotated[bool, typer.Option("--refresh", help="Poll the configured source now and store the snapshot first.")] = False,
    as_json: JsonOpt = False,
) -> None:
    """Our standing among the miners (the owner and validators do not count) from the latest stored snapshot.

    Amounts are in alpha, the subnet's token. A source that fails or prints bad output: exit 2, one line; the last
    good snapshot is kept."""
    import logging

    from rich.markup import escape

    from roadwork.platform.standings import StandingsError, standings_report

    logging.getLogger("roadwork.platform.standings").addHandler(logging.NullHandler())  # the error line says it all
    settings = _settings()
    try:
        report = standings_report(_engine(settings), settings, refresh=refresh)
    except StandingsError as exc:
        err.print(f"[red]error:[/red] {escape(str(exc))}", highlight=False)
        raise typer.Exit(2) from None
    if as_json:
        emit_json(report)
        return
    percentile = report["percentile"]
    table("Our standing", ["", "value"], [
        ["UID", report["uid"] if report["uid"] is not None else "not set (set `uid` in the settings)"],
        ["rank among miners", f"{report['rank']} of {report['miners']}" if report["rank"] is not None else "-"],
        ["percentile", "-" if percentile is None else f"{percentile:.0%}"],
        ["incentive", report["incentive"]],
        ["emission (alpha per epoch)", report["emission_alpha"]],
        ["stake (alpha)", report["stake_alpha"]],
        ["trust", report["trust"]],
        ["block", report["block"]],
        ["source", report["source"]],
        ["taken at", local(dt.datetime.fromisoformat(report["taken_at"]))],
    ])
    if report["stale"]:
        err.print("[yellow]stale:[/yellow] the latest poll failed; these numbers are from the last good snapshot.")


def main() -> None:
    """Console entry point: known errors print one clear line on stderr and exit 2, no traceback."""
    from roadwork.settings import SettingsError
    from roadwork.db.repo import NotFoundError
    from roadwork.platform.registry.artifacts import ArtifactError
    from roadwork.platform.registry.service import DeployError
    from roadwork.platform.jobs.scheduler import SchedulerBusyError
    from roadwork.trainer.config import ConfigError

    try:
        app()
    except (SettingsError, ConfigError, NotFoundError, DeployError, ArtifactError, SchedulerBusyError,
            FileNotFoundError, ValueError, PermissionError) as exc:
        err.print(f"[red]error:[/red] {exc}", highlight=False)
        sys.exit(2)


if __name__ == "__main__":
    main()

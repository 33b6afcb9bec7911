"""`roadwork train`, `ensemble`, `distill`, `ablate`, `ablations` and the trainer's probes (lr-find, batch-size, augment-preview).

The trainer (torch, transformers) is imported inside each command, so that the rest of the CLI starts fast.

Top-level commands are plain functions here; `roadwork.cli.app` registers them in the order `--help` lists."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from roadwork.cli.context import actor, current_settings, migrated_engine
from roadwork.cli.output import JsonOpt, emit_json, err, labelled, local, out, table


def train(
    config: Annotated[Path, typer.Option("--config", help="Training preset, e.g. configs/tiny.yaml.")],
    data: Annotated[Path | None, typer.Option(help="Dataset (parquet file or folder); default: data.path of the config.")] = None,
    epochs: Annotated[int | None, typer.Option(help="Override optim.epochs.")] = None,
    resume: Annotated[bool, typer.Option(
        help="Continue the interrupted run (killed while training, calibrating or registering) from its last "
             "finished epoch and register it; refuses, listing them, when there are several: add --run.")] = False,
    run: Annotated[str | None, typer.Option(
        "--run", metavar="RUN_ID", help="The interrupted run to continue (implies --resume): its folder name under "
                                        "<home>/runs, as --resume lists them.")] = None,
    as_json: JsonOpt = False,
) -> None:
    """Train a model and register it as a candidate version (the champion is its parent).

    The run's folder is <home>/runs/<RUN_ID> (settings with secrets masked, config, checkpoint).

    Multi-GPU / multi-node: `torchrun --nproc_per_node N -m roadwork.cli train --config ...` (rank 0 registers)."""
    from roadwork.platform.training import train_and_register
    from roadwork.trainer.config import load_config

    cfg = load_config(config, {"optim.epochs": epochs} if epochs else None)
    settings = current_settings()
    engine = migrated_engine(settings)
    log = (lambda s: err.print(s)) if as_json else out.print
    version, result = train_and_register(engine, settings, cfg, data_path=data, actor=actor(),
                                         show_progress=not as_json, log=log, resume=resume, run_id=run)
    if version is None:  # a torchrun rank other than 0
        return
    if as_json:
        emit_json({"version": version, "run": result.checkpoint_dir.parent.name, "seconds": round(result.seconds, 2)})
    else:
        out.print(f"registered {version.label} (id {version.id}): val MCC {result.metrics['val_mcc']:.3f}, "
                  f"accuracy {result.metrics['val_accuracy']:.3f} in {result.seconds:.0f} s")


def _preset(config: Path, data: Path | None, overrides: dict[str, Any] | None = None):  # noqa: ANN202
    """(config, data path) for the trainer's probes: the data is --data, else the config's, else the home's."""
    from roadwork.platform.evaluation.validation import resolve_data_path
    from roadwork.trainer.config import load_config

    cfg = load_config(config, overrides)
    return cfg, (data if data else resolve_data_path(current_settings(), cfg.data.path))


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
    settings = current_settings()
    engine = migrated_engine(settings)
    log = (lambda s: err.print(s)) if as_json else out.print
    version, result = train_ensemble_and_register(engine, settings, cfg, specs, combine, data_path=data, actor=actor(),
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


def distill(
    teacher: Annotated[str | None, typer.Argument(help="Teacher version (id, X.Y.Z or name:X.Y.Z); default: the newest "
                                                  "version that is not a student.")] = None,
    student: Annotated[str | None, typer.Option("--student", help="Student architecture: dinov2 "
                                                "(Dinov2ForImageClassification) or vit (ViTForImageClassification); "
                                                "default: the distill.student setting.")] = None,
    epochs: Annotated[int | None, typer.Option(min=1, help="Override distill.epochs.")] = None,
    pretrained: Annotated[str | None, typer.Option(help="Hub id or local folder to start the student from (e.g. "
                                                   "facebook/dinov2-small); default: a tiny random-init model.")] = None,
    replay: Annotated[int | None, typer.Option(min=2, help="Challenges of the replay both run on when the teacher has "
                                               "none yet; default evaluation.champion_replay_challenges.")] = None,
    seed: Annotated[int, typer.Option(min=0, help="Seed of that replay.")] = 0,
    as_json: JsonOpt = False,
) -> None:
    """Distil a version into a student the stock miner loads as it is, and register it (parent: the teacher).

    It learns the teacher's calibrated probabilities (KL) and the labels on training images and validator renders.
    Its calibrated cut is baked into its head: the stock pipeline's 0.5 is that cut.
    It is evaluated on the validation split and on the teacher's replays (same n and seeds); the comparison printed
    also gives both models' parameters, weights MB and CPU latency per image (batch 1, preprocessing included)."""
    from roadwork.db import repo
    from roadwork.db.engine import read_session
    from roadwork.trainer.student.model import student_spec

    settings = current_settings()
    student = student or settings.distill.student
    student_spec(student)  # bad input fails here, before torch and transformers are imported
    engine = migrated_engine(settings)
    if teacher is not None:
        with read_session(engine) as session:
            repo.get_version(session, teacher)
    from roadwork.platform.distillation import (
        comparison_rows,
        distill_version,
        footprint_rows,
    )

    log = (lambda s: err.print(s)) if as_json else out.print
    outcome = distill_version(engine, settings, teacher, student, epochs, pretrained=pretrained, replay_n=replay,
                              replay_seed=seed, actor=actor(), show_progress=not as_json, log=log)
    rows = comparison_rows(outcome)
    sizes = footprint_rows(outcome)
    if as_json:
        emit_json({"version": outcome.student, "teacher": outcome.teacher.label,
                   "threshold": outcome.result.threshold, "seconds": round(outcome.result.seconds, 2),
                   "evaluations": rows, "footprint": sizes})
        return

    def num(v: float | None) -> str | None:
        return None if v is None else f"{v:.3f}"

    table(f"{outcome.student.label} (student) vs {outcome.teacher.label} (teacher)",
          ["evaluation", "n", "student MCC", "teacher MCC", "student exp. score", "teacher exp. score"],
          [[r["evaluation"], r["n"], num(r["student_mcc"]), num(r["teacher_mcc"]), num(r["student_expected_score"]),
            num(r["teacher_expected_score"])] for r in rows])
    table("size and CPU latency (batch 1, preprocessing included, median)",
          ["model", "version", "parameters", "weights MB", "CPU ms/image"],
          [[r["model"], r["version"], None if r["parameters"] is None else f"{r['parameters']:,}",
            None if r["weights_mb"] is None else f"{r['weights_mb']:.2f}",
            None if r["cpu_ms_per_image"] is None else f"{r['cpu_ms_per_image']:.1f}"] for r in sizes])
    out.print(f"registered {outcome.student.label} (id {outcome.student.id}), a {student} student of "
              f"{outcome.teacher.label}: cut {outcome.result.threshold:.4f} baked into its head, "
              f"{outcome.result.seconds:.0f} s")


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


def _print_ablation(study) -> None:  # noqa: ANN001 - db.repo.ablations.AblationStudy
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
        out.print(labelled("failed:", str(study.error)), highlight=False)


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
    settings = current_settings()
    engine = migrated_engine(settings)
    log = (lambda s: err.print(s)) if as_json else out.print
    study = run_ablation(engine, settings, cfg, _comma_list(components, "--components"),
                         _comma_list(seeds, "--seeds", int), data_path=data, epochs=epochs, actor=actor(),
                         show_progress=not as_json, log=log)
    emit_json(study) if as_json else _print_ablation(study)


def ablations(
    show: Annotated[int | None, typer.Option("--show", help="Print this study's table.")] = None,
    limit: Annotated[int, typer.Option(help="How many, newest first.")] = 30,
    as_json: JsonOpt = False,
) -> None:
    """List stored ablation studies (from `roadwork ablate`), or print one with --show ID."""
    from roadwork.db.repo import ablations as store
    from roadwork.db.engine import read_session

    with read_session(migrated_engine(current_settings())) as session:
        studies = [store.get_study(session, show)] if show is not None else store.list_studies(session, limit)
    if as_json:
        emit_json(studies[0] if show is not None else studies)
    elif show is not None:
        _print_ablation(studies[0])
    else:
        _compact_table("ablation studies", ["id", "created", "config", "seeds", "components", "status"],
                       [[s.id, local(s.created_at), s.config_name, ",".join(map(str, s.seeds)),
                         ", ".join(s.components), s.status] for s in studies], no_wrap=("id", "status"))

"""`roadwork versions`, `history`, `deploy`, `rollback`, `export`, `predict` and the gate's `candidates`, `approve`,
`reject`: the model registry and what is live.

Top-level commands are plain functions here; `roadwork.cli.app` registers them in the order `--help` lists."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from roadwork.cli.context import actor, current_settings, migrated_engine
from roadwork.cli.jobs_commands import WaitOpt, print_command, submit
from roadwork.cli.output import (
    JsonOpt,
    emit_json,
    err,
    jsonable,
    labelled,
    local,
    out,
    table,
)


def _print_deploy(result, as_json: bool, verb: str) -> None:  # noqa: ANN001
    if as_json:
        emit_json(result)
        return
    prev = result.previous.label if result.previous else "none"
    if result.requested is not None:
        out.print(f"{result.requested.label} is not in a stock architecture (deploy.format: stock): "
                  f"publishing its newest student {result.version.label}")
    out.print(f"{verb} {result.version.label} (was {prev}); published to:")
    for path in result.published:
        out.print(f"  {path}")


def deploy(
    version: Annotated[str, typer.Argument(help="Version: id, X.Y.Z or name:X.Y.Z.")],
    reason: Annotated[str, typer.Option(help="Why (stored in the alias history).")] = "",
    as_json: JsonOpt = False,
) -> None:
    """Publish a version to every target and make it the champion."""
    from roadwork.platform.registry.service import deploy as do_deploy

    settings = current_settings()
    result = do_deploy(migrated_engine(settings), settings, version, actor=actor(), reason=reason)
    _print_deploy(result, as_json, "deployed")


def rollback(
    reason: Annotated[str, typer.Option(help="Why (required).")],
    to: Annotated[str | None, typer.Option(help="Version to restore; default: the previous champion.")] = None,
    as_json: JsonOpt = False,
) -> None:
    """Make an earlier version the champion again and republish it."""
    from roadwork.platform.registry.service import rollback as do_rollback

    settings = current_settings()
    result = do_rollback(migrated_engine(settings), settings, to=to, reason=reason, actor=actor())
    _print_deploy(result, as_json, "rolled back to")


def versions(
    limit: Annotated[int, typer.Option(help="How many, newest first.")] = 50, as_json: JsonOpt = False
) -> None:
    """List registered versions, newest first, with three MCCs, each labelled: at training (validation split,
    best epoch), of the latest evaluation of the validation split, and of the latest validator-style replay."""
    from roadwork.db import repo
    from roadwork.db.engine import read_session
    from roadwork.platform.registry.reconcile import reconcile

    settings = current_settings()
    engine = migrated_engine(settings)
    reconcile(engine, settings)  # never show a champion that is not what is published
    with read_session(engine) as session:
        items = repo.list_versions(session, limit)
        champion = repo.alias_holder(session)
        validation = repo.latest_evaluation_summaries(session, kind="validation")
        replay = repo.latest_evaluation_summaries(session, kind="replay")

    def mcc(v: repo.Version, evals: dict[int, repo.EvaluationSummary]) -> float | None:
        return evals[v.id].mcc if v.id in evals else None

    if as_json:  # explicit keys: which split or replay each MCC was measured on
        emit_json([jsonable(v) | {
            "champion": champion is not None and v.id == champion.id,
            "train_val_mcc": v.metrics.get("val_mcc"),
            "validation_mcc": mcc(v, validation),
            "validation_n": validation[v.id].n if v.id in validation else None,
            "replay_mcc": mcc(v, replay), "replay_n": replay[v.id].n if v.id in replay else None,
        } for v in items])
        return

    def cell(value: float | None, n: int | None = None) -> str | None:
        return None if value is None else f"{value:.3f}" + ("" if n is None else f" (n={n})")

    rows = [[v.id, v.label, "champion" if champion and v.id == champion.id else "", local(v.created_at),
             cell(v.metrics.get("val_mcc")),
             cell(mcc(v, validation), validation[v.id].n if v.id in validation else None),
             cell(mcc(v, replay), replay[v.id].n if v.id in replay else None),
             v.parent_id, (v.data_fingerprint or "")[:12] or None] for v in items]
    table("versions", ["id", "version", "alias", "created", "train val MCC", "eval val MCC", "replay MCC", "parent",
                      "data"], rows)
    out.print("train val MCC: the validation split at training (best epoch); eval val MCC: the latest `roadwork "
              "evaluate` of that split, answers as served; replay MCC: the latest validator-style replay (`roadwork "
              "evaluate --replay N`); n: images or challenges.")


def history(
    alias: Annotated[str, typer.Option(help="Alias.")] = "champion",
    limit: Annotated[int, typer.Option(help="How many, newest first.")] = 50,
    as_json: JsonOpt = False,
) -> None:
    """The alias history: every deploy and rollback, who, when, why."""
    from roadwork.db import repo
    from roadwork.db.engine import read_session
    from roadwork.platform.registry.reconcile import reconcile

    settings = current_settings()
    engine = migrated_engine(settings)
    reconcile(engine, settings)  # never show a champion that is not what is published
    with read_session(engine) as session:
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


def export(
    version: Annotated[str, typer.Argument(help="Version: id, X.Y.Z or name:X.Y.Z.")],
    out_dir: Annotated[Path, typer.Option("--out", help="New (or empty) directory to write the model repository to.")],
    as_json: JsonOpt = False,
) -> None:
    """Export a version as a Hugging Face model repository: a student as the plain folder the stock miner loads,
    any other version with its model code (trust_remote_code)."""
    from roadwork.db import repo
    from roadwork.db.engine import read_session
    from roadwork.platform.registry.packaging import export_version
    from roadwork.platform.registry.service import checkout
    from roadwork.trainer.export.repo import check_export_dir

    check_export_dir(out_dir)  # before anything is read or written
    settings = current_settings()
    with read_session(migrated_engine(settings)) as session:
        v = repo.get_version(session, version)
    path = export_version(checkout(settings, v), v, settings, out_dir)
    result = {"version": v.label, "path": str(path.resolve()), "files": sorted(p.name for p in path.iterdir())}
    emit_json(result) if as_json else out.print(f"exported {v.label} to {result['path']}")


def predict(
    model: Annotated[str, typer.Argument(help="An exported model directory, or a version (id, X.Y.Z, name:X.Y.Z).")],
    images: Annotated[list[Path], typer.Argument(help="Image files (JPEG, PNG, ...).")],
    b64: Annotated[bool, typer.Option("--base64", help="The files hold base64 text, as validators send.")] = False,
    as_json: JsonOpt = False,
) -> None:
    """Print the calibrated roadwork probability of each image (what the miner would answer).

    One image: the probability alone. Several: one line per image, `<image><TAB><probability>`. An image that
    cannot be read or used (or is over `data.max_image_pixels`) gets an error line naming it; the others are
    still scored, and the exit status is 2."""
    from roadwork.trainer.data.records import BadImageError
    from roadwork.trainer.eval.predict import Predictor

    settings = current_settings()
    path = Path(model)
    if path.is_dir():
        predictor = Predictor.load(path)
    else:
        from roadwork.db import repo
        from roadwork.db.engine import read_session
        from roadwork.platform.registry.service import checkout

        with read_session(migrated_engine(settings)) as session:
            predictor = Predictor.load(checkout(settings, repo.get_version(session, model)))
    results, failed = [], 0
    for image in images:
        try:
            score: float | None = predictor.predict_bytes(image.read_bytes(), is_base64=b64)
            error = None
        except (OSError, BadImageError) as exc:
            score, error, failed = None, _image_error(exc), failed + 1
            err.print(labelled("error:", f"{image}: {error}"), highlight=False)
        results.append({"image": str(image), "score": score, "error": error})
        if not as_json and score is not None:
            print(f"{score:.6f}" if len(images) == 1 else f"{image}\t{score:.6f}")
    if as_json:
        emit_json(results)
    if failed:
        raise typer.Exit(2)


def _image_error(exc: BaseException) -> str:
    """What is wrong with an image file, in words (an OSError's own text repeats the file name)."""
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror.lower()
    return str(exc)


def candidates(as_json: JsonOpt = False) -> None:
    """Candidates that passed the gate and wait for an operator (gate.policy manual)."""
    from roadwork.db.engine import read_session
    from roadwork.platform.evaluation.gate import latest_gate_event, pending_candidates

    with read_session(migrated_engine(current_settings())) as session:
        items = [(v, latest_gate_event(session, v.id)) for v in pending_candidates(session)]
    if as_json:
        emit_json([{"version": v, "gate": e} for v, e in items])
        return
    table("waiting for approval", ["version", "gated", "reasons"],
          [[v.label, local(e.created_at), e.reason[:120]] for v, e in items])


def approve(
    version: Annotated[str, typer.Argument(help="A candidate that passed the gate.")],
    reason: Annotated[str, typer.Option(help="Why (stored with the deploy).")] = "approved",
    wait: WaitOpt = 0.0,
    as_json: JsonOpt = False,
) -> None:
    """Ask the scheduler to deploy a gated candidate."""
    print_command(submit("approve", {"version": version}, reason=reason, wait=wait), as_json)


def reject(
    version: Annotated[str, typer.Argument(help="A candidate that passed the gate.")],
    reason: Annotated[str, typer.Option(help="Why (required).")],
    wait: WaitOpt = 0.0,
    as_json: JsonOpt = False,
) -> None:
    """Ask the scheduler to reject a gated candidate."""
    if not reason.strip():
        raise ValueError("a rejection needs a reason (--reason)")
    print_command(submit("reject", {"version": version}, reason=reason, wait=wait), as_json)

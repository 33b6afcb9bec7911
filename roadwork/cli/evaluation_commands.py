"""`roadwork evaluate`, `score`, `standings`, `challenge ...` and `ab ...`: judging versions as validators do, and
where we stand.

Top-level commands are plain functions here; `roadwork.cli.app` registers them in the order `--help` lists."""

from __future__ import annotations

import datetime as dt
import json
import os
from pathlib import Path
from typing import Annotated

import typer

from roadwork.cli.context import current_settings, migrated_engine
from roadwork.cli.jobs_commands import WaitOpt, print_command, submit
from roadwork.cli.output import JsonOpt, emit_json, err, labelled, local, out, table

challenge_app = typer.Typer(help="Challenges as validators build them.", no_args_is_help=True)
ab_app = typer.Typer(help="A/B tests: two versions on the same replay stream.", no_args_is_help=True)


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

    settings = current_settings()
    engine = migrated_engine(settings)
    if replay:
        # The bar appears with the first challenge scored: a bad version, dataset or count fails before it
        # with its one error line, and nothing is drawn.
        bar = Progress(disable=as_json, console=err)
        tasks: list = []

        def progress(k: int) -> None:
            if not tasks:
                bar.start()
                tasks.append(bar.add_task("replay", total=replay))
            bar.update(tasks[0], completed=k)

        try:
            evaluation = evaluate_replay(engine, settings, version, n=replay, seed=seed, flips=flips, data_path=data,
                                         tta=tta, progress=progress)
        finally:
            if tasks:  # stopping a bar that never started would still print an empty line
                bar.stop()
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
    from roadwork.trainer.data.records import BadImageError, decode_image

    if seed is not None and params is not None:
        raise ValueError("give --seed or --params, not both")
    current_settings()  # data.max_image_pixels applies to the source image
    try:
        source = decode_image(image.read_bytes())
    except BadImageError as exc:
        raise ValueError(f"{image}: {exc}") from None
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




@ab_app.command("create")
def ab_create(
    a: Annotated[str, typer.Argument(help="Version A (e.g. the champion).")],
    b: Annotated[str, typer.Argument(help="Version B (the challenger).")],
    n: Annotated[int, typer.Option("--n", min=2, help="Challenges in the shared replay.")] = 1000,
    wait: WaitOpt = 0.0,
    as_json: JsonOpt = False,
) -> None:
    """Ask the scheduler to create and run an A/B test."""
    print_command(submit("create_ab_test", {"a": a, "b": b, "sample_size": n}, wait=wait), as_json)


@ab_app.command("list")
def ab_list(as_json: JsonOpt = False) -> None:
    """A/B tests with their latest verdict."""
    from roadwork.db.engine import read_session
    from roadwork.platform.ab.service import latest_results, list_ab_tests

    with read_session(migrated_engine(current_settings())) as session:
        tests = list_ab_tests(session)
        results = {t.id: latest_results(session, t.id) for t in tests}
    if as_json:
        emit_json([{"test": t, "result": results[t.id]} for t in tests])
        return
    table("A/B tests", ["id", "A", "B", "n", "status", "verdict"],
          [[t.id, t.version_a_id, t.version_b_id, t.sample_size, t.status,
            results[t.id].verdict if results[t.id] else ""] for t in tests])


def standings(
    refresh: Annotated[bool, typer.Option("--refresh", help="Poll the configured source now and store the snapshot first.")] = False,
    as_json: JsonOpt = False,
) -> None:
    """Our standing among the miners (the owner and validators do not count) from the latest stored snapshot.

    Amounts are in alpha, the subnet's token. A source that fails or prints bad output: exit 2, one line; the last
    good snapshot is kept."""
    import logging

    from roadwork.platform.standings import StandingsError, standings_report

    logging.getLogger("roadwork.platform.standings").addHandler(logging.NullHandler())  # the error line says it all
    settings = current_settings()
    try:
        report = standings_report(migrated_engine(settings), settings, refresh=refresh)
    except StandingsError as exc:
        err.print(labelled("error:", str(exc)), highlight=False)
        raise typer.Exit(2) from None
    if as_json:
        emit_json(report)
        return
    percentile = report["percentile"]
    table("Our standing", ["", "value"], [
        ["UID", report["uid"] if report["uid"] is not None else "not set (set `uid` in the settings)"],
        ["rank among miners", f"{report['rank']} of {report['miners']}" if report["rank"] is not None else None],
        ["percentile", None if percentile is None else f"{percentile:.0%}"],
        ["incentive", report["incentive"]],
        ["emission (alpha per epoch)", report["emission_alpha"]],
        ["stake (alpha)", report["stake_alpha"]],
        ["trust", report["trust"]],
        ["block", report["block"]],
        ["source", report["source"]],
        ["taken at", local(dt.datetime.fromisoformat(report["taken_at"]))],
    ])
    if report["stale"]:
        err.print(labelled("stale:", "the latest poll failed; these numbers are from the last good snapshot.", "yellow"))

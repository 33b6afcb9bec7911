"""`roadwork demo`: the whole loop on the embedded defaults, on a fresh or existing home."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from roadwork.settings import Settings, settings_path
from roadwork.db import repo
from roadwork.db.engine import current_revision, get_engine, migrate, read_session, write_session
from roadwork.platform.distillation import comparison_rows, distill_version
from roadwork.platform.evaluation.validation import evaluate_version
from roadwork.platform.registry.publish import CURRENT
from roadwork.platform.evaluation.replay import evaluate_replay
from roadwork.platform.registry.service import deploy
from roadwork.platform.training import train_and_register
from roadwork.trainer.config import TrainConfig, load_config
from roadwork.trainer.data.records import find_parquet_files


def run_demo(
    settings: Settings,
    *,
    n: int = 1200,
    replay_n: int = 500,
    first_epochs: int = 10,
    config_path: Path | None = None,
    show_progress: bool = True,
    queue_jobs: bool = True,
    log: Callable[[str], None] = print,
) -> dict[str, Any]:
    """Migrate, synthesise data (once), train a teacher, register and evaluate it, distil it into a tiny stock
    student, and deploy the student. Returns where everything is."""
    from roadwork.platform.synthetic_data import synthesize_with_progress

    engine = get_engine(settings.db_url)
    migrate(engine)
    log(f"[1/6] database {settings.public_dict()['database_url']} at revision {current_revision(engine)}")

    data_dir = settings.datasets_dir / "synth"
    try:
        find_parquet_files(data_dir)
        log(f"[2/6] synthetic dataset already at {data_dir}")
    except FileNotFoundError:
        report = synthesize_with_progress(data_dir, n, seed=0, corrupt_fraction=0.01, show=show_progress)
        log(f"[2/6] synthesised {report.n_rows} rows ({report.n_positive} roadwork, {report.n_corrupt} corrupt) "
            f"at {data_dir}")

    if config_path:
        config = load_config(config_path)
    else:  # a quick first teacher; the scheduler's train job then trains the full preset, whose student must beat
        base = TrainConfig()
        # this one's student
        config = base.model_copy(update={"optim": base.optim.model_copy(update={"epochs": first_epochs})})
    log(f"[3/6] training the teacher: preset '{config.name}' ({config.optim.epochs} epochs at "
        f"{config.data.image_size} px)")
    version, result = train_and_register(
        engine, settings, config, data_path=data_dir, actor="demo", show_progress=show_progress, log=log
    )
    best = f"epoch {result.metrics['best_epoch']} of {result.metrics['epochs_run']}"
    log(f"      registered teacher {version.label} in {result.seconds:.0f} s: the weights of {best}, the best "
        "validation MCC")

    evaluation = evaluate_version(engine, settings, version.id)
    replay = evaluate_replay(engine, settings, version.id, n=replay_n, seed=0)
    applied = bool(version.metrics.get("calibration", {}).get("applied"))
    for line in evaluation_lines(evaluation, replay, applied=applied):
        log(line)

    # What the stock miner serves is a student in a stock architecture: distil the teacher into a tiny one (with
    # knobs that suit a random-init student on this data, whatever distill.* says) and deploy that.
    knobs = settings.distill.model_copy(update=DEMO_DISTILL)
    log(f"[5/6] distilling teacher {version.label} into a tiny {knobs.student} student ({knobs.epochs} epochs, "
        f"lr {knobs.lr:g}, {knobs.render_copies} validator renders of each image)")
    outcome = distill_version(engine, settings.model_copy(update={"distill": knobs}), version.id, knobs.student,
                              actor="demo", show_progress=show_progress, log=lambda line: log(f"      {line}"))
    student = outcome.student
    pairs = comparison_rows(outcome)
    for line in student_lines(pairs):
        log(line)
    deployed = deploy(engine, settings, student.id, actor="demo", reason="demo run")
    log(f"[6/6] deployed student {student.label} (teacher {version.label}) as champion, in the stock format the "
        f"stock miner loads; serving from {settings.publish_dirs[0] / CURRENT}")
    student_replay = next((r for r in pairs if r["kind"] == "replay"), {})
    with read_session(engine) as session:
        n_versions = len(repo.list_versions(session))
    summary = {
        "home": str(settings.home),
        "database": settings.public_dict()["database_url"],
        "dataset": str(data_dir),
        "version": student.label,  # what is deployed: the student
        "version_id": student.id,
        "student": {"version": student.label, "id": student.id, "kind": knobs.student,
                    "threshold": outcome.result.threshold,
                    "evaluation_mcc": pairs[0]["student_mcc"] if pairs else None,
                    "replay_mcc": student_replay.get("student_mcc")},
        "teacher": {"version": version.label, "id": version.id, "val_mcc": result.metrics["val_mcc"],
                    "evaluation_id": evaluation.id, "evaluation_mcc": evaluation.mcc,
                    "replay_evaluation_id": replay.id, "replay_mcc": replay.mcc},
        "deploy_format": "stock",
        "published": deployed.published,
        "serving": [str(p / CURRENT) for p in settings.publish_dirs],
        "versions_in_registry": n_versions,
    }
    if queue_jobs:
        summary["queued"] = prepare_scheduler_demo(engine, settings, log)
    summary["operator_password_file"] = first_operator(engine, settings, log)
    log("\nNext: `roadwork versions`, `roadwork history`, `roadwork scheduler`, `roadwork dashboard`")
    return summary


def student_lines(rows: list[dict[str, Any]]) -> list[str]:
    """Step 5's results: the student's MCC beside its teacher's on the same images, one line per evaluation."""
    lines = []
    for row in rows:
        teacher = "no teacher run" if row["teacher_mcc"] is None else f"teacher {row['teacher_mcc']:.3f}"
        where = (f"validation split, {row['n']} images" if row["kind"] == "validation"
                 else f"the same validator-style replay, {row['n']} challenges")
        score = ""
        if row["student_expected_score"] is not None:
            theirs = row["teacher_expected_score"]
            score = (f"; expected validator score: student {row['student_expected_score']:.3f}, "
                     + ("no teacher run" if theirs is None else f"teacher {theirs:.3f}"))
        lines.append(f"      {where}: MCC student {row['student_mcc']:.3f}, {teacher}{score}")
    return lines


def evaluation_lines(evaluation: repo.Evaluation, replay: repo.Evaluation, *, applied: bool) -> list[str]:
    """Step 4 of the demo: each MCC once, saying what it was measured on. The validation split's MCC is the one
    training kept its best epoch by (raw answers at the 0.5 cut); with the calibration applied, the answers as
    served give another, shown beside it. The replay is validator-style challenges rendered from the same split."""
    raw = evaluation.metrics.get("before_calibration", {}).get("mcc", evaluation.mcc)
    if applied:
        served = f"MCC {evaluation.mcc:.3f} as served (calibrated; {raw:.3f} raw)"
    else:
        served = f"MCC {evaluation.mcc:.3f} (raw answers: the calibration was not applied)"
    expected = replay.metrics["expected_reward"]["final_score"]["mean"]
    return [(f"[4/6] teacher on the validation split, {evaluation.n} images: {served}, "
             f"accuracy {evaluation.accuracy:.3f}"),
            (f"      teacher on a validator-style replay of that split, {replay.n} challenges: "
             f"replay MCC {replay.mcc:.3f}, "
             f"expected validator score {expected:.3f}")]


DEMO_UID = 7
DEMO_SETTINGS = """\
# Written by `roadwork demo` on a home without settings: the embedded defaults, plus standings read from a
# local sample file so that every job runs offline. Edit freely; `roadwork settings show` lists every key.
uid: {uid}
leaderboard:
  source: btcli
  url: {sample}
gate:
  policy: auto            # a candidate that passes the gate is deployed at once (manual: wait for approval)
  replay_challenges: 300  # small, so the demo's pipeline finishes in a few minutes on two CPU cores
  min_cell_n: 100         # with 300 challenges, judge only the large condition cells
deploy:
  format: stock           # the train job distils each teacher into a student and gates and deploys the student
distill:                  # knobs that suit a tiny random-init student on the demo's data
  epochs: {epochs}
  lr: {lr}
  render_copies: {render_copies}
"""
DEMO_DISTILL = {"epochs": 8, "lr": 2e-3, "render_copies": 2}  # measured: student replay MCC 0.66 vs teacher 0.51


def write_standings_sample(path: Path, n_miners: int = 60, n_validators: int = 4, seed: int = 0) -> Path:
    """Sample standings in the shape `btcli subnets show --json-output` prints (rows under `uids`, owner first
    then by stake, amounts in alpha), with our demo UID among the miners. The top-level `roadwork_sample` key,
    which btcli never prints, makes the stored snapshot sample data (`standings.is_sample`)."""
    from roadwork.platform.standings.btcli import SAMPLE_KEY

    rng = np.random.default_rng(seed)
    incentive = rng.dirichlet(np.ones(n_miners) * 0.7) * 0.8  # the owner's UID takes the rest, as a burn UID does
    owner_coldkey = f"5DemoColdkey{0:035d}"
    rows = []
    for uid in range(1 + n_miners + n_validators):
        owner, validator = uid == 0, uid > n_miners
        alpha = float(rng.uniform(20_000, 90_000)) if validator else float(rng.uniform(0, 5))
        root = float(rng.uniform(1_000, 9_000)) if validator else 0.0
        share = 0.2 if owner else (0.0 if validator else float(incentive[uid - 1]))
        rows.append({
            "uid": uid, "hotkey": f"5DemoHotkey{uid:036d}",
            "coldkey": owner_coldkey if owner else f"5DemoColdkey{uid:035d}",
            "stake": alpha + 0.18 * root, "alpha_stake": alpha, "tao_stake": 0.18 * root,
            "dividends": 1.0 / n_validators if validator else 0.0, "incentive": share,
            "emissions": 73.8 * (0.5 / n_validators if validator else share / 2), "identity": "",
        })
    rows = rows[:1] + sorted(rows[1:], key=lambda row: -row["stake"])
    path.write_text(json.dumps({
        SAMPLE_KEY: True, "netuid": 72, "mechanism_id": 0, "mechanism_count": 1, "name": "sample",
        "owner": owner_coldkey, "owner_identity": "", "rate": 0.02, "emission": 0.05,
        "tempo": {"block_since_last_step": 0, "tempo": 360}, "uids": rows,
    }))
    return path


FIRST_OPERATOR = "operator"


def first_operator(engine, settings: Settings, log: Callable[[str], None]) -> str | None:  # noqa: ANN001
    """On a registry without users, create the operator `operator` with a random password written to a file only
    its owner can read (never printed), so the dashboard can be signed in to. Returns that file's path."""
    import os
    import secrets

    from roadwork.platform import users

    if users.count_users(engine):
        return None
    path = settings.home / "operator-password"
    password = secrets.token_urlsafe(18)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(password + "\n")
    users.create_user(engine, FIRST_OPERATOR, password, "operator", users.local_actor("demo"),
                      reason="first operator, created by the demo")
    log(f"      dashboard sign-in: user `{FIRST_OPERATOR}`, password in {path} (only you can read it; change it "
        f"with `roadwork user reset-password {FIRST_OPERATOR}`)")
    return str(path)


def prepare_scheduler_demo(engine, settings: Settings, log: Callable[[str], None]) -> list[str]:  # noqa: ANN001
    """Make `roadwork scheduler` run the loop at once: settings for offline standings (only on a home without
    a settings file) and a first run of train, mine and leaderboard queued in the commands table."""
    file = settings_path(None)
    if not file.exists() and file.parent == settings.home:
        sample = write_standings_sample(settings.home / "standings-sample.json")
        file.write_text(DEMO_SETTINGS.format(uid=DEMO_UID, sample=sample, **DEMO_DISTILL))
        log(f"      wrote {file} (standings from {sample.name}, gate policy auto)")
    queued = []
    with write_session(engine) as session:
        pending = {c.payload.get("job_id") for c in repo.pending_commands(session) if c.kind == "run_now"}
        for job_id in ("train", "mine", "leaderboard"):
            if job_id not in pending:
                repo.submit_command(session, kind="run_now", payload={"job_id": job_id}, requested_by="demo",
                                    reason="first run after the demo")
                queued.append(job_id)
    if queued:
        log(f"      queued for the scheduler: {', '.join(queued)} (`roadwork scheduler` runs them at once)")
    return queued

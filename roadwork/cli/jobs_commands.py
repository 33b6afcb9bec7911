"""`roadwork scheduler` and `roadwork jobs ...`: the scheduler runs jobs; every change is a row in its commands table.

Top-level commands are plain functions here; `roadwork.cli.app` registers them in the order `--help` lists."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Annotated, Any

import typer

from roadwork.cli.context import actor, current_settings, migrated_engine
from roadwork.cli.output import JsonOpt, emit_json, local, out, table

jobs_app = typer.Typer(help="Scheduled jobs (changes go through the scheduler's commands table).", no_args_is_help=True)


def scheduler(
    max_seconds: Annotated[float | None, typer.Option(help="Stop after this long (default: run until Ctrl-C).")] = None,
) -> None:
    """Run the scheduler: owns the job store (one per database), runs jobs, applies commands.

    On start: takes a dead scheduler's lease over (at once on this machine), ends its jobs, fails its runs, commands.
    """
    import logging
    import signal

    from roadwork.platform.jobs.scheduler import SchedulerService

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("alembic").setLevel(logging.WARNING)
    settings = current_settings()
    service = SchedulerService(migrated_engine(settings), settings)
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


def submit(kind: str, payload: dict[str, Any], reason: str = "", wait: float = 0.0) -> Any:
    from roadwork.db import repo
    from roadwork.db.engine import read_session
    from roadwork.platform import commands

    settings = current_settings()
    engine = migrated_engine(settings)
    command = commands.submit(engine, kind, payload, actor=actor(), reason=reason)
    deadline = time.monotonic() + wait
    while wait and time.monotonic() < deadline:
        with read_session(engine) as session:
            command = repo.get_command(session, command.id)
        if command.status in ("applied", "failed"):
            break
        time.sleep(0.5)
    return command


def print_command(command, as_json: bool) -> None:  # noqa: ANN001
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

    items = stored_jobs(migrated_engine(current_settings()))
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
    print_command(submit("run_now", payload, wait=wait), as_json)


@jobs_app.command("cancel")
def jobs_cancel(job_id: str, wait: WaitOpt = 0.0, as_json: JsonOpt = False) -> None:
    """Kill a running subprocess job (recorded as failed: cancelled)."""
    print_command(submit("cancel", {"job_id": job_id}, wait=wait), as_json)


@jobs_app.command("logs")
def jobs_logs(
    run_id: Annotated[int | None, typer.Argument(help="Job run id (default: the newest run with a log).")] = None,
    tail: Annotated[int, typer.Option(help="Lines from the end (0: all).")] = 0,
) -> None:
    """Print the log of a job run."""
    from roadwork.db import repo
    from roadwork.db.engine import read_session

    with read_session(migrated_engine(current_settings())) as session:
        runs = [r for r in repo.list_job_runs(session, limit=500) if run_id is None or r.id == run_id]
    run = next((r for r in runs if r.log_path), None)
    if run is None:
        raise ValueError(f"no job run {run_id} with a log" if run_id else "no job run has a log yet")
    lines = Path(run.log_path).read_text().splitlines()
    print("\n".join(lines[-tail:] if tail else lines))


@jobs_app.command("pause")
def jobs_pause(job_id: str, wait: WaitOpt = 0.0, as_json: JsonOpt = False) -> None:
    """Pause a job."""
    print_command(submit("pause", {"job_id": job_id}, wait=wait), as_json)


@jobs_app.command("resume")
def jobs_resume(job_id: str, wait: WaitOpt = 0.0, as_json: JsonOpt = False) -> None:
    """Resume a paused job."""
    print_command(submit("resume", {"job_id": job_id}, wait=wait), as_json)


@jobs_app.command("schedule")
def jobs_schedule(
    job_id: str,
    cron: Annotated[str, typer.Option(help="Cron expression in UTC, e.g. '0 3 * * 1' (Mondays): day of week as in crontab, 0 and 7 are Sunday.")],
    wait: WaitOpt = 0.0,
    as_json: JsonOpt = False,
) -> None:
    """Change a job's schedule (previews the next fire times)."""
    from roadwork.cron import next_fire_times
    from roadwork.platform.commands import check_payload

    payload = check_payload("reschedule", {"job_id": job_id, "cron": cron})  # an unknown job: nothing printed
    times = next_fire_times(cron, 3)
    if not as_json:
        out.print("next runs: " + ", ".join(local(t.replace(tzinfo=None)) for t in times))
    print_command(submit("reschedule", payload, wait=wait), as_json)


@jobs_app.command("history")
def jobs_history(
    job_id: Annotated[str | None, typer.Option("--job", help="Only this job.")] = None,
    limit: Annotated[int, typer.Option(help="How many, newest first.")] = 30,
    as_json: JsonOpt = False,
) -> None:
    """Recent job runs with status and duration."""
    from roadwork.db import repo
    from roadwork.db.engine import read_session

    with read_session(migrated_engine(current_settings())) as session:
        runs = repo.list_job_runs(session, job_id=job_id, limit=limit)
    if as_json:
        emit_json(runs)
        return
    table("job runs", ["id", "job", "status", "trigger", "scheduled", "duration", "error / result"],
          [[r.id, r.job_id, r.status, r.trigger, local(r.scheduled_at),
            f"{r.duration_s:.1f} s" if r.duration_s is not None else "",
            (r.error or "").splitlines()[0] if r.error else json.dumps(r.result or {})[:80]] for r in runs])

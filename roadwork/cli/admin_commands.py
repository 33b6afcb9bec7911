"""`roadwork db ...`, `settings ...`, `dashboard` and `demo`: the installation itself.

Top-level commands are plain functions here; `roadwork.cli.app` registers them in the order `--help` lists."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Annotated, Any

import typer

from roadwork.cli.context import current_settings, migrated_engine
from roadwork.cli.output import JsonOpt, emit_json, err, out, table

db_app = typer.Typer(help="The registry database.", no_args_is_help=True)
settings_app = typer.Typer(help="Settings of this installation.", no_args_is_help=True)


@db_app.command("upgrade")
def db_upgrade(as_json: JsonOpt = False) -> None:
    """Apply database migrations (every command also does this at start)."""
    from roadwork.db.engine import current_revision

    settings = current_settings()
    engine = migrated_engine(settings)
    result = {"database": settings.public_dict()["database_url"], "revision": current_revision(engine)}
    emit_json(result) if as_json else out.print(f"database {result['database']} at revision {result['revision']}")


@settings_app.command("show")
def settings_show(as_json: JsonOpt = False) -> None:
    """Show the settings in force (secrets masked) and where each can be set."""
    from roadwork.settings import describe_settings, settings_path

    settings = current_settings()
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
        rows.append([key, None if node is None else json.dumps(node), desc])  # an unset value: `—`, not `null`
    table("settings", ["key", "value", "description"], rows)


def dashboard(
    port: Annotated[int | None, typer.Option(help="Port (default: the dashboard_port setting).")] = None,
) -> None:
    """Start the web dashboard (Streamlit, without its unauthenticated /_stcore/metrics endpoint)."""
    settings = current_settings()
    migrated_engine(settings)  # migrate before the first page asks
    # server.py serves dashboard/app.py through Streamlit, without the unauthenticated /_stcore/metrics
    script = Path(__file__).parent.parent / "dashboard" / "server.py"
    cmd = [sys.executable, "-m", "streamlit", "run", str(script),
           "--server.port", str(port or settings.dashboard_port),
           "--server.address", settings.dashboard_address,
           "--server.headless", "true", "--browser.gatherUsageStats", "false", "--client.toolbarMode", "minimal"]
    out.print(f"dashboard on http://{settings.dashboard_address}:{port or settings.dashboard_port}")
    sys.stdout.flush()
    # Become the Streamlit server (no child left behind when this process is stopped or killed).
    os.execv(sys.executable, cmd)


def demo(
    n: Annotated[int, typer.Option(help="Rows of synthetic data.")] = 1200,
    config: Annotated[Path | None, typer.Option(help="Training preset; default: the embedded tiny preset.")] = None,
    queue: Annotated[bool, typer.Option(help="Queue a first run of train, mine and leaderboard for the scheduler.")] = True,
    as_json: JsonOpt = False,
) -> None:
    """The whole loop on the embedded defaults: migrate, synthesise, train a teacher, evaluate it, distil it into a
    tiny stock student, deploy the student.

    On a home without a settings file it also writes one that reads standings from a local sample, and it
    queues train, mine and leaderboard, so that `roadwork scheduler` runs the whole operations loop at once."""
    from roadwork.platform.demo import run_demo

    summary = run_demo(current_settings(), n=n, config_path=config, show_progress=not as_json, queue_jobs=queue,
                       log=(lambda s: err.print(s)) if as_json else out.print)
    if as_json:
        emit_json(summary)

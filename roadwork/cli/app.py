"""The `roadwork` Typer app: global options, and every command registered in the order `roadwork --help` lists.

The commands live one group per module (`*_commands.py`); each imports what it needs (torch, the trainer, the
platform services) inside its own function, so that `roadwork --help` or a listing starts in a fraction of a
second instead of loading the trainer first."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Annotated

import typer

from roadwork.cli import (admin_commands, data_commands, evaluation_commands, jobs_commands, registry_commands,
                          training_commands, users_commands)
from roadwork.cli.output import exit_with_error

app = typer.Typer(
    help="Roadwork Ops: train, evaluate, deploy, roll back and watch a StreetVision roadwork-detection miner.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)


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


# train, evaluate, registry
app.command()(training_commands.train)
app.command("lr-find")(training_commands.lr_find)
app.command("batch-size")(training_commands.batch_size)
app.command("augment-preview")(training_commands.augment_preview)
app.command()(training_commands.ensemble)
app.command()(training_commands.distill)
app.command()(training_commands.ablate)
app.command()(training_commands.ablations)
app.command()(evaluation_commands.evaluate)
app.command()(registry_commands.deploy)
app.command()(registry_commands.rollback)
app.command()(registry_commands.versions)
app.command()(registry_commands.history)
app.command()(registry_commands.export)
app.command()(registry_commands.predict)
app.command()(evaluation_commands.score)
app.command()(evaluation_commands.standings)
# scheduler, gate, mining
app.command()(jobs_commands.scheduler)
app.command()(registry_commands.candidates)
app.command()(registry_commands.approve)
app.command()(registry_commands.reject)
app.command()(data_commands.mine)
# dashboard, demo
app.command()(admin_commands.dashboard)
app.command()(admin_commands.demo)

app.add_typer(admin_commands.db_app, name="db")
app.add_typer(data_commands.data_app, name="data")
app.add_typer(jobs_commands.jobs_app, name="jobs")
app.add_typer(admin_commands.settings_app, name="settings")
app.add_typer(evaluation_commands.challenge_app, name="challenge")
app.add_typer(evaluation_commands.ab_app, name="ab")
app.add_typer(users_commands.user_app, name="user")

# Errors a user can fix from the message alone: (module, class). Looked up in sys.modules when one is raised, so
# that catching them does not import the trainer: an exception class whose module was never imported cannot
# have been raised.
KNOWN_ERRORS = (
    ("roadwork.settings", "SettingsError"),
    ("roadwork.trainer.config", "ConfigError"),
    ("roadwork.db.repo", "NotFoundError"),
    ("roadwork.platform.registry.service", "DeployError"),
    ("roadwork.platform.registry.artifacts", "ArtifactError"),
    ("roadwork.platform.jobs.scheduler", "SchedulerBusyError"),
    ("csv", "Error"),  # a CSV the reader cannot parse
)
# Built-in errors of bad input: a path that is missing, unreadable or of the wrong kind (OSError), a value that
# does not parse (ValueError, which includes UnicodeDecodeError and the trainer's BadImageError), a number out of
# range (OverflowError). Anything else is a bug and keeps its traceback.
BUILTIN_INPUT_ERRORS: tuple[type[BaseException], ...] = (OSError, ValueError, OverflowError)


def known_error_types() -> tuple[type[BaseException], ...]:
    """The known error classes among the modules imported so far, plus the built-in ones bad input raises."""
    loaded = (getattr(sys.modules[module], name) for module, name in KNOWN_ERRORS if module in sys.modules)
    return (*loaded, *BUILTIN_INPUT_ERRORS)


def main() -> None:
    """Console entry point: known errors print one clear line on stderr and exit 2, no traceback."""
    try:
        app()
    except Exception as exc:
        if isinstance(exc, known_error_types()):
            exit_with_error(exc)
        raise

"""No Docker engine runs here: the compose file and Dockerfile are checked against the CLI instead."""

from __future__ import annotations

import re

import click
import typer
import yaml

from roadwork.cli.app import app
from roadwork.settings import Settings
from tests.conftest import ROOT

COMPOSE = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
DOCKERFILE = (ROOT / "Dockerfile").read_text()


def _parses(args: list[str]) -> click.Context:
    """Parse a command line with the real CLI (options checked), without running it."""
    root = typer.main.get_command(app)
    cmd = root.get_command(click.Context(root), args[0])
    assert cmd is not None, f"roadwork has no command {args[0]!r}"
    return cmd.make_context(args[0], list(args[1:]))


def test_scheduler_and_dashboard_share_image_and_volume() -> None:
    services = COMPOSE["services"]
    sched, dash = services["scheduler"], services["dashboard"]
    assert sched["image"] == dash["image"] and "build" in sched
    for svc in (sched, dash):
        home = svc["environment"]["ROADWORK_HOME"]
        mounts = {v.split(":")[0]: v.split(":")[1] for v in svc["volumes"]}
        assert mounts.get("roadwork-data") == home, "the registry and artifacts must be on the shared volume"
    assert "roadwork-data" in COMPOSE["volumes"]


def test_service_commands_are_valid_cli_commands() -> None:
    for name in ("scheduler", "dashboard"):
        ctx = _parses(COMPOSE["services"][name]["command"])
        assert ctx.command.name == name
    assert re.search(r'ENTRYPOINT \["roadwork"\]', DOCKERFILE)


def test_dashboard_port_matches_cli_and_dockerfile() -> None:
    dash = COMPOSE["services"]["dashboard"]
    ctx = _parses(dash["command"])
    host, container = dash["ports"][0].split(":")
    assert int(container) == ctx.params["port"]
    assert f"EXPOSE {container}" in DOCKERFILE
    assert Settings.model_fields["dashboard_port"].default == int(container)
    assert "ROADWORK_DASHBOARD_ADDRESS=0.0.0.0" in DOCKERFILE  # reachable from outside the container


def test_postgres_is_an_optional_profile_the_image_can_reach() -> None:
    pg = COMPOSE["services"]["postgres"]
    assert pg["profiles"] == ["postgres"]
    assert "profiles" not in COMPOSE["services"]["scheduler"]  # the default stack needs no PostgreSQL
    url = re.search(r"ROADWORK_DATABASE_URL=(\S+)", (ROOT / "docker-compose.yml").read_text())[1]
    env = pg["environment"]
    assert url == (f"postgresql+psycopg://{env['POSTGRES_USER']}:{env['POSTGRES_PASSWORD']}"
                   f"@postgres:5432/{env['POSTGRES_DB']}")
    assert "'.[postgres]'" in DOCKERFILE  # the psycopg driver is in the image

"""No Docker engine runs here: the compose file and Dockerfile are checked against the CLI instead."""

from __future__ import annotations

import os
import re
import subprocess
import sys

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


def roadwork_services() -> dict[str, dict]:
    """The services that run this project's image (every one but the optional PostgreSQL)."""
    return {name: svc for name, svc in COMPOSE["services"].items() if name != "postgres"}


def test_every_service_builds_the_one_image_and_never_pulls_it() -> None:
    services = roadwork_services()
    assert set(services) == {"scheduler", "dashboard"}
    assert {svc["image"] for svc in services.values()} == {"roadwork-ops:latest"}
    for name, svc in services.items():
        # built here, or the image built here with no registry lookup: `roadwork-ops` is on no registry
        assert "build" in svc or svc.get("pull_policy") == "never", f"{name} neither builds nor uses the built image"
        assert svc.get("pull_policy") in ("never", "build"), f"{name} would look for roadwork-ops on a registry"


def test_scheduler_and_dashboard_share_the_volume() -> None:
    for svc in roadwork_services().values():
        home = svc["environment"]["ROADWORK_HOME"]
        mounts = {v.split(":")[0]: v.split(":")[1] for v in svc["volumes"]}
        assert mounts.get("roadwork-data") == home, "the registry and artifacts must be on the shared volume"
    assert "roadwork-data" in COMPOSE["volumes"]


def test_service_commands_are_valid_cli_commands() -> None:
    assert re.search(r'ENTRYPOINT \["roadwork"\]', DOCKERFILE)
    for name, svc in roadwork_services().items():
        ctx = _parses(svc["command"])
        assert ctx.command.name == svc["command"][0] == name
        done = subprocess.run([sys.executable, "-m", "roadwork.cli", svc["command"][0], "--help"], cwd=ROOT,
                              capture_output=True, text=True, timeout=120, check=False,
                              env={k: v for k, v in os.environ.items() if not k.startswith("ROADWORK_")})
        assert done.returncode == 0, f"roadwork {svc['command'][0]} --help: {done.stderr}"


def test_the_documented_first_operator_command_is_a_real_cli_command() -> None:
    """`docker compose run --rm scheduler <args>` runs `roadwork <args>` in the image (its entry point)."""
    text = (ROOT / "docker-compose.yml").read_text() + (ROOT / "README.md").read_text()
    found = set(re.findall(r"docker compose run --rm (\w+) (user add [^`\n#]+)", text))
    assert found, "no first-operator command documented"
    for service, args in found:
        assert service in roadwork_services()
        root = typer.main.get_command(app)
        group = root.get_command(click.Context(root), "user")
        add = group.get_command(click.Context(group), "add")
        parsed = add.make_context("add", args.split()[2:])  # options checked by the real CLI
        assert parsed.params["role"] == "operator" and parsed.params["name"]


def test_the_image_pins_torch_as_the_makefile_does_from_the_cpu_index() -> None:
    makefile = (ROOT / "Makefile").read_text()
    pin = re.search(r"^TORCH_SPEC \?= (\S+)$", makefile, re.MULTILINE)[1]
    assert re.search(rf"^ARG TORCH_SPEC={re.escape(pin)}$", DOCKERFILE, re.MULTILINE)
    assert re.search(r"^ARG TORCH_INDEX=https://download.pytorch.org/whl/cpu$", DOCKERFILE, re.MULTILINE)
    assert '--index-url "$TORCH_INDEX" "$TORCH_SPEC"' in DOCKERFILE
    assert DOCKERFILE.index("$TORCH_SPEC") < DOCKERFILE.index("'.[postgres]'")  # before the project pulls its own


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

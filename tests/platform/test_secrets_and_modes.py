"""Secrets stay masked (settings show, run folders, logs), files get the modes their readers need, and the command
line prints stored text as written."""

from __future__ import annotations

import json
import logging
import os
import socket
import stat
from pathlib import Path

from roadwork.db import repo
from roadwork.db.engine import write_session
from roadwork.platform.events import EventForwarder
from roadwork.platform.registry import service as registry
from roadwork.platform.training import start_run
from roadwork.settings import load_settings
from tests.conftest import tiny_config
from tests.helpers import as_json, roadwork

WEBHOOK_PATH = "/services/T0001/B0002/Xq7secretTokenPart"
WEBHOOK = f"https://hooks.example.com{WEBHOOK_PATH}"
DB_PASSWORD = "pg-Pa55word-9"
LEADERBOARD_PASSWORD = "lb-hunter2"
SECRETS = {
    "ROADWORK_EVENTS__WEBHOOK_URL": WEBHOOK,
    "ROADWORK_DATABASE_URL": f"postgresql+psycopg://alice:{DB_PASSWORD}@db.example:5432/roadwork",
    "ROADWORK_LEADERBOARD__URL": f"https://bob:{LEADERBOARD_PASSWORD}@stats.example/api",
    "ROADWORK_HF_TOKEN": "hf_tokenvalue0123456789",
}
WIDE = {"COLUMNS": "1000"}  # a terminal wide enough that no table cell wraps
SECRET_VALUES = ("Xq7secretTokenPart", DB_PASSWORD, LEADERBOARD_PASSWORD, "hf_tokenvalue0123456789")


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_settings_show_masks_the_webhook_and_passwords_in_urls(tmp_path: Path) -> None:
    table = roadwork(tmp_path / "home", "settings", "show", env=SECRETS | WIDE)
    shown = as_json(roadwork(tmp_path / "home", "settings", "show", "--json", env=SECRETS))
    for secret in SECRET_VALUES:
        assert secret not in table.stdout + table.stderr
        assert secret not in json.dumps(shown)
    assert shown["events"]["webhook_url"] == "https://hooks.example.com/**********"  # still says which service
    assert shown["database_url"] == "postgresql+psycopg://alice:***@db.example:5432/roadwork"
    assert shown["leaderboard"]["url"] == "https://bob:***@stats.example/api"
    assert "https://hooks.example.com/**********" in table.stdout


def test_a_run_folder_records_the_settings_without_secrets(engine, clean_env, synth_data: Path) -> None:
    for key, value in SECRETS.items():
        if key != "ROADWORK_DATABASE_URL":  # the test's registry is the home's SQLite file
            clean_env.setenv(key, value)
    settings = load_settings()
    assert settings.events.webhook() == WEBHOOK  # the scheduler still gets the real URL
    run = start_run(engine, settings, tiny_config(epochs=1), synth_data, None, False, log=lambda _: None)
    recorded = (run.run_dir / "settings.json").read_text()
    assert json.loads(recorded)["leaderboard"]["url"] == "https://bob:***@stats.example/api"
    for secret in SECRET_VALUES:
        assert secret not in recorded


def test_a_failing_webhook_is_logged_without_its_url(engine, caplog) -> None:
    with socket.socket() as s:  # a port nobody listens on: the request fails to connect
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    forwarder = EventForwarder(engine, f"http://127.0.0.1:{port}{WEBHOOK_PATH}", 2)
    with write_session(engine) as session:
        repo.add_audit(session, actor="scheduler", action="job_failed", target="train", reason="OOM")
    with caplog.at_level(logging.WARNING, logger="roadwork.platform.events"):
        assert forwarder.forward() == 0
    assert "webhook failed" in caplog.text and "ConnectionError" in caplog.text
    assert "Xq7secretTokenPart" not in caplog.text


def test_a_new_home_is_private_and_an_existing_folder_keeps_its_mode(tmp_path: Path) -> None:
    home = tmp_path / "new" / "home"
    roadwork(home, "db", "upgrade")
    assert mode(home) == 0o700 and mode(home / "roadwork.db") == 0o600
    assert all(mode(p) == 0o600 for p in home.glob("roadwork.db*"))  # -wal and -shm too, when present

    mine = tmp_path / "mine"
    mine.mkdir(mode=0o755)
    os.chmod(mine, 0o755)
    roadwork(mine, "db", "upgrade")
    assert mode(mine) == 0o755  # the user's own folder is not changed
    assert mode(mine / "roadwork.db") == 0o600


def test_published_files_are_readable_by_other_users(engine, settings, tiny_checkpoint) -> None:
    version = registry.register_version(
        engine, settings, tiny_checkpoint.checkpoint_dir, config={"name": "tiny"}, metrics=tiny_checkpoint.metrics,
        data_fingerprint=tiny_checkpoint.data_fingerprint, parent_id=None, actor="test")
    registry.deploy(engine, settings, version.id, actor="test", reason="modes")
    current = (settings.publish_dirs[0] / "current").resolve()
    files = [p for p in current.rglob("*") if p.is_file()]
    folders = [current, *(p for p in current.rglob("*") if p.is_dir())]
    assert any(p.name == "model.safetensors" for p in files)
    assert {str(p.relative_to(current)): mode(p) for p in files if mode(p) != 0o644} == {}
    assert {str(p): mode(p) for p in folders if mode(p) != 0o755} == {}


def test_history_prints_markup_in_reasons_literally(engine, settings, tiny_checkpoint, home: Path) -> None:
    version = registry.register_version(
        engine, settings, tiny_checkpoint.checkpoint_dir, config={"name": "tiny"}, metrics=tiny_checkpoint.metrics,
        data_fingerprint=tiny_checkpoint.data_fingerprint, parent_id=None, actor="test")
    registry.deploy(engine, settings, version.id, actor="[bold]ops[/bold]", reason="[red]x[/red] :boom:")
    shown = roadwork(home, "history", env=WIDE).stdout
    assert "[red]x[/red] :boom:" in shown
    assert "[bold]ops[/bold]" in shown

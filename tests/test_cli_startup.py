"""The everyday commands start without the trainer's libraries: each runs in a fresh interpreter against a seeded
home, and the modules it loaded are read back from `sys.modules` when it is done."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from sqlalchemy import Engine

from roadwork.db import repo
from roadwork.db.engine import write_session
from roadwork.platform import users
from tests.conftest import ROOT

# Seconds of import each (torch alone is several): none of them has any business in a listing or in --help.
HEAVY = ("torch", "transformers", "scipy", "sklearn", "cv2", "pyarrow", "peft", "kornia", "plotly", "pandas",
         "alembic")  # migrating a database already at head needs no Alembic (db.engine.at_head)

# Runs the console entry point in-process with the given arguments, then writes the heavy modules it loaded to
# the file named by $STARTUP_REPORT (stdout belongs to the command).
PROBE = """
import json, os, sys
from roadwork.cli.app import main
sys.argv = ["roadwork", *sys.argv[1:]]
code = 0
try:
    main()
except SystemExit as exc:
    code = exc.code or 0
loaded = [m for m in json.loads(os.environ["STARTUP_HEAVY"]) if m in sys.modules]
with open(os.environ["STARTUP_REPORT"], "w") as f:
    json.dump({"code": code, "loaded": loaded}, f)
"""

# Each with a piece of its output, so that a command that stops early cannot pass for a light one.
COMMANDS = [(["--help"], "Usage"), (["versions"], "0.1.0"), (["history"], "first"), (["jobs", "list"], "jobs"),
            (["settings", "show"], "database_url"), (["user", "list"], "alice")]


@pytest.fixture
def seeded_home(home: Path, engine: Engine) -> Path:
    """A home with a champion (so `versions` and `history` print rows) and an operator (so `user list` does)."""
    with write_session(engine) as s:
        v = repo.create_version(s, name="m", version="0.1.0", artifact_sha256="a" * 64, artifact_path="/x",
                                config={}, metrics={"val_mcc": 0.5}, parent_id=None, data_fingerprint=None,
                                code_revision=None, hard_negative_set_id=None, created_by="t")
        repo.move_alias(s, alias="champion", to_version_id=v.id, action="deploy", actor="t", reason="first")
    users.create_user(engine, "alice", "correct horse battery", "operator", users.local_actor())
    return home


@pytest.mark.parametrize(("args", "shows"), COMMANDS, ids=[" ".join(args) for args, _ in COMMANDS])
def test_everyday_command_imports_no_heavy_library(args: list[str], shows: str, seeded_home: Path,
                                                   tmp_path: Path) -> None:
    report = tmp_path / "startup.json"
    env = {k: v for k, v in os.environ.items() if not k.startswith("ROADWORK_")}
    env |= {"ROADWORK_HOME": str(seeded_home), "STARTUP_REPORT": str(report), "STARTUP_HEAVY": json.dumps(HEAVY)}
    done = subprocess.run([sys.executable, "-c", PROBE, *args], env=env, cwd=ROOT, capture_output=True, text=True,
                          timeout=120)
    command = "roadwork " + " ".join(args)
    assert done.returncode == 0 and report.exists(), f"{command} failed:\n{done.stdout}\n{done.stderr}"
    result = json.loads(report.read_text())
    assert result["code"] == 0, f"{command} exited {result['code']}:\n{done.stdout}\n{done.stderr}"
    assert shows in done.stdout, f"{command} did not print {shows!r}:\n{done.stdout}"
    assert result["loaded"] == [], f"{command} imported {', '.join(result['loaded'])}"


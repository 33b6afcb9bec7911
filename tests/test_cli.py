"""The command line end to end, as a user runs it: real processes, a real home, the tiny preset."""

from __future__ import annotations

import getpass
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.helpers import ROOT, as_json, jpeg_bytes, roadwork


def serving_version(home: Path) -> str:
    return json.loads((home / "publish" / "current" / "model_card.json").read_text())["version"]


def test_demo_deploy_rollback_and_scheduler(tmp_path: Path) -> None:
    home = tmp_path / "home"
    summary = as_json(roadwork(home, "demo", "--n", "160", "--no-queue", "--json"))
    # The demo deploys what the stock miner serves: a student (0.2.0) distilled from the teacher it trained (0.1.0).
    assert summary["version"].endswith(":0.2.0") and summary["teacher"]["version"].endswith(":0.1.0")
    assert summary["student"]["version"] == summary["version"] and summary["deploy_format"] == "stock"
    secret = Path(summary["operator_password_file"])
    assert secret.stat().st_mode & 0o777 == 0o600 and len(secret.read_text().strip()) >= 20
    served = Path(summary["serving"][0]).resolve()
    assert "auto_map" not in json.loads((served / "config.json").read_text())  # no model code of ours

    versions = {v["version"]: v for v in as_json(roadwork(home, "versions", "--json"))}
    assert sorted(versions) == ["0.1.0", "0.2.0"] and versions["0.2.0"]["champion"]
    assert versions["0.2.0"]["parent_id"] == versions["0.1.0"]["id"]  # the student's parent is its teacher
    decision = versions["0.1.0"]["metrics"]["calibration"]  # fitted on one replay, checked on another
    assert decision["fit"]["seed"] != decision["held_out"]["seed"] and decision["held_out"]["n"] > 0
    assert isinstance(decision["applied"], bool) and decision["reason"]
    history = as_json(roadwork(home, "history", "--json"))
    assert history["current"]["version"] == "0.2.0" and history["events"][0]["action"] == "deploy"

    trained = as_json(roadwork(home, "train", "--config", "configs/tiny.yaml", "--epochs", "1", "--json"))
    assert trained["version"]["version"] == "0.3.0"
    assert trained["version"]["parent_id"] == versions["0.2.0"]["id"]  # lineage: the champion is the parent
    roadwork(home, "deploy", "0.3.0", "--reason", "newer")  # the tests' format, remote-code: the teacher itself
    assert serving_version(home) == "0.3.0"

    back = as_json(roadwork(home, "rollback", "--reason", "0.3.0 misses cones at night", "--json"))
    assert back["version"]["version"] == "0.2.0"
    assert serving_version(home) == "0.2.0"
    history = as_json(roadwork(home, "history", "--json"))
    assert [e["action"] for e in history["events"]] == ["rollback", "deploy", "deploy"]

    # Export and predict: the published model and an explicit export score an image the same way.
    exported = as_json(roadwork(home, "export", "0.1.0", "--out", str(tmp_path / "export"), "--json"))
    assert "model_card.json" in exported["files"]
    image = tmp_path / "road.jpg"
    image.write_bytes(jpeg_bytes())
    (tmp_path / "broken.jpg").write_bytes(b"\xff\xd8 not really")
    a = roadwork(home, "predict", exported["path"], str(image))
    b = roadwork(home, "predict", "0.1.0", str(image), str(tmp_path / "broken.jpg"), check=False)
    assert b.returncode == 2 and "broken.jpg" in b.stderr  # several images: each score named by its image
    assert b.stdout.split("\t") == [str(image), a.stdout] and 0.0 <= float(a.stdout) <= 1.0

    # The scheduler applies a command written by another process.
    sched = subprocess.Popen([sys.executable, "-m", "roadwork.cli", "scheduler", "--max-seconds", "120"],
                             env={**{k: v for k, v in os.environ.items() if not k.startswith("ROADWORK_")},
                                  "ROADWORK_HOME": str(home), "ROADWORK_SCHEDULER__COMMAND_POLL_S": "0.2",
                                  "ROADWORK_EVALUATION__CHAMPION_REPLAY_CHALLENGES": "20"},
                             cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        deadline = time.monotonic() + 60
        while "running on" not in sched.stdout.readline():
            assert time.monotonic() < deadline and sched.poll() is None, "scheduler did not start"
        busy = roadwork(home, "scheduler", "--max-seconds", "1", check=False)
        assert busy.returncode == 2 and "another scheduler owns this database" in busy.stderr

        done = as_json(roadwork(home, "jobs", "run", "evaluate_champion", "--wait", "60", "--json"))
        assert done["status"] == "applied", done
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            runs = as_json(roadwork(home, "jobs", "history", "--json"))
            if any(r["status"] == "succeeded" for r in runs):
                break
            time.sleep(1)
        run = next(r for r in runs if r["status"] == "succeeded")
        assert run["job_id"] == "evaluate_champion" and run["result"]["version"].endswith(":0.2.0")
    finally:
        sched.terminate()
        sched.wait(30)
    listed = as_json(roadwork(home, "jobs", "list", "--json"))
    assert [j["id"] for j in listed] == sorted(["evaluate_champion", "train", "mine", "leaderboard", "model_age"])
    assert all(not j["paused"] and j["next_run_time"] for j in listed)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["deploy", "9.9.9"], "no model version '9.9.9'"),
        (["train", "--config", "{bad}"], "'optim.epochz': unknown key"),
        (["train", "--config", "missing.yaml"], "training config not found"),
        (["rollback", "--reason", "x"], "no champion"),
        (["jobs", "schedule", "evaluate_champion", "--cron", "61 * * * *"], "invalid cron expression"),
    ],
)
def test_bad_input_gets_one_clear_line(tmp_path: Path, args: list[str], message: str) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("optim:\n  epochz: 3\n")
    args = [str(bad) if a == "{bad}" else a for a in args]
    done = roadwork(tmp_path / "home", *args, check=False)
    assert done.returncode == 2
    assert message in done.stderr
    assert "Traceback" not in done.stderr


def test_bad_settings_file_names_the_key(tmp_path: Path) -> None:
    home = tmp_path / "home"
    home.mkdir()
    (home / "roadwork.yaml").write_text("scheduler:\n  heartbeat_s: often\n")
    done = roadwork(home, "versions", check=False)
    assert done.returncode == 2 and "scheduler.heartbeat_s" in done.stderr


def test_a_settings_override_of_an_unknown_job_is_named(tmp_path: Path) -> None:
    home = tmp_path / "home"
    home.mkdir()
    (home / "roadwork.yaml").write_text("scheduler:\n  crons:\n    trian: '0 3 * * *'\n")
    done = roadwork(home, "jobs", "list", check=False)
    assert done.returncode == 2 and "scheduler.crons.trian" in done.stderr and "Traceback" not in done.stderr


def test_a_cli_command_is_queued_with_its_audit_row_as_the_local_user(tmp_path: Path) -> None:
    from roadwork.db import repo
    from roadwork.db.engine import make_engine, read_session

    home = tmp_path / "home"
    actor = f"local:{getpass.getuser()}"
    queued = as_json(roadwork(home, "jobs", "pause", "train", "--json"))
    assert (queued["kind"], queued["status"], queued["requested_by"]) == ("pause", "pending", actor)
    bad = roadwork(home, "jobs", "run", "train", "--kwargs", '{"epochs": 3}', check=False)
    assert bad.returncode == 2 and "train takes config; not epochs" in bad.stderr
    engine = make_engine(f"sqlite:///{home / 'roadwork.db'}")
    try:
        with read_session(engine) as session:
            events = [(e.actor, e.action, e.target, e.details["command_id"]) for e in repo.list_audit(session)]
            commands = repo.list_commands(session)
    finally:
        engine.dispose()
    assert [c.id for c in commands] == [queued["id"]]  # the refused run wrote nothing
    assert events == [(actor, "pause_requested", "train", queued["id"])]


@pytest.mark.skipif(not hasattr(os, "getuid"), reason="POSIX user ids")
def test_without_user_variables_the_audit_names_the_operating_system_user(tmp_path: Path) -> None:
    """Under cron, systemd or `env -u USER` no variable names the user: the audit row still does, not `unknown`."""
    import pwd

    home = tmp_path / "home"
    env = {k: v for k, v in os.environ.items()
           if not k.startswith("ROADWORK_") and k not in ("USER", "LOGNAME", "LNAME", "USERNAME")}
    done = subprocess.run([sys.executable, "-m", "roadwork.cli", "jobs", "pause", "train", "--json"],
                          env=env | {"ROADWORK_HOME": str(home)}, cwd=ROOT, capture_output=True, text=True,
                          timeout=300, check=True)
    assert json.loads(done.stdout)["requested_by"] == f"local:{pwd.getpwuid(os.getuid()).pw_name}"


def test_user_commands_never_take_or_show_a_password(tmp_path: Path) -> None:
    home = tmp_path / "home"
    pw = tmp_path / "pw"
    pw.write_text("correct horse battery staple\n")
    roadwork(home, "user", "add", "alice", "--role", "operator", "--password-file", str(pw))
    again = roadwork(home, "user", "add", "alice", "--password-file", str(pw), check=False)
    assert again.returncode == 2 and "already exists" in again.stderr
    roadwork(home, "user", "add", "bob", "--password-file", str(pw))
    roadwork(home, "user", "set-role", "bob", "operator", "--reason", "on call")
    listed = as_json(roadwork(home, "user", "list", "--json"))
    assert [(u["username"], u["role"]) for u in listed] == [("alice", "operator"), ("bob", "operator")]
    assert "horse" not in json.dumps(listed) and "argon2" not in json.dumps(listed)

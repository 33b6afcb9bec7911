"""A training run killed (SIGKILL, in a real `roadwork train` process) after its checkpoint is saved but before its
version is registered keeps its resume state; `--resume` continues it by name, or refuses when it cannot tell
which run is meant."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.helpers import as_json, roadwork

TRAIN = ("train", "--config", "configs/tiny.yaml", "--epochs", "1")
KILL_AFTER_CHECKPOINT = {"ROADWORK_FAULT_AT": "after_checkpoint"}


def interrupted(home: Path, data: Path) -> str:
    """Train in a child process that SIGKILLs itself once the checkpoint is written; returns the run's id."""
    before = set((home / "runs").glob("*")) if (home / "runs").exists() else set()
    done = roadwork(home, *TRAIN, "--data", str(data), "--json", check=False, env=KILL_AFTER_CHECKPOINT)
    assert done.returncode == -9, done.stderr  # killed, not failed
    (run,) = set((home / "runs").glob("*")) - before
    assert (run / "checkpoint" / "model.safetensors").exists()
    return run.name


def versions(home: Path) -> list[str]:
    return [v["version"] for v in as_json(roadwork(home, "versions", "--json"))]


@pytest.mark.slow
def test_a_run_killed_before_registration_is_resumed_by_name_and_registered(tmp_path: Path, synth_data: Path) -> None:
    home = tmp_path / "home"
    first = interrupted(home, synth_data)
    second = interrupted(home, synth_data)
    assert versions(home) == []  # neither was registered

    ambiguous = roadwork(home, *TRAIN, "--data", str(synth_data), "--resume", check=False)
    assert ambiguous.returncode == 2 and "Traceback" not in ambiguous.stderr
    assert "2 interrupted training runs" in ambiguous.stderr
    assert first in ambiguous.stderr and second in ambiguous.stderr and "--run" in ambiguous.stderr

    named = as_json(roadwork(home, *TRAIN, "--data", str(synth_data), "--run", first, "--json"))
    assert named["run"] == first and named["version"]["version"] == "0.1.0"
    assert not (home / "runs" / first / "checkpoint" / ".resume").exists()  # registered: nothing left to resume
    assert (home / "runs" / second / "checkpoint" / ".resume").exists()

    again = roadwork(home, *TRAIN, "--data", str(synth_data), "--run", first, check=False)
    assert again.returncode == 2 and "registered as version 0.1.0" in again.stderr

    only = as_json(roadwork(home, *TRAIN, "--data", str(synth_data), "--resume", "--json"))
    assert only["run"] == second and only["version"]["version"] == "0.2.0"
    assert versions(home) == ["0.2.0", "0.1.0"]

    none_left = roadwork(home, *TRAIN, "--data", str(synth_data), "--resume", check=False)
    assert none_left.returncode == 2 and "no interrupted training run" in none_left.stderr

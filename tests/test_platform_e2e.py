"""The operations loop in one sitting, as `make run` starts it: `roadwork demo`, then `roadwork scheduler`."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.conftest import ROOT
from tests.helpers import as_json, roadwork

EXPECTED = {"train", "distill", "evaluate", "gate", "deploy", "mine", "leaderboard"}


@pytest.mark.slow
def test_demo_then_scheduler_runs_the_whole_loop(tmp_path: Path) -> None:
    home = tmp_path / "home"
    summary = as_json(roadwork(home, "demo", "--n", "300", "--json"))
    assert summary["queued"] == ["train", "mine", "leaderboard"]
    assert (home / "roadwork.yaml").exists()

    # The gate's judgement is tested on constructed evaluations (tests/platform/test_gate.py); here any candidate
    # passes, so that the run exercises the deploy step whatever two tiny models trained on 300 rows (and their
    # students) score. The demo's settings deploy in the stock format: train, distill, then gate the student.
    env = {k: v for k, v in os.environ.items() if not k.startswith("ROADWORK_")} | {
        "ROADWORK_HOME": str(home), "ROADWORK_SCHEDULER__COMMAND_POLL_S": "0.5",
        "ROADWORK_GATE__MIN_MCC_GAIN": "-1", "ROADWORK_GATE__MIN_REWARD_GAIN": "-1",
        "ROADWORK_GATE__CELL_TOLERANCE": "2", "ROADWORK_GATE__REPLAY_CHALLENGES": "200",
        "ROADWORK_GATE__MAX_STUDENT_GAP": "2"}
    sched = subprocess.Popen([sys.executable, "-m", "roadwork.cli", "scheduler", "--max-seconds", "600"],
                             env=env, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 540
        done: dict[str, dict] = {}
        while time.monotonic() < deadline and not EXPECTED <= set(done):
            time.sleep(3)
            for run in as_json(roadwork(home, "jobs", "history", "--limit", "50", "--json")):
                assert run["status"] != "failed", run
                if run["status"] == "succeeded":
                    done.setdefault(run["job_id"], run)
        assert EXPECTED <= set(done), f"ran only {sorted(done)}"
    finally:
        sched.terminate()
        sched.wait(60)

    assert done["gate"]["result"]["passed"] and done["gate"]["trigger"] == "pipeline"
    # demo: teacher 0.1.0, its student 0.2.0 deployed; the train job: teacher 0.3.0, its student 0.4.0 deployed
    assert done["distill"]["result"]["teacher"].endswith(":0.3.0")
    assert done["deploy"]["result"]["version"].endswith(":0.4.0")
    assert done["mine"]["result"]["n_items"] > 0
    assert done["leaderboard"]["result"]["uid"] == 7 and not done["leaderboard"]["result"]["stale"]
    assert done["train"]["log_path"] and Path(done["train"]["log_path"]).exists()

    history = as_json(roadwork(home, "history", "--json"))
    assert history["current"]["version"] == "0.4.0"
    promotion = history["events"][0]
    assert promotion["actor"] == "scheduler" and promotion["gate_result"]["passed"]
    card = json.loads((home / "publish" / "current" / "model_card.json").read_text())
    assert card["version"] == "0.4.0"

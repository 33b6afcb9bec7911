"""`roadwork versions` says which MCC is which, and a value that is not there shows as a dash, never as `None`."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from sqlalchemy import Engine

from roadwork.cli.output import NO_VALUE
from roadwork.dashboard.formatting import NO_VALUE as DASHBOARD_NO_VALUE
from roadwork.db import repo
from roadwork.db.engine import write_session
from tests.conftest import ROOT


@pytest.fixture
def two_versions(home: Path, engine: Engine) -> Path:
    """0.1.0: trained (val MCC 0.71), evaluated on its validation split (0.69) and on a replay (0.42);
    0.2.0: registered without any MCC and never evaluated, and without a data fingerprint."""
    with write_session(engine) as s:
        first = repo.create_version(s, name="m", version="0.1.0", artifact_sha256="a" * 64, artifact_path="/x",
                                    config={}, metrics={"val_mcc": 0.71}, parent_id=None,
                                    data_fingerprint="f" * 64, code_revision=None, hard_negative_set_id=None,
                                    created_by="t")
        repo.create_version(s, name="m", version="0.2.0", artifact_sha256="b" * 64, artifact_path="/y", config={},
                            metrics={}, parent_id=None, data_fingerprint=None, code_revision=None,
                            hard_negative_set_id=None, created_by="t")
        repo.add_evaluation(s, version_id=first.id, dataset="validation:f", n=120, mcc=0.69, accuracy=0.8,
                            metrics={}, kind="validation")
        repo.add_evaluation(s, version_id=first.id, dataset="replay:f", n=500, mcc=0.42, accuracy=0.7,
                            metrics={}, kind="replay")
    return home


def cli(home: Path, *args: str) -> str:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ROADWORK_")}
    env |= {"ROADWORK_HOME": str(home), "COLUMNS": "200"}  # wide enough that no cell wraps
    done = subprocess.run([sys.executable, "-m", "roadwork.cli", *args], env=env, cwd=ROOT,
                          capture_output=True, text=True, timeout=300, check=False)
    assert done.returncode == 0, done.stderr
    return done.stdout


def versions(home: Path, *args: str) -> str:
    return cli(home, "versions", *args)


def test_json_names_each_mcc_by_what_it_measured(two_versions: Path) -> None:
    import json

    rows = {r["version"]: r for r in json.loads(versions(two_versions, "--json"))}
    assert {k: rows["0.1.0"][k] for k in ("train_val_mcc", "validation_mcc", "validation_n", "replay_mcc",
                                            "replay_n")} == {"train_val_mcc": 0.71, "validation_mcc": 0.69,
                                                             "validation_n": 120, "replay_mcc": 0.42,
                                                             "replay_n": 500}
    assert {k: rows["0.2.0"][k] for k in ("train_val_mcc", "validation_mcc", "replay_mcc")} == {
        "train_val_mcc": None, "validation_mcc": None, "replay_mcc": None}


def test_table_has_one_labelled_column_per_mcc_and_dashes_for_missing_values(two_versions: Path) -> None:
    shown = versions(two_versions)
    header = next(line for line in shown.splitlines() if "version" in line and "MCC" in line)
    cells = [c.strip() for c in header.strip("┃│ ").split("┃")]
    assert [c for c in cells if "MCC" in c] == ["train val MCC", "eval val MCC", "replay MCC"]
    first = next(line for line in shown.splitlines() if "0.1.0" in line)
    assert [c.strip() for c in first.strip("│ ").split("│")][4:7] == ["0.710", "0.690 (n=120)", "0.420 (n=500)"]
    second = next(line for line in shown.splitlines() if "0.2.0" in line)
    assert [c.strip() for c in second.strip("│ ").split("│")][4:] == [NO_VALUE] * 5  # 3 MCCs, parent, data
    assert "None" not in shown and "0.000" not in shown


def test_settings_show_an_unset_value_as_a_dash(home: Path) -> None:
    shown = cli(home, "settings", "show")
    hotkey = next(line for line in shown.splitlines() if "│ hotkey " in line)
    assert [c.strip() for c in hotkey.strip("│ ").split("│")][1] == NO_VALUE
    assert "null" not in shown and "None" not in shown


def test_cli_and_dashboard_show_a_missing_value_the_same_way() -> None:
    assert NO_VALUE == DASHBOARD_NO_VALUE == "—"

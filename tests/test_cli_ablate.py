"""`roadwork ablate` and `roadwork ablations` as a user runs them: real processes on a real home with the tiny
preset, and the printed tables of stored studies (in process, on studies written by hand)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from roadwork.cli.app import app
from roadwork.db.repo import ablations as store
from roadwork.db.engine import make_engine, read_session, write_session
from roadwork.db.repo import NotFoundError
from roadwork.trainer.config import COMPONENTS
from tests.helpers import as_json, roadwork


def test_ablate_stores_a_table_that_ablations_shows(tmp_path: Path, synth_data: Path) -> None:
    home = tmp_path / "home"
    printed = roadwork(home, "ablate", "--config", "configs/tiny.yaml", "--components", "gps_sampling,augmentation",
                       "--seeds", "0,1", "--epochs", "1", "--data", str(synth_data)).stdout
    assert "ablation study 1: tiny, seeds 0, 1, finished" in printed

    (listed,) = as_json(roadwork(home, "ablations", "--json"))
    assert (listed["status"], listed["seeds"], listed["components"]) == ("finished", [0, 1], ["gps_sampling", "augmentation"])
    assert listed["config"]["optim"]["epochs"] == 1 and listed["config"]["data"]["path"] == str(synth_data.resolve())

    study = as_json(roadwork(home, "ablations", "--show", str(listed["id"]), "--json"))
    assert study == listed
    base, gps, aug = study["rows"]
    # The tiny preset neither augments nor samples by GPS: both variants turn them on.
    assert [(r["component"], r["direction"]) for r in study["rows"]] == [
        ("base", "base"), ("gps_sampling", "on"), ("augmentation", "on")]
    for row in (gps, aug):
        assert row["delta"] == pytest.approx(float(np.mean(np.subtract(row["mcc"], base["mcc"]))), abs=1e-12)
        assert row["ci_low"] <= row["delta"] <= row["ci_high"]
    # What `ablate` printed are the stored numbers.
    for row in study["rows"]:
        assert " ".join(f"{v:+.3f}" for v in row["mcc"]) in printed
    assert f"{aug['delta']:+.3f}  {aug['ci_low']:+.3f}..{aug['ci_high']:+.3f}" in printed
    assert not any((home / "temp" / "ablation").glob("*"))  # checkpoints were scratch


def test_unknown_component_is_refused_before_anything_trains(tmp_path: Path, synth_data: Path) -> None:
    home = tmp_path / "home"
    bad = roadwork(home, "ablate", "--config", "configs/tiny.yaml", "--components", "gps_sampling,moe_layers",
                   "--data", str(synth_data), check=False)
    assert bad.returncode == 2 and "Traceback" not in bad.stderr
    assert "unknown component 'moe_layers'" in bad.stderr
    known = bad.stderr.split("known:")[1].replace(",", " ").split()
    assert sorted(known) == sorted(COMPONENTS)
    engine = make_engine(f"sqlite:///{home / 'roadwork.db'}")
    with read_session(engine) as session:
        assert store.list_studies(session) == []
    engine.dispose()


def _stored_studies(engine) -> None:
    with write_session(engine) as session:
        one = store.create_study(session, config_name="tiny", config={"optim": {"epochs": 3}}, seeds=[4],
                                 components=["gafm", "pyramid"], actor="tester")
        store.set_data_fingerprint(session, one.id, "ab" * 32)
        store.add_row(session, one.id, component="base", direction="base", mcc=[0.5], mean_mcc=0.5, delta=None,
                      ci_low=None, ci_high=None, seconds=2.0)
        store.add_row(session, one.id, component="gafm", direction="off", mcc=[0.375], mean_mcc=0.375, delta=-0.125,
                      ci_low=None, ci_high=None, seconds=3.0)
        store.finish_study(session, one.id, "failed", error="RuntimeError: out of memory")
        store.create_study(session, config_name="competition", config={"optim": {"epochs": 30}}, seeds=[0, 1],
                           components=["metadata"], actor="tester")


def test_ablations_lists_and_shows_stored_studies(engine) -> None:
    _stored_studies(engine)
    runner = CliRunner()
    listing = runner.invoke(app, ["ablations"])
    assert listing.exit_code == 0
    lines = [line.split() for line in listing.stdout.splitlines()]
    assert ["2"] == [w[0] for w in lines if "competition" in w] and ["1"] == [w[0] for w in lines if "tiny" in w]
    assert any(w[-1] == "running" for w in lines if "competition" in w)

    shown = runner.invoke(app, ["ablations", "--show", "1"])
    assert shown.exit_code == 0
    rows = {line.split()[0]: line.split() for line in shown.stdout.splitlines() if line.split()[:1] in (["base"], ["gafm"])}
    assert rows["base"] == ["base", "base", "+0.500", "+0.500"]
    assert rows["gafm"] == ["gafm", "off", "+0.375", "+0.375", "-0.125", "n/a"]  # one seed: no interval
    assert "ablation study 1: tiny, seeds 4, failed" in shown.stdout
    assert "data abababababab, 3 epochs, trained 5 s; not run: pyramid" in shown.stdout
    assert "failed: RuntimeError: out of memory" in shown.stdout

    missing = runner.invoke(app, ["ablations", "--show", "7"])
    assert isinstance(missing.exception, NotFoundError) and "no ablation study 7" in str(missing.exception)

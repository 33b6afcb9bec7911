"""A 2-member ensemble trained, calibrated and registered as one candidate version, then served like any other."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from sqlalchemy import Engine
from typer.testing import CliRunner

from roadwork.cli.app import app
from roadwork.settings import Settings
from roadwork.db import repo
from roadwork.db.engine import read_session
from roadwork.platform.registry.service import checkout, load_version
from roadwork.platform.training import train_ensemble_and_register
from roadwork.trainer.model.checkpoint import read_meta
from roadwork.trainer.model.ensemble import EnsembleClassifier, parse_members
from roadwork.trainer.eval.predict import Predictor
from tests.conftest import ROOT, tiny_config

torch.set_num_threads(1)


def test_ensemble_is_registered_once_with_its_members_in_the_lineage(
    engine: Engine, settings: Settings, synth_data: Path, tmp_path: Path
) -> None:
    members = parse_members("dinov3:0,convnextv2:1")
    version, result = train_ensemble_and_register(
        engine, settings, tiny_config(epochs=1), members, "learned", data_path=synth_data, show_progress=False,
        log=lambda _: None, calibration_replay=40,
    )
    with read_session(engine) as session:
        assert [v.id for v in repo.list_versions(session)] == [version.id]
    lineage = version.config["ensemble"]
    assert lineage["combine"] == "learned" and lineage["weights"] == result.weights
    assert [(m["kind"], m["seed"]) for m in lineage["members"]] == [("dinov3", 0), ("convnextv2", 1)]
    assert [m["val_mcc"] for m in version.metrics["members"]] == [m.val_mcc for m in result.members]
    assert version.metrics["val_mcc"] == result.metrics["val_mcc"] and "calibration_threshold" in version.metrics
    assert version.data_fingerprint == result.data_fingerprint and version.metrics["n_val"] == result.n_val

    # The registered artifact is the ensemble (both members' weights, calibrated), not a member.
    model, config = load_version(settings, version)
    assert isinstance(model, EnsembleClassifier) and len(model.members) == 2 and config.model.kind == "dinov3"
    meta = read_meta(checkout(settings, version))
    assert meta["calibration"]["kind"] == "piecewise_linear" and len(meta["members"]) == 2
    # The calibration decision travels with the version: the saved cut is the fitted one only when applied.
    decision = version.metrics["calibration"]
    assert decision == meta["calibration"]["check"] and decision["held_out"]["n"] == 40
    assert meta["calibration"]["threshold"] == version.metrics["calibration_threshold"]
    assert version.metrics["calibration_threshold"] == (decision["fitted_threshold"] if decision["applied"] else 0.5)
    probs = Predictor.load(checkout(settings, version)).predict([Image.new("RGB", (100, 80), (230, 120, 20))])
    assert probs.shape == (1,) and 0.0 <= probs[0] <= 1.0 and np.isfinite(probs[0])


def test_ensemble_command_names_a_bad_member(home: Path) -> None:
    result = CliRunner().invoke(app, ["ensemble", "--config", "configs/tiny.yaml", "--members", "dinov3:0,resnet:1"])
    assert result.exit_code == 2 and "member 'resnet:1': unknown kind 'resnet'" in result.output
    result = CliRunner().invoke(app, ["ensemble", "--config", "configs/tiny.yaml", "--members", "dinov3:0,dinov2:1",
                                      "--combine", "median"])
    assert result.exit_code == 2 and "mean, learned" in result.output


@pytest.mark.slow
def test_ensemble_command_then_predict(home: Path, synth_data: Path, tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ROADWORK_")} | {"ROADWORK_HOME": str(home)}

    def roadwork(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "roadwork.cli", *args], env=env, cwd=ROOT, capture_output=True,
                              text=True, timeout=300)

    done = roadwork("ensemble", "--config", "configs/tiny.yaml", "--members", "dinov3:0,dinov2:1", "--combine",
                    "mean", "--epochs", "1", "--data", str(synth_data), "--json")
    assert done.returncode == 0, done.stderr
    summary = json.loads(done.stdout)
    assert [m["name"] for m in summary["members"]] == ["dinov3:0", "dinov2:1"]
    assert [m["weight"] for m in summary["members"]] == [0.5, 0.5] and summary["version"]["version"] == "0.1.0"
    image = tmp_path / "road.png"
    Image.new("RGB", (90, 90), (230, 120, 20)).save(image)
    scored = roadwork("predict", summary["version"]["version"], str(image))
    assert scored.returncode == 0, scored.stderr
    assert 0.0 <= float(scored.stdout) <= 1.0

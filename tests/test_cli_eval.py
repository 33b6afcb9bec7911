"""The evaluation commands as a user runs them: challenge render, score, evaluate --replay."""

from __future__ import annotations

import json
from pathlib import Path

from tests.helpers import as_json, jpeg_bytes, roadwork


def test_challenge_render_from_seed_and_from_logged_params(tmp_path: Path) -> None:
    home = tmp_path / "home"
    image = tmp_path / "scene.jpg"
    image.write_bytes(jpeg_bytes())
    first = as_json(roadwork(home, "challenge", "render", str(image), "--out", str(tmp_path / "a.jpg"),
                             "--seed", "11", "--json"))
    params = first["params"]
    assert 0 <= params["level"] <= 3
    (tmp_path / "params.json").write_text(json.dumps(params))
    roadwork(home, "challenge", "render", str(image), "--out", str(tmp_path / "b.jpg"),
             "--params", f"@{tmp_path / 'params.json'}")
    assert (tmp_path / "a.jpg").read_bytes() == (tmp_path / "b.jpg").read_bytes()

    bad = roadwork(home, "challenge", "render", str(image), "--out", str(tmp_path / "c.jpg"),
                   "--params", json.dumps(params | {"level": 7}), check=False)
    assert bad.returncode == 2 and "level" in bad.stderr and not (tmp_path / "c.jpg").exists()


def test_score_a_prediction_stream(tmp_path: Path) -> None:
    csv = tmp_path / "p.csv"
    csv.write_text("label,prediction\n" + "".join(f"{i % 2},{0.9 if i % 2 else 0.1}\n" for i in range(30)))
    result = as_json(roadwork(tmp_path / "home", "score", str(csv), "--json"))
    assert result["mcc"] == 1.0 and result["accuracy"] == 1.0
    # Step 1 has one class in the window (MCC 0, accuracy 1: reward 0.5^3); every later step is perfect.
    expected = 0.05 * 0.125
    for _ in range(29):
        expected = 0.05 * 1.0 + 0.95 * expected
    assert abs(result["final_score"] - expected) < 1e-12
    assert result["expected"]["final_score"]["ci_low"] <= result["expected"]["final_score"]["mean"]
    csv.write_text("label,prediction\n1,0.3\n0,lots\n")
    bad = roadwork(tmp_path / "home", "score", str(csv), check=False)
    assert bad.returncode == 2 and "line 3" in bad.stderr


def test_evaluate_on_a_replay(tmp_path: Path) -> None:
    home = tmp_path / "home"
    roadwork(home, "demo", "--n", "120", "--no-queue", "--json")
    result = as_json(roadwork(home, "evaluate", "0.1.0", "--replay", "40", "--seed", "2", "--json"))
    evaluation = result["evaluation"]
    assert evaluation["kind"] == "replay" and evaluation["n"] == 40
    assert {"before_calibration", "calibration", "sweep", "validator_score", "expected_reward"} <= set(
        evaluation["metrics"])
    assert {c["condition"] for c in result["conditions"]} >= {"level", "JPEG", "GB"}
    text = roadwork(home, "evaluate", "0.1.0", "--replay", "20").stdout
    assert "before calibration" in text and "expected final score" in text

"""Bad input on the command line: exit status 2, one line naming the problem, no traceback, nothing stored lost.

Each case runs the real command in a fresh process against a real home (tests.helpers.roadwork)."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
from PIL import Image

from tests.helpers import as_json, jpeg_bytes, roadwork


def refused(done: subprocess.CompletedProcess, *words: str) -> str:
    """The one error line of a refused command, after checking the refusal's shape."""
    assert done.returncode == 2, (done.returncode, done.stdout, done.stderr)
    assert "Traceback" not in done.stderr + done.stdout
    lines = done.stderr.splitlines()
    assert len(lines) == 1, done.stderr  # one line: no progress bar, no blank line, no second message
    assert lines[0].startswith("error: ")
    for word in words:
        assert word in lines[0], (word, lines[0])
    return lines[0]


def stored(home: Path) -> tuple[list, list, list]:
    """What the registry holds that a refused command must not change: commands, audit rows, versions."""
    from roadwork.db import repo
    from roadwork.db.engine import make_engine, migrate, read_session

    engine = make_engine(f"sqlite:///{home / 'roadwork.db'}")
    try:
        migrate(engine)  # a command refused before it opened the registry has not created it
        with read_session(engine) as session:
            return repo.list_commands(session), repo.list_audit(session), repo.list_versions(session)
    finally:
        engine.dispose()


def test_a_version_id_too_large_for_the_database_is_not_found(tmp_path: Path) -> None:
    home = tmp_path / "home"
    done = roadwork(home, "deploy", "99999999999999999999999", "--reason", "x", check=False)
    refused(done, "no model version '99999999999999999999999'")
    assert stored(home) == ([], [], [])
    assert not (home / "publish").exists()


@pytest.mark.parametrize("kind", ["non-empty folder", "file"])
def test_export_into_a_folder_with_files_or_onto_a_file_is_refused(tmp_path: Path, kind: str) -> None:
    target = tmp_path / "target"
    if kind == "file":
        target.write_text("keep me")
    else:
        target.mkdir()
        (target / "notes.txt").write_text("keep me")
    done = roadwork(tmp_path / "home", "export", "1", "--out", str(target), check=False)
    refused(done, str(target), "a file" if kind == "file" else "not empty")
    if kind == "file":
        assert target.read_text() == "keep me"
    else:
        assert [p.name for p in target.iterdir()] == ["notes.txt"]
        assert (target / "notes.txt").read_text() == "keep me"


def test_a_predictions_csv_with_an_enormous_line_is_refused_by_line_number(tmp_path: Path) -> None:
    csv = tmp_path / "answers.csv"
    with csv.open("w") as f:
        f.write("label,prediction\n1,0.9\n0," + "9" * 5_000_000 + "\n")
    refused(roadwork(tmp_path / "home", "score", str(csv), check=False), "answers.csv", "line 3", "longer than")


def test_a_predictions_csv_the_csv_reader_cannot_parse_names_the_line(tmp_path: Path) -> None:
    csv = tmp_path / "answers.csv"
    # a quote left open swallows the following lines into one field, past the csv module's field limit
    lines = ["label,prediction", "1,0.9", '0,"0.1'] + ["x" * 60_000] * 4
    csv.write_text("\n".join(lines) + "\n")
    refused(roadwork(tmp_path / "home", "score", str(csv), check=False), "answers.csv", "line ", "field")


def test_score_of_a_missing_file_or_a_folder_is_one_line(tmp_path: Path) -> None:
    refused(roadwork(tmp_path / "home", "score", str(tmp_path / "none.csv"), check=False), "none.csv")
    refused(roadwork(tmp_path / "home", "score", str(tmp_path), check=False), str(tmp_path))


@pytest.mark.parametrize(
    ("args", "listed"),
    [
        (["jobs", "run", "trian"], "jobs for run_now: ab_test, distill, evaluate_champion"),
        (["jobs", "pause", "trian"], "jobs for pause: evaluate_champion, leaderboard, mine, model_age, train"),
        (["jobs", "resume", "trian"], "jobs for resume: evaluate_champion"),
        (["jobs", "schedule", "trian", "--cron", "0 3 * * *"], "jobs for reschedule: evaluate_champion"),
        (["jobs", "cancel", "trian"], "jobs for cancel: ab_test, distill, evaluate_champion"),
        (["jobs", "pause", "pseudo_label"], "does not take pause"),  # on demand: no schedule to pause
    ],
)
def test_an_unknown_job_id_is_refused_before_anything_is_queued(tmp_path: Path, args: list[str], listed: str) -> None:
    home = tmp_path / "home"
    done = roadwork(home, *args, check=False)
    refused(done, repr(args[2]), listed)
    assert done.stdout == ""  # `jobs schedule` previews fire times only for a job that exists
    assert stored(home) == ([], [], [])


def test_evaluate_of_an_unknown_version_draws_no_progress_bar(tmp_path: Path) -> None:
    home = tmp_path / "home"
    done = roadwork(home, "evaluate", "9.9.9", "--replay", "20", check=False)
    refused(done, "no model version '9.9.9'")
    assert done.stdout == ""


def test_a_settings_value_for_the_pixel_limit_is_checked(tmp_path: Path) -> None:
    home = tmp_path / "home"
    home.mkdir()
    (home / "roadwork.yaml").write_text("data:\n  max_image_pixels: 0\n")
    done = roadwork(home, "versions", check=False)
    assert done.returncode == 2 and "data.max_image_pixels" in done.stderr and "Traceback" not in done.stderr


# --- predict: real model, real images ----------------------------------------------------------------------------


@pytest.fixture
def images(tmp_path: Path) -> dict[str, Path]:
    """A plain 224 px JPEG, a 12-megapixel camera-sized JPEG, a 144-megapixel PNG (tiny on disk), a broken file."""
    folder = tmp_path / "images"
    folder.mkdir()
    paths = {name: folder / name for name in ("road.jpg", "camera.jpg", "bomb.png", "broken.jpg")}
    paths["road.jpg"].write_bytes(jpeg_bytes())
    paths["camera.jpg"].write_bytes(jpeg_bytes(size=(4000, 3000)))
    Image.new("1", (12_000, 12_000)).save(paths["bomb.png"])
    paths["broken.jpg"].write_bytes(b"\xff\xd8 not really a JPEG")
    return paths


def test_challenge_render_refuses_an_image_over_the_pixel_limit(tmp_path: Path, images) -> None:
    out = tmp_path / "challenge.jpg"
    done = roadwork(tmp_path / "home", "challenge", "render", str(images["bomb.png"]), "--out", str(out), "--seed", "1",
                    check=False)
    refused(done, "bomb.png", "has 144000000 pixels, over the limit of 100000000 (data.max_image_pixels)")
    assert not out.exists()
    roadwork(tmp_path / "home", "challenge", "render", str(images["camera.jpg"]), "--out", str(out), "--seed", "1")
    assert Image.open(out).size == (224, 224)  # a 12-megapixel photo passes


def test_predict_names_each_image_when_given_several(tiny_checkpoint, tmp_path: Path, images) -> None:
    model = str(tiny_checkpoint.checkpoint_dir)
    home = tmp_path / "home"
    one = roadwork(home, "predict", model, str(images["road.jpg"]))
    several = roadwork(home, "predict", model, str(images["road.jpg"]), str(images["camera.jpg"]))
    rows = [line.split("\t") for line in several.stdout.splitlines()]
    assert [name for name, _ in rows] == [str(images["road.jpg"]), str(images["camera.jpg"])]  # 12 MP passes
    assert all(0.0 <= float(score) <= 1.0 for _, score in rows)
    assert float(one.stdout) == float(rows[0][1])  # one image: the bare probability, as before
    listed = as_json(roadwork(home, "predict", model, str(images["road.jpg"]), str(images["camera.jpg"]), "--json"))
    assert [(r["image"], r["score"], r["error"]) for r in listed] == [
        (name, pytest.approx(float(score), abs=1e-6), None) for name, score in rows]


@pytest.mark.parametrize(
    ("name", "words"),
    [
        ("missing.jpg", ["missing.jpg", "no such file"]),
        ("broken.jpg", ["broken.jpg", "undecodable"]),
        ("bomb.png", ["bomb.png", "has 144000000 pixels, over the limit of 100000000 (data.max_image_pixels)"]),
    ],
)
def test_predict_refuses_a_bad_image_by_name_and_still_scores_the_others(
        tiny_checkpoint, tmp_path: Path, images, name: str, words: list[str]) -> None:
    bad = images.get(name, tmp_path / name)
    done = roadwork(tmp_path / "home", "predict", str(tiny_checkpoint.checkpoint_dir), str(images["road.jpg"]),
                    str(bad), check=False)
    refused(done, *words)
    name_out, score = done.stdout.strip().split("\t")
    assert name_out == str(images["road.jpg"]) and 0.0 <= float(score) <= 1.0
    listed = roadwork(tmp_path / "home", "predict", str(tiny_checkpoint.checkpoint_dir), str(bad), "--json",
                      check=False)
    assert listed.returncode == 2
    [row] = as_json(listed)
    assert row["image"] == str(bad) and row["score"] is None and words[-1] in row["error"]


def test_the_pixel_limit_is_a_setting(tiny_checkpoint, tmp_path: Path, images) -> None:
    home = tmp_path / "home"
    home.mkdir()
    (home / "roadwork.yaml").write_text("data:\n  max_image_pixels: 50000\n")  # below 224 x 224 = 50176
    done = roadwork(home, "predict", str(tiny_checkpoint.checkpoint_dir), str(images["road.jpg"]), check=False)
    refused(done, "road.jpg", "has 50176 pixels, over the limit of 50000 (data.max_image_pixels)")
    assert done.stdout == ""

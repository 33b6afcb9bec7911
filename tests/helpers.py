"""Helpers shared by test modules (test files never import each other; what two of them need lives here)."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

# The tiny teachers that most tests deploy are not distilled, so test homes deploy in the remote-code format (the
# product's default is `stock`, which refuses a version without a student). Tests of the stock format set it.
DEPLOY_FORMAT_VAR = "ROADWORK_DEPLOY__FORMAT"
TEST_DEPLOY_FORMAT = {DEPLOY_FORMAT_VAR: "remote-code"}


def roadwork(home: Path, *args: str, check: bool = True, timeout: float = 600,
             env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    """Run the command line as a user does: a fresh process, `home` as ROADWORK_HOME, no other ROADWORK_ settings
    but those in `env`, and the deploy format: the one this process sets, else the tests' (TEST_DEPLOY_FORMAT)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("ROADWORK_")} | (env or {})
    env["ROADWORK_HOME"] = str(home)
    env.setdefault(DEPLOY_FORMAT_VAR, os.environ.get(DEPLOY_FORMAT_VAR, TEST_DEPLOY_FORMAT[DEPLOY_FORMAT_VAR]))
    done = subprocess.run([sys.executable, "-m", "roadwork.cli", *args], env=env, cwd=ROOT, capture_output=True,
                          text=True, timeout=timeout)
    if check and done.returncode != 0:
        raise AssertionError(f"roadwork {' '.join(args)} exited {done.returncode}:\n{done.stdout}\n{done.stderr}")
    return done


def as_json(done: subprocess.CompletedProcess):  # noqa: ANN201
    return json.loads(done.stdout)


def jpeg_bytes(color: tuple[int, int, int] = (230, 120, 20), size: tuple[int, int] = (224, 224)) -> bytes:
    """A plain JPEG (quality 75) of one colour."""
    from PIL import Image

    buf = io.BytesIO()
    Image.new("RGB", size, color).save(buf, format="JPEG", quality=75)
    return buf.getvalue()


def serve_champion(engine) -> None:  # noqa: ANN001 - a SQLAlchemy Engine (imported lazily, as all roadwork here)
    """Make every publish target serve the champion's release, as a deploy would have left it.

    For seeds that move the alias directly: the dashboard and the CLI reconcile the champion with what is
    published before showing it, and a champion nobody published is (rightly) reported as an alert. The release
    folder is empty: what is compared is which release the `current` link names.
    """
    from roadwork.db import repo
    from roadwork.db.engine import read_session
    from roadwork.platform.registry import publish
    from roadwork.platform.registry.reconcile import release_name
    from roadwork.settings import load_settings

    with read_session(engine) as session:
        champion = repo.alias_holder(session)
    if champion is None:
        return
    for target in load_settings().publish_dirs:
        release = Path(target) / publish.RELEASES / release_name(champion)
        release.mkdir(parents=True, exist_ok=True)
        publish.switch_current(Path(target), release)


def register_student(engine, settings, teacher, folder: Path, *, kind: str = "dinov2", threshold: float = 0.3,
                     seed: int = 0, train_config: dict | None = None):  # (Engine, Settings, Version) -> Version
    """A tiny random student of `teacher` with the calibrated cut `threshold` in its head, registered as the
    distill step registers one: a student folder as the artifact, the teacher as parent, config["student"].
    `train_config`: the teacher's training config, which evaluating the student needs (its data and split)."""
    import torch

    from roadwork.platform.registry.service import register_version
    from roadwork.trainer.student.model import (
        build_student,
        save_student,
        shift_threshold,
    )

    torch.manual_seed(seed)
    model, processor = build_student(kind)
    with torch.no_grad():  # a head that separates images, so that scores spread around the cut
        model.classifier.weight.normal_(0.0, 2.0)
    shift_threshold(model, threshold)
    student = {"kind": kind, "teacher": teacher.label, "teacher_id": teacher.id, "threshold": threshold, "epochs": 1}
    meta = {"teacher": teacher.label, "threshold": threshold}
    save_student(model, processor, folder, meta | ({"train_config": train_config} if train_config else {}))
    return register_version(engine, settings, folder, config={"student": student}, metrics={},
                            data_fingerprint=teacher.data_fingerprint, parent_id=teacher.id, actor="test")


# A small student and one render per image: a whole distillation runs in well under a minute on two cores.
DISTILL_SETTINGS = "distill:\n  image_size: 32\n  render_copies: 1\n  batch_size: 32\n  lr: 0.002\n"


def distillable_teacher(engine, settings, home: Path, checkpoint, synth_data: Path):  # -> Version
    """`checkpoint` (a TrainResult) registered as a version, its data where its config says (the home's synth), the
    home set up for a quick distillation, and one replay evaluation of it (n 40, seed 5)."""
    import shutil

    from roadwork.platform.evaluation.replay import evaluate_replay
    from roadwork.platform.registry.service import register_version

    shutil.copytree(synth_data, settings.datasets_dir / "synth")
    (home / "roadwork.yaml").write_text(DISTILL_SETTINGS)
    version = register_version(engine, settings, checkpoint.checkpoint_dir, config={"data": {}}, metrics={},
                               data_fingerprint=checkpoint.data_fingerprint, parent_id=None)
    evaluate_replay(engine, settings, version.id, n=40, seed=5)
    return version

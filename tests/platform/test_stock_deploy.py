"""`deploy.format: stock`: what a deploy publishes is a plain model repository of a student, or nothing."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from roadwork.db import repo
from roadwork.db.engine import read_session
from roadwork.platform.registry import manifest, publish
from roadwork.platform.registry import service as registry
from roadwork.settings import load_settings
from tests.helpers import DEPLOY_FORMAT_VAR, register_student, roadwork

STOCK_REPO_FILES = {"config.json", "preprocessor_config.json", "model.safetensors", "model_card.json",
                    "roadwork.json"}


@pytest.fixture
def stock(clean_env):
    clean_env.setenv(DEPLOY_FORMAT_VAR, "stock")
    return load_settings()


@pytest.fixture
def teacher(engine, stock, tiny_checkpoint) -> repo.Version:
    return registry.register_version(engine, stock, tiny_checkpoint.checkpoint_dir, config={"name": "tiny"},
                                     metrics=tiny_checkpoint.metrics, data_fingerprint="fp", parent_id=None,
                                     actor="test")


def _current(settings) -> Path:
    return settings.publish_dirs[0] / publish.CURRENT


def test_the_default_format_is_stock(home, clean_env) -> None:
    clean_env.delenv(DEPLOY_FORMAT_VAR)
    assert load_settings().deploy.format == "stock"


def test_deploying_a_teacher_publishes_its_newest_student_as_a_plain_model_repository(
        engine, stock, teacher, tmp_path) -> None:
    older = register_student(engine, stock, teacher, tmp_path / "s1", seed=1)
    newer = register_student(engine, stock, teacher, tmp_path / "s2", kind="vit", seed=2)
    result = registry.deploy(engine, stock, teacher.label, actor="t", reason="stock")
    assert result.version.id == newer.id != older.id and result.requested.id == teacher.id
    with read_session(engine) as session:
        assert repo.alias_holder(session).id == newer.id  # the champion is what is served

    current = _current(stock)
    visible = {p.name for p in current.iterdir() if not p.name.startswith(".")}
    assert visible == STOCK_REPO_FILES  # no model code, no detector plug-in
    config = json.loads((current / "config.json").read_text())
    assert config["model_type"] == "vit" and config["architectures"] == ["ViTForImageClassification"]
    assert config["id2label"] == {"0": "None", "1": "Roadwork"} and "auto_map" not in config
    processor = json.loads((current / "preprocessor_config.json").read_text())
    assert processor["size"] == {"height": 224, "width": 224} and not processor["do_center_crop"]
    assert json.loads((current / "model_card.json").read_text())["version"] == newer.version
    assert set(manifest.read_manifest(current)) == STOCK_REPO_FILES  # listed and verified like any export
    assert manifest.problem(current.resolve()) is None
    assert 0.0 <= result.smoke_score <= 1.0


def test_deploying_a_student_publishes_it_and_says_nothing_about_a_teacher(engine, stock, teacher,
                                                                            tmp_path) -> None:
    student = register_student(engine, stock, teacher, tmp_path / "s")
    result = registry.deploy(engine, stock, student.id, actor="t")
    assert result.version.id == student.id and result.requested is None
    assert (_current(stock) / "model.safetensors").read_bytes() == (tmp_path / "s" / "model.safetensors").read_bytes()


def test_a_teacher_without_a_student_is_refused_and_nothing_moves(engine, stock, teacher, tmp_path) -> None:
    first = register_student(engine, stock, teacher, tmp_path / "s")
    registry.deploy(engine, stock, first.id, actor="t")
    other = registry.register_version(engine, stock, tmp_path / "s", config={"name": "plain"}, metrics={},
                                      data_fingerprint=None, parent_id=None, actor="test")
    serving = _current(stock).resolve()
    with pytest.raises(registry.DeployError) as refused:
        registry.deploy(engine, stock, other.id, actor="t")
    assert str(refused.value) == (f"{other.label} is not in a stock architecture: run `roadwork distill "
                                  f"{other.label}` first, or set deploy.format: remote-code")
    assert _current(stock).resolve() == serving
    with read_session(engine) as session:
        assert repo.alias_holder(session).id == first.id


def test_the_command_line_refuses_a_teacher_without_a_student_with_exit_2(home, stock, teacher) -> None:
    done = roadwork(home, "deploy", teacher.version, check=False)
    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and "not in a stock architecture" in lines[0] and "roadwork distill" in lines[0]
    assert "Traceback" not in done.stdout + done.stderr
    assert not _current(stock).exists()


def test_remote_code_still_publishes_the_version_itself(engine, stock, teacher, tmp_path, clean_env) -> None:
    register_student(engine, stock, teacher, tmp_path / "s")
    clean_env.setenv(DEPLOY_FORMAT_VAR, "remote-code")
    remote = load_settings()
    result = registry.deploy(engine, remote, teacher.id, actor="t")
    assert result.version.id == teacher.id and result.requested is None
    config = json.loads((_current(remote) / "config.json").read_text())
    assert config["model_type"] == "roadwork" and "AutoModelForImageClassification" in config["auto_map"]


def test_a_folder_over_the_size_limit_is_refused_before_publishing(home, engine, stock, teacher,
                                                                   tmp_path) -> None:
    student = register_student(engine, stock, teacher, tmp_path / "s")
    size_mb = sum(p.stat().st_size for p in (tmp_path / "s").iterdir()) / 1e6
    (home / "roadwork.yaml").write_text(f"deploy:\n  max_size_mb: {size_mb / 2}\n")
    done = roadwork(home, "deploy", student.version, check=False)
    assert done.returncode == 2, done.stderr
    assert "MB limit (deploy.max_size_mb): not published" in done.stderr
    assert not _current(stock).exists()
    with read_session(engine) as session:
        assert repo.alias_holder(session) is None


def test_newest_student_is_the_newest_of_that_teacher_only(engine, stock, teacher, tiny_checkpoint,
                                                           tmp_path) -> None:
    other = registry.register_version(engine, stock, tiny_checkpoint.checkpoint_dir, config={}, metrics={},
                                      data_fingerprint=None, parent_id=None, actor="test")
    mine = register_student(engine, stock, teacher, tmp_path / "a", seed=1)
    register_student(engine, stock, other, tmp_path / "b", seed=2)  # newer, but another teacher's
    with read_session(engine) as session:
        assert repo.newest_student(session, teacher.id).id == mine.id
        assert repo.newest_student(session, mine.id) is None  # a student has no student

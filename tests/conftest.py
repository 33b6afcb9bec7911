"""Shared fixtures. Two tiers, as in datasette: bare (a temp home, a migrated empty database copied from a
template) and populated once per session (a small synthetic dataset and a tiny trained checkpoint)."""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

# Before transformers is imported anywhere: no network, and remote code of exported models is cached in a
# throwaway folder instead of the developer's ~/.cache.
os.environ["HF_HUB_OFFLINE"] = "1"
os.environ.setdefault("HF_MODULES_CACHE", tempfile.mkdtemp(prefix="roadwork-hf-modules-"))

import pytest
from sqlalchemy import Engine

from roadwork.settings import Settings, load_settings
from roadwork.db.engine import dispose_engines, make_engine, migrate
from roadwork.trainer.config import TrainConfig
from tests.helpers import TEST_DEPLOY_FORMAT

DB_NAME = "roadwork.db"
ROOT = Path(__file__).resolve().parents[1]


def tiny_config(epochs: int = 3, **optim) -> TrainConfig:  # noqa: ANN003
    """The embedded tiny preset with fewer epochs, for tests."""
    base = TrainConfig()
    return base.model_copy(update={"optim": base.optim.model_copy(update={"epochs": epochs, **optim})})


@pytest.fixture(scope="session")
def template_db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An empty, migrated SQLite file to copy (closed, so that its WAL is checkpointed into the file)."""
    path = tmp_path_factory.mktemp("template") / DB_NAME
    engine = make_engine(f"sqlite:///{path}")
    migrate(engine)
    engine.dispose()
    return path


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    """No ROADWORK_* variable of the developer's shell leaks into a test (the tests' deploy format is set)."""
    for key in list(os.environ):
        if key.startswith("ROADWORK_") or key == "HF_TOKEN":
            monkeypatch.delenv(key)
    for key, value in TEST_DEPLOY_FORMAT.items():
        monkeypatch.setenv(key, value)
    return monkeypatch


@pytest.fixture
def home(tmp_path: Path, template_db: Path, clean_env: pytest.MonkeyPatch) -> Path:
    """`ROADWORK_HOME` set to a temp folder holding a migrated, empty registry."""
    home = tmp_path / "home"
    home.mkdir()
    clean_env.setenv("ROADWORK_HOME", str(home))
    shutil.copyfile(template_db, home / DB_NAME)
    yield home
    dispose_engines()


@pytest.fixture
def settings(home: Path) -> Settings:
    return load_settings()


@pytest.fixture
def engine(settings: Settings) -> Engine:
    engine = make_engine(settings.db_url)
    yield engine
    engine.dispose()


@pytest.fixture(scope="session")
def synth_data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small synthetic dataset (200 rows, a few corrupt) shared by the session."""
    from roadwork.trainer.data.synth import synthesize

    out = tmp_path_factory.mktemp("synth")
    synthesize(out, 200, seed=1, corrupt_fraction=0.02)
    return out


@pytest.fixture(scope="session")
def tiny_checkpoint(synth_data: Path, tmp_path_factory: pytest.TempPathFactory):  # noqa: ANN201
    """A TrainResult of the tiny preset trained briefly on `synth_data`."""
    from roadwork.trainer.loop.train import train

    return train(tiny_config(epochs=2), synth_data, tmp_path_factory.mktemp("ckpt") / "checkpoint",
                 show_progress=False, log=lambda _: None)

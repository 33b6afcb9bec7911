"""Fixtures of the fault tests: a registry with two targets and versions of the session's tiny checkpoint, and a
way to run the real CLI in a separate process (which a test can SIGKILL at a named deploy step)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from roadwork.db import repo
from roadwork.platform.registry import service as registry
from roadwork.settings import Settings, load_settings
from tests.conftest import ROOT

CLI = "import sys; from roadwork.cli.app import main; sys.argv[0] = 'roadwork'; main()"


@pytest.fixture
def two_targets(home: Path, clean_env: pytest.MonkeyPatch) -> Settings:
    """Settings publishing to two local targets, a short lock wait, and the fault hook unset."""
    clean_env.setenv("ROADWORK_PUBLISH__LOCAL_DIRS", f'["{home / "pub-a"}", "{home / "pub-b"}"]')
    clean_env.setenv("ROADWORK_PUBLISH__LOCK_WAIT_S", "60")
    clean_env.delenv("ROADWORK_FAULT_AT", raising=False)
    return load_settings()


def register(engine, settings: Settings, ckpt, n: int = 2) -> list[repo.Version]:  # noqa: ANN001
    """`n` versions of the tiny checkpoint (same content, so they share one blob set and one cache folder)."""
    return [
        registry.register_version(engine, settings, ckpt.checkpoint_dir, config={"name": "tiny"}, metrics=ckpt.metrics,
                                  data_fingerprint=ckpt.data_fingerprint, parent_id=None, actor="test")
        for _ in range(n)
    ]


def child_env(**extra: str) -> dict[str, str]:
    """This process's environment (ROADWORK_HOME and the publish settings included) for a child process."""
    env = dict(os.environ, PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    env.update(extra)
    return env


def run_cli(*args: str, timeout: float = 300, **env: str) -> subprocess.CompletedProcess[str]:
    """`roadwork ARGS...` in a fresh process, as an operator would run it."""
    return subprocess.run([sys.executable, "-c", CLI, *args], env=child_env(**env), capture_output=True, text=True,
                          timeout=timeout, check=False)


def start_cli(*args: str, **env: str) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, "-c", CLI, *args], env=child_env(**env), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)

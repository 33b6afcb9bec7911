"""Fixtures for the dashboard: a temporary home whose SQLite registry is empty or seeded through `repo`.

Migrating is the slow part, so one migrated template database is built per session and copied per test.
Signing in: the `operator` / `viewer` fixtures add a user to the test home's registry, and `sign_in(at, login)`
puts that user's `SignedIn` into an AppTest's session state before its run (the form itself is tested in
`test_auth.py`):

    def test_x(seeded_home, operator):
        at = sign_in(AppTest.from_file(APP), operator).run()
"""

from __future__ import annotations

import datetime as dt
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

import pytest
import streamlit as st
from argon2 import PasswordHasher
from streamlit.testing.v1 import AppTest

from roadwork.clock import utcnow
from roadwork.dashboard import auth
from roadwork.db import models as m
from roadwork.db import repo
from roadwork.db.engine import dispose_engines, make_engine, read_session, write_session
from roadwork.platform import users
from roadwork.settings import load_settings

DB_NAME = "roadwork.db"  # the default `<home>/roadwork.db` of `Settings.db_url`


@dataclass(frozen=True)
class Seeded:
    home: Path
    db_url: str
    version_ids: dict[str, int]  # "0.1.0" -> id
    champion: str
    previous: str


@dataclass(frozen=True)
class Login:
    username: str
    password: str
    role: str


OPERATOR = Login("olivia", "olivia-password-1", "operator")
VIEWER = Login("victor", "victor-password-1", "viewer")


def _clear_streamlit_caches() -> None:
    st.cache_data.clear()
    st.cache_resource.clear()


@pytest.fixture
def empty_home(tmp_path: Path, template_db: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """`ROADWORK_HOME` pointing at a temp home with a migrated, empty registry."""
    for key in list(os.environ):
        if key.startswith("ROADWORK_"):
            monkeypatch.delenv(key)
    monkeypatch.setenv("ROADWORK_HOME", str(tmp_path))
    assert load_settings().db_url == f"sqlite:///{tmp_path.resolve() / DB_NAME}"
    shutil.copyfile(template_db, tmp_path / DB_NAME)
    _clear_streamlit_caches()
    yield tmp_path
    _clear_streamlit_caches()
    dispose_engines()


def _seed(url: str) -> dict[str, int]:
    now = utcnow()
    engine = make_engine(url)
    try:
        with write_session(engine) as s:
            ids: dict[str, int] = {}
            parent = None
            for i, (version, val_mcc) in enumerate([("0.1.0", 0.7), ("0.2.0", 0.8), ("0.3.0", 0.82)]):
                v = repo.create_version(
                    s,
                    name="roadwork-ops",
                    version=version,
                    artifact_sha256=f"{i:064x}",
                    artifact_path=f"/artifacts/{version}",
                    config={"model": {"backbone": "tiny"}, "train": {"epochs": i + 1}},
                    metrics={"val_mcc": val_mcc},
                    parent_id=parent,
                    data_fingerprint=f"fp{i}",
                    code_revision="abc123",
                    created_by="test",
                    created_at=now - dt.timedelta(days=10 - 4 * i),
                )
                ids[version] = parent = v.id
            for version, mcc in [("0.1.0", 0.68), ("0.2.0", 0.78), ("0.3.0", 0.75)]:
                repo.add_evaluation(
                    s,
                    version_id=ids[version],
                    dataset="validation:fp",
                    n=400,
                    mcc=mcc,
                    accuracy=0.9,
                    metrics={},
                    conditions=[
                        repo.ConditionCell("weather", "Rain", 120, mcc - 0.1, 0.85, mcc - 0.2, mcc),
                        repo.ConditionCell("weather", "Clear", 280, mcc + 0.05, 0.93, mcc - 0.02, mcc + 0.1),
                        repo.ConditionCell("level", "3", 100, mcc - 0.3, 0.7),
                    ],
                )
            repo.move_alias(s, alias=repo.CHAMPION, to_version_id=ids["0.1.0"], action="deploy", actor="cli",
                            reason="first deploy")
            repo.move_alias(s, alias=repo.CHAMPION, to_version_id=ids["0.2.0"], action="deploy", actor="scheduler",
                            reason="gate passed")
            repo.record_job_run(s, job_id="train", status="succeeded", trigger="cli",
                                scheduled_at=now - dt.timedelta(hours=3), started_at=now - dt.timedelta(hours=3),
                                finished_at=now - dt.timedelta(hours=2), duration_s=3600.0)
            repo.record_job_run(s, job_id="evaluate", status="failed", scheduled_at=now - dt.timedelta(hours=1),
                                started_at=now - dt.timedelta(hours=1), finished_at=now - dt.timedelta(minutes=59),
                                duration_s=42.5, error="RuntimeError: replay set missing")
            repo.record_job_run(s, job_id="leaderboard", status="missed", scheduled_at=now - dt.timedelta(minutes=30))
        return ids
    finally:
        engine.dispose()


@pytest.fixture
def seeded_home(empty_home: Path) -> Seeded:
    """A temp home whose registry holds 0.1.0, 0.2.0 (champion), 0.3.0, their evaluations and a few runs."""
    url = load_settings().db_url
    return Seeded(home=empty_home, db_url=url, version_ids=_seed(url), champion="0.2.0", previous="0.1.0")


@pytest.fixture
def read_db(empty_home: Path):
    """Open a read session on the test home's registry: `with read_db() as session: ...`."""
    engines = []

    def opener():
        engine = make_engine(load_settings().db_url)
        engines.append(engine)
        return read_session(engine)

    yield opener
    for engine in engines:
        engine.dispose()


# --- users and signing in --------------------------------------------------------------------------------------


@pytest.fixture(autouse=True)
def fast_password_hashing(monkeypatch: pytest.MonkeyPatch) -> None:
    """argon2 with the cheapest parameters: the defaults cost about 0.2 s of CPU per hash or check."""
    monkeypatch.setattr(users, "HASHER", PasswordHasher(time_cost=1, memory_cost=8, parallelism=1))


def add_user(login: Login, *, disabled: bool = False) -> None:
    """Write `login`'s user straight into the test home's registry (no audit event, like the other seeds)."""
    engine = make_engine(load_settings().db_url)
    try:
        with write_session(engine) as s:
            s.add(m.User(username=login.username, password_hash=users.hash_password(login.password),
                         role=login.role, disabled=disabled))
    finally:
        engine.dispose()


def sign_in(at: AppTest, login: Login, lifetime: dt.timedelta = auth.SESSION_LIFETIME) -> AppTest:
    """`at` with `login` signed in (its user must exist: the app checks it against the users table)."""
    at.session_state[auth.SESSION_KEY] = auth.SignedIn(login.username, login.role, utcnow() + lifetime)
    return at


@pytest.fixture
def operator(empty_home: Path) -> Login:
    """An enabled operator in the test home's registry."""
    add_user(OPERATOR)
    return OPERATOR


@pytest.fixture
def viewer(empty_home: Path) -> Login:
    """An enabled viewer in the test home's registry."""
    add_user(VIEWER)
    return VIEWER

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
from markdown_it import MarkdownIt
from streamlit.testing.v1 import AppTest

from roadwork.clock import utcnow
from roadwork.dashboard import auth
from roadwork.db import models as m
from roadwork.db import repo
from roadwork.db.engine import dispose_engines, make_engine, read_session, write_session
from roadwork.platform import users
from roadwork.settings import load_settings
from tests.dashboard.ops_seed import OUR_UID, OpsSeed, seed
from tests.helpers import TEST_DEPLOY_FORMAT, serve_champion

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
    for key, value in TEST_DEPLOY_FORMAT.items():
        monkeypatch.setenv(key, value)
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
    ids = _seed(url)
    engine = make_engine(url)
    try:
        serve_champion(engine)
    finally:
        engine.dispose()
    return Seeded(home=empty_home, db_url=url, version_ids=ids, champion="0.2.0", previous="0.1.0")


@pytest.fixture
def read_db(empty_home: Path):  # noqa: ANN201 - a context-manager factory
    """Open a read session on the test home's registry: `with read_db() as session: ...`."""
    engines = []

    def opener():  # noqa: ANN202
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


# --- the app through AppTest --------------------------------------------------------------------------------------

APP = Path(__file__).resolve().parents[2] / "roadwork" / "dashboard" / "app.py"
TIMEOUT_S = 30


def app() -> AppTest:
    """The whole app (sign-in gate and navigation), not yet run."""
    return AppTest.from_file(str(APP), default_timeout=TIMEOUT_S)


def page_text(at: AppTest) -> str:
    """The page's text elements but warnings, as a reader sees them (markdown rendered), one per line."""
    parts = [e.value for kind in ("title", "subheader", "markdown", "caption", "info", "error", "success")
             for e in at.get(kind)]
    return "\n".join(rendered(str(p)) for p in parts)


MARKDOWN_TEXT_KINDS = ("title", "subheader", "markdown", "caption", "info", "warning", "error", "success")


def _inline_tokens(markdown: str) -> list:  # markdown_it Tokens
    tokens = []
    for block in MarkdownIt("commonmark").parse(markdown):
        tokens += block.children or []
    return tokens


def rendered(markdown: str) -> str:
    """What a reader sees of `markdown`: its text, with emphasis, code marks and escapes gone."""
    return "".join("\n" if t.type in ("softbreak", "hardbreak") else t.content for t in _inline_tokens(markdown)
                   if t.type in ("text", "code_inline", "softbreak", "hardbreak"))


def active_markup(markdown: str) -> list[str]:
    """The links, images and raw HTML that `markdown` would put into the page (none for escaped text)."""
    return [t.type for t in _inline_tokens(markdown) if t.type in ("link_open", "image", "html_inline", "autolink")]


def shown_text(at: AppTest) -> str:
    """Every markdown text element of the page as a reader sees it, one per line."""
    return "\n".join(rendered(str(e.value)) for kind in MARKDOWN_TEXT_KINDS for e in at.get(kind))


# A read-only st.dataframe keeps no key in the element tree, so tables are found by a column they have.
TABLE_COLUMN = {
    "overview_job_runs": "job",
    "models_versions": "training val MCC",
    "models_condition_cells": "condition",
    "deployments_alias_events": "action",
    "deployments_commands": "outcome",
}


def table(at: AppTest, key: str):
    frames = [d.value for d in at.dataframe if TABLE_COLUMN[key] in d.value.columns]
    assert len(frames) == 1, f"expected one table {key!r}, found {len(frames)}"
    return frames[0]


# --- the operations pages' registry (Jobs, A/B tests, Hard negatives, Leaderboard) ---------------------------------

OPS_OPERATOR, OPS_VIEWER = "olga", "vera"


def ops_env(mp: pytest.MonkeyPatch, home: Path) -> None:
    """`home` as the only ROADWORK_ setting but for our UID."""
    for key in list(os.environ):
        if key.startswith("ROADWORK_"):
            mp.delenv(key)
    mp.setenv("ROADWORK_HOME", str(home))
    mp.setenv("ROADWORK_UID", str(OUR_UID))


@pytest.fixture(scope="session")
def ops_seed(tmp_path_factory: pytest.TempPathFactory, template_db: Path) -> OpsSeed:
    """A template home seeded once per session (scheduler registration and pool synthesis are the slow parts)."""
    home = tmp_path_factory.mktemp("ops-template")
    shutil.copyfile(template_db, home / DB_NAME)
    with pytest.MonkeyPatch.context() as mp:
        ops_env(mp, home)
        return seed(home, load_settings(), {OPS_OPERATOR: "operator", OPS_VIEWER: "viewer"})


def use_home(tmp_path: Path, db: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A copy of the registry `db` in `tmp_path` as the home, with fresh Streamlit caches."""
    ops_env(monkeypatch, tmp_path)
    shutil.copyfile(db, tmp_path / DB_NAME)
    engine = make_engine(load_settings().db_url)
    try:
        serve_champion(engine)  # the seeds move the alias directly; publish it as a deploy would have
    finally:
        engine.dispose()
    st.cache_data.clear()
    st.cache_resource.clear()
    return tmp_path


@pytest.fixture
def ops_home(tmp_path: Path, ops_seed: OpsSeed, monkeypatch: pytest.MonkeyPatch) -> OpsSeed:
    """A fresh copy of the seeded registry as `ROADWORK_HOME` (our UID set), with an operator and a viewer."""
    use_home(tmp_path, ops_seed.home / DB_NAME, monkeypatch)
    yield ops_seed
    st.cache_data.clear()
    st.cache_resource.clear()
    dispose_engines()

"""A write that meets a transient "database is locked" is tried again (logged), not lost."""

from __future__ import annotations

import logging
import sqlite3
from pathlib import Path

import pytest
from sqlalchemy import text

from roadwork.db.engine import is_locked_error, make_engine, migrate, retry_when_locked


@pytest.fixture
def db(tmp_path: Path) -> Path:
    path = tmp_path / "r.db"
    migrate(make_engine(f"sqlite:///{path}"))
    return path


def impatient_write(path: Path) -> None:
    """One write transaction that does not wait for the lock (timeout 0): fails at once while it is held."""
    conn = sqlite3.connect(path, timeout=0, isolation_level=None)
    try:
        conn.execute("BEGIN IMMEDIATE")
        conn.execute("INSERT INTO audit_events (actor, action, reason, created_at) VALUES ('t', 'beat', '', "
                     "'2026-01-01 00:00:00')")
        conn.execute("COMMIT")
    finally:
        conn.close()


def test_a_write_is_retried_until_the_lock_is_free(db: Path, caplog: pytest.LogCaptureFixture) -> None:
    holder = sqlite3.connect(db, isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")  # another writer holds the lock ...
    calls = []

    def write() -> str:
        calls.append(1)
        if len(calls) == 3:
            holder.execute("COMMIT")  # ... until the third try
        impatient_write(db)
        return "written"

    with caplog.at_level(logging.WARNING, logger="roadwork.db.engine"):
        assert retry_when_locked(write, what="test beat", first_delay_s=0.01) == "written"
    assert len(calls) == 3
    assert [r.getMessage() for r in caplog.records] == [
        "test beat: the database is locked (attempt 1 of 4); trying again in 0.0 s",
        "test beat: the database is locked (attempt 2 of 4); trying again in 0.0 s",
    ]
    engine = make_engine(f"sqlite:///{db}")
    with engine.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM audit_events WHERE action = 'beat'")).scalar() == 1
    holder.close()


def test_the_last_attempts_error_and_other_errors_are_raised(db: Path) -> None:
    holder = sqlite3.connect(db, isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")
    calls = []

    def write() -> None:
        calls.append(1)
        impatient_write(db)

    with pytest.raises(sqlite3.OperationalError, match="database is locked") as info:
        retry_when_locked(write, what="test beat", attempts=3, first_delay_s=0.001)
    assert len(calls) == 3 and is_locked_error(info.value)
    holder.execute("ROLLBACK")
    holder.close()

    calls.clear()

    def broken() -> None:
        calls.append(1)
        raise sqlite3.OperationalError("no such table: nowhere")

    with pytest.raises(sqlite3.OperationalError, match="no such table"):
        retry_when_locked(broken, what="test beat", first_delay_s=0.001)
    assert len(calls) == 1  # not a lock: not retried

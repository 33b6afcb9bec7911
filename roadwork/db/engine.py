"""Engines, sessions and migrations. SQLite gets WAL, foreign keys and a busy timeout on every connection."""

from __future__ import annotations

import ast
import contextlib
import logging
import os
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TypeVar

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError, OperationalError
from sqlalchemy.orm import Session, sessionmaker

MIGRATIONS_DIR = Path(__file__).with_name("migrations")
BUSY_TIMEOUT_MS = 30_000
MIGRATION_LOCK_ID = 72_0001  # arbitrary constant key of the PostgreSQL advisory lock held while migrating

log = logging.getLogger(__name__)
T = TypeVar("T")

_engines: dict[str, Engine] = {}
_engines_lock = threading.Lock()


def _sqlite_pragmas(dbapi_connection, _record) -> None:  # noqa: ANN001 - DBAPI connection
    # pysqlite's own transaction handling is switched off so that BEGIN is emitted by us (below): writers
    # take the lock at BEGIN IMMEDIATE instead of failing halfway through a read-then-write transaction.
    dbapi_connection.isolation_level = None
    cursor = dbapi_connection.cursor()
    # busy_timeout first: switching a new database file to WAL takes a lock, and two processes opening the same
    # new file at once (torchrun ranks, scheduler and dashboard) must wait for each other, not fail
    cursor.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.close()


def _sqlite_begin(conn) -> None:  # noqa: ANN001
    conn.exec_driver_sql("BEGIN IMMEDIATE" if conn.info.get("write") else "BEGIN")


def create_private_dir(path: Path) -> None:
    """Create the folder `path` (the home) as 0700 if it does not exist; an existing one keeps its mode."""
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        with contextlib.suppress(FileExistsError):  # another process created it first
            path.mkdir(mode=0o700)


def create_private_file(path: Path) -> None:
    """Create the SQLite file `path` readable by its owner only (0600; it holds password hashes and the audit
    trail), in a folder made 0700 when this creates it. SQLite gives its -wal and -shm files the database's
    mode. An existing file or folder keeps the mode its owner gave it."""
    create_private_dir(path.parent)
    with contextlib.suppress(FileExistsError):
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))


def make_engine(url: str) -> Engine:
    """A new engine for `url`; SQLite files get their directory created and the pragmas applied."""
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        if parsed.database and parsed.database != ":memory:":
            create_private_file(Path(parsed.database))
        engine = create_engine(url, connect_args={"check_same_thread": False, "timeout": BUSY_TIMEOUT_MS / 1000})
        event.listen(engine, "connect", _sqlite_pragmas)
        event.listen(engine, "begin", _sqlite_begin)
        return engine
    return create_engine(url, pool_pre_ping=True)


def get_engine(url: str) -> Engine:
    """The process-wide engine for `url` (created once)."""
    with _engines_lock:
        if url not in _engines:
            _engines[url] = make_engine(url)
        return _engines[url]


def dispose_engines() -> None:
    with _engines_lock:
        for engine in _engines.values():
            engine.dispose()
        _engines.clear()


def session_factory(engine: Engine) -> sessionmaker[Session]:
    return sessionmaker(engine, expire_on_commit=False)


@contextlib.contextmanager
def read_session(engine: Engine) -> Iterator[Session]:
    """A session for reads; nothing is committed."""
    with Session(engine, expire_on_commit=False) as session:
        yield session


@contextlib.contextmanager
def write_session(engine: Engine) -> Iterator[Session]:
    """One short write transaction (BEGIN IMMEDIATE on SQLite), committed on success, rolled back on error."""
    with engine.connect() as conn:
        conn.info["write"] = True
        try:
            with Session(bind=conn, expire_on_commit=False) as session:
                with session.begin():
                    yield session
        finally:
            conn.info.pop("write", None)


def is_locked_error(exc: BaseException) -> bool:
    """Whether `exc` is SQLite's "database is locked" (or "busy"): another writer held the lock too long."""
    if not isinstance(exc, OperationalError | sqlite3.OperationalError):
        return False
    text = str(exc).lower()
    return "database is locked" in text or "database is busy" in text


def retry_when_locked(write: Callable[[], T], *, what: str, attempts: int = 4, first_delay_s: float = 0.5) -> T:
    """`write()`, tried again after a transient "database is locked" (with the delay doubling each time, each
    retry logged); any other error, or the last attempt's, is raised. `write` must be one whole transaction
    (e.g. a `write_session` block), so that trying it again is safe."""
    delay = first_delay_s
    for attempt in range(1, attempts + 1):
        try:
            return write()
        except (OperationalError, sqlite3.OperationalError) as exc:
            if not is_locked_error(exc) or attempt == attempts:
                raise
            log.warning("%s: the database is locked (attempt %d of %d); trying again in %.1f s", what, attempt,
                        attempts, delay)
            time.sleep(delay)
            delay *= 2
    raise AssertionError("not reached")


def alembic_config(url: str):  # noqa: ANN201 - alembic.config.Config
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    cfg.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return cfg


def script_heads() -> set[str] | None:
    """The head revisions of our migration scripts, read from their `revision` / `down_revision` assignments
    without importing Alembic; None when a script does not spell them as plain literals (then ask Alembic)."""
    revisions: set[str] = set()
    parents: set[str] = set()
    for path in sorted((MIGRATIONS_DIR / "versions").glob("*.py")):
        values = {}
        for node in ast.parse(path.read_text()).body:
            if isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.targets[0], ast.Name):
                name, value = node.targets[0].id, node.value
            elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name) and node.value is not None:
                name, value = node.target.id, node.value
            else:
                continue
            if name in ("revision", "down_revision"):
                try:
                    values[name] = ast.literal_eval(value)
                except ValueError:
                    return None
        if not isinstance(values.get("revision"), str):
            return None
        revisions.add(values["revision"])
        down = values.get("down_revision")
        parents.update(down if isinstance(down, tuple | list) else [down] if down else [])
    return revisions - parents


def at_head(engine: Engine) -> bool:
    """Whether the database's Alembic revision is the single head of the scripts (False when unsure)."""
    heads = script_heads()
    if not heads or len(heads) != 1:
        return False
    try:
        with engine.connect() as conn:
            current = set(conn.exec_driver_sql("SELECT version_num FROM alembic_version").scalars())
    except DBAPIError:  # no alembic_version table: a new database
        return False
    return current == heads


def migrate(engine: Engine, revision: str = "head") -> None:
    """Apply Alembic migrations up to `revision` (idempotent)."""
    if revision == "head" and at_head(engine):
        # Every process start lands here: skipping Alembic when there is nothing to do saves its imports
        # (about 0.5 s of CPU, as much as the rest of a listing command).
        return
    from alembic import command

    cfg = alembic_config(engine.url.render_as_string(hide_password=False))
    with engine.connect() as conn:
        # Processes starting together (scheduler and dashboard on a fresh volume) must not both migrate:
        # SQLite takes the write lock at BEGIN IMMEDIATE, PostgreSQL an advisory lock for the transaction.
        conn.info["write"] = True
        if conn.dialect.name == "postgresql":
            conn.exec_driver_sql(f"SELECT pg_advisory_xact_lock({MIGRATION_LOCK_ID})")
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, revision)
        conn.commit()
        conn.info.pop("write", None)


def current_revision(engine: Engine) -> str | None:
    from alembic.runtime.migration import MigrationContext

    with engine.connect() as conn:
        return MigrationContext.configure(conn).get_current_revision()

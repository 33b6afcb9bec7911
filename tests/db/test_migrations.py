from __future__ import annotations

from pathlib import Path

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import inspect

from roadwork.db.engine import alembic_config, at_head, current_revision, make_engine, migrate, script_heads
from roadwork.db.models import Base

EXPECTED_TABLES = {
    "model_versions", "aliases", "alias_events", "evaluations", "condition_metrics", "job_runs",
    "scheduler_commands", "scheduler_lease", "apscheduler_jobs", "leaderboard_snapshots", "leaderboard_rows",
    "ab_tests", "ab_results", "hard_negative_sets", "hard_negative_items", "users", "audit_events", "ablation_studies", "ablation_rows",
    "deploy_lock", "deploy_intents", "signin_limits",
}


def test_upgrade_from_empty_creates_the_whole_schema(tmp_path: Path) -> None:
    engine = make_engine(f"sqlite:///{tmp_path / 'fresh.db'}")
    assert current_revision(engine) is None
    migrate(engine)
    assert current_revision(engine) == "0006_signin_limits"
    assert EXPECTED_TABLES <= set(inspect(engine).get_table_names())
    migrate(engine)  # idempotent
    assert current_revision(engine) == "0006_signin_limits"


def test_migrations_match_the_models(tmp_path: Path) -> None:
    engine = make_engine(f"sqlite:///{tmp_path / 'cmp.db'}")
    migrate(engine)
    with engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn), Base.metadata)
    assert diff == [], f"models and migrations differ; write a migration: {diff}"


def test_sqlite_connections_use_wal_foreign_keys_and_busy_timeout(tmp_path: Path) -> None:
    engine = make_engine(f"sqlite:///{tmp_path / 'p.db'}")
    with engine.connect() as conn:
        assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
        assert conn.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
        assert conn.exec_driver_sql("PRAGMA busy_timeout").scalar() >= 5000


def test_sqlite_file_in_a_new_directory(tmp_path: Path) -> None:
    engine = make_engine(f"sqlite:///{tmp_path / 'a' / 'b' / 'r.db'}")
    migrate(engine)
    assert (tmp_path / "a" / "b" / "r.db").exists()


def test_heads_read_from_the_scripts_are_alembics() -> None:
    assert script_heads() == set(ScriptDirectory.from_config(alembic_config("sqlite://")).get_heads())


def test_a_database_behind_the_scripts_is_upgraded_and_one_at_head_is_left_alone(tmp_path: Path) -> None:
    engine = make_engine(f"sqlite:///{tmp_path / 'old.db'}")
    assert not at_head(engine)  # no alembic_version table yet
    migrate(engine, "0002")
    assert not at_head(engine) and "ablation_studies" not in inspect(engine).get_table_names()
    migrate(engine)
    assert at_head(engine) and current_revision(engine) == "0006_signin_limits"
    assert "ablation_studies" in inspect(engine).get_table_names()


def test_upgrading_to_0005_keeps_the_lease_and_the_runs(tmp_path: Path) -> None:
    engine = make_engine(f"sqlite:///{tmp_path / 'leased.db'}")
    migrate(engine, "0004_deploy_lock")
    with engine.begin() as conn:
        conn.exec_driver_sql("INSERT INTO scheduler_lease (id, holder, hostname, pid, acquired_at, heartbeat_at) "
                             "VALUES (1, 'h:1:a', 'h', 1, '2026-12-01 00:00:00', '2026-12-01 00:00:00')")
        conn.exec_driver_sql("INSERT INTO job_runs (job_id, status, \"trigger\", created_at) "
                             "VALUES ('train', 'started', 'schedule', '2026-12-01 00:00:00')")
    migrate(engine)
    with engine.connect() as conn:
        assert conn.exec_driver_sql("SELECT holder, token FROM scheduler_lease").one() == ("h:1:a", 0)
        assert conn.exec_driver_sql("SELECT job_id, child_pid FROM job_runs").one() == ("train", None)

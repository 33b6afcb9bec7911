"""Alembic environment: runs on the connection `roadwork.db.engine.migrate` hands over, or on the URL."""

from alembic import context
from sqlalchemy import create_engine

from roadwork.db.models import Base

config = context.config
target_metadata = Base.metadata


def run() -> None:
    connection = config.attributes.get("connection")
    if connection is None:
        engine = create_engine(config.get_main_option("sqlalchemy.url"))
        with engine.connect() as conn:
            _run(conn)
            conn.commit()
        return
    _run(connection)


def _run(connection) -> None:  # noqa: ANN001
    # render_as_batch lets ALTER TABLE migrations work on SQLite (copy-and-move).
    context.configure(connection=connection, target_metadata=target_metadata, render_as_batch=True)
    with context.begin_transaction():
        context.run_migrations()


run()

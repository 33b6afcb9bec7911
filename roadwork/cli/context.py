"""What every command starts from: the settings in force, a migrated engine, and who is acting."""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from sqlalchemy import Engine

    from roadwork.settings import Settings

ACTOR = f"cli:{os.environ.get('USER', 'unknown')}"


def current_settings() -> Settings:
    """The settings named by --settings / $ROADWORK_SETTINGS (the global options pass them on through the env)."""
    from roadwork.settings import load_settings

    return load_settings(os.environ.get("ROADWORK_SETTINGS"))


def migrated_engine(settings: Settings) -> Engine:
    """The registry engine, migrated first: migrations are applied at every process start."""
    from roadwork.db.engine import get_engine, migrate

    engine = get_engine(settings.db_url)
    migrate(engine)
    return engine

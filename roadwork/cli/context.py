"""What every command starts from: the settings in force, a migrated engine, and who is acting."""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from sqlalchemy import Engine

    from roadwork.settings import Settings

def actor() -> str:
    """Who the command line acts as in the audit trail: `local:<operating-system user>`."""
    from roadwork.platform.users import local_actor

    return local_actor()


def current_settings() -> Settings:
    """The settings named by --settings / $ROADWORK_SETTINGS (the global options pass them on through the env)."""
    from roadwork.settings import load_settings

    from roadwork.platform.jobs.catalog import check_overrides

    settings = load_settings(os.environ.get("ROADWORK_SETTINGS"))
    check_overrides(settings.scheduler)  # `scheduler.crons` / `timeouts_s` must name jobs of the catalog
    # The trainer reads no settings: the pixel limit reaches its image decoder (in this process, the scheduler's
    # threads and every child process) through this variable, which the settings themselves also read.
    os.environ["ROADWORK_DATA__MAX_IMAGE_PIXELS"] = str(settings.data.max_image_pixels)
    return settings


def migrated_engine(settings: Settings) -> Engine:
    """The registry engine, migrated first: migrations are applied at every process start."""
    from roadwork.db.engine import create_private_dir, get_engine, migrate

    create_private_dir(settings.home)  # 0700 when this creates it: the database, run records and logs live there
    engine = get_engine(settings.db_url)
    migrate(engine)
    return engine

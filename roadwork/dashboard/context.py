"""What every dashboard module shares: the settings, the one migrated engine per database URL, the query cache.

Reads are cached for a few seconds (`st.cache_data(ttl=CACHE_TTL_S)`), keyed by the database URL, so that a
command the scheduler has just applied shows up on the next rerun, and a test that points `ROADWORK_HOME`
elsewhere never sees another registry's rows.
"""

from __future__ import annotations

import streamlit as st
from sqlalchemy import Engine

from roadwork.db.engine import get_engine, migrate
from roadwork.settings import Settings, load_settings

CACHE_TTL_S = 5


def settings() -> Settings:
    return load_settings()


def db_url() -> str:
    return load_settings().db_url


@st.cache_resource(show_spinner=False)
def engine_for(url: str) -> Engine:
    """The process-wide engine of `url`, migrated once, when it is first created (every process start)."""
    engine = get_engine(url)
    migrate(engine)
    return engine


def engine() -> Engine:
    """The process-wide, migrated engine of the configured registry."""
    return engine_for(db_url())


def clear_caches() -> None:
    """Forget cached query results (after a write, so that it shows at once)."""
    st.cache_data.clear()

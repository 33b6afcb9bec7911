"""Widgets more than one page draws: tables with local-time columns and the scheduler-commands table.

Every time a page shows is local wall-clock time (`formatting.local`); these tables say so in their format.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import streamlit as st

from roadwork.dashboard.formatting import NO_VALUE
from roadwork.db.repo import Command

SECONDS = "YYYY-MM-DD HH:mm:ss"
MINUTES = "YYYY-MM-DD HH:mm"
COMMAND_TIME_COLUMNS = ("requested", "applied")


def time_columns(names: Iterable[str], fmt: str = SECONDS) -> dict[str, Any]:
    """`column_config` entries that show these columns as local date-times in `fmt`."""
    return {name: st.column_config.DatetimeColumn(name, format=fmt) for name in names}


def table(rows: Sequence[dict[str, Any]], *, key: str, times: Iterable[str] = (), fmt: str = SECONDS,
          column_config: dict[str, Any] | None = None, **options: Any) -> None:
    """A full-width table without index whose `times` columns are local date-times."""
    st.dataframe(rows, hide_index=True, placeholder=NO_VALUE, width="stretch", key=key,
                 column_config={**time_columns(times, fmt), **(column_config or {})}, **options)


def command_rows(commands: Sequence[Command]) -> list[dict[str, Any]]:
    """Commands as table rows (pure)."""
    return [{"#": c.id, "kind": c.kind, "payload": str(c.payload), "status": c.status, "outcome": c.outcome or "",
             "requested by": c.requested_by, "reason": c.reason, "requested": c.created_at, "applied": c.applied_at}
            for c in commands]


def any_pending(commands: Sequence[Command]) -> bool:
    """Whether the scheduler has yet to apply one of these commands (a page then refreshes their table)."""
    return any(c.status in ("pending", "applying") for c in commands)


def commands_table(commands: Sequence[Command], *, key: str) -> None:
    """The scheduler commands with status and outcome, newest first (times local)."""
    table(command_rows(commands), key=key, times=COMMAND_TIME_COLUMNS)

"""Time in one place: naive UTC datetimes in storage, a clock that tests can replace."""

from __future__ import annotations

import datetime as dt


def utcnow() -> dt.datetime:
    """Now, in UTC, as a naive datetime (the form every table stores)."""
    return dt.datetime.now(dt.UTC).replace(tzinfo=None)


def as_utc(value: dt.datetime) -> dt.datetime:
    """A stored naive-UTC datetime made timezone-aware (for display and arithmetic with aware times)."""
    return value.replace(tzinfo=dt.UTC) if value.tzinfo is None else value.astimezone(dt.UTC)


def to_local(value: dt.datetime | None) -> dt.datetime | None:
    """A stored UTC time in the machine's local timezone, for people to read."""
    return None if value is None else as_utc(value).astimezone()

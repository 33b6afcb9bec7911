"""Pure formatting helpers of the pages: local time, durations, numbers out of stored JSON."""

from __future__ import annotations

import datetime as dt
from typing import Any

from roadwork.clock import to_local

NO_VALUE = "—"  # what a table or a metric shows for a value that is not there (the CLI's tables show the same)


def local(value: dt.datetime | None) -> dt.datetime | None:
    """A stored UTC time as naive local wall-clock time (one offset-free column type, also across DST)."""
    converted = to_local(value)
    return None if converted is None else converted.replace(tzinfo=None)


def local_tz_name() -> str:
    return dt.datetime.now().astimezone().strftime("%Z (UTC%z)")


def format_duration(seconds: float | None) -> str:
    """A short human duration: `45 s`, `12 min`, `5 h 3 min`, `3 d 4 h`."""
    if seconds is None:
        return NO_VALUE
    seconds = max(0.0, float(seconds))
    if seconds < 60:
        return f"{seconds:.0f} s"
    minutes = int(seconds // 60)
    if minutes < 60:
        return f"{minutes} min"
    hours, minutes = divmod(minutes, 60)
    if hours < 24:
        return f"{hours} h {minutes} min" if minutes else f"{hours} h"
    days, hours = divmod(hours, 24)
    return f"{days} d {hours} h" if hours else f"{days} d"


def number(value: Any) -> float | None:
    """A stored JSON value as a float, None when it is not a number (booleans are not numbers here)."""
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


def training_mcc(metrics: dict[str, Any]) -> float | None:
    """The validation MCC a version's training recorded (`val_mcc`, else `mcc`), None when absent."""
    return number(metrics.get("val_mcc", metrics.get("mcc")))


def first_line(text: str | None) -> str:
    return (text or "").strip().splitlines()[0] if (text or "").strip() else ""


# Every ASCII character that Markdown, GitHub autolinks, Streamlit's directives (`:red[...]`, `:material/x:`,
# emoji shortcodes) or KaTeX (`$...$`) give a meaning to. A backslash before any ASCII punctuation is a literal
# character in CommonMark, so an escaped string renders exactly as written: no link, image, code span, HTML.
_MARKDOWN_SPECIAL = frozenset("\\`*_{}[]()<>#+-.!|~:$&\"'=/@%;?^")


def md(text: object) -> str:
    """`text` (any stored or user-provided value) made safe to put into markdown: it shows as the same plain text.

    Use it for every stored string a page puts into st.markdown, captions, alerts, labels and titles (record ids,
    reasons, user names, tags, paths, error messages). Line breaks become spaces: one value stays one line."""
    value = " ".join(str(text).splitlines())
    return "".join(f"\\{c}" if c in _MARKDOWN_SPECIAL else c for c in value)

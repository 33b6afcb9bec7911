"""What the commands print: JSON for scripts, rich tables for people, one red line for a known error."""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import sys
from pathlib import Path
from typing import Annotated, Any, NoReturn

import typer
from rich.console import Console
from rich.table import Table
from rich.text import Text

from roadwork.clock import to_local

# No markup or emoji codes: what the commands print is mostly stored text (reasons, names, errors), and a
# reason such as "[red]x[/red]" or ":boom:" must print as written. Our own colours go through `labelled`.
out = Console(soft_wrap=True, markup=False, emoji=False)
err = Console(stderr=True, soft_wrap=True, markup=False, emoji=False)
NO_VALUE = "—"  # what a table shows for a value that is not there (the dashboard's tables show the same)
JsonOpt = Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")]


def jsonable(value: Any) -> Any:
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: jsonable(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, dt.datetime):
        return (value if value.tzinfo else value.replace(tzinfo=dt.UTC)).isoformat().replace("+00:00", "Z")
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [jsonable(v) for v in value]
    return value


def emit_json(value: Any) -> None:
    print(json.dumps(jsonable(value), indent=2))


def local(value: dt.datetime | None) -> str:
    return "" if value is None else to_local(value).strftime("%Y-%m-%d %H:%M:%S %Z")


def cell(value: Any) -> str:
    """A table cell: `NO_VALUE` for a value that is not there, never the text `None`."""
    return NO_VALUE if value is None else str(value)


def table(title: str, columns: list[str], rows: list[list[Any]]) -> None:
    t = Table(title=title, title_justify="left")
    for c in columns:
        t.add_column(c)
    for r in rows:
        t.add_row(*(cell(v) for v in r))
    out.print(t)


def labelled(label: str, text: str, style: str = "red") -> Text:
    """`label` in `style`, then `text` exactly as given (never read as markup)."""
    return Text.assemble((label, style), " ", text)


def exit_with_error(exc: BaseException) -> NoReturn:
    """One clear line on stderr and exit status 2: a known error is the user's to fix, a traceback would hide it."""
    err.print(labelled("error:", str(exc) or type(exc).__name__), highlight=False)
    sys.exit(2)

"""What every repository module shares: the not-found error and the ORM-row-to-dataclass mapping."""

from __future__ import annotations

import dataclasses
from typing import Any, TypeVar

T = TypeVar("T")


class NotFoundError(LookupError):
    """A version, alias, command or run that does not exist; the message names it."""


def to_entity(cls: type[T], row: Any) -> T:
    """An ORM row as its frozen dataclass, field by field: ORM rows never leave the repository."""
    return cls(**{f.name: getattr(row, f.name) for f in dataclasses.fields(cls)})

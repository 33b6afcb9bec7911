"""Model versions: immutable rows named `name:X.Y.Z`."""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass
from typing import Any

from sqlalchemy import func, literal, select
from sqlalchemy.orm import Session

from roadwork.db import models as m
from roadwork.db.repo.base import NotFoundError, to_entity

SEMVER = re.compile(r"^(\d+)\.(\d+)\.(\d+)$")
MAX_ID = 2**63 - 1  # the largest integer primary key SQLite (and PostgreSQL bigint) can hold


@dataclass(frozen=True)
class Version:
    id: int
    name: str
    version: str
    artifact_sha256: str
    artifact_path: str
    config: dict[str, Any]
    metrics: dict[str, Any]
    parent_id: int | None
    data_fingerprint: str | None
    code_revision: str | None
    hard_negative_set_id: int | None
    created_by: str
    created_at: dt.datetime

    @property
    def label(self) -> str:
        return f"{self.name}:{self.version}"


def parse_semver(text: str) -> tuple[int, int, int]:
    match = SEMVER.match(text)
    if not match:
        raise ValueError(f"not a semantic version X.Y.Z: {text!r}")
    return int(match[1]), int(match[2]), int(match[3])


def semver_key(version: str) -> tuple[int, int, int]:
    """A sort key of a version string: X.Y.Z as numbers; anything else sorts before every semantic version."""
    try:
        return parse_semver(version)
    except ValueError:
        return (-1, -1, -1)


def next_semver(session: Session, name: str) -> str:
    """The next minor version for `name`: 0.1.0 first, then 0.2.0, ..."""
    versions = session.scalars(select(m.ModelVersion.version).where(m.ModelVersion.name == name)).all()
    if not versions:
        return "0.1.0"
    major, minor, _ = max(parse_semver(v) for v in versions)
    return f"{major}.{minor + 1}.0"


def create_version(session: Session, **fields: Any) -> Version:
    """Insert an immutable version row; `version` must be X.Y.Z and unique for the name."""
    parse_semver(fields["version"])
    row = m.ModelVersion(**fields)
    session.add(row)
    session.flush()
    return to_entity(Version, row)


def get_version(session: Session, ref: str | int) -> Version:
    """A version by id (`7`), semantic version (`0.2.0`) or `name:0.2.0`."""
    query = select(m.ModelVersion)
    text = str(ref).strip()
    if text.isascii() and text.isdigit():
        if int(text) > MAX_ID:  # no row has it, and SQLite cannot even take it as a parameter
            raise NotFoundError(f"no model version {text!r} in the registry (ids go up to {MAX_ID})")
        query = query.where(m.ModelVersion.id == int(text))
    elif ":" in text:
        name, version = text.rsplit(":", 1)
        query = query.where(m.ModelVersion.name == name, m.ModelVersion.version == version)
    else:
        query = query.where(m.ModelVersion.version == text)
    rows = session.scalars(query.order_by(m.ModelVersion.id.desc())).all()
    if not rows:
        raise NotFoundError(f"no model version {text!r} in the registry (see `roadwork versions`)")
    if len(rows) > 1:
        names = ", ".join(f"{r.name}:{r.version}" for r in rows)
        raise NotFoundError(f"version {text!r} is ambiguous ({names}); use name:version or the id")
    return to_entity(Version, rows[0])


def list_versions(session: Session, limit: int | None = None) -> list[Version]:
    query = select(m.ModelVersion).order_by(m.ModelVersion.id.desc()).limit(limit)
    return [to_entity(Version, r) for r in session.scalars(query)]


def count_versions(session: Session) -> int:
    return session.scalar(select(func.count()).select_from(m.ModelVersion))


def is_student(version: Version) -> bool:
    """A version distilled into a stock architecture (its config carries the `student` section)."""
    return isinstance(version.config, dict) and isinstance(version.config.get("student"), dict)


def newest_student(session: Session, teacher_id: int) -> Version | None:
    """The newest student distilled from version `teacher_id` (its config's `student.teacher_id`), or None."""
    teacher = m.ModelVersion.config["student"]["teacher_id"].as_integer()
    query = select(m.ModelVersion).where(teacher == teacher_id).order_by(m.ModelVersion.id.desc()).limit(1)
    row = session.scalars(query).first()
    return None if row is None else to_entity(Version, row)


@dataclass(frozen=True)
class VersionHead:
    """A version without its config and metrics: enough to list or label it."""

    id: int
    name: str
    version: str
    created_at: dt.datetime

    @property
    def label(self) -> str:
        return f"{self.name}:{self.version}"


def list_version_heads(session: Session) -> list[VersionHead]:
    """Every version's id, name, version and creation time, newest id first (no JSON is read)."""
    v = m.ModelVersion
    query = select(v.id, v.name, v.version, v.created_at).order_by(v.id.desc())
    return [VersionHead(*row) for row in session.execute(query)]


def versions_by_id(session: Session, ids: set[int]) -> dict[int, Version]:
    if not ids:
        return {}
    rows = session.scalars(select(m.ModelVersion).where(m.ModelVersion.id.in_(ids)))
    return {r.id: to_entity(Version, r) for r in rows}


@dataclass(frozen=True)
class LineageEntry:
    """A version in a chain of parents, with the hard-negative set it was trained with (name and size)."""

    depth: int  # 0: the version asked for, 1: its parent, ...
    id: int
    name: str
    version: str
    metrics: dict[str, Any]
    data_fingerprint: str | None
    code_revision: str | None
    hard_negative_set_id: int | None
    hard_negative_set_name: str | None
    hard_negative_set_items: int | None
    created_at: dt.datetime

    @property
    def label(self) -> str:
        return f"{self.name}:{self.version}"


def lineage(session: Session, version_id: int, max_depth: int) -> list[LineageEntry]:
    """The version and up to `max_depth` ancestors, the version first, in one recursive query."""
    v, hn = m.ModelVersion, m.HardNegativeSet
    chain = (select(v.id.label("id"), v.parent_id.label("parent_id"), literal(0).label("depth"))
             .where(v.id == version_id).cte("chain", recursive=True))
    chain = chain.union_all(select(v.id, v.parent_id, chain.c.depth + 1)
                            .join(chain, v.id == chain.c.parent_id).where(chain.c.depth < max_depth))
    query = (select(chain.c.depth, v.id, v.name, v.version, v.metrics, v.data_fingerprint, v.code_revision,
                    v.hard_negative_set_id, hn.name, hn.n_items, v.created_at)
             .join(v, v.id == chain.c.id).join(hn, hn.id == v.hard_negative_set_id, isouter=True)
             .order_by(chain.c.depth))
    return [LineageEntry(*row) for row in session.execute(query)]

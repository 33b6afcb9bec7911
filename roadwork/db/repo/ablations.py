"""Repository functions of ablation studies: each takes a session first and returns frozen dataclasses.

The caller owns the session and the transaction (`write_session` for writes); see `platform/ablation.py`.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.orm import Session, selectinload

from roadwork.clock import utcnow
from roadwork.db import models as m
from roadwork.db.repo.base import NotFoundError

STATUSES = ("running", "finished", "failed")
BASE = "base"  # component name (and direction) of the row that holds the base config's results


@dataclass(frozen=True)
class AblationRow:
    id: int
    study_id: int
    component: str  # a key of trainer.config.COMPONENTS, or "base"
    direction: str  # base | on | off
    mcc: list[float]  # validation MCC per seed, in the study's seed order
    mean_mcc: float
    delta: float | None  # mean paired difference to the base; None for the base row
    ci_low: float | None  # 95% t interval of the delta; None for the base and with one seed
    ci_high: float | None
    seconds: float
    created_at: dt.datetime


@dataclass(frozen=True)
class AblationStudy:
    id: int
    config_name: str
    config: dict[str, Any]
    seeds: list[int]
    components: list[str]
    data_fingerprint: str | None
    status: str  # running | finished | failed
    error: str | None
    actor: str
    created_at: dt.datetime
    finished_at: dt.datetime | None
    rows: tuple[AblationRow, ...] = ()  # base first, then the variants in the order they finished

    @property
    def base(self) -> AblationRow | None:
        return next((r for r in self.rows if r.direction == BASE), None)


def _row(row: m.AblationRow) -> AblationRow:
    return AblationRow(id=row.id, study_id=row.study_id, component=row.component, direction=row.direction,
                       mcc=list(row.mcc), mean_mcc=row.mean_mcc, delta=row.delta, ci_low=row.ci_low,
                       ci_high=row.ci_high, seconds=row.seconds, created_at=row.created_at)


def _study(row: m.AblationStudy) -> AblationStudy:
    return AblationStudy(id=row.id, config_name=row.config_name, config=row.config, seeds=list(row.seeds),
                         components=list(row.components), data_fingerprint=row.data_fingerprint, status=row.status,
                         error=row.error, actor=row.actor, created_at=row.created_at, finished_at=row.finished_at,
                         rows=tuple(_row(r) for r in sorted(row.rows, key=lambda r: r.id)))


def create_study(session: Session, *, config_name: str, config: dict[str, Any], seeds: list[int],
                 components: list[str], actor: str) -> AblationStudy:
    """Add a study in status "running", with no rows yet."""
    row = m.AblationStudy(config_name=config_name, config=config, seeds=list(seeds), components=list(components),
                          status="running", actor=actor)
    session.add(row)
    session.flush()
    return _study(row)


def add_row(session: Session, study_id: int, *, component: str, direction: str, mcc: list[float], mean_mcc: float,
            delta: float | None, ci_low: float | None, ci_high: float | None, seconds: float) -> AblationRow:
    """Add the results of the base or of one variant to study `study_id`."""
    if direction not in (BASE, "on", "off"):
        raise ValueError(f"direction must be base, on or off, got {direction!r}")
    row = m.AblationRow(study_id=study_id, component=component, direction=direction, mcc=list(mcc),
                        mean_mcc=mean_mcc, delta=delta, ci_low=ci_low, ci_high=ci_high, seconds=seconds)
    session.add(row)
    session.flush()
    return _row(row)


def set_data_fingerprint(session: Session, study_id: int, fingerprint: str) -> None:
    session.execute(update(m.AblationStudy).where(m.AblationStudy.id == study_id)
                    .values(data_fingerprint=fingerprint))


def finish_study(session: Session, study_id: int, status: str, error: str | None = None) -> None:
    """Close a study as "finished" or "failed" (with the error)."""
    if status not in STATUSES[1:]:
        raise ValueError(f"a study finishes as finished or failed, got {status!r}")
    session.execute(update(m.AblationStudy).where(m.AblationStudy.id == study_id)
                    .values(status=status, error=error, finished_at=utcnow()))


def get_study(session: Session, study_id: int) -> AblationStudy:
    """A study with its rows; raises `NotFoundError`."""
    row = session.scalars(select(m.AblationStudy).where(m.AblationStudy.id == study_id)
                          .options(selectinload(m.AblationStudy.rows))).first()
    if row is None:
        raise NotFoundError(f"no ablation study {study_id} (see `roadwork ablations`)")
    return _study(row)


def list_studies(session: Session, limit: int | None = None) -> list[AblationStudy]:
    """Studies with their rows, newest first."""
    query = (select(m.AblationStudy).options(selectinload(m.AblationStudy.rows))
             .order_by(m.AblationStudy.id.desc()).limit(limit))
    return [_study(r) for r in session.scalars(query)]

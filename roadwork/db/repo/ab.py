"""A/B tests of two versions and their stored results: the readers and the writers.

Here rather than in `platform.ab.service` so that showing a test needs none of its statistics (numpy, scipy):
every number a page shows, the p-value included, was computed when the result was stored.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from roadwork.db import models as m
from roadwork.db.repo.base import NotFoundError
from roadwork.db.repo.versions import Version, versions_by_id

MIN_N = 200  # paired challenges before any verdict: two full MCC windows


@dataclass(frozen=True)
class ABTest:
    id: int
    name: str
    version_a_id: int
    version_b_id: int
    version_a: str  # name:X.Y.Z
    version_b: str
    sample_size: int  # challenges in the replay
    mode: str  # replay | live
    status: str  # pending | running | done | failed
    created_by: str
    created_at: dt.datetime
    verdict: str | None  # of the newest result, None before the first


@dataclass(frozen=True)
class ABResult:
    id: int
    test_id: int
    n: int
    arm_a: dict[str, Any]  # ArmStats as a dict
    arm_b: dict[str, Any]
    diff: dict[str, Any]  # ABOutcome.diff_dict(): difference CI, McNemar, the replay it ran on
    verdict: str
    created_at: dt.datetime


def latest_ab_result(session: Session, test_id: int) -> ABResult | None:
    """The newest stored result of a test, or None before its first run."""
    row = session.scalars(select(m.ABResult).where(m.ABResult.test_id == test_id)
                          .order_by(m.ABResult.id.desc()).limit(1)).first()
    if row is None:
        return None
    return ABResult(row.id, row.test_id, row.n, row.arm_a, row.arm_b, row.diff, row.verdict, row.created_at)


def _test_entity(row: m.ABTest, labels: dict[int, Version], verdict: str | None) -> ABTest:
    def label(vid: int) -> str:
        return labels[vid].label if vid in labels else str(vid)

    return ABTest(row.id, row.name, row.version_a_id, row.version_b_id, label(row.version_a_id),
                  label(row.version_b_id), row.sample_size, row.mode, row.status, row.created_by, row.created_at,
                  verdict)


def list_ab_tests(session: Session, limit: int | None = None) -> list[ABTest]:
    """A/B tests, newest first, with version labels and the newest result's verdict."""
    rows = session.scalars(select(m.ABTest).order_by(m.ABTest.id.desc()).limit(limit)).all()
    labels = versions_by_id(session, {r.version_a_id for r in rows} | {r.version_b_id for r in rows})
    verdicts: dict[int, str] = {}
    if rows:
        results = session.execute(select(m.ABResult.test_id, m.ABResult.verdict)
                                  .where(m.ABResult.test_id.in_([r.id for r in rows])).order_by(m.ABResult.id))
        verdicts = {test_id: verdict for test_id, verdict in results}  # later (newer) rows overwrite
    return [_test_entity(r, labels, verdicts.get(r.id)) for r in rows]


def get_ab_test(session: Session, test_id: int) -> ABTest:
    row = session.get(m.ABTest, test_id)
    if row is None:
        raise NotFoundError(f"no A/B test {test_id}")
    latest = latest_ab_result(session, test_id)
    labels = versions_by_id(session, {row.version_a_id, row.version_b_id})
    return _test_entity(row, labels, latest.verdict if latest else None)


# --- writers -------------------------------------------------------------------------------------------------------


def add_ab_test(session: Session, *, name: str, version_a_id: int, version_b_id: int, sample_size: int, mode: str,
                created_by: str, status: str = "pending") -> int:
    """Insert an A/B test; returns its id (the caller checks the versions and the arguments)."""
    row = m.ABTest(name=name, version_a_id=version_a_id, version_b_id=version_b_id, sample_size=sample_size,
                   mode=mode, status=status, created_by=created_by)
    session.add(row)
    session.flush()
    return row.id


def set_ab_status(session: Session, test_id: int, status: str) -> None:
    session.execute(update(m.ABTest).where(m.ABTest.id == test_id).values(status=status))


def mark_ab_failed_if_running(session: Session, test_id: int) -> bool:
    """"running" -> "failed"; False, and nothing changed, when the test is not running."""
    result = session.execute(update(m.ABTest).where(m.ABTest.id == test_id, m.ABTest.status == "running")
                             .values(status="failed"))
    return result.rowcount == 1


def add_ab_result(session: Session, *, test_id: int, n: int, arm_a: dict[str, Any], arm_b: dict[str, Any],
                  diff: dict[str, Any], verdict: str) -> ABResult:
    row = m.ABResult(test_id=test_id, n=n, arm_a=arm_a, arm_b=arm_b, diff=diff, verdict=verdict)
    session.add(row)
    session.flush()
    return ABResult(row.id, row.test_id, row.n, row.arm_a, row.arm_b, row.diff, row.verdict, row.created_at)

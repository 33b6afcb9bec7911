"""Evaluations of versions and their per-condition cells."""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Select, Subquery, case, func, select
from sqlalchemy.orm import Session

from roadwork.db import models as m
from roadwork.db.repo.base import to_entity

CELL_KINDS = ("replay", "validation")  # condition cells come from the latest replay, else the latest validation


@dataclass(frozen=True)
class ConditionCell:
    condition: str
    value: str
    n: int
    mcc: float
    accuracy: float
    mcc_ci_low: float | None = None
    mcc_ci_high: float | None = None


@dataclass(frozen=True)
class Evaluation:
    id: int
    version_id: int
    dataset: str
    kind: str
    n: int
    mcc: float
    accuracy: float
    metrics: dict[str, Any]
    job_run_id: int | None
    created_at: dt.datetime


def add_evaluation(
    session: Session,
    *,
    version_id: int,
    dataset: str,
    n: int,
    mcc: float,
    accuracy: float,
    metrics: dict[str, Any],
    conditions: list[ConditionCell] = (),
    kind: str = "validation",
    job_run_id: int | None = None,
) -> Evaluation:
    row = m.Evaluation(
        version_id=version_id,
        dataset=dataset,
        kind=kind,
        n=n,
        mcc=mcc,
        accuracy=accuracy,
        metrics=metrics,
        job_run_id=job_run_id,
        conditions=[m.ConditionMetric(**dataclasses.asdict(c)) for c in conditions],
    )
    session.add(row)
    session.flush()
    return to_entity(Evaluation, row)


def _newest_evaluation_ids(kind: str | None) -> Select:
    """A subquery of the newest evaluation id of each version (optionally of one kind)."""
    newest = select(func.max(m.Evaluation.id)).group_by(m.Evaluation.version_id)
    return newest if kind is None else newest.where(m.Evaluation.kind == kind)


def latest_evaluations(session: Session, kind: str | None = None) -> dict[int, Evaluation]:
    """The newest evaluation of each version (optionally of one kind), keyed by version id."""
    rows = session.scalars(select(m.Evaluation).where(m.Evaluation.id.in_(_newest_evaluation_ids(kind))))
    return {r.version_id: to_entity(Evaluation, r) for r in rows}


@dataclass(frozen=True)
class EvaluationSummary:
    """An evaluation's headline numbers, without its metrics JSON (which holds sweeps and can be large)."""

    id: int
    version_id: int
    kind: str
    n: int
    mcc: float
    accuracy: float
    created_at: dt.datetime


def latest_evaluation_summaries(session: Session, kind: str | None = None) -> dict[int, EvaluationSummary]:
    """`latest_evaluations` without the metrics: the newest evaluation of each version, keyed by version id."""
    e = m.Evaluation
    query = select(e.id, e.version_id, e.kind, e.n, e.mcc, e.accuracy, e.created_at).where(
        e.id.in_(_newest_evaluation_ids(kind)))
    return {row.version_id: EvaluationSummary(*row) for row in session.execute(query)}


def latest_evaluation(session: Session, version_id: int, kind: str | None = None) -> Evaluation | None:
    """The newest evaluation of one version (optionally of one kind): `latest_evaluations(...).get(version_id)`."""
    query = select(m.Evaluation).where(m.Evaluation.version_id == version_id)
    if kind is not None:
        query = query.where(m.Evaluation.kind == kind)
    row = session.scalars(query.order_by(m.Evaluation.id.desc()).limit(1)).first()
    return None if row is None else to_entity(Evaluation, row)


def evaluations_of(session: Session, version_id: int) -> list[Evaluation]:
    query = select(m.Evaluation).where(m.Evaluation.version_id == version_id).order_by(m.Evaluation.id.desc())
    return [to_entity(Evaluation, r) for r in session.scalars(query)]


def condition_cells(session: Session, evaluation_id: int) -> list[ConditionCell]:
    query = (
        select(m.ConditionMetric)
        .where(m.ConditionMetric.evaluation_id == evaluation_id)
        .order_by(m.ConditionMetric.condition, m.ConditionMetric.value)
    )
    return [to_entity(ConditionCell, r) for r in session.scalars(query)]


def _preferred_evaluations(version_ids: Iterable[int], kinds: tuple[str, ...] = CELL_KINDS) -> Subquery:
    """Per version, its evaluations of `kinds` numbered by preference (`pick` 1 = the latest of the first kind
    in `kinds` it has): a window over the evaluations table, so any number of versions costs one query."""
    e = m.Evaluation
    preference = case(*((e.kind == k, i) for i, k in enumerate(kinds)), else_=len(kinds))
    pick = func.row_number().over(partition_by=e.version_id, order_by=(preference, e.id.desc()))
    return (select(e.id.label("evaluation_id"), e.version_id.label("version_id"), e.kind.label("kind"),
                   e.mcc.label("mcc"), pick.label("pick"))
            .where(e.version_id.in_(list(version_ids)), e.kind.in_(kinds))
            .subquery("latest"))


def preferred_mcc(session: Session, version_ids: Iterable[int]) -> dict[int, tuple[float, str]]:
    """Each version's (MCC, kind) of its latest replay evaluation, else its latest validation one, in one query."""
    latest = _preferred_evaluations(version_ids)
    return {r.version_id: (r.mcc, r.kind) for r in session.execute(select(latest).where(latest.c.pick == 1))}


@dataclass(frozen=True)
class VersionCells:
    version_id: int
    evaluation_id: int
    kind: str
    cells: tuple[ConditionCell, ...]  # ordered by condition, value


def latest_condition_cells(session: Session, version_ids: Iterable[int]) -> dict[int, VersionCells]:
    """The condition cells of each version's latest replay evaluation (else its latest validation one), keyed by
    version id, in one query; versions with neither evaluation are absent."""
    ids = list(version_ids)
    if not ids:
        return {}
    latest, c = _preferred_evaluations(ids), m.ConditionMetric
    query = (
        select(latest.c.version_id, latest.c.evaluation_id, latest.c.kind, c.condition, c.value, c.n, c.mcc,
               c.accuracy, c.mcc_ci_low, c.mcc_ci_high)
        .join(c, c.evaluation_id == latest.c.evaluation_id, isouter=True)  # an evaluation without cells stays
        .where(latest.c.pick == 1)
        .order_by(latest.c.version_id, c.condition, c.value)
    )
    heads: dict[int, tuple[int, str]] = {}
    cells: dict[int, list[ConditionCell]] = defaultdict(list)
    for row in session.execute(query):
        heads[row.version_id] = (row.evaluation_id, row.kind)
        if row.condition is not None:
            cells[row.version_id].append(ConditionCell(row.condition, row.value, row.n, row.mcc, row.accuracy,
                                                       row.mcc_ci_low, row.mcc_ci_high))
    return {vid: VersionCells(vid, eid, kind, tuple(cells[vid])) for vid, (eid, kind) in heads.items()}


def replay_or_latest_evaluation(session: Session, version_id: int) -> Evaluation | None:
    """A version's latest replay evaluation, else its latest evaluation of any kind; None without any."""
    e = m.Evaluation
    query = (select(e).where(e.version_id == version_id)
             .order_by(case((e.kind == "replay", 0), else_=1), e.id.desc()).limit(1))
    row = session.scalars(query).first()
    return None if row is None else to_entity(Evaluation, row)


def paired_evaluations(session: Session, version_id: int, other_id: int,
                       kind: str = "replay") -> tuple[Evaluation, Evaluation] | None:
    """(the newest `kind` evaluation of `version_id` on a dataset that `other_id` was evaluated on too, the newest
    evaluation of `other_id` on that dataset), or None when they share none. The dataset key of a replay names its
    n, seed and data, so the pair scored the same challenges."""
    e = m.Evaluation
    shared = select(e.dataset).where(e.version_id == other_id, e.kind == kind)
    mine = session.scalars(select(e).where(e.version_id == version_id, e.kind == kind, e.dataset.in_(shared))
                           .order_by(e.id.desc()).limit(1)).first()
    if mine is None:
        return None
    theirs = session.scalars(select(e).where(e.version_id == other_id, e.kind == kind, e.dataset == mine.dataset)
                             .order_by(e.id.desc()).limit(1)).first()
    return to_entity(Evaluation, mine), to_entity(Evaluation, theirs)

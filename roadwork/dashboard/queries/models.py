"""What the Models page reads: every version with its latest evaluation, MCC per condition across versions, and
one version's replay details and lineage, and a student beside its teacher (same replay, size, CPU latency).

Every list is read with one query per table, however long the history (no query per version).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Any

import streamlit as st
from sqlalchemy.orm import Session

from roadwork.dashboard.context import CACHE_TTL_S, db_url, engine_for
from roadwork.dashboard.formatting import local, number, training_mcc
from roadwork.db import repo
from roadwork.db.engine import read_session

HEATMAP_VERSIONS = 30
LINEAGE_DEPTH = 10
CALIBRATION_METRICS = ("mcc", "accuracy", "precision", "recall", "f1", "auc")


# --- every version -----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class VersionRow:
    id: int
    label: str
    version: str
    created_at: dt.datetime  # local
    created_by: str
    training_mcc: float | None
    eval_id: int | None  # latest evaluation of any kind
    eval_kind: str | None
    eval_mcc: float | None
    eval_accuracy: float | None
    eval_n: int | None
    parent: str | None  # parent's version string
    data_fingerprint: str | None
    code_revision: str | None
    is_champion: bool
    config: dict[str, Any] = field(default_factory=dict)


@st.cache_data(ttl=CACHE_TTL_S, show_spinner=False)
def _versions(url: str) -> list[VersionRow]:
    with read_session(engine_for(url)) as session:
        versions = repo.list_versions(session)
        by_id = {v.id: v for v in versions}
        latest = repo.latest_evaluation_summaries(session)  # the metrics JSON (sweeps) is not needed here
        holder = repo.alias_holder(session, repo.CHAMPION)
    rows = []
    for v in versions:
        ev = latest.get(v.id)
        parent = by_id.get(v.parent_id) if v.parent_id is not None else None
        rows.append(
            VersionRow(
                id=v.id,
                label=v.label,
                version=v.version,
                created_at=local(v.created_at),
                created_by=v.created_by,
                training_mcc=training_mcc(v.metrics),
                eval_id=ev.id if ev else None,
                eval_kind=ev.kind if ev else None,
                eval_mcc=ev.mcc if ev else None,
                eval_accuracy=ev.accuracy if ev else None,
                eval_n=ev.n if ev else None,
                parent=parent.version if parent else None,
                data_fingerprint=v.data_fingerprint,
                code_revision=v.code_revision,
                is_champion=holder is not None and holder.id == v.id,
                config=dict(v.config or {}),
            )
        )
    return sorted(rows, key=lambda r: (repo.semver_key(r.version), r.id), reverse=True)


def versions() -> list[VersionRow]:
    """Every version, newest semantic version first, with its latest evaluation and champion flag."""
    return _versions(db_url())


@st.cache_data(ttl=CACHE_TTL_S, show_spinner=False)
def _condition_cells(url: str, evaluation_id: int) -> list[repo.ConditionCell]:
    with read_session(engine_for(url)) as session:
        return repo.condition_cells(session, evaluation_id)


def condition_cells(evaluation_id: int) -> list[repo.ConditionCell]:
    """Per-condition MCC cells of one evaluation, ordered by condition and value."""
    return _condition_cells(db_url(), evaluation_id)


# --- MCC per condition across versions ------------------------------------------------------------------------


@dataclass(frozen=True)
class ConditionMatrix:
    """MCC per (version, condition=value) cell; rows newest first; None where a version lacks the cell."""

    rows: tuple[str, ...]  # version labels, the champion's marked
    version_ids: tuple[int, ...]
    kinds: tuple[str | None, ...]  # which evaluation kind each row's cells come from
    columns: tuple[str, ...]  # "condition=value"
    mcc: tuple[tuple[float | None, ...], ...]
    n: tuple[tuple[int | None, ...], ...]
    ci_low: tuple[tuple[float | None, ...], ...]
    ci_high: tuple[tuple[float | None, ...], ...]
    champion_row: int | None
    total_versions: int


@st.cache_data(ttl=CACHE_TTL_S, show_spinner=False)
def _condition_matrix(url: str, limit: int) -> ConditionMatrix:
    with read_session(engine_for(url)) as session:
        heads = repo.list_version_heads(session)
        champion_id = repo.alias_target(session, repo.CHAMPION)
        ordered = sorted(heads, key=lambda h: (repo.semver_key(h.version), h.id), reverse=True)
        chosen = ordered[:limit]
        if champion_id is not None and champion_id not in {h.id for h in chosen}:
            chosen.append(next(h for h in ordered if h.id == champion_id))  # the reference row is always shown
        by_version = repo.latest_condition_cells(session, [h.id for h in chosen])
    keys = sorted({(c.condition, c.value) for vc in by_version.values() for c in vc.cells})
    one_name = len({h.name for h in chosen}) <= 1
    grids: dict[str, list[tuple]] = {"mcc": [], "n": [], "ci_low": [], "ci_high": []}
    for h in chosen:
        found = {(c.condition, c.value): c for c in (by_version[h.id].cells if h.id in by_version else ())}
        for name, attr in (("mcc", "mcc"), ("n", "n"), ("ci_low", "mcc_ci_low"), ("ci_high", "mcc_ci_high")):
            grids[name].append(tuple(getattr(found[k], attr) if k in found else None for k in keys))
    return ConditionMatrix(
        rows=tuple((h.version if one_name else f"{h.name}:{h.version}") + (" ★" if h.id == champion_id else "")
                   for h in chosen),
        version_ids=tuple(h.id for h in chosen),
        kinds=tuple(by_version[h.id].kind if h.id in by_version else None for h in chosen),
        columns=tuple(f"{c}={val}" for c, val in keys),
        mcc=tuple(grids["mcc"]), n=tuple(grids["n"]), ci_low=tuple(grids["ci_low"]), ci_high=tuple(grids["ci_high"]),
        champion_row=next((i for i, h in enumerate(chosen) if h.id == champion_id), None),
        total_versions=len(heads),
    )


def condition_matrix(limit: int = HEATMAP_VERSIONS) -> ConditionMatrix:
    """MCC per condition cell of the newest `limit` versions (plus the champion), from each one's latest replay
    evaluation (else its latest validation)."""
    return _condition_matrix(db_url(), limit)


# --- one version: replay details and lineage -----------------------------------------------------------------


@dataclass(frozen=True)
class LineageRow:
    depth: int  # 0: the version itself, 1: its parent, ...
    version_id: int
    label: str
    created_at: dt.datetime  # local
    training_mcc: float | None
    mcc: float | None  # latest replay evaluation, else latest validation
    mcc_kind: str | None
    data_fingerprint: str | None
    code_revision: str | None
    hard_negative_set: str | None  # "name (#id, n items)"


@dataclass(frozen=True)
class Sweep:
    thresholds: tuple[float, ...]
    mcc: tuple[float, ...]
    best_threshold: float | None
    best_mcc: float | None


@dataclass(frozen=True)
class CalibrationDecision:
    """Whether training applied its fitted cut, judged on a held-out replay (platform/evaluation/calibration_check)."""

    applied: bool
    reason: str
    rule: str
    fitted_threshold: float | None
    fit_seed: int | None
    fit_mcc_before: float | None
    fit_mcc_after: float | None
    held_out_seed: int | None
    held_out_n: int | None
    held_out_mcc_before: float | None
    held_out_mcc_after: float | None
    held_out_diff: float | None
    held_out_ci_low: float | None
    held_out_ci_high: float | None


@dataclass(frozen=True)
class VersionDetail:
    version_id: int
    evaluation_id: int | None  # the latest replay evaluation, else the latest of any kind
    evaluation_kind: str | None
    dataset: str | None
    evaluated_at: dt.datetime | None  # local
    n: int | None
    mcc: float | None
    mcc_ci_low: float | None
    mcc_ci_high: float | None
    sweep: Sweep | None
    calibration_threshold: float | None
    before_after: tuple[dict[str, Any], ...] = ()  # {"metric", "before", "after"}
    validator_score: dict[str, Any] = field(default_factory=dict)
    expected_reward: dict[str, Any] = field(default_factory=dict)  # {"final_score": {mean, ci_low, ci_high}, ...}
    tta: tuple[dict[str, Any], ...] = ()
    ablation: tuple[dict[str, Any], ...] = ()
    lineage: tuple[LineageRow, ...] = ()
    calibration_decision: CalibrationDecision | None = None  # from the version's own metrics (training)


def _rows(value: Any) -> tuple[dict[str, Any], ...]:
    """A list of table rows (dicts), or `{"variants": [...]}`/`{"rows": [...]}` holding one; anything else: none."""
    if isinstance(value, dict):
        value = value.get("variants", value.get("rows"))
    return tuple(dict(r) for r in value if isinstance(r, dict)) if isinstance(value, list) else ()


def sweep_of(metrics: dict[str, Any]) -> Sweep | None:
    """The stored threshold sweep of a replay evaluation's metrics, or None."""
    sweep = metrics.get("sweep")
    if not isinstance(sweep, dict) or not sweep.get("thresholds"):
        return None
    if len(sweep["thresholds"]) != len(sweep.get("mcc") or ()):
        return None
    return Sweep(tuple(map(float, sweep["thresholds"])), tuple(map(float, sweep["mcc"])),
                 number(sweep.get("best_threshold")), number(sweep.get("best_mcc")))


def before_after(metrics: dict[str, Any]) -> tuple[dict[str, Any], ...]:
    """Rows metric / before calibration / after calibration, when the evaluation stored both."""
    before = metrics.get("before_calibration")
    if not isinstance(before, dict):
        return ()
    return tuple({"metric": k, "before": number(before.get(k)), "after": number(metrics.get(k))}
                 for k in CALIBRATION_METRICS if k in before or k in metrics)


def calibration_decision(metrics: dict[str, Any]) -> CalibrationDecision | None:
    """The calibration decision a version's training stored in its metrics (`calibration`), or None for versions
    calibrated before the held-out check existed (or not at all)."""
    check = metrics.get("calibration")
    if not isinstance(check, dict) or not isinstance(check.get("applied"), bool):
        return None
    fit = check.get("fit") if isinstance(check.get("fit"), dict) else {}
    held = check.get("held_out") if isinstance(check.get("held_out"), dict) else {}

    def whole(value: Any) -> int | None:
        return value if isinstance(value, int) and not isinstance(value, bool) else None

    return CalibrationDecision(
        applied=check["applied"], reason=str(check.get("reason") or ""), rule=str(check.get("rule") or ""),
        fitted_threshold=number(check.get("fitted_threshold")),
        fit_seed=whole(fit.get("seed")), fit_mcc_before=number(fit.get("mcc_before")),
        fit_mcc_after=number(fit.get("mcc_after")),
        held_out_seed=whole(held.get("seed")), held_out_n=whole(held.get("n")),
        held_out_mcc_before=number(held.get("mcc_before")), held_out_mcc_after=number(held.get("mcc_after")),
        held_out_diff=number(held.get("mcc_diff")), held_out_ci_low=number(held.get("ci_low")),
        held_out_ci_high=number(held.get("ci_high")),
    )


def _lineage(session: Session, version_id: int) -> tuple[list[LineageRow], dict[str, Any]]:
    """The version and up to `LINEAGE_DEPTH` ancestors with their preferred MCC, and the version's own metrics."""
    found = repo.lineage(session, version_id, LINEAGE_DEPTH)
    mccs = repo.preferred_mcc(session, [v.id for v in found])
    rows = []
    for v in found:
        hard = (None if v.hard_negative_set_id is None
                else f"{v.hard_negative_set_name} (#{v.hard_negative_set_id}, {v.hard_negative_set_items} items)")
        mcc, kind = mccs.get(v.id, (None, None))
        rows.append(LineageRow(v.depth, v.id, v.label, local(v.created_at), training_mcc(v.metrics or {}), mcc, kind,
                               v.data_fingerprint, v.code_revision, hard))
    own = dict(found[0].metrics or {}) if found else {}
    return rows, own


@st.cache_data(ttl=CACHE_TTL_S, show_spinner=False)
def _version_detail(url: str, version_id: int) -> VersionDetail:
    with read_session(engine_for(url)) as session:
        evaluation = repo.replay_or_latest_evaluation(session, version_id)
        lineage, own_metrics = _lineage(session, version_id)
    metrics = dict(evaluation.metrics or {}) if evaluation else {}
    calibration = metrics.get("calibration")
    return VersionDetail(
        version_id=version_id,
        evaluation_id=evaluation.id if evaluation else None,
        evaluation_kind=evaluation.kind if evaluation else None,
        dataset=evaluation.dataset if evaluation else None,
        evaluated_at=local(evaluation.created_at) if evaluation else None,
        n=evaluation.n if evaluation else None,
        mcc=evaluation.mcc if evaluation else None,
        mcc_ci_low=number(metrics.get("mcc_ci_low")),
        mcc_ci_high=number(metrics.get("mcc_ci_high")),
        sweep=sweep_of(metrics),
        calibration_threshold=number(calibration.get("threshold")) if isinstance(calibration, dict) else None,
        before_after=before_after(metrics),
        validator_score=dict(metrics.get("validator_score") or {}),
        expected_reward=dict(metrics.get("expected_reward") or {}),
        tta=_rows(metrics.get("tta")),
        ablation=_rows(metrics.get("ablation")) or _rows(own_metrics.get("ablation")),
        lineage=tuple(lineage),
        calibration_decision=calibration_decision(own_metrics),
    )


def version_detail(version_id: int) -> VersionDetail:
    """One version's latest replay evaluation (sweep, calibration, before/after, validator score, expected reward,
    TTA, ablation), its training's calibration decision and its lineage up to `LINEAGE_DEPTH` ancestors."""
    return _version_detail(db_url(), int(version_id))


# --- one version: teacher and student side by side -------------------------------------------------------------


@dataclass(frozen=True)
class PairedCell:
    """One condition cell of the shared replay: teacher and student MCC (None where one of them lacks the cell)."""

    condition: str
    value: str
    n: int | None  # challenges in the cell (the same replay: the same for both where both have it)
    teacher_mcc: float | None
    student_mcc: float | None

    @property
    def label(self) -> str:
        return f"{self.condition}={self.value}"

    @property
    def diff(self) -> float | None:
        return None if self.teacher_mcc is None or self.student_mcc is None else self.student_mcc - self.teacher_mcc


@dataclass(frozen=True)
class Footprint:
    """What distillation measured of one model (None for a value not stored)."""

    parameters: int | None
    weights_mb: float | None
    cpu_ms_per_image: float | None


@dataclass(frozen=True)
class TeacherStudent:
    """A student and its teacher compared on the same replay, with the size and latency measured at distill time."""

    selected_is_student: bool
    teacher_id: int | None  # None when the teacher's row is not there
    teacher_label: str | None
    student_id: int
    student_label: str
    student_kind: str | None
    threshold: float | None  # the calibrated cut baked into the student's head
    dataset: str | None  # the shared replay's dataset key; None when they share no replay
    replay_n: int | None
    replay_seed: int | None
    teacher_mcc: float | None
    student_mcc: float | None
    cells: tuple[PairedCell, ...]
    teacher: Footprint
    student: Footprint
    latency_setup: dict[str, Any] = field(default_factory=dict)

    @property
    def mcc_diff(self) -> float | None:
        return None if self.teacher_mcc is None or self.student_mcc is None else self.student_mcc - self.teacher_mcc


def student_info(config: dict[str, Any]) -> dict[str, Any] | None:
    """The `student` section a distilled version's config carries (platform/distillation.py), else None."""
    info = (config or {}).get("student")
    return info if isinstance(info, dict) else None


def _whole(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _footprint(stored: dict[str, Any], role: str) -> Footprint:
    """`role` ("teacher" or "student") of the size and latency a student's metrics["distill"] holds."""
    size = stored.get("size") if isinstance(stored.get("size"), dict) else {}
    own = size.get(role) if isinstance(size.get(role), dict) else {}
    latency = stored.get("latency_ms") if isinstance(stored.get("latency_ms"), dict) else {}
    return Footprint(_whole(own.get("parameters")), number(own.get("weights_mb")), number(latency.get(role)))


def _paired_cells(teacher: list[repo.ConditionCell], student: list[repo.ConditionCell]) -> tuple[PairedCell, ...]:
    by_teacher = {(c.condition, c.value): c for c in teacher}
    by_student = {(c.condition, c.value): c for c in student}
    rows = []
    for key in sorted(by_teacher.keys() | by_student.keys()):
        t, s = by_teacher.get(key), by_student.get(key)
        rows.append(PairedCell(key[0], key[1], (s or t).n, t.mcc if t else None, s.mcc if s else None))
    return tuple(rows)


@st.cache_data(ttl=CACHE_TTL_S, show_spinner=False)
def _teacher_student(url: str, version_id: int) -> TeacherStudent | None:
    with read_session(engine_for(url)) as session:
        selected = repo.get_version(session, version_id)
        info = student_info(selected.config)
        if info is not None:
            student = selected
            teacher_id = _whole(info.get("teacher_id")) or selected.parent_id
            teacher = repo.versions_by_id(session, {teacher_id}).get(teacher_id) if teacher_id is not None else None
        else:
            teacher, student = selected, repo.newest_student(session, selected.id)
            if student is None:
                return None
            info = student_info(student.config) or {}
        pair = repo.paired_evaluations(session, student.id, teacher.id) if teacher is not None else None
        student_cells = repo.condition_cells(session, pair[0].id) if pair else []
        teacher_cells = repo.condition_cells(session, pair[1].id) if pair else []
    stored = (student.metrics or {}).get("distill")
    stored = stored if isinstance(stored, dict) else {}
    replay = (pair[0].metrics or {}).get("replay") if pair else None
    replay = replay if isinstance(replay, dict) else {}
    setup = stored.get("latency_setup")
    return TeacherStudent(
        selected_is_student=selected.id == student.id,
        teacher_id=teacher.id if teacher else None,
        teacher_label=teacher.label if teacher else (str(info.get("teacher")) if info.get("teacher") else None),
        student_id=student.id, student_label=student.label,
        student_kind=str(info["kind"]) if info.get("kind") else None,
        threshold=number(info.get("threshold")),
        dataset=pair[0].dataset if pair else None,
        replay_n=_whole(replay.get("n")), replay_seed=_whole(replay.get("seed")),
        teacher_mcc=pair[1].mcc if pair else None, student_mcc=pair[0].mcc if pair else None,
        cells=_paired_cells(teacher_cells, student_cells),
        teacher=_footprint(stored, "teacher"), student=_footprint(stored, "student"),
        latency_setup=dict(setup) if isinstance(setup, dict) else {},
    )


def teacher_student(version_id: int) -> TeacherStudent | None:
    """For a student, it and its teacher; for a teacher with students, its newest student and it; else None.

    Both on the newest replay they were both evaluated on (the same dataset key: n, seed and data), overall and per
    condition cell, with the parameters, weights MB and CPU latency stored in the student's metrics at distill
    time (no model is loaded here)."""
    return _teacher_student(db_url(), int(version_id))

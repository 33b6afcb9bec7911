"""What the Overview and Models pages read beyond `services`: our standing, the champion's reward-decay countdown,
the next scheduled runs, open alerts and recent failures; MCC per condition across versions, and one version's
replay details and lineage.

Same rules as `services`: short read sessions, frozen dataclasses out, results cached for a few seconds keyed by
the database URL, times as naive local wall-clock datetimes. Every list is read with one query per table, however
long the history (no query per version).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import streamlit as st
from sqlalchemy import Subquery, case, func, literal, select
from sqlalchemy.orm import Session

from roadwork.clock import utcnow
from roadwork.settings import Settings, load_settings
from roadwork.dashboard import services
from roadwork.db import models as m
from roadwork.db import repo
from roadwork.db.engine import read_session
from roadwork.platform.jobs.store import stored_jobs
from roadwork.platform.model_age import champion_age
from roadwork.platform.standings import OWNER_KEY, MinerRow, TrendPoint, derive_standing, history_for, latest_snapshot

CACHE_TTL_S = services.CACHE_TTL_S
TREND_POINTS = 96
ALERT_WINDOW = dt.timedelta(hours=24)
ALERTS_SHOWN = 50
FAILURES_SHOWN = 10
FAILURE_ACTIONS = ("deploy_failed", "rollback_failed", "job_failed")
DUPLICATE_WINDOW_S = 300  # a job_failed audit event this close to a failed run of the same job is the same failure
HEATMAP_VERSIONS = 30
LINEAGE_DEPTH = 10
CELL_KINDS = ("replay", "validation")  # condition cells come from the latest replay, else the latest validation


# --- overview: standings ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class TrendRow:
    when: dt.datetime  # local
    rank: int | None
    incentive: float | None
    emission: float | None


@dataclass(frozen=True)
class Standings:
    """Our place in the latest good snapshot, deltas against the good snapshot before it, and staleness.

    `empty` says why there is nothing (or only part) to show; `stale` is True when the newest poll failed."""

    uid: int | None
    source: str  # of the latest good snapshot; else the configured `leaderboard.source`
    empty: str | None = None
    found: bool = False
    miners: int = 0
    rank: int | None = None
    percentile: float | None = None
    incentive: float | None = None
    emission: float | None = None
    trust: float | None = None
    rank_delta: int | None = None  # current - previous: negative is better
    incentive_delta: float | None = None
    emission_delta: float | None = None
    trust_delta: float | None = None
    taken_at: dt.datetime | None = None  # local, of the latest good snapshot
    stale: bool = False
    stale_at: dt.datetime | None = None  # local, of the failed poll
    stale_error: str | None = None
    trend: tuple[TrendRow, ...] = ()


def _frozen(cls, row):  # noqa: ANN001, ANN202 - an ORM row as repo's frozen dataclass of the same fields
    return cls(**{f.name: getattr(row, f.name) for f in dataclasses.fields(cls)})


def _delta(current: float | None, previous: float | None) -> float | None:
    return None if current is None or previous is None else current - previous


def _no_standings(source: str) -> str:
    if source == "none":
        return "No standings yet: set `leaderboard.source` (and `uid`) in the settings; the leaderboard job polls it."
    return f"No standings yet: the leaderboard job has not polled `{source}` yet."


def standing_trends(session: Session, uids: Iterable[int], n: int = TREND_POINTS) -> dict[int, list[TrendPoint]]:
    """`standings.trend(session, uid, n)` of each uid (oldest first), from one read of the last `n` good snapshots.

    Only the columns a standing needs are read, as tuples: `trend` loads every row of those snapshots as an ORM
    row with its JSON, for each uid again (96 snapshots x 250 miners took about a second per uid)."""
    s, r = m.LeaderboardSnapshot, m.LeaderboardRow
    snaps = session.execute(select(s.id, s.taken_at, s.block).where(s.stale.is_(False))
                            .order_by(s.taken_at.desc(), s.id.desc()).limit(n)).all()
    rows: dict[int, list[MinerRow]] = defaultdict(list)
    if snaps:
        query = (select(r.snapshot_id, r.uid, r.hotkey, r.incentive, r.emission, r.trust, r.validator_permit,
                        r.dividends, r.extra[OWNER_KEY].as_boolean().label("owner"))
                 .where(r.snapshot_id.in_([snap.id for snap in snaps])).order_by(r.snapshot_id, r.uid))
        for row in session.execute(query):
            rows[row.snapshot_id].append(MinerRow(uid=row.uid, hotkey=row.hotkey, incentive=row.incentive,
                                                  emission=row.emission, trust=row.trust,
                                                  validator_permit=row.validator_permit, dividends=row.dividends,
                                                  owner=row.owner))
    out = {}
    for uid in uids:
        at = [(snap, derive_standing(rows.get(snap.id, []), uid)) for snap in reversed(snaps)]
        out[uid] = [TrendPoint(snap.id, snap.taken_at, snap.block, std.incentive, std.emission, std.rank, std.miners)
                    for snap, std in at]
    return out


@st.cache_data(ttl=CACHE_TTL_S, show_spinner=False)
def _standings(url: str, uid: int | None, source: str) -> Standings:
    with read_session(services.engine()) as session:
        newest = latest_snapshot(session, good_only=False)
        if newest is None:
            return Standings(uid, source, empty=_no_standings(source))
        good = newest if not newest.stale else latest_snapshot(session)
        points = standing_trends(session, [uid])[uid] if good is not None and uid is not None else []
        history = history_for(session, uid, limit=2) if len(points) >= 2 else []
    stale = {"stale": newest.stale, "stale_at": services.local(newest.taken_at) if newest.stale else None,
             "stale_error": newest.error if newest.stale else None}
    if good is None:
        return Standings(uid, source, empty="No good snapshot yet: every poll so far failed.", **stale)
    standing = derive_standing(good.rows, uid)
    base = {"miners": standing.miners, "taken_at": services.local(good.taken_at), **stale}
    source = good.source  # what the numbers came from, which may differ from today's setting
    if uid is None:
        return Standings(uid, source, empty=f"Set `uid` in the settings to see our rank among the "
                         f"{standing.miners} miners of the latest snapshot.", **base)
    if not standing.found:
        return Standings(uid, source, empty=f"UID {uid} is not in the latest good snapshot "
                         f"({standing.miners} miners): deregistered, or a wrong `uid`?", **base)
    previous = points[-2] if len(points) >= 2 else None
    # `trend` has no trust: take it from our rows of the same two snapshots.
    trusts = {h.snapshot_id: h.row.trust for h in history}
    previous_trust = trusts.get(previous.snapshot_id) if previous is not None else None
    return Standings(
        uid, source, found=True, rank=standing.rank, percentile=standing.percentile,
        incentive=standing.incentive, emission=standing.emission, trust=standing.trust,
        rank_delta=_delta(standing.rank, previous.rank if previous else None),
        incentive_delta=_delta(standing.incentive, previous.incentive if previous else None),
        emission_delta=_delta(standing.emission, previous.emission if previous else None),
        trust_delta=_delta(standing.trust, previous_trust),
        trend=tuple(TrendRow(services.local(p.taken_at), p.rank, p.incentive, p.emission) for p in points),
        **base,
    )


def settings() -> Settings:
    return load_settings()


def standings() -> Standings:
    """Our UID's rank, incentive, emission and trust with deltas and trend; why not, when there is nothing."""
    s = settings()
    return _standings(s.db_url, s.uid, s.leaderboard.source)


# --- overview: champion countdown ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Countdown:
    version: str  # name:version
    submitted_at: dt.datetime  # local: the champion's latest alias move (a new submission)
    age_days: float
    reward_factor: float
    days_until_decay: float  # negative once the decay has started
    days_until_zero: float
    retrain_due: bool
    full_reward_days: int
    zero_reward_days: int

    @property
    def progress(self) -> float:
        """Share of the way from submission to zero reward, 0..1 (for a progress bar)."""
        return min(1.0, max(0.0, self.age_days / self.zero_reward_days))


@st.cache_data(ttl=CACHE_TTL_S, show_spinner=False)
def _countdown(url: str, window: tuple[int, int, int], _settings: Settings) -> Countdown | None:
    age = champion_age(services.engine(), _settings)
    if age is None:
        return None
    return Countdown(age.version, services.local(age.submitted_at), age.age_days, age.reward_factor,
                     age.days_until_decay, age.days_until_zero, age.retrain_due, window[0], window[1])


def countdown() -> Countdown | None:
    """The champion's age against the reward-decay window (`model_age` settings); None without a champion."""
    s = settings()
    cfg = s.model_age
    return _countdown(s.db_url, (cfg.full_reward_days, cfg.zero_reward_days, cfg.retrain_days_before), s)


# --- overview: next runs, alerts, failures ---------------------------------------------------------------------


@dataclass(frozen=True)
class NextRun:
    job_id: str
    trigger: str
    next_run: dt.datetime | None  # local; None when paused
    in_s: float | None
    paused: bool
    error: str | None


@st.cache_data(ttl=CACHE_TTL_S, show_spinner=False)
def _next_runs(url: str) -> list[NextRun]:
    now = utcnow()
    jobs = stored_jobs(services.engine())
    rows = [NextRun(j["id"], j["trigger"], services.local(j["next_run_time"]),
                    (j["next_run_time"] - now).total_seconds() if j["next_run_time"] else None, j["paused"],
                    j["error"]) for j in jobs]
    # Soonest first; paused jobs (no next run) after the scheduled ones.
    return sorted(rows, key=lambda r: (r.next_run is None, r.next_run or dt.datetime.max, r.job_id))


def next_runs() -> list[NextRun]:
    """Every stored scheduled job with its next run (local time), soonest first, paused ones last."""
    return _next_runs(services.db_url())


@dataclass(frozen=True)
class AlertRow:
    when: dt.datetime  # local
    kind: str
    message: str
    actor: str


@st.cache_data(ttl=CACHE_TTL_S, show_spinner=False)
def _open_alerts(url: str) -> list[AlertRow]:
    since = utcnow() - ALERT_WINDOW
    query = (select(m.AuditEvent).where(m.AuditEvent.action == "alert", m.AuditEvent.created_at >= since)
             .order_by(m.AuditEvent.created_at.desc(), m.AuditEvent.id.desc()).limit(ALERTS_SHOWN))
    with read_session(services.engine()) as session:
        return [AlertRow(services.local(a.created_at), a.target or "", a.reason, a.actor)
                for a in session.scalars(query)]


def open_alerts() -> list[AlertRow]:
    """Audit events with action `alert` of the last 24 h, newest first."""
    return _open_alerts(services.db_url())


@dataclass(frozen=True)
class FailureRow:
    when: dt.datetime  # local
    source: str  # job run | audit
    what: str  # job id or the audit target
    status: str  # failed | missed | deploy_failed | ...
    detail: str  # the first line of the error or reason


def _first_line(text: str | None) -> str:
    return (text or "").strip().splitlines()[0] if (text or "").strip() else ""


def merge_failures(runs: Iterable[repo.JobRun], audits: Iterable[repo.AuditEvent], limit: int) -> list[FailureRow]:
    """Failed/missed runs and failure audit events (UTC in, local out), newest first, at most `limit`.

    A `job_failed` audit event within `DUPLICATE_WINDOW_S` of a failed run of the same job is dropped: the
    scheduler writes both for one failure."""
    runs = list(runs)
    failed_at = defaultdict(list)
    rows = []
    for r in runs:
        when = r.finished_at or r.started_at or r.scheduled_at or r.created_at
        failed_at[r.job_id].append(when)
        rows.append((when, FailureRow(services.local(when), "job run", r.job_id, r.status, _first_line(r.error))))
    for a in audits:
        if a.action == "job_failed" and any(
            abs((a.created_at - t).total_seconds()) <= DUPLICATE_WINDOW_S for t in failed_at.get(a.target or "", [])
        ):
            continue
        rows.append((a.created_at, FailureRow(services.local(a.created_at), "audit", a.target or "", a.action,
                                              _first_line(a.reason))))
    rows.sort(key=lambda pair: pair[0], reverse=True)
    return [row for _, row in rows[:limit]]


@st.cache_data(ttl=CACHE_TTL_S, show_spinner=False)
def _failures(url: str, limit: int) -> list[FailureRow]:
    runs_q = (select(m.JobRun).where(m.JobRun.status.in_(("failed", "missed")))
              .order_by(m.JobRun.id.desc()).limit(limit))
    audit_q = (select(m.AuditEvent).where(m.AuditEvent.action.in_(FAILURE_ACTIONS))
               .order_by(m.AuditEvent.id.desc()).limit(limit))
    with read_session(services.engine()) as session:
        runs = [_frozen(repo.JobRun, r) for r in session.scalars(runs_q)]
        audits = [_frozen(repo.AuditEvent, a) for a in session.scalars(audit_q)]
    return merge_failures(runs, audits, limit)


def failures(limit: int = FAILURES_SHOWN) -> list[FailureRow]:
    """The last failed or missed job runs and failed deploys/rollbacks/jobs from the audit feed, newest first."""
    return _failures(services.db_url(), limit)


# --- models: MCC per condition across versions ---------------------------------------------------------------


def _semver_key(version: str) -> tuple[int, int, int]:
    try:
        return repo.parse_semver(version)
    except ValueError:
        return (-1, -1, -1)


def _latest_of_kinds(version_ids: Iterable[int], kinds: tuple[str, ...] = CELL_KINDS) -> Subquery:
    """Per version, its evaluations of `kinds` numbered by preference (`pick` 1 = the latest of the first kind
    in `kinds` it has): a window over the evaluations table, so any number of versions costs one query."""
    e = m.Evaluation
    preference = case(*((e.kind == k, i) for i, k in enumerate(kinds)), else_=len(kinds))
    pick = func.row_number().over(partition_by=e.version_id, order_by=(preference, e.id.desc()))
    return (select(e.id.label("evaluation_id"), e.version_id.label("version_id"), e.kind.label("kind"),
                   e.mcc.label("mcc"), pick.label("pick"))
            .where(e.version_id.in_(list(version_ids)), e.kind.in_(kinds))
            .subquery("latest"))


@dataclass(frozen=True)
class VersionCells:
    version_id: int
    evaluation_id: int
    kind: str
    cells: tuple[repo.ConditionCell, ...]  # ordered by condition, value


def latest_condition_cells(session: Session, version_ids: Iterable[int]) -> dict[int, VersionCells]:
    """The condition cells of each version's latest replay evaluation (else its latest validation one), keyed by
    version id, in one query; versions with neither evaluation are absent."""
    ids = list(version_ids)
    if not ids:
        return {}
    latest, c = _latest_of_kinds(ids), m.ConditionMetric
    query = (
        select(latest.c.version_id, latest.c.evaluation_id, latest.c.kind, c.condition, c.value, c.n, c.mcc,
               c.accuracy, c.mcc_ci_low, c.mcc_ci_high)
        .join(c, c.evaluation_id == latest.c.evaluation_id, isouter=True)  # an evaluation without cells stays
        .where(latest.c.pick == 1)
        .order_by(latest.c.version_id, c.condition, c.value)
    )
    heads: dict[int, tuple[int, str]] = {}
    cells: dict[int, list[repo.ConditionCell]] = defaultdict(list)
    for row in session.execute(query):
        heads[row.version_id] = (row.evaluation_id, row.kind)
        if row.condition is not None:
            cells[row.version_id].append(repo.ConditionCell(row.condition, row.value, row.n, row.mcc, row.accuracy,
                                                            row.mcc_ci_low, row.mcc_ci_high))
    return {vid: VersionCells(vid, eid, kind, tuple(cells[vid])) for vid, (eid, kind) in heads.items()}


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
    v = m.ModelVersion
    with read_session(services.engine()) as session:
        heads = session.execute(select(v.id, v.name, v.version)).all()
        alias = session.get(m.Alias, repo.CHAMPION)
        champion_id = alias.version_id if alias is not None else None
        ordered = sorted(heads, key=lambda h: (_semver_key(h.version), h.id), reverse=True)
        chosen = ordered[:limit]
        if champion_id is not None and champion_id not in {h.id for h in chosen}:
            chosen.append(next(h for h in ordered if h.id == champion_id))  # the reference row is always shown
        by_version = latest_condition_cells(session, [h.id for h in chosen])
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
    return _condition_matrix(services.db_url(), limit)


# --- models: one version's replay details and lineage ------------------------------------------------------


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


CALIBRATION_METRICS = ("mcc", "accuracy", "precision", "recall", "f1", "auc")


def _number(value: Any) -> float | None:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


def _training_mcc(metrics: dict[str, Any]) -> float | None:
    return _number(metrics.get("val_mcc", metrics.get("mcc")))


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
                 _number(sweep.get("best_threshold")), _number(sweep.get("best_mcc")))


def before_after(metrics: dict[str, Any]) -> tuple[dict[str, Any], ...]:
    """Rows metric / before calibration / after calibration, when the evaluation stored both."""
    before = metrics.get("before_calibration")
    if not isinstance(before, dict):
        return ()
    return tuple({"metric": k, "before": _number(before.get(k)), "after": _number(metrics.get(k))}
                 for k in CALIBRATION_METRICS if k in before or k in metrics)


def _lineage(session: Session, version_id: int) -> tuple[list[LineageRow], dict[str, Any]]:
    """The version and up to `LINEAGE_DEPTH` ancestors (one recursive query), and the version's own metrics."""
    v, hn = m.ModelVersion, m.HardNegativeSet
    chain = (select(v.id.label("id"), v.parent_id.label("parent_id"), literal(0).label("depth"))
             .where(v.id == version_id).cte("chain", recursive=True))
    chain = chain.union_all(select(v.id, v.parent_id, chain.c.depth + 1)
                            .join(chain, v.id == chain.c.parent_id).where(chain.c.depth < LINEAGE_DEPTH))
    query = (select(chain.c.depth, v, hn.name.label("set_name"), hn.n_items)
             .join(v, v.id == chain.c.id).join(hn, hn.id == v.hard_negative_set_id, isouter=True)
             .order_by(chain.c.depth))
    found = session.execute(query).all()
    latest = _latest_of_kinds([r.ModelVersion.id for r in found])
    mccs = {r.version_id: (r.mcc, r.kind) for r in session.execute(select(latest).where(latest.c.pick == 1))}
    rows = []
    for r in found:
        ver = r.ModelVersion
        hard = (None if ver.hard_negative_set_id is None
                else f"{r.set_name} (#{ver.hard_negative_set_id}, {r.n_items} items)")
        mcc, kind = mccs.get(ver.id, (None, None))
        rows.append(LineageRow(r.depth, ver.id, f"{ver.name}:{ver.version}", services.local(ver.created_at),
                               _training_mcc(ver.metrics or {}), mcc, kind, ver.data_fingerprint,
                               ver.code_revision, hard))
    own = dict(found[0].ModelVersion.metrics or {}) if found else {}
    return rows, own


@st.cache_data(ttl=CACHE_TTL_S, show_spinner=False)
def _version_detail(url: str, version_id: int) -> VersionDetail:
    e = m.Evaluation
    query = (select(e).where(e.version_id == version_id)
             .order_by(case((e.kind == "replay", 0), else_=1), e.id.desc()).limit(1))
    with read_session(services.engine()) as session:
        ev = session.scalars(query).first()
        evaluation = _frozen(repo.Evaluation, ev) if ev is not None else None
        lineage, own_metrics = _lineage(session, version_id)
    metrics = dict(evaluation.metrics or {}) if evaluation else {}
    calibration = metrics.get("calibration")
    return VersionDetail(
        version_id=version_id,
        evaluation_id=evaluation.id if evaluation else None,
        evaluation_kind=evaluation.kind if evaluation else None,
        dataset=evaluation.dataset if evaluation else None,
        evaluated_at=services.local(evaluation.created_at) if evaluation else None,
        n=evaluation.n if evaluation else None,
        mcc=evaluation.mcc if evaluation else None,
        mcc_ci_low=_number(metrics.get("mcc_ci_low")),
        mcc_ci_high=_number(metrics.get("mcc_ci_high")),
        sweep=sweep_of(metrics),
        calibration_threshold=_number(calibration.get("threshold")) if isinstance(calibration, dict) else None,
        before_after=before_after(metrics),
        validator_score=dict(metrics.get("validator_score") or {}),
        expected_reward=dict(metrics.get("expected_reward") or {}),
        tta=_rows(metrics.get("tta")),
        ablation=_rows(metrics.get("ablation")) or _rows(own_metrics.get("ablation")),
        lineage=tuple(lineage),
    )


def version_detail(version_id: int) -> VersionDetail:
    """One version's latest replay evaluation (sweep, calibration, before/after, validator score, expected reward,
    TTA, ablation) and its lineage up to `LINEAGE_DEPTH` ancestors."""
    return _version_detail(services.db_url(), int(version_id))

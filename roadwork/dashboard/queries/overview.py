"""What the Overview page reads: the champion, counts and the last runs; our standing and its trend; the champion's
reward-decay countdown; the next scheduled runs, open alerts and recent failures.

Every list is read with one query per table, however long the history (no query per version).
"""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field

import streamlit as st
from sqlalchemy.orm import Session

from roadwork.clock import utcnow
from roadwork.dashboard.context import CACHE_TTL_S, db_url, engine_for, settings
from roadwork.dashboard.formatting import first_line, local, training_mcc
from roadwork.dashboard.queries.common import RunRow, run_row, standing_trends
from roadwork.db import repo
from roadwork.db.engine import read_session
from roadwork.platform.jobs.store import stored_jobs
from roadwork.platform.model_age import champion_age
from roadwork.platform.standings import derive_standing, history_for, latest_snapshot
from roadwork.settings import Settings

JOB_RUNS_SHOWN = 20
ALERT_WINDOW = dt.timedelta(hours=24)
ALERTS_SHOWN = 50
FAILURES_SHOWN = 10
FAILURE_ACTIONS = ("deploy_failed", "rollback_failed", "job_failed")
DUPLICATE_WINDOW_S = 300  # a job_failed audit event this close to a failed run of the same job is the same failure


# --- champion, counts, last runs ------------------------------------------------------------------------------


@dataclass(frozen=True)
class ChampionSummary:
    version_id: int
    label: str  # name:version
    version: str
    since: dt.datetime  # local: when it became champion (start of its current unbroken hold)
    created_at: dt.datetime  # local
    champion_for_s: float
    age_s: float
    training_mcc: float | None  # from the version's training-time validation metrics
    mcc: float | None  # latest validation evaluation
    accuracy: float | None
    n: int | None
    evaluated_at: dt.datetime | None  # local


@dataclass(frozen=True)
class Overview:
    champion: ChampionSummary | None
    n_versions: int
    n_alias_moves: int
    n_pending_commands: int
    n_failed_runs: int  # among the runs shown
    job_runs: list[RunRow] = field(default_factory=list)


def _champion_summary(session: Session, now: dt.datetime) -> ChampionSummary | None:
    holder = repo.alias_holder(session, repo.CHAMPION)
    if holder is None:
        return None
    since = None
    for event in repo.alias_history(session, repo.CHAMPION):  # newest first
        if event.to_version_id != holder.id:
            break
        since = event.created_at
    since = since or holder.created_at
    evaluation = repo.latest_evaluation(session, holder.id, kind="validation")
    return ChampionSummary(
        version_id=holder.id,
        label=holder.label,
        version=holder.version,
        since=local(since),
        created_at=local(holder.created_at),
        champion_for_s=(now - since).total_seconds(),
        age_s=(now - holder.created_at).total_seconds(),
        training_mcc=training_mcc(holder.metrics),
        mcc=evaluation.mcc if evaluation else None,
        accuracy=evaluation.accuracy if evaluation else None,
        n=evaluation.n if evaluation else None,
        evaluated_at=local(evaluation.created_at) if evaluation else None,
    )


@st.cache_data(ttl=CACHE_TTL_S, show_spinner=False)
def _overview(url: str) -> Overview:
    with read_session(engine_for(url)) as session:
        runs = [run_row(r) for r in repo.list_job_runs(session, limit=JOB_RUNS_SHOWN)]
        return Overview(
            champion=_champion_summary(session, utcnow()),
            n_versions=repo.count_versions(session),
            n_alias_moves=repo.count_alias_moves(session, repo.CHAMPION),
            n_pending_commands=len(repo.pending_commands(session)),
            n_failed_runs=sum(r.status == "failed" for r in runs),
            job_runs=runs,
        )


def overview() -> Overview:
    """The champion, a few counts and the last job runs."""
    return _overview(db_url())


# --- standings ----------------------------------------------------------------------------------------------


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


def _delta(current: float | None, previous: float | None) -> float | None:
    return None if current is None or previous is None else current - previous


def _no_standings(source: str) -> str:
    if source == "none":
        return "No standings yet: set `leaderboard.source` (and `uid`) in the settings; the leaderboard job polls it."
    return f"No standings yet: the leaderboard job has not polled `{source}` yet."


@st.cache_data(ttl=CACHE_TTL_S, show_spinner=False)
def _standings(url: str, uid: int | None, source: str) -> Standings:
    with read_session(engine_for(url)) as session:
        newest = latest_snapshot(session, good_only=False)
        if newest is None:
            return Standings(uid, source, empty=_no_standings(source))
        good = newest if not newest.stale else latest_snapshot(session)
        points = standing_trends(session, [uid])[uid] if good is not None and uid is not None else []
        history = history_for(session, uid, limit=2) if len(points) >= 2 else []
    stale = {"stale": newest.stale, "stale_at": local(newest.taken_at) if newest.stale else None,
             "stale_error": newest.error if newest.stale else None}
    if good is None:
        return Standings(uid, source, empty="No good snapshot yet: every poll so far failed.", **stale)
    standing = derive_standing(good.rows, uid)
    base = {"miners": standing.miners, "taken_at": local(good.taken_at), **stale}
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
        trend=tuple(TrendRow(local(p.taken_at), p.rank, p.incentive, p.emission) for p in points),
        **base,
    )


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
    age = champion_age(engine_for(url), _settings)
    if age is None:
        return None
    return Countdown(age.version, local(age.submitted_at), age.age_days, age.reward_factor,
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
    jobs = stored_jobs(engine_for(url))
    rows = [NextRun(j["id"], j["trigger"], local(j["next_run_time"]),
                    (j["next_run_time"] - now).total_seconds() if j["next_run_time"] else None, j["paused"],
                    j["error"]) for j in jobs]
    # Soonest first; paused jobs (no next run) after the scheduled ones.
    return sorted(rows, key=lambda r: (r.next_run is None, r.next_run or dt.datetime.max, r.job_id))


def next_runs() -> list[NextRun]:
    """Every stored scheduled job with its next run (local time), soonest first, paused ones last."""
    return _next_runs(db_url())


@dataclass(frozen=True)
class AlertRow:
    when: dt.datetime  # local
    kind: str
    message: str
    actor: str


@st.cache_data(ttl=CACHE_TTL_S, show_spinner=False)
def _open_alerts(url: str) -> list[AlertRow]:
    since = utcnow() - ALERT_WINDOW
    with read_session(engine_for(url)) as session:
        alerts = repo.audit_of_action_since(session, "alert", since, ALERTS_SHOWN)
    return [AlertRow(local(a.created_at), a.target or "", a.reason, a.actor) for a in alerts]


def open_alerts() -> list[AlertRow]:
    """Audit events with action `alert` of the last 24 h, newest first."""
    return _open_alerts(db_url())


@dataclass(frozen=True)
class FailureRow:
    when: dt.datetime  # local
    source: str  # job run | audit
    what: str  # job id or the audit target
    status: str  # failed | missed | deploy_failed | ...
    detail: str  # the first line of the error or reason


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
        rows.append((when, FailureRow(local(when), "job run", r.job_id, r.status, first_line(r.error))))
    for a in audits:
        if a.action == "job_failed" and any(
            abs((a.created_at - t).total_seconds()) <= DUPLICATE_WINDOW_S for t in failed_at.get(a.target or "", [])
        ):
            continue
        rows.append((a.created_at, FailureRow(local(a.created_at), "audit", a.target or "", a.action,
                                              first_line(a.reason))))
    rows.sort(key=lambda pair: pair[0], reverse=True)
    return [row for _, row in rows[:limit]]


@st.cache_data(ttl=CACHE_TTL_S, show_spinner=False)
def _failures(url: str, limit: int) -> list[FailureRow]:
    with read_session(engine_for(url)) as session:
        runs = repo.failed_job_runs(session, limit)
        audits = repo.audit_of_actions(session, FAILURE_ACTIONS, limit)
    return merge_failures(runs, audits, limit)


def failures(limit: int = FAILURES_SHOWN) -> list[FailureRow]:
    """The last failed or missed job runs and failed deploys/rollbacks/jobs from the audit feed, newest first."""
    return _failures(db_url(), limit)

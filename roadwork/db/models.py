"""The whole schema of Roadwork Ops, as SQLAlchemy 2 typed models.

Rows of `model_versions` and every `*_events` table are immutable: versions never change after creation and
aliases move only by appending `alias_events` (the `aliases` row is the current pointer, written in the same
transaction as its event). All times are naive UTC datetimes in storage.
"""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    Text,
    UniqueConstraint,
    event,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

from roadwork.clock import utcnow

IntPK = Annotated[int, mapped_column(Integer, primary_key=True, autoincrement=True)]
UTCTime = Annotated[dt.datetime, mapped_column(default=utcnow, index=False)]
Str64 = Annotated[str, mapped_column(String(64))]
Str255 = Annotated[str, mapped_column(String(255))]
JsonDict = Annotated[dict[str, Any], mapped_column(JSON, default=dict)]


class Base(DeclarativeBase):
    pass


# --- registry --------------------------------------------------------------------------------------------


class ModelVersion(Base):
    """An immutable trained model: artifact, config and lineage."""

    __tablename__ = "model_versions"
    __table_args__ = (UniqueConstraint("name", "version", name="uq_model_versions_name_version"),)

    id: Mapped[IntPK]
    name: Mapped[Str255]
    version: Mapped[Str64]  # semantic version X.Y.Z, as written into model_card.json
    artifact_sha256: Mapped[Str64]  # sha256 of the artifact manifest (which lists every file's sha256)
    artifact_path: Mapped[str] = mapped_column(Text)
    config: Mapped[JsonDict]  # the whole training config, as run
    metrics: Mapped[JsonDict]  # training-time validation metrics (final)
    parent_id: Mapped[int | None] = mapped_column(ForeignKey("model_versions.id"))
    data_fingerprint: Mapped[str | None] = mapped_column(String(64))
    code_revision: Mapped[str | None] = mapped_column(String(64))
    hard_negative_set_id: Mapped[int | None] = mapped_column(ForeignKey("hard_negative_sets.id"))
    created_by: Mapped[Str255]
    created_at: Mapped[UTCTime]


class Alias(Base):
    """Current holder of a movable alias (e.g. `champion`); only moved together with an `AliasEvent`."""

    __tablename__ = "aliases"

    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    version_id: Mapped[int] = mapped_column(ForeignKey("model_versions.id"))
    event_id: Mapped[int] = mapped_column(ForeignKey("alias_events.id"))
    updated_at: Mapped[UTCTime]


class AliasEvent(Base):
    """One move of an alias: who, when, why, from which version to which, and the gate's result."""

    __tablename__ = "alias_events"
    __table_args__ = (Index("ix_alias_events_alias_time", "alias", "created_at"),)

    id: Mapped[IntPK]
    alias: Mapped[str] = mapped_column(String(64))
    action: Mapped[str] = mapped_column(String(32))  # deploy | rollback | promote
    from_version_id: Mapped[int | None] = mapped_column(ForeignKey("model_versions.id"))
    to_version_id: Mapped[int] = mapped_column(ForeignKey("model_versions.id"))
    actor: Mapped[Str255]
    reason: Mapped[str] = mapped_column(Text, default="")
    gate_result: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    published_to: Mapped[list[str] | None] = mapped_column(JSON)
    created_at: Mapped[UTCTime]


# --- evaluation --------------------------------------------------------------------------------------------


class Evaluation(Base):
    """One evaluation of a version on a dataset (validation split or a challenge replay)."""

    __tablename__ = "evaluations"
    __table_args__ = (
        Index("ix_evaluations_version_time", "version_id", "created_at"),
        Index("ix_evaluations_version_kind", "version_id", "kind"),  # the newest evaluation of a kind per version
    )

    id: Mapped[IntPK]
    version_id: Mapped[int] = mapped_column(ForeignKey("model_versions.id", ondelete="CASCADE"))
    dataset: Mapped[Str255]  # e.g. "validation:<fingerprint>" or "replay:seed=7,n=2000"
    kind: Mapped[str] = mapped_column(String(32), default="validation")  # validation | replay | ab
    n: Mapped[int] = mapped_column(Integer)
    mcc: Mapped[float] = mapped_column(Float)
    accuracy: Mapped[float] = mapped_column(Float)
    metrics: Mapped[JsonDict]  # everything else: precision, recall, auc, threshold sweep summary, reward...
    job_run_id: Mapped[int | None] = mapped_column(ForeignKey("job_runs.id"))
    created_at: Mapped[UTCTime]

    conditions: Mapped[list[ConditionMetric]] = relationship(back_populates="evaluation", cascade="all")


class ConditionMetric(Base):
    """MCC and accuracy of one evaluation restricted to one condition cell (e.g. weather = Rain)."""

    __tablename__ = "condition_metrics"
    __table_args__ = (Index("ix_condition_metrics_eval", "evaluation_id"),)

    id: Mapped[IntPK]
    evaluation_id: Mapped[int] = mapped_column(ForeignKey("evaluations.id", ondelete="CASCADE"))
    condition: Mapped[Str64]  # level | distortion | source | weather | daytime | scene ...
    value: Mapped[Str64]
    n: Mapped[int] = mapped_column(Integer)
    mcc: Mapped[float] = mapped_column(Float)
    accuracy: Mapped[float] = mapped_column(Float)
    mcc_ci_low: Mapped[float | None] = mapped_column(Float)
    mcc_ci_high: Mapped[float | None] = mapped_column(Float)

    evaluation: Mapped[Evaluation] = relationship(back_populates="conditions")


# --- scheduler -------------------------------------------------------------------------------------------


class JobRun(Base):
    """One run of a scheduled or requested job: submitted, started, succeeded, failed, missed, skipped, cancelled."""

    __tablename__ = "job_runs"
    __table_args__ = (
        Index("ix_job_runs_job_time", "job_id", "scheduled_at"),
        Index("ix_job_runs_status", "status"),
    )

    id: Mapped[IntPK]
    job_id: Mapped[Str255]
    status: Mapped[str] = mapped_column(String(16))
    scheduled_at: Mapped[dt.datetime | None]
    started_at: Mapped[dt.datetime | None]
    finished_at: Mapped[dt.datetime | None]
    duration_s: Mapped[float | None] = mapped_column(Float)
    log_path: Mapped[str | None] = mapped_column(Text)
    error: Mapped[str | None] = mapped_column(Text)
    result: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    trigger: Mapped[str] = mapped_column(String(32), default="schedule")  # schedule | command | cli
    created_at: Mapped[UTCTime]
    child_pid: Mapped[int | None] = mapped_column(Integer)  # the run's child process, while it runs in one
    child_pgid: Mapped[int | None] = mapped_column(Integer)  # its process group (ended whole after a crash)


class SchedulerCommand(Base):
    """A request from another process (dashboard, CLI) that the scheduler applies exactly once."""

    __tablename__ = "scheduler_commands"
    __table_args__ = (Index("ix_scheduler_commands_status", "status", "id"),)

    id: Mapped[IntPK]
    kind: Mapped[str] = mapped_column(String(32))  # run_now | pause | resume | reschedule | cancel | approve ...
    payload: Mapped[JsonDict]
    requested_by: Mapped[Str255]
    reason: Mapped[str] = mapped_column(Text, default="")
    status: Mapped[str] = mapped_column(String(16), default="pending")  # pending | applied | failed
    outcome: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[UTCTime]
    applied_at: Mapped[dt.datetime | None]


class SchedulerLease(Base):
    """The single row that says which scheduler process owns the job store, renewed by heartbeat.

    `token` grows by one whenever the lease changes hands (a fencing token): a scheduler that lost the lease
    fails its next check by holder and token and stops.
    """

    __tablename__ = "scheduler_lease"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)  # always 1
    token: Mapped[int] = mapped_column(BigInteger, default=0, server_default="0")
    holder: Mapped[Str255]  # "<hostname>:<pid>:<random>"
    hostname: Mapped[Str255]
    pid: Mapped[int] = mapped_column(Integer)
    acquired_at: Mapped[dt.datetime]
    heartbeat_at: Mapped[dt.datetime]


class ScheduledJob(Base):
    """APScheduler's job store table (JSON state instead of pickles; see platform/jobstore.py)."""

    __tablename__ = "apscheduler_jobs"

    id: Mapped[str] = mapped_column(String(191), primary_key=True)
    next_run_time: Mapped[float | None] = mapped_column(Float(25), index=True)
    job_state: Mapped[bytes] = mapped_column(LargeBinary)


# --- standings -------------------------------------------------------------------------------------------


class LeaderboardSnapshot(Base):
    """One poll of the standings: when, from where, whether it succeeded."""

    __tablename__ = "leaderboard_snapshots"

    id: Mapped[IntPK]
    source: Mapped[Str64]
    netuid: Mapped[int] = mapped_column(Integer)
    block: Mapped[int | None] = mapped_column(BigInteger)
    stale: Mapped[bool] = mapped_column(default=False)
    error: Mapped[str | None] = mapped_column(Text)
    taken_at: Mapped[UTCTime] = mapped_column(index=True)

    rows: Mapped[list[LeaderboardRow]] = relationship(back_populates="snapshot", cascade="all")


class LeaderboardRow(Base):
    """One miner (UID) in one snapshot."""

    __tablename__ = "leaderboard_rows"
    __table_args__ = (
        Index("ix_leaderboard_rows_snapshot", "snapshot_id"),
        Index("ix_leaderboard_rows_uid", "uid", "snapshot_id"),
    )

    id: Mapped[IntPK]
    snapshot_id: Mapped[int] = mapped_column(ForeignKey("leaderboard_snapshots.id", ondelete="CASCADE"))
    uid: Mapped[int] = mapped_column(Integer)
    hotkey: Mapped[str | None] = mapped_column(String(64))
    coldkey: Mapped[str | None] = mapped_column(String(64))
    rank: Mapped[float | None] = mapped_column(Float)
    incentive: Mapped[float | None] = mapped_column(Float)
    emission: Mapped[float | None] = mapped_column(Float)
    trust: Mapped[float | None] = mapped_column(Float)
    consensus: Mapped[float | None] = mapped_column(Float)
    dividends: Mapped[float | None] = mapped_column(Float)
    stake: Mapped[float | None] = mapped_column(Float)
    active: Mapped[bool | None]
    validator_permit: Mapped[bool | None]
    extra: Mapped[dict[str, Any] | None] = mapped_column(JSON)

    snapshot: Mapped[LeaderboardSnapshot] = relationship(back_populates="rows")


# --- A/B tests ------------------------------------------------------------------------------------------


class ABTest(Base):
    __tablename__ = "ab_tests"

    id: Mapped[IntPK]
    name: Mapped[Str255]
    version_a_id: Mapped[int] = mapped_column(ForeignKey("model_versions.id"))
    version_b_id: Mapped[int] = mapped_column(ForeignKey("model_versions.id"))
    sample_size: Mapped[int] = mapped_column(Integer)
    mode: Mapped[str] = mapped_column(String(16), default="replay")  # replay | live
    status: Mapped[str] = mapped_column(String(16), default="pending")  # pending | running | done | failed
    created_by: Mapped[Str255]
    created_at: Mapped[UTCTime]

    results: Mapped[list[ABResult]] = relationship(back_populates="test", cascade="all")


class ABResult(Base):
    __tablename__ = "ab_results"

    id: Mapped[IntPK]
    test_id: Mapped[int] = mapped_column(ForeignKey("ab_tests.id", ondelete="CASCADE"), index=True)
    n: Mapped[int] = mapped_column(Integer)
    arm_a: Mapped[JsonDict]  # mcc, accuracy, expected reward, CIs
    arm_b: Mapped[JsonDict]
    diff: Mapped[JsonDict]  # difference with bootstrap CI, McNemar statistic and p-value
    verdict: Mapped[str] = mapped_column(String(32))  # a_better | b_better | no_difference | insufficient
    created_at: Mapped[UTCTime]

    test: Mapped[ABTest] = relationship(back_populates="results")


# --- hard negatives -----------------------------------------------------------------------------------------


class HardNegativeSet(Base):
    __tablename__ = "hard_negative_sets"

    id: Mapped[IntPK]
    name: Mapped[Str255]
    # No database-level foreign key: model_versions already points here (lineage), and a cycle of foreign
    # keys cannot be created in one pass on PostgreSQL.
    source_version_id: Mapped[int | None] = mapped_column(Integer)
    pool: Mapped[str] = mapped_column(Text)  # dataset path or id that was mined
    n_items: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[UTCTime]

    items: Mapped[list[HardNegativeItem]] = relationship(back_populates="set", cascade="all")


class HardNegativeItem(Base):
    __tablename__ = "hard_negative_items"

    id: Mapped[IntPK]
    set_id: Mapped[int] = mapped_column(ForeignKey("hard_negative_sets.id", ondelete="CASCADE"), index=True)
    record_id: Mapped[Str255]
    label: Mapped[int | None] = mapped_column(Integer)
    score: Mapped[float] = mapped_column(Float)
    reason: Mapped[str] = mapped_column(String(32))  # confident_mistake | uncertain
    conditions: Mapped[dict[str, Any] | None] = mapped_column(JSON)

    set: Mapped[HardNegativeSet] = relationship(back_populates="items")


# --- people --------------------------------------------------------------------------------------------------


class User(Base):
    __tablename__ = "users"

    id: Mapped[IntPK]
    username: Mapped[str] = mapped_column(String(64), unique=True)
    password_hash: Mapped[str] = mapped_column(Text)
    role: Mapped[str] = mapped_column(String(16))  # viewer | operator
    created_at: Mapped[UTCTime]
    disabled: Mapped[bool] = mapped_column(default=False)


class SignInLimit(Base):
    """The recent sign-in attempts that one limit counts: of one user name, from one client address, or of
    everyone (`platform.signin_limits` says how they are counted), and the refused or unknown-name attempts not
    yet summed up in an audit event."""

    __tablename__ = "signin_limits"
    __table_args__ = (Index("ix_signin_limits_updated", "updated_at"),)

    scope: Mapped[str] = mapped_column(String(8), primary_key=True)  # name | address | all
    key: Mapped[str] = mapped_column(String(255), primary_key=True)  # sha256 of the name | the address | "*"
    times: Mapped[list[str]] = mapped_column(JSON)  # the newest counted attempts (ISO, naive UTC), oldest first
    refused: Mapped[int] = mapped_column(Integer, default=0)  # refused attempts not yet in an audit event
    unknown: Mapped[int] = mapped_column(Integer, default=0)  # failed sign-ins with unknown names, likewise
    reported_at: Mapped[dt.datetime | None]  # when those counts were last written to the audit
    updated_at: Mapped[dt.datetime]


class AuditEvent(Base):
    """Who did what, when and why; also the event feed (promotions, failures, alerts)."""

    __tablename__ = "audit_events"
    __table_args__ = (
        Index("ix_audit_events_time", "created_at"),
        Index("ix_audit_events_action_time", "action", "created_at"),  # feeds by action: failures, alerts, gates
    )

    id: Mapped[IntPK]
    actor: Mapped[Str255]
    action: Mapped[Str64]
    target: Mapped[str | None] = mapped_column(String(255))
    reason: Mapped[str] = mapped_column(Text, default="")
    details: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    created_at: Mapped[UTCTime]


# --- immutability --------------------------------------------------------------------------------------------


class ImmutableRowError(RuntimeError):
    """An attempt to change or delete a row that is append-only."""


APPEND_ONLY = (ModelVersion, AliasEvent, AuditEvent)


def _refuse_change(mapper, connection, target) -> None:  # noqa: ANN001, ARG001 - SQLAlchemy event signature
    raise ImmutableRowError(f"{type(target).__name__} rows are immutable (id={getattr(target, 'id', None)})")


for _model in APPEND_ONLY:
    event.listen(_model, "before_update", _refuse_change)
    event.listen(_model, "before_delete", _refuse_change)


# --- ablation studies ------------------------------------------------------------------------------------------


class AblationStudy(Base):
    """One `roadwork ablate` run: a base config and variants with one component flipped, on the same seeds."""

    __tablename__ = "ablation_studies"

    id: Mapped[IntPK]
    config_name: Mapped[Str255]
    config: Mapped[JsonDict]  # the base config as run (data path resolved, epochs overridden)
    seeds: Mapped[list[int]] = mapped_column(JSON)  # optim.seed of each run, in the order of every row's `mcc`
    components: Mapped[list[str]] = mapped_column(JSON)  # flipped one at a time, in the order asked
    data_fingerprint: Mapped[str | None] = mapped_column(String(64))  # known once the first run has read the data
    status: Mapped[str] = mapped_column(String(16), default="running")  # running | finished | failed
    error: Mapped[str | None] = mapped_column(Text)
    actor: Mapped[Str255]
    created_at: Mapped[UTCTime]
    finished_at: Mapped[dt.datetime | None]

    rows: Mapped[list[AblationRow]] = relationship(back_populates="study", cascade="all")


class AblationRow(Base):
    """The base (direction "base") or one variant of a study, written when all its seeds have trained."""

    __tablename__ = "ablation_rows"

    id: Mapped[IntPK]
    study_id: Mapped[int] = mapped_column(ForeignKey("ablation_studies.id", ondelete="CASCADE"), index=True)
    component: Mapped[Str64]  # a key of trainer.config.COMPONENTS, or "base"
    direction: Mapped[str] = mapped_column(String(8))  # base | on | off: what the variant did to the component
    mcc: Mapped[list[float]] = mapped_column(JSON)  # validation MCC per seed, in the study's seed order
    mean_mcc: Mapped[float] = mapped_column(Float)
    delta: Mapped[float | None] = mapped_column(Float)  # mean of (variant - base) paired by seed; None for the base
    ci_low: Mapped[float | None] = mapped_column(Float)  # 95% Student t interval of that delta; None with one seed
    ci_high: Mapped[float | None] = mapped_column(Float)
    seconds: Mapped[float] = mapped_column(Float)  # training time, all seeds together
    created_at: Mapped[UTCTime]

    study: Mapped[AblationStudy] = relationship(back_populates="rows")


# --- deploys: one at a time, and what a deploy meant to do ------------------------------------------------------


class DeployLock(Base):
    """The single row that serializes deploys and rollbacks across processes and machines.

    `token` grows by one on every acquisition (a fencing token): a holder that lost the lock (expired, taken
    over) cannot move the alias, because that write checks the token in the same transaction.
    """

    __tablename__ = "deploy_lock"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)  # always 1
    token: Mapped[int] = mapped_column(BigInteger, default=0)
    holder: Mapped[str | None] = mapped_column(String(255))  # "<hostname>:<pid>:<random>"; None when free
    hostname: Mapped[str | None] = mapped_column(String(255))
    pid: Mapped[int | None] = mapped_column(Integer)
    purpose: Mapped[str | None] = mapped_column(String(255))  # e.g. "deploy roadwork-ops:0.2.0"
    acquired_at: Mapped[dt.datetime | None]
    expires_at: Mapped[dt.datetime | None]


class DeployIntent(Base):
    """What a deploy or rollback is about to do, written before the first link switch.

    `phase` says how far it got: `publishing` (links may be switched, not yet smoke-tested) or `published`
    (every target switched and checked; only the alias move is left). `status` is `pending` until the deploy
    ends (`done`, `reverted`) or `reconcile()` finishes it after a crash (`completed`, `reverted`).
    """

    __tablename__ = "deploy_intents"
    __table_args__ = (Index("ix_deploy_intents_status", "status"),)

    id: Mapped[IntPK]
    lock_token: Mapped[int] = mapped_column(BigInteger)
    action: Mapped[str] = mapped_column(String(32))  # deploy | rollback
    version_id: Mapped[int] = mapped_column(ForeignKey("model_versions.id"))
    from_version_id: Mapped[int | None] = mapped_column(ForeignKey("model_versions.id"))
    release: Mapped[Str255]  # the release folder name every local target switches to
    previous: Mapped[dict[str, str | None]] = mapped_column(JSON)  # target -> release it served before, or None
    published_to: Mapped[list[str] | None] = mapped_column(JSON)
    actor: Mapped[Str255]
    reason: Mapped[str] = mapped_column(Text, default="")
    gate_result: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    phase: Mapped[str] = mapped_column(String(16), default="publishing")
    status: Mapped[str] = mapped_column(String(16), default="pending")
    outcome: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[UTCTime]
    finished_at: Mapped[dt.datetime | None]

"""The scheduler process: one owner of the job store, steered only through the commands table.

`SchedulerService.start()` takes the lease (a second scheduler on the same database refuses to start, a
stale lease is taken over), starts APScheduler with the JSON job store, registers the built-in jobs the first
time only (so pauses and reschedules survive restarts), and records every run in `job_runs` from listeners.
`serve()` then heartbeats the lease and applies pending commands until stopped.
"""

from __future__ import annotations

import datetime as dt
import logging
import os
import socket
import threading
import traceback
from dataclasses import dataclass, field
from typing import Any

from apscheduler.events import (
    EVENT_JOB_ERROR,
    EVENT_JOB_EXECUTED,
    EVENT_JOB_MAX_INSTANCES,
    EVENT_JOB_MISSED,
    EVENT_JOB_SUBMITTED,
    JobExecutionEvent,
    JobSubmissionEvent,
)
from apscheduler.executors.pool import ThreadPoolExecutor
from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.triggers.cron import CronTrigger
from sqlalchemy import Engine

from roadwork.clock import utcnow
from roadwork.settings import Settings
from roadwork.db import repo
from roadwork.db.engine import read_session, write_session
from roadwork.platform.events import EventForwarder
from roadwork.platform.jobs.functions import JOBS
from roadwork.platform.jobs.store import JsonJobStore

log = logging.getLogger(__name__)
RUN_NOW_SEP = "@cmd"


class SchedulerBusyError(RuntimeError):
    """Another scheduler holds the lease on this database."""


DAY_NAMES = ("sun", "mon", "tue", "wed", "thu", "fri", "sat", "sun")  # crontab numbering: 0 and 7 are Sunday


def crontab_day_of_week(field: str) -> str:
    """A crontab day-of-week field as an explicit list of day names.

    APScheduler 3 numbers days from Monday = 0, while crontab has Sunday = 0 (and 7); names mean the same in
    both, so `0 3 * * 1` fires on Mondays as anyone who writes crontabs expects. Numeric ranges and steps are
    expanded in crontab numbering (`0-6/3` is Sunday, Wednesday, Saturday); names pass through."""
    if field == "*":
        return field
    days: list[str] = []
    for part in field.split(","):
        base, _, step = part.partition("/")
        low, _, high = base.partition("-")
        if not (low.isdigit() or low == "*") or (high and not high.isdigit()):
            days.append(part)  # names (mon-fri) mean the same to APScheduler
            continue
        first, last = (0, 6) if low == "*" else (int(low), int(high) if high else int(low))
        if step:
            last = 6 if not high and low != "*" else last
        if not (0 <= first <= 7 and 0 <= last <= 7 and first <= last):
            raise ValueError(f"day of week out of range: {part!r}")
        days.extend(DAY_NAMES[d] for d in range(first, last + 1, int(step) if step else 1))
    return ",".join(dict.fromkeys(days))


def cron_trigger(expr: str) -> CronTrigger:
    """A UTC trigger from a standard 5-field crontab expression; raises ValueError naming the bad expression."""
    fields = expr.split()
    if len(fields) != 5:
        raise ValueError(f"invalid cron expression {expr!r}: expected 5 fields (minute hour day month weekday)")
    minute, hour, day, month, weekday = fields
    try:
        return CronTrigger(minute=minute, hour=hour, day=day, month=month,
                           day_of_week=crontab_day_of_week(weekday), timezone=dt.UTC)
    except (ValueError, IndexError) as exc:
        raise ValueError(f"invalid cron expression {expr!r}: {exc}") from exc


def next_fire_times(expr: str, n: int = 5, after: dt.datetime | None = None) -> list[dt.datetime]:
    """The next `n` fire times (aware UTC) of a cron expression, for previews."""
    trigger = cron_trigger(expr)
    previous = None
    now = after or dt.datetime.now(dt.UTC)
    out: list[dt.datetime] = []
    while len(out) < n:
        fire = trigger.get_next_fire_time(previous, now)
        if fire is None:
            break
        out.append(fire)
        previous, now = fire, fire + dt.timedelta(microseconds=1)
    return out


def _naive_utc(value: dt.datetime | None) -> dt.datetime | None:
    return None if value is None else value.astimezone(dt.UTC).replace(tzinfo=None)


@dataclass
class SchedulerService:
    engine: Engine
    settings: Settings
    holder: str = field(default_factory=lambda: f"{socket.gethostname()}:{os.getpid()}:{os.urandom(3).hex()}")
    scheduler: BackgroundScheduler | None = None
    _runs: dict[tuple[str, dt.datetime | None], int] = field(default_factory=dict)
    _runs_lock: threading.Lock = field(default_factory=threading.Lock)
    _stop: threading.Event = field(default_factory=threading.Event)

    # --- lifecycle ------------------------------------------------------------------------------------------
    def start(self) -> None:
        self._acquire_lease()
        opts = self.settings.scheduler
        self.jobstore = JsonJobStore(engine=self.engine)
        self.scheduler = BackgroundScheduler(
            jobstores={"default": self.jobstore},
            executors={"default": ThreadPoolExecutor(4)},
            job_defaults={"misfire_grace_time": opts.misfire_grace_time_s, "coalesce": True, "max_instances": 1},
            timezone=dt.UTC,
        )
        self.scheduler.add_listener(self._on_submitted, EVENT_JOB_SUBMITTED | EVENT_JOB_MAX_INSTANCES)
        self.scheduler.add_listener(self._on_finished, EVENT_JOB_EXECUTED | EVENT_JOB_ERROR | EVENT_JOB_MISSED)
        self.scheduler.start(paused=True)
        self.jobstore.get_all_jobs()  # restores every row now, so broken ones are parked and reported below
        for job_id, spec in JOBS.items():
            # Registered once: a schedule changed by a command (pause, reschedule) survives restarts.
            if spec.scheduled and self.scheduler.get_job(job_id) is None and job_id not in self.jobstore.parked:
                trigger = cron_trigger(opts.crons[job_id])
                self.scheduler.add_job(spec.func, trigger, id=job_id, name=spec.description, replace_existing=True)
        self.events = EventForwarder(self.engine, self.settings.events.webhook_url, self.settings.events.timeout_s)
        for job_id, why in self.jobstore.parked.items():
            with write_session(self.engine) as session:
                repo.add_audit(session, actor="scheduler", action="job_parked", target=job_id, reason=why)
        self.scheduler.resume()
        log.info("scheduler %s started; jobs: %s", self.holder, [j.id for j in self.scheduler.get_jobs()])

    def stop(self) -> None:
        self._stop.set()
        if self.scheduler is not None and self.scheduler.running:
            self.scheduler.shutdown(wait=True)
        with write_session(self.engine) as session:
            repo.release_lease(session, self.holder)

    def serve(self, max_seconds: float | None = None) -> None:
        """Heartbeat and apply commands until `stop()` (or `max_seconds`, for tests)."""
        opts = self.settings.scheduler
        deadline = None if max_seconds is None else utcnow() + dt.timedelta(seconds=max_seconds)
        last_beat = utcnow()
        while not self._stop.is_set():
            if (utcnow() - last_beat).total_seconds() >= opts.heartbeat_s:
                if not self.heartbeat():
                    log.error("lost the scheduler lease to another process; stopping")
                    break
                last_beat = utcnow()
            self.apply_pending_commands()
            self.events.forward()
            if deadline is not None and utcnow() >= deadline:
                break
            self._stop.wait(opts.command_poll_s)

    # --- lease -----------------------------------------------------------------------------------------------
    def _acquire_lease(self) -> None:
        with write_session(self.engine) as session:
            ok, lease = repo.acquire_lease(
                session, holder=self.holder, hostname=socket.gethostname(), pid=os.getpid(),
                timeout_s=self.settings.scheduler.lease_timeout_s,
            )
        if not ok:
            age = (utcnow() - lease.heartbeat_at).total_seconds()
            raise SchedulerBusyError(
                f"another scheduler owns this database: {lease.holder} (pid {lease.pid} on {lease.hostname}), "
                f"last heartbeat {age:.0f} s ago; it is taken over once its heartbeat is older than "
                f"{self.settings.scheduler.lease_timeout_s:.0f} s"
            )

    def heartbeat(self) -> bool:
        with write_session(self.engine) as session:
            return repo.renew_lease(session, self.holder)

    # --- run records -------------------------------------------------------------------------------------------
    @staticmethod
    def _base_id(job_id: str) -> tuple[str, str]:
        if RUN_NOW_SEP in job_id:
            return job_id.split(RUN_NOW_SEP, 1)[0], "command"
        return job_id, "schedule"

    def _on_submitted(self, event: JobSubmissionEvent) -> None:
        job_id, trigger = self._base_id(event.job_id)
        status = "skipped" if event.code == EVENT_JOB_MAX_INSTANCES else "started"
        now = utcnow()
        for when in event.scheduled_run_times:
            with write_session(self.engine) as session:
                run = repo.record_job_run(
                    session, job_id=job_id, status=status, scheduled_at=_naive_utc(when), trigger=trigger,
                    started_at=now if status == "started" else None,
                    error="a previous run was still going (max_instances=1)" if status == "skipped" else None,
                )
            if status == "started":
                with self._runs_lock:
                    self._runs[(event.job_id, _naive_utc(when))] = run.id

    def _on_finished(self, event: JobExecutionEvent) -> None:
        job_id, trigger = self._base_id(event.job_id)
        when = _naive_utc(event.scheduled_run_time)
        with write_session(self.engine) as session:
            if event.code == EVENT_JOB_MISSED:
                repo.record_job_run(
                    session, job_id=job_id, status="missed", scheduled_at=when, trigger=trigger,
                    error=f"missed its fire time by more than {self.settings.scheduler.misfire_grace_time_s} s",
                )
                repo.add_audit(session, actor="scheduler", action="job_missed", target=job_id,
                               details={"scheduled_at": str(when)})
                return
            with self._runs_lock:
                run_id = self._runs.pop((event.job_id, when), None)
            if run_id is None:  # submitted before a restart of this listener: record it now
                run_id = repo.record_job_run(session, job_id=job_id, status="started", scheduled_at=when,
                                             trigger=trigger).id
            if event.exception is not None:
                error = "".join(traceback.format_exception_only(type(event.exception), event.exception)).strip()
                repo.finish_job_run(session, run_id, status="failed", error=error + "\n" + (event.traceback or ""),
                                    log_path=getattr(event.exception, "log_path", None))
                repo.add_audit(session, actor="scheduler", action="job_failed", target=job_id, reason=error)
            else:
                result = event.retval if isinstance(event.retval, dict) else {"value": repr(event.retval)}
                repo.finish_job_run(session, run_id, status="succeeded", result=result, log_path=result.get("log_path"))

    # --- commands ----------------------------------------------------------------------------------------------
    def apply_pending_commands(self) -> int:
        """Apply every pending command once, recording its outcome. Returns how many were applied."""
        with read_session(self.engine) as session:
            pending = repo.pending_commands(session)
        applied = 0
        for command in pending:
            with write_session(self.engine) as session:
                if not repo.claim_command(session, command.id):
                    continue
            try:
                outcome, ok = self._apply(command), True
            except Exception as exc:  # noqa: BLE001 - every failure is recorded as the command's outcome
                outcome, ok = f"{type(exc).__name__}: {exc}", False
            with write_session(self.engine) as session:
                repo.complete_command(session, command.id, ok=ok, outcome=outcome)
                repo.add_audit(session, actor=command.requested_by, action=f"command_{command.kind}",
                               target=str(command.payload), reason=command.reason,
                               details={"ok": ok, "outcome": outcome, "command_id": command.id})
            applied += 1
        return applied

    def _job(self, payload: dict[str, Any]):  # noqa: ANN202
        job_id = payload.get("job_id")
        job = self.scheduler.get_job(job_id) if job_id else None
        if job is None:
            known = ", ".join(j.id for j in self.scheduler.get_jobs()) or "none"
            raise LookupError(f"no scheduled job {job_id!r} (jobs: {known})")
        return job

    def _run_now(self, command: repo.Command) -> str:
        """A one-off run of a scheduled job (its own arguments) or of an on-demand job (the payload's kwargs)."""
        job_id = command.payload.get("job_id")
        kwargs = dict(command.payload.get("kwargs") or {})
        job = self.scheduler.get_job(job_id) if job_id else None
        if job is not None:
            func, args, kwargs, name = job.func_ref, job.args, {**job.kwargs, **kwargs}, job.name
        elif job_id in JOBS:
            func, args, name = JOBS[job_id].func, (), JOBS[job_id].description
        else:
            raise LookupError(f"no job {job_id!r} (jobs: {', '.join(sorted(JOBS))})")
        self.scheduler.add_job(func, "date", run_date=dt.datetime.now(dt.UTC), args=args, kwargs=kwargs,
                               id=f"{job_id}{RUN_NOW_SEP}{command.id}", name=f"{name} (run now)",
                               misfire_grace_time=None)
        return f"{job_id} submitted"

    def _apply(self, command: repo.Command) -> str:
        kind, payload = command.kind, command.payload
        if kind == "run_now":
            return self._run_now(command)
        if kind == "pause":
            self._job(payload).pause()
            return f"{payload['job_id']} paused"
        if kind == "resume":
            job = self._job(payload).resume()
            return f"{payload['job_id']} resumed; next run {job.next_run_time}"
        if kind == "reschedule":
            job = self._job(payload).reschedule(cron_trigger(payload["cron"]))
            return f"{payload['job_id']} now '{payload['cron']}' UTC; next run {job.next_run_time}"
        if kind == "cancel":
            from roadwork.platform.jobs.runner import cancel

            if not cancel(payload["job_id"]):
                raise LookupError(f"{payload['job_id']} is not running")
            return f"{payload['job_id']} cancelled"
        if kind == "rollback":
            from roadwork.platform.registry.service import rollback

            result = rollback(self.engine, self.settings, to=payload.get("to"), reason=command.reason,
                              actor=command.requested_by)
            return f"champion rolled back to {result.version.label}"
        if kind == "approve":
            from roadwork.platform.jobs.tasks import approve_candidate

            return approve_candidate(self.engine, self.settings, payload["version"], actor=command.requested_by,
                                     reason=command.reason)
        if kind == "reject":
            from roadwork.platform.evaluation.gate import reject_candidate

            reject_candidate(self.engine, payload["version"], actor=command.requested_by, reason=command.reason)
            return f"candidate {payload['version']} rejected"
        if kind == "create_ab_test":
            from roadwork.platform.ab.service import create_ab_test

            test_id = create_ab_test(self.engine, version_a=payload["a"], version_b=payload["b"],
                                     sample_size=int(payload["sample_size"]), actor=command.requested_by)
            self.scheduler.add_job(JOBS["ab_test"].func, "date", run_date=dt.datetime.now(dt.UTC),
                                   kwargs={"test_id": test_id}, id=f"ab_test{RUN_NOW_SEP}{command.id}",
                                   name=f"A/B test {test_id}", misfire_grace_time=None)
            return f"A/B test {test_id} created and submitted"
        raise NotImplementedError(f"the scheduler does not apply '{kind}' commands")

"""The scheduler process: one owner of the job store, steered only through the commands table.

`SchedulerService.start()` takes the lease (a second scheduler on the same database refuses to start; a lease
whose heartbeat is stale, or whose holder's process on this machine is gone, is taken over), starts the
heartbeat on its own thread, recovers what a dead scheduler left (`recover`), starts APScheduler with the JSON
job store, registers the catalog's scheduled jobs the first time only (so pauses and reschedules survive
restarts), and records every run in `job_runs` from listeners. `serve()` then applies pending commands until
stopped, each kind through its handler in `COMMAND_HANDLERS`.

The lease carries a fencing token. Claiming a command and every step of a deploy or rollback that changes what is
served (each link switch, the alias move) check holder and token in their own transaction (`fence`); a scheduler
that lost the lease stops there, and stops serving.
"""

from __future__ import annotations

import datetime as dt
import logging
import os
import socket
import threading
import traceback
from collections.abc import Callable
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
from sqlalchemy import Engine
from sqlalchemy.orm import Session

from roadwork.clock import utcnow
from roadwork.cron import cron_trigger
from roadwork.settings import Settings
from roadwork.db import repo
from roadwork.db.engine import read_session, retry_when_locked, write_session
from roadwork.platform.events import EventForwarder
from roadwork.platform.jobs import catalog, runner
from roadwork.platform.jobs.catalog import JOBS
from roadwork.platform.jobs.store import JsonJobStore
from roadwork.platform.processes import end_group, is_job_worker, process_alive

log = logging.getLogger(__name__)
RUN_NOW_SEP = "@cmd"
SCHEDULER_TRIGGERS = ("schedule", "command")  # the runs a scheduler records itself (not `cli` or `pipeline`)


class SchedulerBusyError(RuntimeError):
    """Another scheduler holds the lease on this database."""


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
    token: int = 0  # the lease's fencing token while we hold it
    lost: threading.Event = field(default_factory=threading.Event)  # set once the lease is found taken over
    _children_recorded: set[int] = field(default_factory=set)

    # --- lifecycle ------------------------------------------------------------------------------------------
    def start(self) -> None:
        catalog.check_overrides(self.settings.scheduler)  # a bad override stops the start, before the lease
        self._acquire_lease()
        threading.Thread(target=self._heartbeat_loop, daemon=True, name="scheduler-heartbeat").start()
        requeue = self.recover()
        # A deploy killed mid-way leaves the champion and the published link apart: repair (or alert) first.
        from roadwork.platform.registry.reconcile import reconcile

        reconcile(self.engine, self.settings)
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
                trigger = cron_trigger(catalog.cron(self.settings, job_id))
                self.scheduler.add_job(spec.func, trigger, id=job_id, name=spec.description, replace_existing=True)
        self.events = EventForwarder(self.engine, self.settings.events.webhook(), self.settings.events.timeout_s)
        for job_id, why in self.jobstore.parked.items():
            with write_session(self.engine) as session:
                repo.add_audit(session, actor="scheduler", action="job_parked", target=job_id, reason=why)
        self.scheduler.resume()
        for run in requeue:
            self._requeue(run)
        log.info("scheduler %s started; jobs: %s", self.holder, [j.id for j in self.scheduler.get_jobs()])

    def stop(self) -> None:
        self._stop.set()
        if self.lost.is_set():  # another scheduler owns the store now: our children must not run on
            for job_id in runner.running_jobs():
                runner.cancel(job_id)
        if self.scheduler is not None and self.scheduler.running:
            self.scheduler.shutdown(wait=True)
        with write_session(self.engine) as session:
            repo.release_lease(session, self.holder)

    def serve(self, max_seconds: float | None = None) -> None:
        """Apply commands until `stop()`, the loss of the lease (or `max_seconds`, for tests)."""
        opts = self.settings.scheduler
        deadline = None if max_seconds is None else utcnow() + dt.timedelta(seconds=max_seconds)
        while not self._stop.is_set():
            if self.lost.is_set():
                log.error("lost the scheduler lease to another process; stopping")
                break
            self.apply_pending_commands()
            self.events.forward()
            if deadline is not None and utcnow() >= deadline:
                break
            self._stop.wait(opts.command_poll_s)

    # --- lease -----------------------------------------------------------------------------------------------
    def _acquire_lease(self) -> None:
        hostname = socket.gethostname()
        with write_session(self.engine) as session:
            seen = repo.current_lease(session)
            # A holder on this machine whose process is gone (kill -9, a crash) is taken over at once, not after
            # the timeout; a pid reused by another process only delays the takeover to the timeout.
            gone = seen is not None and seen.holder != self.holder and seen.hostname == hostname and \
                seen.pid != os.getpid() and not process_alive(seen.pid)
            ok, lease = repo.acquire_lease(
                session, holder=self.holder, hostname=hostname, pid=os.getpid(),
                timeout_s=self.settings.scheduler.lease_timeout_s, holder_gone=gone,
            )
            if ok and seen is not None and seen.holder != self.holder and seen.heartbeat_at.year > 1970:
                age = (lease.acquired_at - seen.heartbeat_at).total_seconds()
                repo.add_audit(session, actor="scheduler", action="scheduler_lease_taken_over", target=self.holder,
                               details={"from": seen.holder, "process_gone": gone, "heartbeat_age_s": round(age, 1),
                                        "token": lease.token})
        if ok:
            self.token = lease.token
        if not ok:
            age = (utcnow() - lease.heartbeat_at).total_seconds()
            raise SchedulerBusyError(
                f"another scheduler owns this database: {lease.holder} (pid {lease.pid} on {lease.hostname}), "
                f"last heartbeat {age:.0f} s ago; it is taken over once its heartbeat is older than "
                f"{self.settings.scheduler.lease_timeout_s:.0f} s"
            )

    def heartbeat(self) -> bool:
        """Renew the lease (holder and token); False, and `lost` set, when another scheduler has taken it."""
        def renew() -> bool:
            with write_session(self.engine) as session:
                return repo.renew_lease(session, self.holder, self.token)

        ok = retry_when_locked(renew, what="scheduler heartbeat")  # a sign-in flood's short writes: wait, retry
        if not ok:
            self._lose()
        return ok

    def _lose(self) -> None:
        """The lease is gone: start no more runs (the serve loop stops; `stop()` ends our children)."""
        self.lost.set()
        if self.scheduler is not None and self.scheduler.running:
            self.scheduler.pause()

    def _heartbeat_loop(self) -> None:
        """On its own thread, so that a long command applied inline (a deploy with a slow reload) never lets the
        lease go stale; each beat also records new child processes on their runs."""
        while not self._stop.wait(self.settings.scheduler.heartbeat_s):
            try:
                if not self.heartbeat():
                    log.error("scheduler lease taken over by another process; stopping")
                    self._stop.set()
                    return
                self.record_children()
            except Exception:  # a database hiccup: try again at the next beat
                log.exception("scheduler heartbeat failed; retrying")

    def fence(self, session: Session) -> None:
        """Inside a write transaction: raise `repo.LeaseLostError` (and set `lost`) unless we still hold the lease."""
        try:
            repo.check_lease(session, self.holder, self.token)
        except repo.LeaseLostError:
            self._lose()
            raise

    # --- recovery ----------------------------------------------------------------------------------------------
    def recover(self) -> list[repo.JobRun]:
        """What a scheduler that died (or lost its lease) left behind, repaired once we hold the lease.

        Runs it left `started`: their child process groups are ended (after checking that the recorded pid still
        is a roadwork worker of this home, so a reused pid, or another machine's, is never killed) and they are
        recorded as failed. Commands it left
        `applying` are failed with a message (a deploy's or rollback's effect is then what reconcile finds).
        Returns the runs whose job asks to be run again (`JobSpec.requeue_after_crash`), for after the start.
        """
        with read_session(self.engine) as session:
            runs = repo.unfinished_job_runs(session, SCHEDULER_TRIGGERS)
        requeue = []
        for run in runs:
            ended = False
            ours = run.child_pid is not None and is_job_worker(run.child_pid, self.settings.logs_dir)
            if ours and run.child_pgid is not None:
                ended = end_group(run.child_pgid)
            spec = JOBS.get(run.job_id)
            again = spec is not None and spec.requeue_after_crash and spec.runnable_without_arguments
            error = ("the scheduler running it stopped (killed or lost its lease) before it finished"
                     + (f"; its child process group {run.child_pgid} was ended" if ended else "")
                     + ("; run again" if again else ""))
            with write_session(self.engine) as session:
                repo.finish_job_run(session, run.id, status="failed", error=error)
                repo.add_audit(session, actor="scheduler", action="job_recovered", target=run.job_id, reason=error,
                               details={"run_id": run.id, "child_pgid": run.child_pgid, "ended": ended,
                                        "requeued": again})
            if again:
                requeue.append(run)
            log.warning("run %s of %s: %s", run.id, run.job_id, error)
        with write_session(self.engine) as session:
            failed = repo.fail_applying_commands(
                session, "the scheduler applying it stopped (killed or lost its lease) before it finished; "
                "its effect, if any, is what the registry shows now (deploys and rollbacks are reconciled)")
            for command in failed:
                repo.add_audit(session, actor="scheduler", action=f"command_{command.kind}",
                               target=str(command.payload), reason=command.reason,
                               details={"ok": False, "outcome": command.outcome, "command_id": command.id})
        return requeue

    def _requeue(self, run: repo.JobRun) -> None:
        job = self.scheduler.get_job(run.job_id)
        func, kwargs = (job.func_ref, job.kwargs) if job is not None else (JOBS[run.job_id].func, {})
        self.scheduler.add_job(func, "date", run_date=dt.datetime.now(dt.UTC), kwargs=kwargs,
                               id=f"{run.job_id}{RUN_NOW_SEP}requeue-{run.id}", name=f"{run.job_id} (requeued)",
                               misfire_grace_time=None)

    def record_children(self) -> None:
        """Record each new child process on its run's row, so that a later scheduler can end it after a crash."""
        running = runner.running_children()
        self._children_recorded &= set(running.values())
        for job_id, pid in running.items():
            if pid in self._children_recorded:
                continue
            with write_session(self.engine) as session:
                if repo.set_run_child(session, job_id, pid=pid, pgid=pid):
                    self._children_recorded.add(pid)

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
            try:
                with write_session(self.engine) as session:
                    self.fence(session)
                    if not repo.claim_command(session, command.id):
                        continue
            except repo.LeaseLostError:
                log.error("lost the scheduler lease; command %s left for the next scheduler", command.id)
                self._stop.set()
                break
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

    def _apply(self, command: repo.Command) -> str:
        handler = COMMAND_HANDLERS.get(command.kind)
        if handler is None:
            raise NotImplementedError(f"the scheduler does not apply '{command.kind}' commands")
        return handler(self, command)

    def job(self, job_id: str | None):  # noqa: ANN201 - an APScheduler Job
        """The scheduled job `job_id`; LookupError naming the jobs there are."""
        job = self.scheduler.get_job(job_id) if job_id else None
        if job is None:
            known = ", ".join(j.id for j in self.scheduler.get_jobs()) or "none"
            raise LookupError(f"no scheduled job {job_id!r} (jobs: {known})")
        return job

    def submit_once(self, func: str, command: repo.Command, job_id: str, name: str, *, args: tuple = (),
                    kwargs: dict[str, Any] | None = None) -> None:
        """Run `func` once, now, as the run of `job_id` that `command` asked for."""
        self.scheduler.add_job(func, "date", run_date=dt.datetime.now(dt.UTC), args=args, kwargs=kwargs or {},
                               id=f"{job_id}{RUN_NOW_SEP}{command.id}", name=name, misfire_grace_time=None)


# --- how each kind of command is applied (every kind of `repo.COMMAND_KINDS` has one) ---------------------------------


def _run_now(service: SchedulerService, command: repo.Command) -> str:
    """A one-off run of a scheduled job (its own arguments) or of an on-demand job (the payload's kwargs)."""
    job_id = command.payload.get("job_id")
    kwargs = dict(command.payload.get("kwargs") or {})
    job = service.scheduler.get_job(job_id) if job_id else None
    if job is not None:
        kwargs = {**job.kwargs, **kwargs}
        if job_id in JOBS:
            catalog.check_kwargs(job_id, kwargs)
        service.submit_once(job.func_ref, command, job_id, f"{job.name} (run now)", args=job.args, kwargs=kwargs)
    else:
        spec = catalog.get(job_id)
        service.submit_once(spec.func, command, job_id, f"{spec.description} (run now)",
                            kwargs=catalog.check_kwargs(job_id, kwargs))
    return f"{job_id} submitted"


def _pause(service: SchedulerService, command: repo.Command) -> str:
    service.job(command.payload.get("job_id")).pause()
    return f"{command.payload['job_id']} paused"


def _resume(service: SchedulerService, command: repo.Command) -> str:
    job = service.job(command.payload.get("job_id")).resume()
    return f"{command.payload['job_id']} resumed; next run {job.next_run_time}"


def _reschedule(service: SchedulerService, command: repo.Command) -> str:
    payload = command.payload
    job = service.job(payload.get("job_id")).reschedule(cron_trigger(payload["cron"]))
    return f"{payload['job_id']} now '{payload['cron']}' UTC; next run {job.next_run_time}"


def _cancel(service: SchedulerService, command: repo.Command) -> str:
    from roadwork.platform.jobs.runner import cancel

    if not cancel(command.payload["job_id"]):
        raise LookupError(f"{command.payload['job_id']} is not running")
    return f"{command.payload['job_id']} cancelled"


def _rollback(service: SchedulerService, command: repo.Command) -> str:
    from roadwork.platform.registry.service import rollback

    result = rollback(service.engine, service.settings, to=command.payload.get("to"), reason=command.reason,
                      actor=command.requested_by, fence=service.fence)
    return f"champion rolled back to {result.version.label}"


def _approve(service: SchedulerService, command: repo.Command) -> str:
    from roadwork.platform.jobs.tasks import approve_candidate

    return approve_candidate(service.engine, service.settings, command.payload["version"],
                             actor=command.requested_by, reason=command.reason, fence=service.fence)


def _reject(service: SchedulerService, command: repo.Command) -> str:
    from roadwork.platform.evaluation.gate import reject_candidate

    reject_candidate(service.engine, command.payload["version"], actor=command.requested_by, reason=command.reason)
    return f"candidate {command.payload['version']} rejected"


def _create_ab_test(service: SchedulerService, command: repo.Command) -> str:
    from roadwork.platform.ab.service import create_ab_test

    payload = command.payload
    test_id = create_ab_test(service.engine, version_a=payload["a"], version_b=payload["b"],
                             sample_size=int(payload["sample_size"]), actor=command.requested_by)
    service.submit_once(JOBS["ab_test"].func, command, "ab_test", f"A/B test {test_id}",
                        kwargs={"test_id": test_id})
    return f"A/B test {test_id} created and submitted"


COMMAND_HANDLERS: dict[str, Callable[[SchedulerService, repo.Command], str]] = {
    "run_now": _run_now,
    "pause": _pause,
    "resume": _resume,
    "reschedule": _reschedule,
    "cancel": _cancel,
    "approve": _approve,
    "reject": _reject,
    "rollback": _rollback,
    "create_ab_test": _create_ab_test,
}

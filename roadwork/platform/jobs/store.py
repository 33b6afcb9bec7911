"""APScheduler's SQLAlchemy job store, with job state stored as JSON instead of pickles.

Jobs are module-level functions referenced by name with primitive arguments, and triggers are cron, interval
or date: all of it is plain data, so nothing read back from the database is ever unpickled. A row that cannot
be restored is parked (kept in the table, reported) instead of being deleted as the stock store does. A row
that names a job function by an older reference (before the catalog's `<id>_job` naming) is read as the
current one, which the next save of the row writes.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
from typing import Any

from apscheduler.job import Job
from apscheduler.jobstores.sqlalchemy import SQLAlchemyJobStore
from apscheduler.triggers.cron import CronTrigger
from apscheduler.triggers.date import DateTrigger
from apscheduler.triggers.interval import IntervalTrigger
from apscheduler.util import astimezone, datetime_to_utc_timestamp
from sqlalchemy import and_, select
from sqlalchemy.exc import IntegrityError

from roadwork.platform.jobs.catalog import migrate_func_ref

log = logging.getLogger(__name__)
STATE_FORMAT = "roadwork-job/1"


def _iso(value: dt.datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


def _dt(value: str | None) -> dt.datetime | None:
    return dt.datetime.fromisoformat(value) if value else None


def trigger_to_dict(trigger: Any) -> dict[str, Any]:
    if isinstance(trigger, CronTrigger):
        return {
            "type": "cron",
            "fields": {f.name: str(f) for f in trigger.fields},
            "timezone": str(trigger.timezone),
            "start_date": _iso(trigger.start_date),
            "end_date": _iso(trigger.end_date),
            "jitter": trigger.jitter,
        }
    if isinstance(trigger, IntervalTrigger):
        return {
            "type": "interval",
            "seconds": trigger.interval.total_seconds(),
            "timezone": str(trigger.timezone),
            "start_date": _iso(trigger.start_date),
            "end_date": _iso(trigger.end_date),
            "jitter": trigger.jitter,
        }
    if isinstance(trigger, DateTrigger):
        return {"type": "date", "run_date": _iso(trigger.run_date)}
    raise TypeError(f"cannot store a {type(trigger).__name__} trigger as JSON (use cron, interval or date)")


def trigger_from_dict(data: dict[str, Any]) -> Any:
    kind = data["type"]
    if kind == "cron":
        return CronTrigger(
            **data["fields"],
            timezone=astimezone(data["timezone"]),
            start_date=_dt(data["start_date"]),
            end_date=_dt(data["end_date"]),
            jitter=data["jitter"],
        )
    if kind == "interval":
        return IntervalTrigger(
            seconds=data["seconds"],
            timezone=astimezone(data["timezone"]),
            start_date=_dt(data["start_date"]),
            end_date=_dt(data["end_date"]),
            jitter=data["jitter"],
        )
    if kind == "date":
        return DateTrigger(run_date=_dt(data["run_date"]))
    raise ValueError(f"unknown trigger type {kind!r}")


def describe_trigger(data: dict[str, Any]) -> str:
    if data["type"] == "cron":
        f = data["fields"]
        return f"cron {f['minute']} {f['hour']} {f['day']} {f['month']} {f['day_of_week']} ({data['timezone']})"
    if data["type"] == "interval":
        return f"every {data['seconds']:g} s"
    return f"once at {data['run_date']}"


def dump_state(job: Job) -> bytes:
    state = job.__getstate__()
    if not isinstance(state["func"], str):
        raise TypeError(f"job {job.id}: the function must be importable by name (module:function)")
    out = {
        "format": STATE_FORMAT,
        "version": state["version"],
        "id": state["id"],
        "func": state["func"],
        "trigger": trigger_to_dict(state["trigger"]),
        "executor": state["executor"],
        "args": list(state["args"]),
        "kwargs": dict(state["kwargs"]),
        "name": state["name"],
        "misfire_grace_time": state["misfire_grace_time"],
        "coalesce": state["coalesce"],
        "max_instances": state["max_instances"],
        "next_run_time": _iso(state["next_run_time"]),
    }
    return json.dumps(out).encode()  # fails loudly on a non-primitive argument


def load_state(raw: bytes) -> dict[str, Any]:
    data = json.loads(raw)
    if data.get("format") != STATE_FORMAT:
        raise ValueError("not a roadwork JSON job state")
    return data | {"func": migrate_func_ref(data["func"])}


class JsonJobStore(SQLAlchemyJobStore):
    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.parked: dict[str, str] = {}  # job id -> why it could not be restored

    def add_job(self, job: Job) -> None:
        insert = self.jobs_t.insert().values(
            id=job.id, next_run_time=datetime_to_utc_timestamp(job.next_run_time), job_state=dump_state(job)
        )
        with self.engine.begin() as conn:
            try:
                conn.execute(insert)
            except IntegrityError as exc:
                from apscheduler.jobstores.base import ConflictingIdError

                raise ConflictingIdError(job.id) from exc

    def update_job(self, job: Job) -> None:
        from apscheduler.jobstores.base import JobLookupError

        update = (
            self.jobs_t.update()
            .values(next_run_time=datetime_to_utc_timestamp(job.next_run_time), job_state=dump_state(job))
            .where(self.jobs_t.c.id == job.id)
        )
        with self.engine.begin() as conn:
            if conn.execute(update).rowcount == 0:
                raise JobLookupError(job.id)

    def _reconstitute_job(self, job_state: bytes) -> Job:
        data = load_state(job_state)
        state = dict(data)
        state.pop("format")
        state["trigger"] = trigger_from_dict(data["trigger"])
        state["args"] = tuple(data["args"])
        state["next_run_time"] = _dt(data["next_run_time"])
        state["jobstore"] = self
        job = Job.__new__(Job)
        job.__setstate__(state)
        job._scheduler = self._scheduler
        job._jobstore_alias = self._alias
        # Resolve the function now, so that a job whose code moved is parked here, not failed at run time.
        from apscheduler.util import ref_to_obj

        job.func = ref_to_obj(job.func_ref)
        return job

    def _get_jobs(self, *conditions: Any) -> list[Job]:
        jobs = []
        query = select(self.jobs_t.c.id, self.jobs_t.c.job_state).order_by(self.jobs_t.c.next_run_time)
        query = query.where(and_(*conditions)) if conditions else query
        with self.engine.begin() as conn:
            rows = conn.execute(query).all()
        for row in rows:
            try:
                jobs.append(self._reconstitute_job(row.job_state))
                self.parked.pop(row.id, None)
            except Exception as exc:  # noqa: BLE001 - any broken row is parked, never dropped
                if row.id not in self.parked:
                    log.error("job %r cannot be restored and is parked: %s", row.id, exc)
                self.parked[row.id] = f"{type(exc).__name__}: {exc}"
        return jobs


def stored_jobs(engine: Any) -> list[dict[str, Any]]:
    """Rows of the job table decoded without a running scheduler (for `jobs list` and the dashboard)."""
    from roadwork.db.models import ScheduledJob

    out = []
    with engine.connect() as conn:
        for row in conn.execute(select(ScheduledJob.id, ScheduledJob.next_run_time, ScheduledJob.job_state)):
            try:
                data = load_state(row.job_state)
                trigger = describe_trigger(data["trigger"])
                func, error = data["func"], None
            except Exception as exc:  # noqa: BLE001
                trigger, func, error = "?", "?", f"unreadable: {exc}"
            next_run = (
                dt.datetime.fromtimestamp(row.next_run_time, dt.UTC).replace(tzinfo=None)
                if row.next_run_time is not None
                else None
            )
            out.append({"id": row.id, "func": func, "trigger": trigger, "next_run_time": next_run,
                        "paused": row.next_run_time is None, "error": error})
    return sorted(out, key=lambda j: j["id"])

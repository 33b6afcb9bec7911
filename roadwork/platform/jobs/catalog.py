"""Every job the scheduler knows, declared once: id, function, default schedule, timeout and arguments.

A new job is one function named `<id>_job` in `functions` and one `JobSpec` here; the scheduler (what to
register and with which cron), the child runner (what to run, with which timeout), the job store (old function
references), the settings overrides and the dashboard's Run now form all read this table. Functions are named by
`module:function` strings, so importing the catalog imports nothing heavy.

A job with a timeout runs its work in a child process that is killed at the timeout (training, evaluation,
mining, pseudo-labels, A/B tests); a job without one runs in the scheduler's thread pool (standings, model age).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from roadwork.settings import SchedulerSettings, Settings, SettingsError

FUNCTIONS_MODULE = "roadwork.platform.jobs.functions"
HOUR_S = 3600.0


class _Required:
    def __repr__(self) -> str:
        return "REQUIRED"


REQUIRED: Any = _Required()  # the default of an argument a run must be given


@dataclass(frozen=True)
class JobArg:
    """One argument of a job: JSON-able, so it travels in a command's payload and the job store."""

    name: str
    type: type  # str, int, float or bool
    default: Any = REQUIRED
    help: str = ""

    @property
    def required(self) -> bool:
        return self.default is REQUIRED


@dataclass(frozen=True)
class JobSpec:
    id: str
    work: str  # module:function doing the work: in a child process when `timeout_s` is set, else in a thread
    description: str
    cron: str | None  # default schedule (UTC crontab); None: on demand only (run now)
    timeout_s: float | None  # default wall-clock limit of the child process; None: runs in the scheduler's thread
    args: tuple[JobArg, ...] = ()
    # A run left `started` by a scheduler that died: False, recorded as failed; True, also run again once the next
    # scheduler starts (for idempotent jobs runnable without arguments, such as evaluations).
    requeue_after_crash: bool = False

    @property
    def func(self) -> str:
        """The scheduler's entry point, `functions.<id>_job`: the reference stored with the job."""
        return f"{FUNCTIONS_MODULE}:{self.id}_job"

    @property
    def scheduled(self) -> bool:
        return self.cron is not None

    @property
    def in_child(self) -> bool:
        return self.timeout_s is not None

    @property
    def runnable_without_arguments(self) -> bool:
        return not any(a.required for a in self.args)


JOBS: dict[str, JobSpec] = {spec.id: spec for spec in (
    JobSpec("evaluate_champion", "roadwork.platform.jobs.tasks:evaluate_champion_task",
            "Evaluate the champion (validation and replay)", "17 * * * *", HOUR_S, requeue_after_crash=True),
    JobSpec("train", "roadwork.platform.jobs.tasks:train_task",
            "Train, distil (stock format), evaluate, gate and deploy",
            "0 3 * * 1", 6 * HOUR_S,
            (JobArg("config", str, "", "preset file; empty: the embedded tiny preset"),)),
    JobSpec("distill", "roadwork.platform.jobs.tasks:distill_task", "Distil a student the stock miner loads", None,
            6 * HOUR_S, (JobArg("teacher", str, "", "teacher version; empty: the newest version that is not a student"),
                         JobArg("student", str, "dinov2", "student architecture: dinov2 or vit"))),
    JobSpec("mine", "roadwork.platform.mining:mine_job", "Mine hard negatives with the champion", "0 2 * * *", HOUR_S),
    JobSpec("leaderboard", "roadwork.platform.standings:leaderboard_job", "Poll the standings", "*/15 * * * *", None),
    JobSpec("model_age", "roadwork.platform.model_age:model_age_task", "Reward-decay countdown", "0 6 * * *", None),
    JobSpec("pseudo_label", "roadwork.platform.pseudolabel:pseudo_label_job", "SAM 3 pseudo-labels", None,
            6 * HOUR_S, (JobArg("pool", str, "", "images to label; empty: the champion's training data"),)),
    JobSpec("ab_test", "roadwork.platform.ab.service:ab_test_job", "Run an A/B test", None, HOUR_S,
            (JobArg("test_id", int, help="the A/B test to run"),)),
)}

# `scheduler.timeouts_s` keys written before the catalog: one timeout shared by the evaluating jobs.
LEGACY_TIMEOUT_KEYS = {"evaluate": ("evaluate_champion", "ab_test")}
# Modules that held the job functions before (as `<id>`, not `<id>_job`): stored jobs may still name them.
LEGACY_FUNCTION_MODULES = ("roadwork.platform.jobs", FUNCTIONS_MODULE)


def get(job_id: str) -> JobSpec:
    """The spec of `job_id`; LookupError listing the jobs that exist."""
    try:
        return JOBS[job_id]
    except KeyError:
        raise LookupError(f"no job {job_id!r} (jobs: {', '.join(sorted(JOBS))})") from None


def check_overrides(scheduler: SchedulerSettings) -> None:
    """SettingsError naming the key when `scheduler.crons` or `scheduler.timeouts_s` names no job of the catalog,
    or gives a timeout to a job that runs in the scheduler's thread. (Cron syntax and positive timeouts are
    checked when the settings load.)"""
    errors = [f"setting 'scheduler.crons.{job_id}': no scheduled job {job_id!r}"
              for job_id in scheduler.crons if job_id not in JOBS or not JOBS[job_id].scheduled]
    for key in scheduler.timeouts_s:
        if key in LEGACY_TIMEOUT_KEYS:
            continue
        if key not in JOBS:
            errors.append(f"setting 'scheduler.timeouts_s.{key}': no job {key!r}")
        elif not JOBS[key].in_child:
            errors.append(f"setting 'scheduler.timeouts_s.{key}': {key} runs in the scheduler's thread and has no "
                          "timeout")
    if errors:
        known = ", ".join(sorted(JOBS))
        raise SettingsError("invalid settings:\n  " + "\n  ".join(errors) + f"\n  (jobs: {known})")


def cron(settings: Settings, job_id: str) -> str | None:
    """The cron of a scheduled job: the `scheduler.crons` override, else the catalog's default."""
    check_overrides(settings.scheduler)
    return settings.scheduler.crons.get(job_id) or get(job_id).cron


def timeout_s(settings: Settings, job_id: str) -> float | None:
    """The child-process timeout of a job (override, then legacy key, then default); None for thread jobs and
    ids outside the catalog."""
    spec = JOBS.get(job_id)
    if spec is None or not spec.in_child:
        return None
    check_overrides(settings.scheduler)
    overrides = settings.scheduler.timeouts_s
    if job_id in overrides:
        return overrides[job_id]
    legacy = next((k for k, ids in LEGACY_TIMEOUT_KEYS.items() if job_id in ids and k in overrides), None)
    return overrides[legacy] if legacy else spec.timeout_s


def check_kwargs(job_id: str, kwargs: dict[str, Any]) -> dict[str, Any]:
    """`kwargs` for a run of `job_id`, checked against its declared arguments; ValueError saying what is wrong."""
    spec = get(job_id)
    accepted = {a.name: a for a in spec.args}
    unknown = sorted(set(kwargs) - set(accepted))
    if unknown:
        takes = ", ".join(accepted) or "no arguments"
        raise ValueError(f"{job_id} takes {takes}; not {', '.join(unknown)}")
    missing = [a.name for a in spec.args if a.required and a.name not in kwargs]
    if missing:
        raise ValueError(f"{job_id} needs {', '.join(missing)}")
    for name, value in kwargs.items():
        want = accepted[name].type
        ok = isinstance(value, want) and not (want is not bool and isinstance(value, bool))
        if want is float and isinstance(value, int) and not isinstance(value, bool):
            ok = True
        if not ok:
            raise ValueError(f"{job_id}: {name} must be of type {want.__name__}, got {value!r}")
    return dict(kwargs)


def migrate_func_ref(ref: str) -> str:
    """The current reference of a stored job function: `...jobs:train` or `...jobs.functions:train` (before the
    `<id>_job` naming) becomes `...jobs.functions:train_job`; anything else is returned as it is."""
    module, _, name = ref.partition(":")
    if module in LEGACY_FUNCTION_MODULES and name in JOBS:
        return JOBS[name].func
    return ref

"""A scheduler process for the fault tests: `python -m tests.faults.scheduler_proc` with ROADWORK_HOME set.

The real `SchedulerService` (lease, heartbeat thread, recovery, commands), plus one extra job, `sleeper`, started
at once: a long child process under the runner, as a training run would be. A test kills this process with
SIGKILL and checks what the next scheduler finds.
"""

from __future__ import annotations

import datetime as dt
import sys

from roadwork.db.engine import make_engine, migrate
from roadwork.platform.jobs.runner import run_in_subprocess
from roadwork.platform.jobs.scheduler import SchedulerService
from roadwork.settings import load_settings


def sleeper_job() -> dict:
    settings = load_settings()
    return run_in_subprocess("sleeper", "tests.platform.jobfuncs:sleepy", logs_dir=settings.logs_dir,
                             timeout_s=900, seconds=600)


def main() -> int:
    settings = load_settings()
    engine = make_engine(settings.db_url)
    migrate(engine)
    service = SchedulerService(engine, settings)
    service.start()
    service.scheduler.add_job("tests.faults.scheduler_proc:sleeper_job", "date", id="sleeper",
                              run_date=dt.datetime.now(dt.UTC))
    print(f"scheduler {service.holder} serving", flush=True)
    service.serve()
    service.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""How long a scheduler killed with `kill -9` keeps the next one out: the lease takeover time, in both cases.

Each run starts the real `roadwork scheduler` in a fresh process against a temporary home, waits until it holds
the lease, kills it with SIGKILL and times, from the kill, how long a new scheduler (this process, retrying every
`--retry-s`) takes to start:

- `same host`: the lease names this machine and a pid that is gone, so the takeover is immediate.
- `other host`: the lease is rewritten to name another machine (whose processes cannot be checked, as for a
  scheduler on another machine sharing the database): the new one must wait until the heartbeat is older than
  `scheduler.lease_timeout_s` (here `--timeout-s`, 60 s by default in the settings).

    python bench/scheduler_takeover.py                 # 3 runs of each, lease timeout 10 s
    python bench/scheduler_takeover.py --runs 5 --timeout-s 20
"""

from __future__ import annotations

import argparse
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from sqlalchemy import update

from roadwork.db import models as m
from roadwork.db import repo
from roadwork.db.engine import (
    dispose_engines,
    make_engine,
    migrate,
    read_session,
    write_session,
)
from roadwork.platform.jobs.scheduler import SchedulerBusyError, SchedulerService
from roadwork.settings import load_settings


def one(home: Path, other_host: bool, retry_s: float) -> tuple[float, float]:
    """(seconds from the kill to the new scheduler's start, age of the dead one's last heartbeat then)."""
    env = dict(os.environ, ROADWORK_HOME=str(home), PYTHONPATH=str(ROOT))
    proc = subprocess.Popen([sys.executable, "-m", "roadwork.cli", "scheduler"], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    settings = load_settings()
    engine = make_engine(settings.db_url)
    migrate(engine)
    while True:
        with read_session(engine) as s:
            lease = repo.current_lease(s)
        if lease is not None and lease.pid == proc.pid:
            break
        if proc.poll() is not None:
            raise SystemExit(f"the scheduler exited with {proc.returncode}")
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    killed = time.monotonic()
    proc.wait()
    if other_host:
        with write_session(engine) as s:
            s.execute(update(m.SchedulerLease).values(hostname="another-host"))
    while True:
        service = SchedulerService(engine, settings)
        try:
            service.start()
        except SchedulerBusyError:
            time.sleep(retry_s)
            continue
        took = time.monotonic() - killed
        with read_session(engine) as s:
            event = repo.latest_audit_event(s, service.holder, ("scheduler_lease_taken_over",))
        service.stop()
        break
    dispose_engines()
    return took, event.details["heartbeat_age_s"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--timeout-s", type=float, default=10.0, help="scheduler.lease_timeout_s")
    parser.add_argument("--retry-s", type=float, default=0.5, help="how often the new scheduler tries to start")
    args = parser.parse_args()
    os.environ["ROADWORK_SCHEDULER__LEASE_TIMEOUT_S"] = str(args.timeout_s)
    os.environ["ROADWORK_SCHEDULER__HEARTBEAT_S"] = "2"
    for label, other in (("same host", False), ("other host", True)):
        took = []
        for _ in range(args.runs):
            with tempfile.TemporaryDirectory(prefix="roadwork-takeover-") as tmp:
                os.environ["ROADWORK_HOME"] = tmp
                took.append(one(Path(tmp), other, args.retry_s))
        times = [t for t, _ in took]
        ages = [a for _, a in took]
        print(f"{label:10}  takeover after kill -9: median {statistics.median(times):6.2f} s "
              f"(min {min(times):.2f}, max {max(times):.2f}); dead holder's heartbeat age then: median "
              f"{statistics.median(ages):.1f} s; lease timeout {args.timeout_s:.0f} s, heartbeat 2 s")


if __name__ == "__main__":
    main()

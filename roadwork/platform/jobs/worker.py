"""Runs one job function in its own process: `python -m roadwork.platform.jobs.worker TARGET KWARGS_JSON RESULT_PATH
[PARENT_PID]`.

The scheduler starts long jobs this way so that a hung or crashing job can be killed at its timeout (or on
a cancel command) without taking the scheduler with it. The function's JSON-able return value is written to
RESULT_PATH (temp file + rename); its output goes to the job's log file; exit status 0 means success.

A watchdog thread ends the worker's whole process group when its parent (the scheduler) is gone: the parent
pid (PARENT_PID) changes when the parent dies, `kill -9` included, so a job never runs on unsupervised for
longer than `WATCH_S`. (A scheduler that starts later also ends the groups recorded on runs left `started`.)
"""

from __future__ import annotations

import json
import os
import signal
import sys
import tempfile
import threading
import time
import traceback
from pathlib import Path

from apscheduler.util import ref_to_obj

WATCH_S = 1.0


def _watch_parent(parent: int) -> None:
    while os.getppid() == parent:
        time.sleep(WATCH_S)
    print(f"the scheduler (pid {parent}) is gone; ending this job", flush=True)
    os.killpg(os.getpgrp(), signal.SIGKILL)


def main(argv: list[str]) -> int:
    target, kwargs_json, result_path, *rest = argv
    # PARENT_PID comes from the runner: a parent that died before this line must not be mistaken for the process
    # that adopted the orphan.
    parent = int(rest[0]) if rest else os.getppid()
    threading.Thread(target=_watch_parent, args=(parent,), daemon=True, name="parent-watchdog").start()
    func = ref_to_obj(target)
    try:
        result = func(**json.loads(kwargs_json))
    except Exception:  # noqa: BLE001 - the traceback goes to the log; the exit status tells the scheduler
        traceback.print_exc()
        return 1
    out = Path(result_path)
    fd, tmp = tempfile.mkstemp(dir=out.parent, prefix=f".{out.name}.")
    with os.fdopen(fd, "w") as fh:
        json.dump(result if isinstance(result, dict) else {"value": result}, fh, default=str)
    os.replace(tmp, out)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

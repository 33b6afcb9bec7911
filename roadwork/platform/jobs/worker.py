"""Runs one job function in its own process: `python -m roadwork.platform.jobs.worker TARGET KWARGS_JSON RESULT_PATH`.

The scheduler starts long jobs this way so that a hung or crashing job can be killed at its timeout (or on
a cancel command) without taking the scheduler with it. The function's JSON-able return value is written to
RESULT_PATH (temp file + rename); its output goes to the job's log file; exit status 0 means success.
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
import traceback
from pathlib import Path

from apscheduler.util import ref_to_obj


def main(argv: list[str]) -> int:
    target, kwargs_json, result_path = argv
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

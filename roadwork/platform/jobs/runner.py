"""Long jobs in a child process with a timeout, a log file and a cancel path.

`run_in_subprocess` is called from a scheduler thread; it blocks until the child exits, is killed at its
timeout, or is cancelled (`cancel(job_id)` from the command loop). A killed or failed child raises
`JobFailed`, carrying the log path, which the scheduler's listener records with the run. `run_job` is the
one way a catalog job runs: its work in a child (catalog timeout, or the settings' override) or in this thread.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

from apscheduler.util import ref_to_obj

from roadwork.clock import utcnow
from roadwork.platform.jobs import catalog
from roadwork.settings import load_settings

_running: dict[str, subprocess.Popen] = {}
_cancelled: set[int] = set()
_lock = threading.Lock()


class JobFailed(RuntimeError):
    def __init__(self, message: str, log_path: Path) -> None:
        super().__init__(f"{message} (log: {log_path})")
        self.log_path = str(log_path)


def log_path_for(logs_dir: Path, job_id: str) -> Path:
    return Path(logs_dir) / "jobs" / f"{job_id}-{utcnow().strftime('%Y%m%dT%H%M%S%fZ')}.log"


def _kill(proc: subprocess.Popen) -> None:
    try:
        os.killpg(proc.pid, signal.SIGKILL)  # the whole group: the job may have children of its own
    except ProcessLookupError:
        pass


def run_in_subprocess(job_id: str, target: str, *, logs_dir: Path, timeout_s: float, **kwargs: Any) -> dict:
    """Run `target(**kwargs)` (a `module:function` reference) in a child process; returns its result dict."""
    log_path = log_path_for(logs_dir, job_id)
    log_path.parent.mkdir(parents=True, exist_ok=True)
    result_path = log_path.with_suffix(".result.json")
    argv = [sys.executable, "-m", "roadwork.platform.jobs.worker", target, json.dumps(kwargs), str(result_path),
            str(os.getpid())]
    with open(log_path, "w") as log:
        log.write(f"# {job_id}: {target}({kwargs}) started {utcnow().isoformat()}Z, timeout {timeout_s:.0f} s\n")
        log.flush()
        proc = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
                                env={**os.environ, "PYTHONUNBUFFERED": "1"})
        with _lock:
            _running[job_id] = proc
        try:
            code = proc.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            _kill(proc)
            proc.wait()
            raise JobFailed(f"{job_id} timed out after {timeout_s:.0f} s and was killed", log_path) from None
        finally:
            with _lock:
                _running.pop(job_id, None)
    with _lock:
        cancelled = proc.pid in _cancelled
        _cancelled.discard(proc.pid)
    if cancelled:
        raise JobFailed(f"{job_id} was cancelled", log_path)
    if code != 0:
        tail = log_path.read_text().strip().splitlines()[-1:] or [""]
        raise JobFailed(f"{job_id} exited with status {code}: {tail[0][:300]}", log_path)
    result = json.loads(result_path.read_text()) if result_path.exists() else {}
    result_path.unlink(missing_ok=True)
    return result | {"log_path": str(log_path)}


def run_job(job_id: str, **kwargs: Any) -> dict:
    """Run the work of catalog job `job_id` with `kwargs`: in a child process killed at the job's timeout, or, for
    a job without one, here in the calling (scheduler) thread."""
    spec = catalog.get(job_id)
    if not spec.in_child:
        return ref_to_obj(spec.work)(**kwargs)
    settings = load_settings()
    return run_in_subprocess(job_id, spec.work, logs_dir=settings.logs_dir,
                             timeout_s=catalog.timeout_s(settings, job_id), **kwargs)


def running_jobs() -> list[str]:
    with _lock:
        return sorted(_running)


def running_children() -> dict[str, int]:
    """job id -> pid of each running child (also its process group id: children start in a session of their own)."""
    with _lock:
        return {job_id: proc.pid for job_id, proc in _running.items()}


def cancel(job_id: str) -> bool:
    """Kill the running child of `job_id`; False if none is running."""
    with _lock:
        proc = _running.get(job_id)
        if proc is None:
            return False
        _cancelled.add(proc.pid)
    _kill(proc)
    return True

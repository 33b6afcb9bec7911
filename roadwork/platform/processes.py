"""Processes of this machine: whether one still runs, whether it is a roadwork job worker, ending a group.

Used where a lease or lock names a process (a holder on this machine whose process is gone is taken over at
once) and by the scheduler's recovery (the child process groups a dead scheduler left running are ended, but
only after checking that the recorded pid still is a roadwork worker, so a recycled pid is never killed).
"""

from __future__ import annotations

import os
import signal
from pathlib import Path

WORKER_MODULE = "roadwork.platform.jobs.worker"


def process_alive(pid: int) -> bool:
    """Whether process `pid` of this machine still runs (a zombie, killed but not yet reaped, does not)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by someone else
        return True
    try:  # Linux: state is the field after the parenthesised command name
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return True
    return state not in ("Z", "X")


def command_line(pid: int) -> list[str] | None:
    """The arguments process `pid` was started with (Linux /proc), or None when it is gone or unreadable."""
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return None
    return [part.decode(errors="replace") for part in raw.split(b"\0") if part]


def is_job_worker(pid: int, logs_dir: Path | None = None) -> bool:
    """Whether `pid` runs and is a roadwork job worker (`python -m roadwork.platform.jobs.worker ...`); with
    `logs_dir`, one whose result file lies under it (a worker of this home, not of another registry's scheduler)."""
    argv = command_line(pid)
    if not argv or WORKER_MODULE not in argv or not process_alive(pid):
        return False
    return logs_dir is None or any(part.startswith(f"{Path(logs_dir)}{os.sep}") for part in argv)


def is_roadwork_process(pid: int) -> bool:
    """Whether `pid` runs and its command line mentions roadwork (a scheduler, the CLI, a worker); a pid
    recycled by an unrelated program does not."""
    argv = command_line(pid)
    if argv is None:
        return process_alive(pid)  # no /proc (not Linux): trust the pid
    return process_alive(pid) and any("roadwork" in part for part in argv)


def end_group(pgid: int) -> bool:
    """SIGKILL process group `pgid` (a job child and whatever it started); False if it was already gone."""
    try:
        os.killpg(pgid, signal.SIGKILL)
    except ProcessLookupError:
        return False
    return True

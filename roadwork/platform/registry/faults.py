"""A test hook for crash tests: `ROADWORK_FAULT_AT=<step>` makes the process SIGKILL itself at that step, and
`ROADWORK_FAULT_AT=<step>+<seconds>` that many seconds after it, wherever the process then is (a seeded moment
inside the work that follows, not only the named boundaries).

Steps are named where a deploy or a training run calls `fault_point` (see `STEPS`). Nothing happens when the variable is unset,
which is always the case outside the fault tests (tests/faults/); an unknown step name is an error, so that a
typo in a test cannot silently inject nothing.
"""

from __future__ import annotations

import os
import signal
import threading

ENV = "ROADWORK_FAULT_AT"
DEPLOY_STEPS = (
    "after_lock",  # the deploy lock is held, nothing written yet
    "mid_export",  # the export is half written in its staging folder
    "after_export",  # the export is in place and verified
    "after_release_copy",  # a release folder is in place, the link not yet switched
    "after_intent",  # the intent is recorded, no link switched
    "after_link_switch",  # the first target's `current` link points at the new release, alias not moved
    "before_alias_move",  # every target switched and smoke-tested, intent `published`, alias not moved
    "after_alias_move",  # alias moved, the lock not yet released
)
TRAINING_STEPS = (
    "after_checkpoint",  # a training run's checkpoint is saved; not yet calibrated or registered
)
STEPS = DEPLOY_STEPS + TRAINING_STEPS


def _kill() -> None:
    os.kill(os.getpid(), signal.SIGKILL)


def _wanted() -> tuple[str, float | None] | None:
    wanted = os.environ.get(ENV)
    if not wanted:
        return None
    step, plus, delay = wanted.partition("+")
    if step not in STEPS:
        raise ValueError(f"{ENV}={wanted!r} is not a fault step; known steps: {', '.join(STEPS)}")
    if not plus:
        return step, None
    try:
        seconds = float(delay)
    except ValueError:
        seconds = -1.0
    if not 0.0 <= seconds < 3600.0:
        raise ValueError(f"{ENV}={wanted!r}: the delay after '+' must be seconds in [0, 3600)")
    return step, seconds


def fault_point(step: str) -> None:
    """SIGKILL this process if `ROADWORK_FAULT_AT` names `step` (at once, or after its delay)."""
    wanted = _wanted()
    if wanted is None or wanted[0] != step:
        return
    if wanted[1] is None:
        _kill()
    timer = threading.Timer(wanted[1], _kill)
    timer.daemon = True
    timer.start()

"""A test hook for crash tests: `ROADWORK_FAULT_AT=<step>` makes the process SIGKILL itself at that step.

Steps are named where a deploy or a training run calls `fault_point` (see `STEPS`). Nothing happens when the variable is unset,
which is always the case outside the fault tests (tests/faults/); an unknown step name is an error, so that a
typo in a test cannot silently inject nothing.
"""

from __future__ import annotations

import os
import signal

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


def fault_point(step: str) -> None:
    """SIGKILL this process if `ROADWORK_FAULT_AT` names `step`."""
    wanted = os.environ.get(ENV)
    if not wanted:
        return
    if wanted not in STEPS:
        raise ValueError(f"{ENV}={wanted!r} is not a fault step; known steps: {', '.join(STEPS)}")
    if wanted == step:
        os.kill(os.getpid(), signal.SIGKILL)

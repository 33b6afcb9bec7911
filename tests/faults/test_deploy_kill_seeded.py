"""kill -9 at seeded moments inside twenty deploys (not only at the named steps): whatever the deploy was doing,
the champion is what is published, the history is intact, nothing half-written sits under a final name, and the
next deploy works."""

from __future__ import annotations

import random
import signal
import time

import pytest

from roadwork.platform.registry import service as registry
from tests.faults.checks import assert_consistent
from tests.faults.conftest import register, run_cli

SEED = 20261208
DEPLOYS = 20


@pytest.mark.slow
def test_kill_at_twenty_seeded_moments_of_deploys(engine, two_targets, tiny_checkpoint) -> None:
    settings = two_targets
    first, probe, *versions = register(engine, settings, tiny_checkpoint, n=DEPLOYS + 2)
    registry.deploy(engine, settings, first.version, actor="t", reason="first")
    start = time.monotonic()
    registry.deploy(engine, settings, probe.version, actor="t", reason="how long a deploy takes here")
    span = 3 * (time.monotonic() - start)  # a fresh process also imports what the deploy needs: kill within it
    rng = random.Random(SEED)

    champion, killed = probe, 0
    for i, version in enumerate(versions):  # each never published before: export, release copy, switch, alias
        delay = rng.uniform(0.0, span)
        done = run_cli("deploy", version.version, "--reason", f"seeded kill {i}",
                       ROADWORK_FAULT_AT=f"after_lock+{delay:.3f}")
        assert done.returncode in (0, -signal.SIGKILL), done.stderr[-2000:]
        killed += done.returncode == -signal.SIGKILL
        now = assert_consistent(engine, settings)  # this process is the fresh one: its first read reconciles
        assert now is not None and now.id in (champion.id, version.id), (i, delay, now)
        if done.returncode == 0:
            assert now.id == version.id
        champion = now
    print(f"\n{DEPLOYS} deploys, kill moments uniform in [0, {span:.2f}] s after the lock: {killed} killed, "
          f"{DEPLOYS - killed} finished first; all consistent")
    assert killed >= DEPLOYS // 4, "the seeded moments should mostly fall inside the deploy"

    last = registry.deploy(engine, settings, first.version, actor="t", reason="after the faults")
    assert assert_consistent(engine, settings).id == last.version.id == first.id


@pytest.mark.parametrize("value", ["after_lock+", "after_lock+soon", "after_lock+-1", "after_lok+0.5"])
def test_a_malformed_delayed_fault_is_refused(value, clean_env) -> None:
    from roadwork.platform.registry.faults import fault_point

    clean_env.setenv("ROADWORK_FAULT_AT", value)  # a typo must not silently inject nothing
    with pytest.raises(ValueError, match="ROADWORK_FAULT_AT"):
        fault_point("after_lock")

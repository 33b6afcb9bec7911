"""A fault-test worker: deploys and rolls back at random for a bounded time, as an operator or a job would.

Run as `python -m tests.faults.worker SECONDS SEED VERSION...` with ROADWORK_HOME set. Prints one JSON line of
outcome counts. Exits 0 when every operation succeeded or failed with a clear, expected message (the deploy lock
is busy, the version is already the champion, nothing to roll back to); anything else is a traceback and exit 1.
"""

from __future__ import annotations

import json
import random
import sys
import time
from collections import Counter

from roadwork.db.engine import make_engine
from roadwork.platform.registry import service as registry
from roadwork.settings import load_settings

EXPECTED = ("already the champion", "nothing to roll back")


def main(seconds: float, seed: int, versions: list[str]) -> int:
    settings = load_settings()
    engine = make_engine(settings.db_url)
    rng = random.Random(seed)
    outcomes: Counter[str] = Counter()
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            if rng.random() < 0.6:
                registry.deploy(engine, settings, rng.choice(versions), actor=f"worker-{seed}", reason="fault test")
            else:
                registry.rollback(engine, settings, reason="fault test", actor=f"worker-{seed}")
            outcomes["ok"] += 1
        except registry.DeployBusyError as exc:
            assert "another deploy is in progress" in str(exc), exc
            outcomes["busy"] += 1
        except registry.DeployError as exc:
            if not any(text in str(exc) for text in EXPECTED):
                raise
            outcomes["refused"] += 1
    print(json.dumps(outcomes))
    return 0


if __name__ == "__main__":
    sys.exit(main(float(sys.argv[1]), int(sys.argv[2]), sys.argv[3:]))

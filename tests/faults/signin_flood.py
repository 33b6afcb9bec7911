"""The processes of a sign-in flood: failed sign-ins with the real argon2 cost, and a heartbeat-sized writer.

Run as a script (`python tests/faults/signin_flood.py ROLE ...`) with ROADWORK_HOME set and PYTHONPATH naming
the tree whose `roadwork` to use: it imports nothing from the tests, so the benchmark can run it against an
older checkout too. Each prints one JSON line and exits 0; an unexpected error is a traceback and exit 1.

- `flood N ADDRESS TAG`: N failed sign-ins (distinct unknown names, and wrong passwords of `olga`) from ADDRESS.
  Counts the outcomes: "failed" (wrong name or password), "refused" (a limit said try again later), and any
  other error by its first line; "database is locked" reaching the user is such an error.
- `burn N`: N argon2 checks and no database (the CPU load of a flood alone, for comparison).
- `writer STOPFILE`: renews the scheduler lease (the scheduler's heartbeat write, one short transaction) every
  50 ms until STOPFILE exists; reports each write's latency and every error.
"""

from __future__ import annotations

import inspect
import json
import sys
import time
from collections import Counter
from pathlib import Path

from roadwork.db import repo
from roadwork.db.engine import make_engine, write_session
from roadwork.platform import users
from roadwork.settings import load_settings


def _error(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"[:200]


def flood(n: int, address: str, tag: str) -> dict:
    settings = load_settings()
    engine = make_engine(settings.db_url)
    # The same call on the old code (no limits per address): only the arguments it takes.
    extra = {"address": address, "limits": settings.auth} \
        if "address" in inspect.signature(users.authenticate).parameters else {}
    outcomes: Counter[str] = Counter()
    seconds: dict[str, list[float]] = {}  # by outcome
    for i in range(n):
        name = "olga" if i % 4 == 3 else f"{tag}-{i}"
        started = time.perf_counter()
        try:
            user = users.authenticate(engine, name, f"wrong guess {i}", **extra)
            outcome = "failed" if user is None else "signed in"
        except users.SignInLocked:
            outcome = "refused"
        except Exception as exc:  # noqa: BLE001 - counted: this is what the test looks for
            outcome = _error(exc)
        outcomes[outcome] += 1
        seconds.setdefault(outcome, []).append(time.perf_counter() - started)
    return {"role": "flood", "outcomes": dict(outcomes), "seconds": seconds}


def burn(n: int) -> dict:
    stored = users.hash_password("not the password")
    seconds = []
    for i in range(n):
        started = time.perf_counter()
        users.verify_password(stored, f"wrong guess {i}")
        seconds.append(time.perf_counter() - started)
    return {"role": "burn", "outcomes": {"failed": n}, "seconds": {"failed": seconds}}


def writer(stop: Path) -> dict:
    settings = load_settings()
    engine = make_engine(settings.db_url)
    with write_session(engine) as session:
        ok, _ = repo.acquire_lease(session, holder="flood-writer", hostname="test", pid=0, timeout_s=0)
    assert ok
    latencies, errors = [], Counter()
    while not stop.exists():
        started = time.perf_counter()
        try:
            with write_session(engine) as session:
                if not repo.renew_lease(session, "flood-writer"):
                    errors["lease lost"] += 1
            latencies.append(time.perf_counter() - started)
        except Exception as exc:  # noqa: BLE001 - counted
            errors[_error(exc)] += 1
        time.sleep(0.05)
    return {"role": "writer", "latencies": latencies, "errors": dict(errors)}


def main(argv: list[str]) -> int:
    role, *args = argv
    if role == "flood":
        out = flood(int(args[0]), args[1], args[2])
    elif role == "burn":
        out = burn(int(args[0]))
    else:
        out = writer(Path(args[0]))
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

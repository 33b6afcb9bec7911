"""Fault: a sign-in flood (several processes, real argon2 at its default cost) while another process does the
scheduler's heartbeat write in a loop. No write fails, no "database is locked" reaches a user, and the writes
stay short next to a password check (the sign-ins check passwords with no transaction open)."""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
from pathlib import Path

import pytest

from roadwork.platform import users
from tests.conftest import ROOT

WORKER = ROOT / "tests" / "faults" / "signin_flood.py"


def start(*args: str) -> subprocess.Popen[str]:
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    return subprocess.Popen([sys.executable, str(WORKER), *args], env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


def result(proc: subprocess.Popen[str]) -> dict:
    out, err = proc.communicate(timeout=600)
    assert proc.returncode == 0, err[-2000:]
    return json.loads(out.strip().splitlines()[-1])


def quantiles_ms(values: list[float]) -> str:
    ordered = sorted(values)
    at = lambda q: 1000 * ordered[min(len(ordered) - 1, int(q * len(ordered)))]
    return f"n={len(ordered)} p50={at(0.5):.1f} ms p90={at(0.9):.1f} ms p99={at(0.99):.1f} ms max={at(1.0):.1f} ms"


@pytest.mark.slow
def test_a_sign_in_flood_does_not_starve_writes(engine, tmp_path: Path) -> None:
    users.create_user(engine, "olga", "correct horse battery", "operator", users.local_actor("root"))
    stop = tmp_path / "stop"
    writer = start("writer", str(stop))
    # Six processes of distinct names from their own addresses (all checked with argon2), and one hammering from
    # a single address, which its limit soon refuses without a password check.
    floods = [start("flood", "8", f"10.0.0.{i}", f"p{i}") for i in range(6)]
    floods.append(start("flood", "60", "10.6.6.6", "hammer"))
    flooded = [result(p) for p in floods]
    stop.touch()
    wrote = result(writer)

    outcomes: dict[str, int] = {}
    for f in flooded:
        for outcome, n in f["outcomes"].items():
            outcomes[outcome] = outcomes.get(outcome, 0) + n
    sign_in_s = [s for f in flooded for s in f["seconds"].get("failed", [])]  # attempts whose password was checked
    print(f"\nsign-in outcomes: {outcomes}")
    print(f"sign-in time: {quantiles_ms(sign_in_s)}")
    print(f"heartbeat write during the flood: {quantiles_ms(wrote['latencies'])}; errors {wrote['errors']}")

    assert set(outcomes) <= {"failed", "refused"}, outcomes  # no "database is locked" (or anything) reached a user
    assert outcomes.get("failed", 0) >= 6 * 6 and outcomes.get("refused", 0) >= 60 - 20  # unknown names; hammer
    assert wrote["errors"] == {}
    assert wrote["latencies"], "the writer wrote nothing"
    # Generous sanity bound: a heartbeat write waits for short transactions only, never for a password check.
    assert statistics.median(wrote["latencies"]) < statistics.median(sign_in_s)

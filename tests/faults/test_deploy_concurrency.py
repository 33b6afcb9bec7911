"""Ten processes deploying and rolling back at once (the operator's probe), on versions never published and on
published ones, some of them killed mid-deploy: every process exits 0 or with a clear message, no "database is
locked" reaches anyone, and the champion ends equal to what is published."""

from __future__ import annotations

import json
import random
import signal
from concurrent.futures import ThreadPoolExecutor

import pytest

from roadwork.db import repo
from roadwork.db.engine import read_session
from tests.faults.checks import assert_consistent
from tests.faults.conftest import register, start_cli
from tests.faults.worker import EXPECTED

CLEAR = ("another deploy is in progress", *EXPECTED)
KILLED_AT = ("after_link_switch", "before_alias_move")


def _alias_moves(engine) -> int:  # noqa: ANN001
    with read_session(engine) as s:
        return repo.count_alias_moves(s)


@pytest.mark.slow
def test_ten_processes_deploying_and_rolling_back_at_once(engine, two_targets, tiny_checkpoint, clean_env) -> None:
    settings = two_targets
    versions = [v.version for v in register(engine, settings, tiny_checkpoint, n=3)]
    rng = random.Random(13)

    # Round 1: ten CLI commands started together, none of the versions published yet.
    commands = [("deploy", rng.choice(versions)) if i % 3 else ("rollback", "--reason", "probe") for i in range(10)]
    procs = [start_cli(*cmd) for cmd in commands]
    results = [(*p.communicate(timeout=600), p.returncode) for p in procs]
    results = [(code, out, err) for out, err, code in results]
    for cmd, (code, _out, err) in zip(commands, results, strict=True):
        assert "database is locked" not in err and "Traceback" not in err, err[-2000:]
        assert code == 0 or (code == 2 and any(text in err for text in CLEAR)), (cmd, code, err[-2000:])
    assert _alias_moves(engine) == sum(code == 0 for code, _, _ in results)
    print(f"\nround 1 exit codes: {sorted(code for code, _, _ in results)}")
    assert assert_consistent(engine, settings) is not None

    # Round 2: ten workers for 20 s each on published versions, a short lock wait, two of them killed mid-deploy.
    clean_env.setenv("ROADWORK_PUBLISH__LOCK_WAIT_S", "3")
    before = _alias_moves(engine)
    workers = []
    for seed in range(10):
        fault = {"ROADWORK_FAULT_AT": KILLED_AT[seed]} if seed < len(KILLED_AT) else {}
        workers.append(start_worker(20, seed, versions, **fault))
    outcomes = {"ok": 0, "busy": 0, "refused": 0}
    completed_by_reconcile = 0
    with ThreadPoolExecutor(len(workers)) as pool:  # all reaped as they end, in any order
        ends = list(pool.map(lambda p: (*p.communicate(timeout=600), p.returncode), workers))
    for seed, (out, err, code) in enumerate(ends):
        assert "database is locked" not in err, err[-2000:]
        if seed < len(KILLED_AT) and code == -signal.SIGKILL:
            completed_by_reconcile += KILLED_AT[seed] == "before_alias_move"
            continue
        assert code == 0, err[-3000:]
        for key, n in json.loads(out.strip().splitlines()[-1]).items():
            outcomes[key] += n
    assert outcomes["ok"] > 0
    assert_consistent(engine, settings)
    assert _alias_moves(engine) - before == outcomes["ok"] + completed_by_reconcile
    print(f"\nround 2 outcomes: {outcomes}, killed and completed by reconcile: {completed_by_reconcile}")


def start_worker(seconds: float, seed: int, versions: list[str], **env: str):  # noqa: ANN201 - a Popen
    import subprocess
    import sys

    from tests.faults.conftest import child_env

    return subprocess.Popen([sys.executable, "-m", "tests.faults.worker", str(seconds), str(seed), *versions],
                            env=child_env(**env), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)

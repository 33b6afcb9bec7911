"""A sign-in flood against the scheduler's heartbeat write: how long that write takes while failed sign-ins (real
argon2, default cost) run in several processes, and whether any write or sign-in fails.

    python bench/signin_flood.py                       # this tree
    python bench/signin_flood.py --baseline main       # also the code of `main` (a temporary git worktree), same run

Each tree gets a fresh home (migrated by its own code, one operator `olga`); then a writer process renews the
scheduler lease every 50 ms while `--floods` processes each make `--attempts` failed sign-ins (distinct unknown
names, every 4th a wrong password of `olga`), each from its own client address where the code takes one. The
processes are `tests/faults/signin_flood.py`, run with PYTHONPATH set to the tree under test. A last row runs the
same number of argon2 checks with no sign-in at all: the write latency that the CPU load alone causes.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parents[1]
WORKER = HERE / "tests" / "faults" / "signin_flood.py"
SETUP = ("from roadwork.db.engine import make_engine, migrate; from roadwork.platform import users; "
         "from roadwork.settings import load_settings; e = make_engine(load_settings().db_url); migrate(e); "
         "users.create_user(e, 'olga', 'correct horse battery', 'operator', users.local_actor('bench'))")


def _env(tree: Path, home: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ROADWORK_")}
    env.update(PYTHONPATH=str(tree), ROADWORK_HOME=str(home))
    return env


def run_flood(tree: Path, home: Path, floods: int, attempts: int, burn: bool = False) -> dict:
    env = _env(tree, home)
    subprocess.run([sys.executable, "-c", SETUP], env=env, check=True)
    stop = home / "stop"

    def start(*a: str) -> subprocess.Popen[str]:
        return subprocess.Popen([sys.executable, str(WORKER), *a], env=env, text=True, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE)

    writer = start("writer", str(stop))
    began = time.perf_counter()
    procs = [start("burn", str(attempts)) if burn else start("flood", str(attempts), f"10.0.0.{i}", f"p{i}")
             for i in range(floods)]
    results = []
    for p in procs:
        out, err = p.communicate()
        if p.returncode != 0:
            raise SystemExit(f"a flood process failed:\n{err[-2000:]}")
        results.append(json.loads(out.strip().splitlines()[-1]))
    wall_s = time.perf_counter() - began
    stop.touch()
    out, err = writer.communicate()
    if writer.returncode != 0:
        raise SystemExit(f"the writer failed:\n{err[-2000:]}")
    wrote = json.loads(out.strip().splitlines()[-1])
    outcomes: dict[str, int] = {}
    for r in results:
        for k, n in r["outcomes"].items():
            outcomes[k] = outcomes.get(k, 0) + n
    checked = [s for r in results for s in r["seconds"].get("failed", [])]
    return {"outcomes": outcomes, "sign_in_s": checked, "wall_s": wall_s, "write_s": wrote["latencies"], "write_errors": wrote["errors"]}


def _q(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else float("nan")


def row(name: str, r: dict) -> str:
    w, s = r["write_s"], r["sign_in_s"]
    errors = sum(r["write_errors"].values())
    user_errors = {k: n for k, n in r["outcomes"].items() if k not in ("failed", "refused")}
    return (f"| {name} | {len(w)} | {1000 * _q(w, 0.5):.1f} | {1000 * _q(w, 0.9):.1f} | {1000 * _q(w, 0.99):.1f} | "
            f"{1000 * max(w, default=float('nan')):.1f} | {errors} | {1000 * _q(s, 0.5):.0f} | "
            f"{r['wall_s']:.1f} | {r['outcomes'].get('failed', 0)} / {r['outcomes'].get('refused', 0)} | "
            f"{user_errors or 'none'} |")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--baseline", metavar="REV", help="also run the code of this git revision")
    ap.add_argument("--floods", type=int, default=6, help="flood processes (default 6)")
    ap.add_argument("--attempts", type=int, default=8, help="failed sign-ins per flood process (default 8)")
    args = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="roadwork-bench-signin-"))
    trees = [("this tree", HERE)]
    if args.baseline:
        tree = work / "baseline"
        subprocess.run(["git", "-C", str(HERE), "worktree", "add", "--detach", "--quiet", str(tree), args.baseline],
                       check=True)
        trees.insert(0, (f"`{args.baseline}`", tree))
    try:
        lines = [(f"{args.floods} flood processes x {args.attempts} failed sign-ins, {os.cpu_count()} CPUs, "
                  f"Python {platform.python_version()}"), "",
                 ("| code | writes | p50 ms | p90 ms | p99 ms | max ms | write errors | sign-in p50 ms | flood s | "
                  "failed / refused | errors shown to users |"), "|---|---|---|---|---|---|---|---|---|---|---|"]
        for i, (name, tree) in enumerate(trees):
            print(f"running {name} ...", file=sys.stderr, flush=True)
            lines.append(row(name, run_flood(tree, work / f"home{i}", args.floods, args.attempts)))
        print("running argon2 alone ...", file=sys.stderr, flush=True)
        lines.append(row("argon2 alone, no sign-in (CPU load only)",
                         run_flood(HERE, work / "home-burn", args.floods, args.attempts, burn=True)))
        print("\n".join(lines))
    finally:
        if args.baseline:
            subprocess.run(["git", "-C", str(HERE), "worktree", "remove", "--force", str(work / "baseline")],
                           check=False)
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()

"""How long the everyday commands take to start: each in a fresh interpreter, against baselines in the same run.

Each command runs `--runs` times (after one discarded warm-up run) as `python -m roadwork.cli ...` against a
temporary home with a migrated registry holding one champion and one operator. Reported: the median wall time
and the median CPU time (user + system of the child, from `wait4`), and their ratios to `python -c pass` (a bare
interpreter) and to `python -c "import torch"` (what every command cost before the trainer was imported lazily).
The library floors (typer, SQLAlchemy, pydantic-settings; Alembic, which a command at head no longer imports)
are measured the same way, so that what the CLI adds on top of the libraries it cannot start without is visible.

The goal (issue 10): each command under 0.5 s and within 3x a bare interpreter.

    python bench/startup.py              # 7 runs per line
    python bench/startup.py --runs 15
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

COMMANDS = [["--help"], ["versions"], ["history"], ["jobs", "list"], ["settings", "show"], ["user", "list"]]
BASELINES = [("python -c pass", "pass"), ("python -c 'import torch'", "import torch")]
FLOORS = [
    ("import typer, rich.table", "import typer, rich.table"),
    ("import sqlalchemy.orm", "import sqlalchemy.orm"),
    ("import pydantic_settings, yaml", "import pydantic_settings, yaml"),
    ("floor: typer + sqlalchemy + pydantic", "import typer, rich.table, sqlalchemy.orm, pydantic_settings, yaml"),
    ("import alembic.command (no longer paid)", "import alembic.command"),
]


def timed(argv: list[str], env: dict[str, str]) -> tuple[float, float]:
    """(wall seconds, CPU seconds) of one run of `argv`; stdout and stderr are discarded."""
    start = time.perf_counter()
    proc = subprocess.Popen(argv, env=env, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - start
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(argv)} exited {proc.returncode}")
    return wall, usage.ru_utime + usage.ru_stime


def medians(subjects: list[tuple[str, list[str]]], env: dict[str, str], runs: int) -> list[tuple[str, float, float]]:
    """(label, median wall, median CPU) per subject. Rounds interleave the subjects, so that a load that comes and
    goes on a shared machine falls on all of them alike."""
    for _, argv in subjects:
        timed(argv, env)  # warm the file cache and the bytecode cache
    samples: dict[str, list[tuple[float, float]]] = {label: [] for label, _ in subjects}
    for _ in range(runs):
        for label, argv in subjects:
            samples[label].append(timed(argv, env))
    return [(label, statistics.median(w for w, _ in samples[label]), statistics.median(c for _, c in samples[label]))
            for label, _ in subjects]


def seed_home(home: Path) -> None:
    """A migrated registry with a champion (so the listings print a row) and an operator."""
    from roadwork.db import repo
    from roadwork.db.engine import make_engine, migrate, write_session
    from roadwork.platform import users

    engine = make_engine(f"sqlite:///{home / 'roadwork.db'}")
    migrate(engine)
    with write_session(engine) as s:
        v = repo.create_version(s, name="m", version="0.1.0", artifact_sha256="a" * 64, artifact_path="/x",
                                config={}, metrics={"val_mcc": 0.5}, parent_id=None, data_fingerprint=None,
                                code_revision=None, hard_negative_set_id=None, created_by="bench")
        repo.move_alias(s, alias="champion", to_version_id=v.id, action="deploy", actor="bench", reason="first")
    users.create_user(engine, "alice", "correct horse battery", "operator", users.local_actor())
    engine.dispose()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=7, help="Timed runs per line (median reported).")
    args = parser.parse_args()

    load_before = os.getloadavg()[0]
    with tempfile.TemporaryDirectory(prefix="roadwork-bench-startup-") as tmp:
        home = Path(tmp)
        seed_home(home)
        env = {k: v for k, v in os.environ.items() if not k.startswith("ROADWORK_")}
        env |= {"ROADWORK_HOME": str(home), "PYTHONPATH": str(ROOT)}
        subjects = [(label, [sys.executable, "-c", code]) for label, code in BASELINES + FLOORS]
        subjects += [("roadwork " + " ".join(c), [sys.executable, "-m", "roadwork.cli", *c]) for c in COMMANDS]
        rows = medians(subjects, env, args.runs)

    (bare_wall, bare_cpu), (torch_wall, torch_cpu) = rows[0][1:], rows[1][1:]
    print(f"# startup, median of {args.runs} interleaved runs, {platform.machine()}, {os.cpu_count()} CPUs, "
          f"Python {platform.python_version()}, load average {load_before:.1f} before, {os.getloadavg()[0]:.1f} after")
    print(f"{'':40} {'wall s':>7} {'cpu s':>7} {'wall x bare':>11} {'cpu x bare':>10} {'wall x torch':>12} "
          f"{'cpu x torch':>11}")
    for label, wall, cpu in rows:
        print(f"{label:40} {wall:7.3f} {cpu:7.3f} {wall / bare_wall:11.1f} {cpu / bare_cpu:10.1f} "
              f"{wall / torch_wall:12.2f} {cpu / torch_cpu:11.2f}")
    met = [label for label, wall, _ in rows[len(BASELINES) + len(FLOORS):] if wall < 0.5 and wall < 3 * bare_wall]
    print(f"goal (wall < 0.5 s and < 3x bare): {len(met)} of {len(COMMANDS)} commands"
          + (f" ({', '.join(met)})" if met else ""))


if __name__ == "__main__":
    main()

"""Helpers shared by test modules (test files never import each other; what two of them need lives here)."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def roadwork(home: Path, *args: str, check: bool = True, timeout: float = 600,
             env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    """Run the command line as a user does: a fresh process, `home` as ROADWORK_HOME, no other ROADWORK_ settings
    but those in `env`."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("ROADWORK_")} | (env or {})
    env["ROADWORK_HOME"] = str(home)
    done = subprocess.run([sys.executable, "-m", "roadwork.cli", *args], env=env, cwd=ROOT, capture_output=True,
                          text=True, timeout=timeout)
    if check and done.returncode != 0:
        raise AssertionError(f"roadwork {' '.join(args)} exited {done.returncode}:\n{done.stdout}\n{done.stderr}")
    return done


def as_json(done: subprocess.CompletedProcess):  # noqa: ANN201
    return json.loads(done.stdout)


def jpeg_bytes(color: tuple[int, int, int] = (230, 120, 20), size: tuple[int, int] = (224, 224)) -> bytes:
    """A plain JPEG (quality 75) of one colour."""
    from PIL import Image

    buf = io.BytesIO()
    Image.new("RGB", size, color).save(buf, format="JPEG", quality=75)
    return buf.getvalue()

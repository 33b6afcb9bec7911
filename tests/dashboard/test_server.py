"""The real dashboard server, as `make run` starts it: health check and the app shell over HTTP, no metrics."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time

import requests

from tests.conftest import ROOT


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_dashboard_command_serves_health_and_app(seeded_home) -> None:
    port = _free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("ROADWORK_")}
    env["ROADWORK_HOME"] = str(seeded_home.home)
    proc = subprocess.Popen([sys.executable, "-m", "roadwork.cli", "dashboard", "--port", str(port)], env=env,
                            cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        deadline = time.monotonic() + 90
        health = None
        while time.monotonic() < deadline and proc.poll() is None:
            try:
                health = requests.get(f"http://localhost:{port}/_stcore/health", timeout=2)
                break
            except requests.ConnectionError:
                time.sleep(0.5)
        assert health is not None, f"dashboard did not come up: {proc.poll()}"
        assert health.status_code == 200 and health.text == "ok"
        page = requests.get(f"http://localhost:{port}/", timeout=5)
        assert page.status_code == 200 and "<html" in page.text.lower()
        # Streamlit's metrics endpoint is open to anyone who reaches the port: the dashboard does not serve it
        assert requests.get(f"http://localhost:{port}/_stcore/metrics", timeout=5).status_code == 404
    finally:
        proc.terminate()
        proc.wait(30)

"""The dashboard in a real browser against a real scheduler: an operator approves a candidate and rolls back,
the scheduler applies both, and a viewer finds no control that changes anything.

Real processes (`roadwork scheduler`, `roadwork dashboard`), a real registry with real artifacts (the scheduler
deploys them), and Debian's chromium driven by Playwright. Screenshots of every page, as operator and as viewer,
land in `test-artifacts/screenshots/<role>-<page>.png` under the repository root (CI keeps them).

Order of the two operator actions (deterministic): approve 0.3.0 first and wait until the scheduler has applied
it (champion 0.3.0, previous holder 0.2.0); then roll back to 0.1.0, which is not the form's default (the
previous holder, 0.2.0) and is selected explicitly. The champion ends at 0.1.0.
"""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from tests.conftest import ROOT

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]
SCREENSHOTS = ROOT / "test-artifacts" / "screenshots"
OPERATOR = ("ops-olga", "olga-password-123")
VIEWER = ("view-victor", "victor-password-456")
APPROVE_REASON = "0.3.0 passed the gate; approving from the browser test"
ROLLBACK_REASON = "browser test: back to 0.1.0 after a bad night"
# Buttons that change state somewhere; a viewer must see none of them on any page.
MUTATING_BUTTONS = re.compile(
    r"request rollback|approve and deploy|reject|run now|pause|resume|cancel|create|submit|add user|"
    r"change role|reset password|disable user|enable user|request a/b test",
    re.IGNORECASE,
)
RENDER_TIMEOUT_MS = 60_000
_CONTENT_HEIGHT_JS = """() => Math.max(document.documentElement.scrollHeight,
    ...[...document.querySelectorAll('[data-testid="stMain"], [data-testid="stAppViewContainer"]')]
        .map(e => e.scrollHeight))"""


def _require_browser() -> None:
    """Skip without a browser, except in CI, where a missing browser is a failure of the set-up."""
    missing = []
    if not CHROMIUM.exists():
        missing.append(str(CHROMIUM))
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        missing.append("the Python package playwright (pip install -e '.[dev]')")
    if not missing:
        return
    message = f"missing {' and '.join(missing)}: install Debian's chromium: apt-get install chromium"
    if os.environ.get("CI") == "true":
        pytest.fail(f"CI must run the browser test; {message}")
    pytest.skip(message)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _tail(path: Path, n: int = 4000) -> str:
    return path.read_text(errors="replace")[-n:] if path.exists() else "(no log)"


# --- seeding ---------------------------------------------------------------------------------------------------


def _seed(home: Path, checkpoint_dir: Path) -> dict[str, int]:
    """0.1.0, 0.2.0 (champion; 0.1.0 before it) and 0.3.0 (passed the gate, waiting), plus two users."""
    from roadwork.config import load_settings
    from roadwork.db import repo
    from roadwork.db.engine import make_engine, migrate, write_session
    from roadwork.platform import registry, users

    settings = load_settings()
    assert Path(settings.db_url.split("///", 1)[1]).parent == home
    engine = make_engine(settings.db_url)
    try:
        migrate(engine)
        versions = [registry.register_version(engine, settings, checkpoint_dir, config={}, metrics={},
                                              data_fingerprint=None, parent_id=None, actor="test")
                    for _ in range(3)]
        ids = {v.version: v.id for v in versions}
        assert list(ids) == ["0.1.0", "0.2.0", "0.3.0"]
        registry.deploy(engine, settings, ids["0.1.0"], actor="test", reason="first deploy")
        registry.deploy(engine, settings, ids["0.2.0"], actor="test", reason="second deploy")
        with write_session(engine) as s:
            repo.add_audit(s, actor="scheduler", action="gate_passed", target=versions[2].label,
                           details={"passed": True})
        users.create_user(engine, OPERATOR[0], OPERATOR[1], "operator", users.local_actor())
        users.create_user(engine, VIEWER[0], VIEWER[1], "viewer", users.local_actor())
        return ids
    finally:
        engine.dispose()


# --- processes -------------------------------------------------------------------------------------------------


def _start(args: list[str], env: dict[str, str], log: Path) -> subprocess.Popen:
    out = log.open("w")
    try:
        return subprocess.Popen([sys.executable, "-m", "roadwork.cli", *args], env=env, cwd=ROOT, stdout=out,
                                stderr=subprocess.STDOUT, text=True)
    finally:
        out.close()  # the child holds its own descriptor


def _stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)


@pytest.fixture
def running(tmp_path: Path, clean_env: pytest.MonkeyPatch, tiny_checkpoint) -> Iterator[dict]:  # noqa: ANN001
    """A seeded home, its scheduler and its dashboard, all running; yields their facts."""
    _require_browser()
    home = tmp_path / "home"
    home.mkdir()
    clean_env.setenv("ROADWORK_HOME", str(home))
    ids = _seed(home, tiny_checkpoint.checkpoint_dir)

    env = {k: v for k, v in os.environ.items() if not k.startswith("ROADWORK_")}
    env.update(ROADWORK_HOME=str(home), ROADWORK_SCHEDULER__COMMAND_POLL_S="0.3")
    sched_log, dash_log = tmp_path / "scheduler.log", tmp_path / "dashboard.log"
    port = _free_port()
    procs = [_start(["scheduler", "--max-seconds", "600"], env, sched_log),
             _start(["dashboard", "--port", str(port)], env, dash_log)]
    try:
        deadline = time.monotonic() + 90
        while "running on" not in _tail(sched_log):
            assert procs[0].poll() is None and time.monotonic() < deadline, \
                f"the scheduler did not start:\n{_tail(sched_log)}"
            time.sleep(0.2)
        url = f"http://127.0.0.1:{port}"
        while True:
            assert procs[1].poll() is None and time.monotonic() < deadline, \
                f"the dashboard did not come up:\n{_tail(dash_log)}"
            try:
                if requests.get(f"{url}/_stcore/health", timeout=2).text == "ok":
                    break
            except requests.ConnectionError:
                pass
            time.sleep(0.3)
        yield {"url": url, "ids": ids, "logs": (sched_log, dash_log), "procs": procs}
    finally:
        for proc in procs:
            _stop(proc)


# --- the browser -----------------------------------------------------------------------------------------------


def _settled(page, title: str) -> None:  # noqa: ANN001 - playwright Page
    """Wait until the script run is over and the page shows `title`: no 'Running...' widget, the app idle."""
    page.get_by_role("heading", name=title, exact=True).first.wait_for(state="visible", timeout=RENDER_TIMEOUT_MS)
    for _ in range(2):  # twice, a moment apart: a rerun right after the first run (st.rerun) is waited out too
        page.locator('[data-testid="stApp"][data-test-script-state="notRunning"]').wait_for(
            state="attached", timeout=RENDER_TIMEOUT_MS)
        page.locator('[data-testid="stStatusWidget"]').wait_for(state="hidden", timeout=RENDER_TIMEOUT_MS)
        page.wait_for_timeout(300)
    page.locator('[data-testid="stSkeleton"]').first.wait_for(state="hidden", timeout=RENDER_TIMEOUT_MS)


def _shot(page, role: str, title: str) -> Path:  # noqa: ANN001
    """A screenshot of the whole page: Streamlit scrolls inside its main container, not the document, so the
    viewport is stretched to the content's height for the picture (and restored after)."""
    name = re.sub(r"[^a-z0-9]+", "-", title.lower()).strip("-")
    path = SCREENSHOTS / f"{role}-{name}.png"
    viewport = page.viewport_size
    height = page.evaluate(_CONTENT_HEIGHT_JS)
    if height > viewport["height"]:
        page.set_viewport_size({"width": viewport["width"], "height": min(height, 8000)})
        page.wait_for_timeout(500)
        _settled(page, title)
    page.screenshot(path=str(path), full_page=True)
    if height > viewport["height"]:
        page.set_viewport_size(viewport)
    return path


def _sign_in(page, login: tuple[str, str]) -> None:  # noqa: ANN001
    _settled(page, "Roadwork Ops")
    page.get_by_label("Username", exact=True).fill(login[0])
    page.get_by_label("Password", exact=True).fill(login[1])
    page.get_by_role("button", name="Sign in").click()
    page.get_by_text(f"Signed in as {login[0]}").wait_for(timeout=RENDER_TIMEOUT_MS)
    _settled(page, "Overview")


def _nav_titles(page) -> list[str]:  # noqa: ANN001
    return [label.get_attribute("label") for label in page.locator('[data-testid="stSidebarNav"] a span[label]').all()]


def _open(page, title: str) -> None:  # noqa: ANN001
    page.locator('[data-testid="stSidebarNav"] a').filter(has_text=title).first.click()
    _settled(page, title)


def _wait_applied(db_url: str, command_ids: list[int], logs: tuple[Path, ...], timeout: float = 120) -> list:
    from roadwork.db import repo
    from roadwork.db.engine import make_engine, read_session

    engine = make_engine(db_url)
    try:
        deadline = time.monotonic() + timeout
        while True:
            with read_session(engine) as s:
                commands = [repo.get_command(s, cid) for cid in command_ids]
            if all(c.status not in ("pending", "running") for c in commands):
                break
            if time.monotonic() > deadline:
                raise AssertionError(f"not applied in {timeout} s: {commands}\n{_tail(logs[0])}")
            time.sleep(0.3)
    finally:
        engine.dispose()
    assert all(c.status == "applied" for c in commands), f"{commands}\n{_tail(logs[0])}"
    return commands


def _command_ids(db_url: str, kind: str) -> list[int]:
    from roadwork.db import repo
    from roadwork.db.engine import make_engine, read_session

    engine = make_engine(db_url)
    try:
        with read_session(engine) as s:
            return [c.id for c in repo.list_commands(s) if c.kind == kind]
    finally:
        engine.dispose()


def test_operator_approves_and_rolls_back_viewer_changes_nothing(running: dict) -> None:
    from playwright.sync_api import sync_playwright

    from roadwork.config import load_settings
    from roadwork.db import repo
    from roadwork.db.engine import make_engine, read_session

    db_url = load_settings().db_url
    ids, logs = running["ids"], running["logs"]
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            page.set_default_timeout(RENDER_TIMEOUT_MS)
            page.goto(running["url"])

            # 1. The operator: approve 0.3.0, then (once applied) roll back to 0.1.0.
            _sign_in(page, OPERATOR)
            titles = _nav_titles(page)
            assert "Users" in " ".join(titles), titles
            _open(page, "Deployments")
            cand = ids["0.3.0"]
            page.locator(f".st-key-decide_reason_{cand} input").fill(APPROVE_REASON)
            page.locator(f".st-key-decide_approve_{cand} button").click()
            page.get_by_text("Approval requested (command #").wait_for()
            _settled(page, "Deployments")
            (approve_id,) = _command_ids(db_url, "approve")
            _wait_applied(db_url, [approve_id], logs)

            # Back on the page (a fresh run reads the new champion): 0.2.0 is now the default target.
            _open(page, "Overview")
            time.sleep(5.5)  # the dashboard caches registry reads for 5 s
            _open(page, "Deployments")
            target = page.get_by_role("combobox", name="Roll the champion back to")
            assert target.input_value() == "roadwork-ops:0.2.0"  # the previous holder is the default
            target.click()
            page.get_by_role("option", name="roadwork-ops:0.1.0", exact=True).click()
            assert target.input_value() == "roadwork-ops:0.1.0"
            page.locator(".st-key-rollback_reason input").fill(ROLLBACK_REASON)
            page.get_by_role("button", name="Request rollback").click()
            page.get_by_text("Rollback requested (command #").wait_for()
            _settled(page, "Deployments")
            (rollback_id,) = _command_ids(db_url, "rollback")

            # 2. The running scheduler applies both; the champion's history says who and why.
            approve, rollback = _wait_applied(db_url, [approve_id, rollback_id], logs)
            assert approve.requested_by == rollback.requested_by == OPERATOR[0]
            engine = make_engine(db_url)
            try:
                with read_session(engine) as s:
                    history = repo.alias_history(s)
                    holder = repo.alias_holder(s)
            finally:
                engine.dispose()
            assert holder.id == ids["0.1.0"]
            newest, before = history[0], history[1]
            assert (newest.action, newest.to_version_id, newest.from_version_id) == \
                ("rollback", ids["0.1.0"], ids["0.3.0"])
            assert (newest.actor, newest.reason) == (OPERATOR[0], ROLLBACK_REASON)
            assert (before.action, before.to_version_id, before.from_version_id) == \
                ("deploy", ids["0.3.0"], ids["0.2.0"])
            assert (before.actor, before.reason) == (OPERATOR[0], APPROVE_REASON)
            assert before.gate_result["approved_by"] == OPERATOR[0]

            # The page shows it too, once its cache has expired.
            time.sleep(5.5)
            _open(page, "Overview")
            for title in titles:
                _open(page, title)
                _shot(page, "operator", title)

            # 3. The viewer: every page, nothing that changes state.
            page.locator('[data-testid="stSidebar"]').get_by_role("button", name="Sign out").click()
            page.get_by_role("button", name="Sign in").wait_for()
            _sign_in(page, VIEWER)
            titles = _nav_titles(page)
            assert not any("Users" in t for t in titles), titles
            assert len(titles) == 7, titles
            for title in titles:
                _open(page, title)
                buttons = [b.strip() for b in page.get_by_role("button").all_inner_texts()]
                mutating = [b for b in buttons if MUTATING_BUTTONS.search(b)]
                assert not mutating, f"{title}: a viewer sees {mutating}"
                assert page.locator('[data-testid="stFormSubmitButton"]').count() == 0, title
                _shot(page, "viewer", title)
        except Exception:
            page.screenshot(path=str(SCREENSHOTS / "failure.png"), full_page=True)  # what the browser showed
            raise
        finally:
            browser.close()
    print(f"browser part took {time.monotonic() - started:.1f} s")

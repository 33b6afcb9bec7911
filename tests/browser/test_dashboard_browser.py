"""The dashboard in a real browser against a real scheduler: an operator approves a candidate and rolls back,
the scheduler applies both, and a viewer finds no control that changes anything.

Real processes (`roadwork scheduler`, `roadwork dashboard`), a real registry with real artifacts (the scheduler
deploys them), and Debian's chromium driven by Playwright (`apt-get install chromium`; never `playwright
install`). Screenshots of every page, as operator and as viewer, land in
`test-artifacts/screenshots/<role>-<page>.png` under the repository root (and `failure.png` when it fails).

The order of the operator's two requests is fixed: approve 0.3.0 first and wait until the scheduler has applied
it (champion 0.3.0, previous holder 0.2.0, which the rollback form then offers by default); then request a
rollback to 0.1.0, picked explicitly. The champion ends at 0.1.0.
"""

from __future__ import annotations

import importlib.util
import os
import re
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest
import requests

from tests.conftest import ROOT
from tests.helpers import TEST_DEPLOY_FORMAT

CHROMIUM = Path("/usr/bin/chromium")
# The machine has no outside network: these keep chromium from waiting on it.
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]
SCREENSHOTS = ROOT / "test-artifacts" / "screenshots"
OPERATOR = ("ops-olga", "olga-password-123")
VIEWER = ("view-victor", "victor-password-456")
APPROVE_REASON = "0.3.0 passed the gate; approved from the browser test"
ROLLBACK_REASON = "browser test: back to 0.1.0 after a bad night"
PAGES = ["Overview", "Models", "Deployments", "Jobs", "A/B tests", "Ablations", "Hard negatives",
         "Leaderboard"]
OPERATOR_PAGES = [*PAGES, "Users"]
# The labels of every control that changes state; a viewer must meet none of them on any page.
MUTATING = re.compile(
    r"request rollback|approve and deploy|reject|run now|pause|resume|cancel|create|submit|add user|"
    r"change role|reset password|disable user|enable user|request a/b test",
    re.IGNORECASE,
)
# The widget keys of the operators' forms (Streamlit renders a key as the class `st-key-<key>`).
MUTATING_KEYS = ", ".join(f'[class*="st-key-{p}"]' for p in ("act_", "decide_", "rollback_", "users_"))
RENDER_TIMEOUT_MS = 60_000
_CONTENT_HEIGHT_JS = """() => Math.max(document.documentElement.scrollHeight,
    ...[...document.querySelectorAll('[data-testid="stMain"], [data-testid="stAppViewContainer"]')]
        .map(e => e.scrollHeight))"""


def _require_browser() -> None:
    """Skip without a browser, except in CI, where a missing browser is a failure of its set-up."""
    missing = []
    if not CHROMIUM.exists():
        missing.append(str(CHROMIUM))
    if importlib.util.find_spec("playwright") is None:
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


# --- the registry ----------------------------------------------------------------------------------------------


def _seed(home: Path, checkpoint_dir: Path) -> dict[str, int]:
    """0.1.0, then 0.2.0 deployed (0.2.0 champion), 0.3.0 passed the gate and waits; an operator and a viewer."""
    from roadwork.settings import load_settings
    from roadwork.db import repo
    from roadwork.db.engine import make_engine, migrate, write_session
    from roadwork.platform import users
    from roadwork.platform.registry import service as registry

    settings = load_settings()
    assert str(home) in settings.db_url
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


@contextmanager
def _registry(db_url: str):  # noqa: ANN202 - a read session
    from roadwork.db.engine import make_engine, read_session

    engine = make_engine(db_url)
    try:
        with read_session(engine) as session:
            yield session
    finally:
        engine.dispose()


def _commands(db_url: str, kind: str) -> list:
    from roadwork.db import repo

    with _registry(db_url) as s:
        return [c for c in repo.list_commands(s) if c.kind == kind]


def _wait_applied(db_url: str, command_ids: list[int], log: Path, timeout: float = 120) -> list:
    """The commands, once the scheduler has finished them all; each must be `applied`."""
    from roadwork.db import repo

    deadline = time.monotonic() + timeout
    while True:
        with _registry(db_url) as s:
            commands = [repo.get_command(s, cid) for cid in command_ids]
        if all(c.status not in ("pending", "applying") for c in commands):
            break
        assert time.monotonic() < deadline, f"not applied in {timeout} s: {commands}\n{_tail(log)}"
        time.sleep(0.3)
    assert all(c.status == "applied" for c in commands), f"{commands}\n{_tail(log)}"
    return commands


# --- the processes ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Running:
    url: str
    scheduler_log: Path
    dashboard_log: Path


def _start(args: list[str], env: dict[str, str], log: Path) -> subprocess.Popen:
    with log.open("w") as out:  # the child keeps its own descriptor
        return subprocess.Popen([sys.executable, "-m", "roadwork.cli", *args], env=env, cwd=ROOT, stdout=out,
                                stderr=subprocess.STDOUT, text=True)


def _stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)


@contextmanager
def _scheduler_and_dashboard(home: Path, logs: Path) -> Iterator[Running]:
    """`roadwork scheduler` and `roadwork dashboard` on `home`, both up; both stopped on the way out."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("ROADWORK_")}
    env.update(ROADWORK_HOME=str(home), ROADWORK_SCHEDULER__COMMAND_POLL_S="0.3", **TEST_DEPLOY_FORMAT)
    running = Running(url=f"http://127.0.0.1:{_free_port()}", scheduler_log=logs / "scheduler.log",
                      dashboard_log=logs / "dashboard.log")
    procs = []
    try:
        # --max-seconds: a scheduler orphaned by a killed test run still ends on its own.
        procs.append(sched := _start(["scheduler", "--max-seconds", "900"], env, running.scheduler_log))
        procs.append(dash := _start(["dashboard", "--port", running.url.rsplit(":", 1)[1]], env,
                                    running.dashboard_log))
        deadline = time.monotonic() + 90
        while "running on" not in _tail(running.scheduler_log):
            assert sched.poll() is None and time.monotonic() < deadline, \
                f"the scheduler did not start:\n{_tail(running.scheduler_log)}"
            time.sleep(0.2)
        while True:
            assert dash.poll() is None and time.monotonic() < deadline, \
                f"the dashboard did not come up:\n{_tail(running.dashboard_log)}"
            try:
                if requests.get(f"{running.url}/_stcore/health", timeout=2).text == "ok":
                    break
            except requests.ConnectionError:
                pass
            time.sleep(0.3)
        yield running
    finally:
        for proc in procs:
            _stop(proc)


# --- the browser -----------------------------------------------------------------------------------------------


def _settled(page, title: str) -> None:  # noqa: ANN001 - playwright Page
    """Wait until the page shows the heading `title` and Streamlit has finished the run: the app reports
    `notRunning`, no 'Running...' status widget, no loading skeleton (twice, a moment apart, so that a rerun
    that follows at once, such as `st.rerun()` after signing in, is waited out too)."""
    page.get_by_role("heading", name=title, exact=True).first.wait_for(state="visible")
    for _ in range(2):
        page.locator('[data-testid="stApp"][data-test-script-state="notRunning"]').wait_for(state="attached")
        page.locator('[data-testid="stStatusWidget"]').wait_for(state="hidden")
        page.locator('[data-testid="stSkeleton"]').first.wait_for(state="hidden")
        page.wait_for_timeout(300)


def _open(page, title: str) -> None:  # noqa: ANN001
    """Open a page through its sidebar link (a page load would start a new session, signed out)."""
    from playwright.sync_api import TimeoutError as PlaywrightTimeout

    link = page.locator('[data-testid="stSidebarNav"] a').filter(
        has=page.locator(f'span[label="{title}"]')).first
    href = link.get_attribute("href")
    for attempt in range(2):  # a click that lands while the sidebar re-renders can be lost: then once more
        link.click()
        try:
            page.wait_for_url(href, timeout=10_000)
            break
        except PlaywrightTimeout:
            if attempt:
                raise
    _settled(page, title)


def _nav(page) -> list[str]:  # noqa: ANN001
    return [s.get_attribute("label") for s in page.locator('[data-testid="stSidebarNav"] a span[label]').all()]


def _shot(page, role: str, title: str) -> Path:  # noqa: ANN001
    """A screenshot of the whole page. Streamlit scrolls inside its main container, not the document, so the
    viewport is stretched to the content's height for the picture, and restored after."""
    path = SCREENSHOTS / f"{role}-{re.sub(r'[^a-z0-9]+', '-', title.lower()).strip('-')}.png"
    viewport = page.viewport_size
    height = min(page.evaluate(_CONTENT_HEIGHT_JS), 8000)
    if height > viewport["height"]:
        page.set_viewport_size({"width": viewport["width"], "height": height})
        page.wait_for_timeout(500)  # charts re-layout to the new size
        _settled(page, title)
    page.screenshot(path=str(path), full_page=True)
    if height > viewport["height"]:
        page.set_viewport_size(viewport)
    return path


def _sign_in(page, login: tuple[str, str]) -> None:  # noqa: ANN001
    _settled(page, "Roadwork Ops")
    page.get_by_label("Username", exact=True).fill(login[0])
    page.get_by_label("Password", exact=True).fill(login[1])
    page.get_by_role("button", name="Sign in", exact=True).click()
    page.get_by_text(f"Signed in as {login[0]}").wait_for()
    _settled(page, "Overview")


def _mutating_controls(page) -> list[str]:  # noqa: ANN001
    """The state-changing controls on the page: buttons by label, and operators' form widgets by key."""
    found = []
    for button in page.get_by_role("button").all():
        name = " ".join(filter(None, [button.get_attribute("aria-label"), button.inner_text().strip()]))
        if MUTATING.search(name):
            found.append(name)
    found += [f"widget {c}" for c in page.locator(MUTATING_KEYS).evaluate_all("es => es.map(e => e.className)")]
    return found


def test_operator_approves_and_rolls_back_viewer_changes_nothing(
    request: pytest.FixtureRequest, tmp_path: Path, clean_env: pytest.MonkeyPatch
) -> None:
    _require_browser()  # before the checkpoint is trained: a skip costs nothing
    from playwright.sync_api import sync_playwright

    from roadwork.settings import load_settings
    from roadwork.dashboard.context import CACHE_TTL_S
    from roadwork.db import repo

    home = tmp_path / "home"
    home.mkdir()
    clean_env.setenv("ROADWORK_HOME", str(home))
    ids = _seed(home, request.getfixturevalue("tiny_checkpoint").checkpoint_dir)
    db_url = load_settings().db_url
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    for old in SCREENSHOTS.glob("*.png"):
        old.unlink()

    with _scheduler_and_dashboard(home, tmp_path) as running, sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        page.set_default_timeout(RENDER_TIMEOUT_MS)
        try:
            page.goto(running.url)

            # 1. The operator approves the candidate 0.3.0 ...
            _sign_in(page, OPERATOR)
            assert _nav(page) == OPERATOR_PAGES
            _open(page, "Deployments")
            candidate = ids["0.3.0"]
            page.locator(f".st-key-decide_reason_{candidate} input").fill(APPROVE_REASON)
            page.locator(f".st-key-decide_approve_{candidate} button").click()
            page.get_by_text("Approval requested (command #").wait_for()
            _settled(page, "Deployments")
            (approve,) = _commands(db_url, "approve")
            _wait_applied(db_url, [approve.id], running.scheduler_log)

            # ... and, once the scheduler has deployed it, rolls back to 0.1.0 (not the default, 0.2.0).
            time.sleep(CACHE_TTL_S + 0.5)  # the dashboard caches registry reads this long
            _open(page, "Overview")
            _open(page, "Deployments")
            page.get_by_text("None waiting.").wait_for()
            target = page.get_by_role("combobox", name="Roll the champion back to")
            assert target.input_value() == "roadwork-ops:0.2.0"  # the previous holder
            target.click()
            page.get_by_role("option", name="roadwork-ops:0.1.0", exact=True).click()
            assert target.input_value() == "roadwork-ops:0.1.0"
            page.locator(".st-key-rollback_reason input").fill(ROLLBACK_REASON)
            page.get_by_role("button", name="Request rollback", exact=True).click()
            page.get_by_text("Rollback requested (command #").wait_for()
            _settled(page, "Deployments")
            (rollback,) = _commands(db_url, "rollback")

            # 2. The running scheduler applied both; the champion's history says who and why.
            approve, rollback = _wait_applied(db_url, [approve.id, rollback.id], running.scheduler_log)
            assert approve.requested_by == rollback.requested_by == OPERATOR[0]
            assert (approve.payload, rollback.payload) == ({"version": ids["0.3.0"]}, {"to": ids["0.1.0"]})
            with _registry(db_url) as s:
                champion = repo.alias_holder(s)
                moves = [(e.action, e.from_version_id, e.to_version_id, e.actor, e.reason, e.gate_result)
                         for e in repo.alias_history(s)]
            assert champion.id == ids["0.1.0"]
            assert moves[0] == ("rollback", ids["0.3.0"], ids["0.1.0"], OPERATOR[0], ROLLBACK_REASON, None)
            assert moves[1][:5] == ("deploy", ids["0.2.0"], ids["0.3.0"], OPERATOR[0], APPROVE_REASON)
            assert moves[1][5]["approved_by"] == OPERATOR[0]
            assert [m[:3] for m in moves[2:]] == [("deploy", ids["0.1.0"], ids["0.2.0"]),
                                                  ("deploy", None, ids["0.1.0"])]

            # Every page as the operator sees it (the forms are there: the viewer's check below is not vacuous).
            time.sleep(CACHE_TTL_S + 0.5)
            for title in OPERATOR_PAGES:
                _open(page, title)
                if title in ("Deployments", "Jobs", "A/B tests", "Users"):
                    assert _mutating_controls(page), f"the operator sees no control on {title}"
                _shot(page, "operator", title)

            # 3. The viewer: no Users page, and nothing that changes state on any page.
            page.locator('[data-testid="stSidebar"]').get_by_role("button", name="Sign out").click()
            page.get_by_role("button", name="Sign in", exact=True).wait_for()
            _sign_in(page, VIEWER)
            assert _nav(page) == PAGES
            for title in PAGES:
                _open(page, title)
                controls = _mutating_controls(page)
                assert not controls, f"a viewer meets {controls} on {title}"
                _shot(page, "viewer", title)
        except BaseException:
            try:  # what the browser showed; never instead of the original error
                page.screenshot(path=str(SCREENSHOTS / "failure.png"), full_page=True)
            except Exception as exc:  # noqa: BLE001
                print(f"no failure screenshot: {exc}")
            print(f"--- scheduler log\n{_tail(running.scheduler_log)}\n--- dashboard log\n"
                  f"{_tail(running.dashboard_log)}")
            raise
        finally:
            browser.close()

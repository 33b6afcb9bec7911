"""Every page runs against a real SQLite registry (seeded or empty) through Streamlit's AppTest, signed in as an
operator (`test_auth.py` covers signing in and what viewers see)."""

from __future__ import annotations

import datetime as dt

import pytest
from streamlit.testing.v1 import AppTest

from roadwork.dashboard.formatting import NO_VALUE
from roadwork.db import repo
from tests.dashboard.conftest import (
    APP,
    OPERATOR,
    TIMEOUT_S,
    Login,
    add_user,
    page_text,
    rendered,
    sign_in,
    table,
)

PAGES = ["views/overview.py", "views/models.py", "views/deployments.py"]


def open_page(page: str, login: Login = OPERATOR) -> AppTest:
    at = sign_in(AppTest.from_file(str(APP), default_timeout=TIMEOUT_S), login).run()
    assert not at.exception, at.exception
    if page != PAGES[0]:
        at.switch_page(page).run()
    assert not at.exception, at.exception
    return at




# --- seeded -------------------------------------------------------------------------------------------------


def test_overview_shows_champion_and_runs(operator, seeded_home) -> None:
    at = open_page(PAGES[0])
    assert "roadwork-ops:0.2.0" in page_text(at)
    assert at.metric[0].value == "0.780"  # champion's latest validation MCC
    runs = table(at, "overview_job_runs")
    assert list(runs["job"]) == ["leaderboard", "evaluate", "train"]
    assert "RuntimeError: replay set missing" in set(runs["error"])
    assert "No champion yet" not in page_text(at)


def test_models_lists_versions_and_condition_cells(operator, seeded_home) -> None:
    at = open_page(PAGES[1])
    versions = table(at, "models_versions")
    assert list(versions["version"]) == ["0.3.0", "0.2.0", "0.1.0"]
    assert list(versions["champion"]) == [False, True, False]
    assert list(versions["training val MCC"]) == pytest.approx([0.82, 0.8, 0.7])
    assert list(versions["parent"].fillna(NO_VALUE)) == ["0.2.0", "0.1.0", NO_VALUE]  # missing: the placeholder

    select = at.selectbox(key="models_selected_version")
    assert select.value == seeded_home.version_ids["0.2.0"]  # the champion by default
    cells = table(at, "models_condition_cells")
    assert list(cells["value"]) == ["3", "Clear", "Rain"]
    assert cells["MCC"].iloc[1] == pytest.approx(0.83)

    select.select(seeded_home.version_ids["0.1.0"]).run()
    assert not at.exception
    assert table(at, "models_condition_cells")["MCC"].iloc[1] == pytest.approx(0.73)


def test_deployments_shows_alias_events_and_defaults_to_previous(operator, seeded_home) -> None:
    at = open_page(PAGES[2])
    events = table(at, "deployments_alias_events")
    assert list(events["to"]) == ["0.2.0", "0.1.0"]
    assert list(events["from"].fillna(NO_VALUE)) == ["0.1.0", NO_VALUE]  # missing: the placeholder
    assert list(events["reason"]) == ["gate passed", "first deploy"]
    target = at.selectbox(key="rollback_target")
    assert target.value == seeded_home.version_ids["0.1.0"]
    assert seeded_home.version_ids["0.2.0"] not in [target.format_func(o) for o in target.options]
    assert target.options == ["roadwork-ops:0.3.0", "roadwork-ops:0.1.0"]


def test_rollback_request_writes_a_pending_command_and_audit(operator, seeded_home, read_db) -> None:
    at = open_page(PAGES[2])
    to_id = seeded_home.version_ids["0.1.0"]
    at.selectbox(key="rollback_target").select(to_id)
    at.text_input(key="rollback_reason").input("MCC dropped on rain")
    at.button(key="rollback_submit").click().run()
    assert not at.exception

    with read_db() as session:
        commands = repo.list_commands(session)
        audit = repo.list_audit(session)
    assert len(commands) == 1
    command = commands[0]
    assert (command.kind, command.status, command.payload) == ("rollback", "pending", {"to": to_id})
    assert (command.reason, command.requested_by) == ("MCC dropped on rain", operator.username)
    assert [(a.action, a.target, a.reason, a.details["command_id"]) for a in audit] == [
        ("rollback_requested", "roadwork-ops:0.1.0", "MCC dropped on rain", command.id)
    ]
    assert [rendered(s.value) for s in at.success] == [f"Rollback requested (command #{command.id}); the scheduler applies it."]
    shown = table(at, "deployments_commands")
    assert list(shown["#"]) == [command.id] and list(shown["status"]) == ["pending"]


def test_rollback_without_reason_shows_error_and_writes_nothing(operator, seeded_home, read_db) -> None:
    at = open_page(PAGES[2])
    at.text_input(key="rollback_reason").input("   ")
    at.button(key="rollback_submit").click().run()
    assert not at.exception
    assert len(at.error) == 1 and "reason is required" in rendered(at.error[0].value)
    assert not at.success
    with read_db() as session:
        assert repo.list_commands(session) == []
        assert repo.list_audit(session) == []


# --- empty ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("page", PAGES)
def test_pages_render_on_an_empty_registry(operator, empty_home, page) -> None:
    at = open_page(page)
    assert at.info or at.caption  # an empty state, not a blank page


def test_overview_empty_state_message(operator, empty_home) -> None:
    at = open_page(PAGES[0])
    assert at.info[0].value == "No champion yet: run `roadwork demo` or `roadwork deploy VERSION`"


# --- time zone ------------------------------------------------------------------------------------------------


@pytest.fixture
def kolkata_time(monkeypatch: pytest.MonkeyPatch):  # noqa: ANN201
    """The process in UTC+05:30 (no daylight saving), restored afterwards."""
    import time

    monkeypatch.setenv("TZ", "Asia/Kolkata")
    time.tzset()
    yield
    monkeypatch.undo()
    time.tzset()


def test_times_are_shown_in_local_time(operator, seeded_home, read_db, kolkata_time) -> None:
    with read_db() as session:
        stored = {r.job_id: r.scheduled_at for r in repo.list_job_runs(session)}
    runs = table(open_page(PAGES[0]), "overview_job_runs")
    shown = dict(zip(runs["job"], runs["scheduled"].dt.to_pydatetime(), strict=True))
    assert shown["train"] == stored["train"] + dt.timedelta(hours=5, minutes=30)


def test_a_fresh_home_gets_a_migrated_database(empty_home) -> None:
    (empty_home / "roadwork.db").unlink()
    at = AppTest.from_file(str(APP), default_timeout=TIMEOUT_S).run()  # a fresh registry has no users yet
    assert not at.exception, at.exception
    assert "roadwork user add NAME --role operator" in at.info[0].value
    assert (empty_home / "roadwork.db").exists()
    add_user(OPERATOR)
    at = open_page(PAGES[0])
    assert "No champion yet" in at.info[0].value

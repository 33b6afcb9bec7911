"""Signing in to the dashboard, sessions that expire, and what a viewer may not do (real SQLite registry, AppTest)."""

from __future__ import annotations

import datetime as dt

import pytest
from streamlit.proto.TextInput_pb2 import TextInput as TextInputProto
from streamlit.testing.v1 import AppTest

from roadwork.clock import utcnow
from roadwork.dashboard import auth, context, services
from roadwork.db import repo
from roadwork.platform import users
from roadwork.settings import AuthSettings
from tests.dashboard.conftest import (
    Login,
    add_user,
    app,
    rendered,
    shown_text,
    sign_in,
    table,
)

PAGE_TITLES = {"Overview", "Models", "Deployments", "Users"}


def titles(at: AppTest) -> set[str]:
    return {t.value for t in at.title}


def submit_sign_in(at: AppTest, username: str, password: str) -> AppTest:
    at.text_input(key="signin_username").input(username)
    at.text_input(key="signin_password").input(password)
    at.button(key="signin_submit").click().run()
    assert not at.exception, at.exception
    return at


def shows_sign_in_form(at: AppTest) -> bool:
    keys = {w.key for w in at.text_input}
    return {"signin_username", "signin_password"} <= keys and not titles(at) & PAGE_TITLES


def audit_actions(read_db) -> list[str]:  # noqa: ANN001
    with read_db() as session:
        return [a.action for a in reversed(repo.list_audit(session, limit=100))]


# --- signing in --------------------------------------------------------------------------------------------------


def test_nobody_signed_in_sees_only_the_sign_in_form(seeded_home, operator) -> None:
    at = app().run()
    assert not at.exception, at.exception
    assert shows_sign_in_form(at)
    assert at.text_input(key="signin_password").proto.type == TextInputProto.Type.PASSWORD
    assert "roadwork-ops:0.2.0" not in shown_text(at)  # no page content
    assert not at.dataframe and not at.metric
    assert not at.sidebar.button  # no sign-out button either
    with pytest.raises(ValueError, match="Could not find a navigation page"):
        at.switch_page("views/deployments.py")  # only the sign-in page is registered


def test_first_run_tells_how_to_create_the_first_operator(empty_home) -> None:
    at = app().run()
    assert shows_sign_in_form(at)
    assert "`roadwork user add NAME --role operator`" in at.info[0].value


def test_wrong_password_shows_an_error_and_stays_signed_out(seeded_home, operator, read_db) -> None:
    at = submit_sign_in(app().run(), operator.username, "not the password")
    assert [rendered(e.value) for e in at.error] == ["Wrong username or password."]
    assert shows_sign_in_form(at)
    assert auth.SESSION_KEY not in at.session_state
    assert audit_actions(read_db) == ["signin_failed"]


def test_right_password_signs_in_and_shows_the_overview(seeded_home, operator, read_db) -> None:
    before = utcnow()
    at = submit_sign_in(app().run(), operator.username, operator.password)
    assert "Overview" in titles(at)
    assert "roadwork-ops:0.2.0" in shown_text(at)
    signed = at.session_state[auth.SESSION_KEY]
    assert (signed.username, signed.role) == (operator.username, "operator")
    assert before + auth.SESSION_LIFETIME <= signed.expires_at <= utcnow() + auth.SESSION_LIFETIME
    assert f"Signed in as {operator.username} (operator)" in [rendered(c.value) for c in at.sidebar.caption]
    assert "signin_password" not in at.session_state  # the form is gone, and its password with it
    assert audit_actions(read_db) == ["signin"]


def test_lock_out_after_five_failures_is_shown_with_when_to_retry(seeded_home, operator) -> None:
    at = app().run()
    for _ in range(AuthSettings().max_failures_per_name):
        submit_sign_in(at, operator.username, "a wrong guess")
    submit_sign_in(at, operator.username, operator.password)
    assert len(at.error) == 1 and rendered(at.error[0].value).startswith("Too many failed sign-ins for 'olivia': try again in")
    assert shows_sign_in_form(at)


def test_the_limit_per_address_from_the_settings_is_shown_without_telling_which_names_exist(
        seeded_home, operator, read_db, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ROADWORK_AUTH__MAX_FAILURES_PER_ADDRESS", "3")
    at = app().run()
    for name in ("admin", "root", "guest"):  # unknown names
        submit_sign_in(at, name, "a wrong guess")
        assert [e.value for e in at.error] == ["Wrong username or password."]
    submit_sign_in(at, operator.username, operator.password)  # a real user, from the same (unknown) address
    assert len(at.error) == 1
    assert rendered(at.error[0].value).startswith("Too many failed sign-ins from this address: try again in 900 s")
    assert shows_sign_in_form(at) and auth.SESSION_KEY not in at.session_state
    # One audit event for the first unknown name; the rest (and the refusal) are counted, to be summed up later.
    assert audit_actions(read_db) == ["signin_failed"]
    with read_db() as session:
        assert repo.get_signin_count(session, "address", "unknown").unknown == 2


def test_sign_out(seeded_home, operator, read_db) -> None:
    at = sign_in(app(), operator).run()
    at.sidebar.button(key="auth_sign_out").click().run()
    assert shows_sign_in_form(at)
    assert audit_actions(read_db) == ["signout"]


# --- sessions that end ------------------------------------------------------------------------------------------


def test_an_expired_session_shows_the_sign_in_form_again(seeded_home, operator) -> None:
    at = sign_in(app(), operator).run()
    at.switch_page("views/deployments.py").run()
    assert "Deployments" in titles(at)
    sign_in(at, operator, lifetime=dt.timedelta(seconds=-1))  # the same session, now past its expiry
    at.run()
    assert not at.exception, at.exception
    assert shows_sign_in_form(at)
    assert "expired" in rendered(at.warning[0].value)
    assert auth.SESSION_KEY not in at.session_state


def test_a_disabled_user_is_signed_out_and_a_changed_role_applies_at_once(seeded_home, operator, viewer) -> None:
    engine = context.engine_for(seeded_home.db_url)
    at = sign_in(app(), viewer).run()
    users.set_role(engine, viewer.username, "operator", operator.username, "on call")
    at.run()
    assert at.session_state[auth.SESSION_KEY].role == "operator"
    users.disable_user(engine, viewer.username, operator.username, "left the team")
    at.run()
    assert shows_sign_in_form(at)
    assert "no longer enabled" in rendered(at.warning[0].value)


# --- viewers and operators -----------------------------------------------------------------------------------


def test_a_viewer_sees_no_rollback_form_and_cannot_request_one(seeded_home, viewer, read_db) -> None:
    at = sign_in(app(), viewer).run()
    at.switch_page("views/deployments.py").run()
    assert not at.exception, at.exception
    assert "Deployments" in titles(at)
    assert not [s for s in at.selectbox if s.key == "rollback_target"]
    assert not [b for b in at.button if b.key == "rollback_submit"]
    assert "Only an operator can request a rollback." in [c.value for c in at.caption]
    assert "Users" not in [p for p in shown_text(at).splitlines()]

    to_id = seeded_home.version_ids["0.1.0"]
    with pytest.raises(PermissionError, match="'victor' is a viewer"):
        services.request_rollback(to_id, "sneaky", actor=viewer.username)
    with pytest.raises(PermissionError, match="'anonymous' is not a user"):
        services.request_rollback(to_id, "sneaky")  # no session: the actor is anonymous
    with read_db() as session:
        assert repo.list_commands(session) == []
        assert repo.list_audit(session) == []


def test_an_operator_requests_a_rollback_under_their_own_name(seeded_home, operator, read_db) -> None:
    at = sign_in(app(), operator).run()
    at.switch_page("views/deployments.py").run()
    to_id = seeded_home.version_ids["0.1.0"]
    at.selectbox(key="rollback_target").select(to_id)
    at.text_input(key="rollback_reason").input("MCC dropped on rain")
    at.button(key="rollback_submit").click().run()
    assert not at.exception, at.exception
    with read_db() as session:
        [command] = repo.list_commands(session)
        [event] = repo.list_audit(session)
    assert (command.kind, command.requested_by) == ("rollback", operator.username)
    assert (event.action, event.actor) == ("rollback_requested", operator.username)
    assert list(table(at, "deployments_commands")["requested by"]) == [operator.username]


def test_a_disabled_operator_with_a_live_session_cannot_write(seeded_home, operator, read_db) -> None:
    add_user(Login("otto", "otto-password-1", "operator"), disabled=True)
    with pytest.raises(PermissionError, match="'otto' is disabled"):
        services.request_rollback(seeded_home.version_ids["0.1.0"], "reason", actor="otto")
    with read_db() as session:
        assert repo.list_commands(session) == []


# --- the Users page ------------------------------------------------------------------------------------------


def test_users_page_is_listed_for_operators_only(seeded_home, operator, viewer, monkeypatch) -> None:
    import streamlit as st

    listed: list[dict[str, str]] = []
    navigation = st.navigation

    def recording(pages, **kwargs):  # noqa: ANN001, ANN003, ANN202
        listed.append({p.title: p.visibility for p in pages})
        return navigation(pages, **kwargs)

    monkeypatch.setattr(st, "navigation", recording)
    for login in (operator, viewer):
        listed.clear()
        at = sign_in(app(), login).run()
        assert not at.exception, at.exception
        everyone = ("Overview", "Models", "Deployments", "Jobs", "A/B tests", "Ablations", "Hard negatives",
                    "Leaderboard")
        assert listed[-1] == {**dict.fromkeys(everyone, "visible"),
                              "Users": "visible" if login.role == "operator" else "hidden"}


def test_users_page_as_a_viewer_says_operators_only(seeded_home, viewer) -> None:
    at = sign_in(app(), viewer).run()
    at.switch_page("views/users.py").run()  # e.g. the URL typed in
    assert not at.exception, at.exception
    assert [t.value for t in at.title] == ["Users"]
    assert len(at.error) == 1 and rendered(at.error[0].value).startswith("Operators only")
    assert not at.main.dataframe and not at.main.text_input and not at.main.button


def test_users_page_as_an_operator_adds_a_user(seeded_home, operator, read_db) -> None:
    at = sign_in(app(), operator).run()
    at.switch_page("views/users.py").run()
    assert not at.exception, at.exception
    shown = next(d.value for d in at.dataframe if "username" in d.value.columns)
    assert list(shown["username"]) == [operator.username]
    assert list(shown.columns) == ["username", "role", "created", "disabled"]

    at.text_input(key="users_add_username").input("newbie")
    at.text_input(key="users_add_password").input("newbie-password-1")
    at.selectbox(key="users_add_role").select("viewer")
    at.text_input(key="users_add_reason").input("new analyst")
    at.button(key="users_add_submit").click().run()
    assert not at.exception, at.exception
    assert [rendered(s.value) for s in at.success] == ["User 'newbie' added as viewer."]
    shown = next(d.value for d in at.dataframe if "username" in d.value.columns)
    assert list(shown["username"]) == ["newbie", operator.username]
    assert "newbie-password-1" not in shown_text(at) and "$argon2" not in repr(shown.to_dict())

    with read_db() as session:
        [event] = repo.list_audit(session)
    assert (event.action, event.actor, event.target, event.reason) == (
        "user_created", operator.username, "newbie", "new analyst")
    assert "newbie-password-1" not in repr(event)
    engine = context.engine_for(seeded_home.db_url)
    assert users.authenticate(engine, "newbie", "newbie-password-1") is not None


def test_users_page_shows_a_refused_change_and_writes_nothing(seeded_home, operator, read_db) -> None:
    at = sign_in(app(), operator).run()
    at.switch_page("views/users.py").run()
    at.text_input(key="users_add_username").input("newbie")
    at.text_input(key="users_add_password").input("short")
    at.text_input(key="users_add_reason").input("new analyst")
    at.button(key="users_add_submit").click().run()
    assert not at.exception, at.exception
    assert len(at.error) == 1 and "at least 10 characters" in rendered(at.error[0].value)
    assert not at.success
    with read_db() as session:
        assert repo.list_audit(session) == []


def test_users_page_changes_a_role_resets_a_password_and_disables(seeded_home, operator, viewer, read_db) -> None:
    at = sign_in(app(), operator).run()
    at.switch_page("views/users.py").run()

    at.selectbox(key="users_role_username").select(viewer.username)
    at.selectbox(key="users_role_role").select("operator")
    at.text_input(key="users_role_reason").input("on call")
    at.button(key="users_role_submit").click().run()
    assert [rendered(s.value) for s in at.success] == [f"User {viewer.username!r} now has the role operator."]

    at.selectbox(key="users_reset_username").select(viewer.username)
    at.text_input(key="users_reset_password").input("brand-new-password")
    at.text_input(key="users_reset_reason").input("forgot it")
    at.button(key="users_reset_submit").click().run()
    assert rendered(at.success[0].value).startswith(f"Password of {viewer.username!r} reset")

    at.selectbox(key="users_disable_username").select(viewer.username)
    at.text_input(key="users_disable_reason").input("left the team")
    at.button(key="users_disable_submit").click().run()
    assert rendered(at.success[0].value).startswith(f"User {viewer.username!r} disabled")
    assert not at.exception, at.exception

    with read_db() as session:
        events = [(a.action, a.actor, a.target, a.reason) for a in reversed(repo.list_audit(session))]
    assert events == [
        ("user_role_changed", operator.username, viewer.username, "on call"),
        ("user_password_reset", operator.username, viewer.username, "forgot it"),
        ("user_disabled", operator.username, viewer.username, "left the team"),
    ]
    assert "brand-new-password" not in shown_text(at)

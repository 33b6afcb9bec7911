"""Users: argon2 hashes, creation rules, sign-in with its lock-out counted from the audit table, role changes."""

from __future__ import annotations

import datetime as dt

import pytest
from argon2 import PasswordHasher
from sqlalchemy import select

from roadwork.db import models as m
from roadwork.db import repo
from roadwork.db.engine import read_session
from roadwork.platform import users

T0 = dt.datetime(2026, 3, 1, 12, 0, 0)
LOCAL = users.local_actor("root")
PASSWORD = "correct horse battery"


@pytest.fixture(autouse=True)
def fast_hashing(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(users, "HASHER", PasswordHasher(time_cost=1, memory_cost=8, parallelism=1))


@pytest.fixture
def ops(engine):  # noqa: ANN001, ANN201 - an engine whose registry holds the operator `olga`
    users.create_user(engine, "olga", PASSWORD, "operator", LOCAL)
    return engine


def audit(engine) -> list[repo.AuditEvent]:  # noqa: ANN001
    with read_session(engine) as session:
        return list(reversed(repo.list_audit(session, limit=1000)))  # oldest first


def stored_hash(engine, username: str) -> str:  # noqa: ANN001
    with read_session(engine) as session:
        return session.scalar(select(m.User.password_hash).where(m.User.username == username))


# --- passwords ---------------------------------------------------------------------------------------------------


def test_hash_round_trip_is_salted_argon2id() -> None:
    first, second = users.hash_password(PASSWORD), users.hash_password(PASSWORD)
    assert first.startswith("$argon2id$") and PASSWORD not in first
    assert first != second  # salted
    assert users.verify_password(first, PASSWORD)
    assert not users.verify_password(first, PASSWORD + "!")
    assert not users.verify_password("not a hash", PASSWORD)
    assert not users.needs_rehash(first)


def test_default_hasher_is_argon2id_with_library_defaults(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.undo()  # the real parameters, once
    assert users.HASHER.type.name == "ID"
    assert users.HASHER.time_cost >= 2 and users.HASHER.memory_cost >= 19 * 1024


def test_a_hash_of_old_parameters_is_replaced_at_the_next_sign_in(ops, monkeypatch: pytest.MonkeyPatch) -> None:
    old = stored_hash(ops, "olga")
    monkeypatch.setattr(users, "HASHER", PasswordHasher(time_cost=2, memory_cost=16, parallelism=1))
    assert users.needs_rehash(old)
    assert users.authenticate(ops, "olga", PASSWORD, now=T0) is not None
    new = stored_hash(ops, "olga")
    assert new != old and "t=2" in new and not users.needs_rehash(new)
    assert users.authenticate(ops, "olga", PASSWORD, now=T0) is not None


# --- creating users ----------------------------------------------------------------------------------------------


def test_create_and_list_users_without_hashes(ops) -> None:
    viewer = users.create_user(ops, "vic.tor_1", "viewer-password", "viewer", "olga", reason="new analyst")
    assert (viewer.username, viewer.role, viewer.disabled) == ("vic.tor_1", "viewer", False)
    listed = users.list_users(ops)
    assert [u.username for u in listed] == ["olga", "vic.tor_1"]
    assert all(not hasattr(u, "password_hash") for u in listed)
    assert users.get_user(ops, "nobody") is None
    assert (users.count_users(ops), users.count_operators(ops)) == (2, 1)


def test_duplicate_username_is_refused_by_name(ops) -> None:
    with pytest.raises(ValueError, match="'olga' already exists"):
        users.create_user(ops, "olga", "another-password", "viewer", LOCAL)
    assert users.count_users(ops) == 1


@pytest.mark.parametrize("name", ["ab", "x" * 65, "Olga", "olga smith", "ol:ga", "olga@x", "", "élodie"])
def test_invalid_usernames_are_refused(engine, name: str) -> None:
    with pytest.raises(ValueError, match="Invalid username"):
        users.create_user(engine, name, PASSWORD, "viewer", LOCAL)
    assert users.count_users(engine) == 0


def test_valid_username_edges(engine) -> None:
    for name in ("abc", "a" * 64, "a.b-c_9"):
        users.create_user(engine, name, PASSWORD, "viewer", LOCAL)
    assert users.count_users(engine) == 3


def test_short_password_and_unknown_role_are_refused(engine) -> None:
    with pytest.raises(ValueError, match="at least 10 characters"):
        users.create_user(engine, "olga", "123456789", "operator", LOCAL)
    with pytest.raises(ValueError, match="Unknown role 'admin'"):
        users.create_user(engine, "olga", PASSWORD, "admin", LOCAL)
    assert users.count_users(engine) == 0


def test_only_an_operator_or_the_local_cli_creates_users(ops) -> None:
    users.create_user(ops, "victor", "viewer-password", "viewer", "olga", reason="analyst")
    with pytest.raises(PermissionError, match="'victor' is a viewer"):
        users.create_user(ops, "mallory", "mallory-password", "operator", "victor", reason="me too")
    with pytest.raises(PermissionError, match="'ghost' is not a user"):
        users.create_user(ops, "mallory", "mallory-password", "operator", "ghost", reason="me too")
    with pytest.raises(ValueError, match="reason is required"):
        users.create_user(ops, "mallory", "mallory-password", "viewer", "olga", reason="  ")
    assert users.get_user(ops, "mallory") is None


# --- signing in --------------------------------------------------------------------------------------------------


def test_authenticate_right_wrong_unknown_and_disabled(ops) -> None:
    user = users.authenticate(ops, "olga", PASSWORD, now=T0)
    assert user is not None and (user.username, user.role) == ("olga", "operator")
    assert users.authenticate(ops, "olga", "wrong password", now=T0) is None
    assert users.authenticate(ops, "nobody", PASSWORD, now=T0) is None
    assert users.authenticate(ops, "", "", now=T0) is None
    users.create_user(ops, "victor", "viewer-password", "viewer", LOCAL)
    users.disable_user(ops, "victor", "olga", "left the team")
    assert users.authenticate(ops, "victor", "viewer-password", now=T0) is None
    failed = [(a.target, a.details["why"]) for a in audit(ops) if a.action == users.SIGNIN_FAILED]
    assert failed == [("olga", "wrong password"), ("nobody", "unknown user"), (None, "invalid username"),
                      ("victor", "disabled")]


def test_five_failures_lock_out_even_the_right_password_until_the_window_passes(ops) -> None:
    for i in range(users.MAX_FAILURES):
        assert users.authenticate(ops, "olga", f"guess {i}", now=T0 + dt.timedelta(minutes=i)) is None
    retry_at = T0 + users.FAILURE_WINDOW  # the first failure leaves the window
    assert users.locked_until(ops, "olga", now=T0 + dt.timedelta(minutes=5)) == retry_at

    with pytest.raises(users.SignInLocked) as locked:
        users.authenticate(ops, "olga", PASSWORD, now=T0 + dt.timedelta(minutes=5))
    assert locked.value.retry_at == retry_at
    assert str(locked.value) == "Too many failed sign-ins for 'olga': try again in 10 min (after 12:15 UTC)."
    with pytest.raises(users.SignInLocked):  # refused attempts do not extend the lock-out ...
        users.authenticate(ops, "olga", PASSWORD, now=retry_at - dt.timedelta(seconds=1))

    user = users.authenticate(ops, "olga", PASSWORD, now=retry_at)  # ... which ends on time
    assert user is not None and user.username == "olga"
    assert [a.action for a in audit(ops)][-3:] == [users.SIGNIN_LOCKED, users.SIGNIN_LOCKED, users.SIGNIN]


def test_the_lock_out_is_per_username_and_counts_only_recent_failures(ops) -> None:
    users.create_user(ops, "victor", "viewer-password", "viewer", LOCAL)
    for i in range(users.MAX_FAILURES - 1):  # 4 failures long ago, then 4 recent: never 5 within 15 min
        users.authenticate(ops, "olga", "guess", now=T0 + dt.timedelta(minutes=i))
        users.authenticate(ops, "olga", "guess", now=T0 + dt.timedelta(minutes=20 + i))
    assert users.authenticate(ops, "olga", PASSWORD, now=T0 + dt.timedelta(minutes=25)) is not None
    for i in range(users.MAX_FAILURES):
        users.authenticate(ops, "victor", "guess", now=T0 + dt.timedelta(minutes=i))
    assert users.locked_until(ops, "victor", now=T0 + dt.timedelta(minutes=6)) is not None
    assert users.authenticate(ops, "olga", PASSWORD, now=T0 + dt.timedelta(minutes=6)) is not None


def test_a_success_or_a_password_reset_starts_the_count_afresh(ops) -> None:
    at = lambda minutes: T0 + dt.timedelta(minutes=minutes)  # noqa: E731
    for i in range(users.MAX_FAILURES - 1):
        users.authenticate(ops, "olga", "guess", now=at(i))
    assert users.authenticate(ops, "olga", PASSWORD, now=at(4)) is not None
    for i in range(users.MAX_FAILURES - 1):
        users.authenticate(ops, "olga", "guess", now=at(5 + i))
    assert users.locked_until(ops, "olga", now=at(9)) is None  # 4 since the success, not 8

    users.create_user(ops, "victor", "viewer-password", "viewer", LOCAL)
    for _ in range(users.MAX_FAILURES):
        users.authenticate(ops, "victor", "guess")  # now: the reset below is written at the real time
    assert users.locked_until(ops, "victor") is not None
    users.reset_password(ops, "victor", "a-new-password", "olga", "locked out")
    assert users.locked_until(ops, "victor") is None
    assert users.authenticate(ops, "victor", "a-new-password") is not None


def test_unknown_usernames_are_locked_out_too(ops) -> None:
    for i in range(users.MAX_FAILURES):
        users.authenticate(ops, "admin", "guess", now=T0 + dt.timedelta(seconds=i))
    with pytest.raises(users.SignInLocked):  # the same answer as for a real user: names are not revealed
        users.authenticate(ops, "admin", "guess", now=T0 + dt.timedelta(minutes=1))


def test_audit_events_never_hold_a_password_or_hash(ops) -> None:
    users.create_user(ops, "victor", "viewer-password", "viewer", "olga", reason="analyst")
    users.authenticate(ops, "victor", "viewer-password", now=T0)
    users.authenticate(ops, "victor", "typo-password", now=T0)
    users.authenticate(ops, "Secret-Typed-In-Name-Box", "x", now=T0)
    users.reset_password(ops, "victor", "reset-password-2", "olga", "forgot it")
    users.set_role(ops, "victor", "operator", "olga", "on call")
    users.disable_user(ops, "victor", "olga", "left")
    events = audit(ops)
    assert [a.action for a in events] == [
        "user_created", "user_created", "signin", "signin_failed", "signin_failed", "user_password_reset",
        "user_role_changed", "user_disabled",
    ]
    dumped = repr(events)
    for secret in (PASSWORD, "viewer-password", "typo-password", "reset-password-2", "Secret-Typed-In-Name-Box",
                   "$argon2"):
        assert secret not in dumped
    assert [(a.actor, a.reason) for a in events[-3:]] == [("olga", "forgot it"), ("olga", "on call"),
                                                           ("olga", "left")]
    assert events[-2].details == {"from": "viewer", "to": "operator"}


# --- changing users ----------------------------------------------------------------------------------------------


def test_role_changes_need_an_enabled_operator_and_a_reason(ops) -> None:
    users.create_user(ops, "victor", "viewer-password", "viewer", LOCAL)
    users.create_user(ops, "vera", "viewer-password", "viewer", LOCAL)
    with pytest.raises(PermissionError, match="'victor' is a viewer"):
        users.set_role(ops, "victor", "operator", "victor", "promote myself")
    with pytest.raises(PermissionError, match="'victor' is a viewer"):
        users.reset_password(ops, "olga", "taken-over-password", "victor", "mine now")
    with pytest.raises(PermissionError, match="'victor' is a viewer"):
        users.disable_user(ops, "olga", "victor", "bye")
    with pytest.raises(PermissionError, match=r"'local:' is not a user"):
        users.set_role(ops, "victor", "operator", "local:", "an empty local name is not the CLI")
    with pytest.raises(ValueError, match="reason is required"):
        users.set_role(ops, "victor", "operator", "olga", "")
    assert users.get_user(ops, "victor").role == "viewer"

    assert users.set_role(ops, "victor", "operator", "olga", "on call").role == "operator"
    assert users.set_role(ops, "vera", "operator", "victor", "second on call").role == "operator"
    users.disable_user(ops, "vera", "olga", "left")
    with pytest.raises(PermissionError, match="'vera' is disabled"):
        users.set_role(ops, "olga", "viewer", "vera", "revenge")
    assert users.set_role(ops, "victor", "viewer", LOCAL, "").role == "viewer"  # the local CLI, no reason needed
    with pytest.raises(ValueError, match="No user 'ghost'"):
        users.set_role(ops, "ghost", "viewer", "olga", "typo")
    with pytest.raises(ValueError, match="already a viewer"):
        users.set_role(ops, "victor", "viewer", "olga", "again")


def test_the_last_enabled_operator_cannot_be_demoted_or_disabled(ops) -> None:
    with pytest.raises(ValueError, match="last enabled operator"):
        users.set_role(ops, "olga", "viewer", "olga", "step down")
    with pytest.raises(ValueError, match="last enabled operator"):
        users.disable_user(ops, "olga", LOCAL, "")
    users.create_user(ops, "otto", "operator-password", "operator", "olga", reason="second operator")
    assert users.count_operators(ops) == 2
    assert users.set_role(ops, "olga", "viewer", "olga", "step down").role == "viewer"
    assert users.count_operators(ops) == 1


def test_disable_and_enable(ops) -> None:
    users.create_user(ops, "victor", "viewer-password", "viewer", LOCAL)
    assert users.disable_user(ops, "victor", "olga", "left").disabled
    with pytest.raises(ValueError, match="already disabled"):
        users.disable_user(ops, "victor", "olga", "left")
    assert not users.enable_user(ops, "victor", "olga", "back").disabled
    assert users.authenticate(ops, "victor", "viewer-password", now=T0) is not None


def test_require_operator(ops) -> None:
    users.create_user(ops, "victor", "viewer-password", "viewer", LOCAL)
    users.create_user(ops, "otto", "operator-password", "operator", LOCAL)
    users.disable_user(ops, "otto", "olga", "left")
    assert users.require_operator(ops, "olga").username == "olga"
    with pytest.raises(PermissionError, match="'victor' is a viewer"):
        users.require_operator(ops, "victor")
    with pytest.raises(PermissionError, match="'otto' is disabled"):
        users.require_operator(ops, "otto")
    with pytest.raises(PermissionError, match="'ghost' is not a user"):
        users.require_operator(ops, "ghost")
    with pytest.raises(PermissionError, match="is not a user"):
        users.require_operator(ops, LOCAL)  # the CLI actor is not a dashboard operator

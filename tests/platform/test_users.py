"""Users: argon2 hashes, creation rules, sign-in and its limits (per name, per address, overall), role changes."""

from __future__ import annotations

import datetime as dt
import sqlite3
from concurrent.futures import ThreadPoolExecutor

import pytest
from argon2 import PasswordHasher
from sqlalchemy import select

from roadwork.db import models as m
from roadwork.db import repo
from roadwork.db.engine import read_session
from roadwork.platform import users
from roadwork.settings import AuthSettings

T0 = dt.datetime(2026, 3, 1, 12, 0, 0)
LOCAL = users.local_actor("root")
PASSWORD = "correct horse battery"
LIMITS = AuthSettings()  # the defaults
MAX_FAILURES = LIMITS.max_failures_per_name
FAILURE_WINDOW = dt.timedelta(seconds=LIMITS.failure_window_s)


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
    failed = [(a.target, a.details["why"], a.details.get("count")) for a in audit(ops)
              if a.action == users.SIGNIN_FAILED]
    # Unknown and impossible names are counted per address and audited in sums (the first one at once), without
    # the name typed.
    assert failed == [("olga", "wrong password", None), (None, "unknown user", 1), ("victor", "disabled", None)]


def test_five_failures_lock_out_even_the_right_password_until_the_window_passes(ops) -> None:
    for i in range(MAX_FAILURES):
        assert users.authenticate(ops, "olga", f"guess {i}", now=T0 + dt.timedelta(minutes=i)) is None
    retry_at = T0 + FAILURE_WINDOW  # the first failure leaves the window
    assert users.locked_until(ops, "olga", now=T0 + dt.timedelta(minutes=5)) == retry_at

    with pytest.raises(users.SignInLocked) as locked:
        users.authenticate(ops, "olga", PASSWORD, now=T0 + dt.timedelta(minutes=5))
    assert locked.value.retry_at == retry_at
    assert str(locked.value) == "Too many failed sign-ins for 'olga': try again in 600 s (after 12:15:00 UTC)."
    with pytest.raises(users.SignInLocked):  # refused attempts do not extend the lock-out ...
        users.authenticate(ops, "olga", PASSWORD, now=retry_at - dt.timedelta(seconds=1))

    user = users.authenticate(ops, "olga", PASSWORD, now=retry_at)  # ... which ends on time
    assert user is not None and user.username == "olga"
    events = audit(ops)
    assert events[-1].action == users.SIGNIN
    refused = [a for a in events if a.action == users.SIGNIN_LOCKED]  # summed up (at the latest at the success)
    assert sum(a.details["count"] for a in refused) == 2 and {a.target for a in refused} == {"olga"}


def test_the_lock_out_is_per_username_and_counts_only_recent_failures(ops) -> None:
    users.create_user(ops, "victor", "viewer-password", "viewer", LOCAL)
    for i in range(MAX_FAILURES - 1):  # 4 failures long ago, then 4 recent: never 5 within 15 min
        users.authenticate(ops, "olga", "guess", now=T0 + dt.timedelta(minutes=i))
        users.authenticate(ops, "olga", "guess", now=T0 + dt.timedelta(minutes=20 + i))
    assert users.authenticate(ops, "olga", PASSWORD, now=T0 + dt.timedelta(minutes=25)) is not None
    for i in range(MAX_FAILURES):
        users.authenticate(ops, "victor", "guess", now=T0 + dt.timedelta(minutes=i))
    assert users.locked_until(ops, "victor", now=T0 + dt.timedelta(minutes=6)) is not None
    assert users.authenticate(ops, "olga", PASSWORD, now=T0 + dt.timedelta(minutes=6)) is not None


def test_a_success_or_a_password_reset_starts_the_count_afresh(ops) -> None:
    at = lambda minutes: T0 + dt.timedelta(minutes=minutes)  # noqa: E731
    for i in range(MAX_FAILURES - 1):
        users.authenticate(ops, "olga", "guess", now=at(i))
    assert users.authenticate(ops, "olga", PASSWORD, now=at(4)) is not None
    for i in range(MAX_FAILURES - 1):
        users.authenticate(ops, "olga", "guess", now=at(5 + i))
    assert users.locked_until(ops, "olga", now=at(9)) is None  # 4 since the success, not 8

    users.create_user(ops, "victor", "viewer-password", "viewer", LOCAL)
    for _ in range(MAX_FAILURES):
        users.authenticate(ops, "victor", "guess")  # now: the reset below is written at the real time
    assert users.locked_until(ops, "victor") is not None
    users.reset_password(ops, "victor", "a-new-password", "olga", "locked out")
    assert users.locked_until(ops, "victor") is None
    assert users.authenticate(ops, "victor", "a-new-password") is not None


def test_unknown_usernames_are_locked_out_too(ops) -> None:
    for i in range(MAX_FAILURES):
        users.authenticate(ops, "admin", "guess", now=T0 + dt.timedelta(seconds=i))
    with pytest.raises(users.SignInLocked):  # the same answer as for a real user: names are not revealed
        users.authenticate(ops, "admin", "guess", now=T0 + dt.timedelta(minutes=1))


def test_refused_attempts_are_audited_in_sums_not_one_event_each(ops) -> None:
    for i in range(MAX_FAILURES):
        users.authenticate(ops, "olga", "guess", now=T0 + dt.timedelta(seconds=i))
    for i in range(30):  # a script hammering the locked name: no password check, no row each
        with pytest.raises(users.SignInLocked):
            users.authenticate(ops, "olga", "guess", now=T0 + dt.timedelta(minutes=1, seconds=i))
    assert sum(a.action == users.SIGNIN_LOCKED for a in audit(ops)) <= 1  # at most the first one, at once
    assert users.authenticate(ops, "olga", PASSWORD, now=T0 + FAILURE_WINDOW) is not None
    locked = [a for a in audit(ops) if a.action == users.SIGNIN_LOCKED]
    assert len(locked) <= 2 and {a.target for a in locked} == {"olga"}
    assert sum(a.details["count"] for a in locked) == 30  # every refusal counted, summed up


def test_an_address_is_limited_whatever_the_names(ops) -> None:
    limits = AuthSettings(max_failures_per_address=6, max_failures_per_name=3)
    at = lambda seconds: T0 + dt.timedelta(seconds=seconds)
    names = ["admin", "root", "olga", "test", "guest", "ubuntu"]  # one failure each: no name reaches its limit
    for i, name in enumerate(names):
        assert users.authenticate(ops, name, "guess", now=at(i), address="10.0.0.66", limits=limits) is None
    with pytest.raises(users.SignInLocked) as refused:  # the right password of a real user, from that address
        users.authenticate(ops, "olga", PASSWORD, now=at(10), address="10.0.0.66", limits=limits)
    assert refused.value.scope == "address" and refused.value.retry_at == at(0) + FAILURE_WINDOW
    assert str(refused.value).startswith("Too many failed sign-ins from this address: try again in 890 s")
    # Another address is not affected; the first one is free again once its oldest failure leaves the window.
    assert users.authenticate(ops, "olga", PASSWORD, now=at(11), address="10.0.0.7", limits=limits) is not None
    assert users.authenticate(ops, "olga", PASSWORD, now=at(0) + FAILURE_WINDOW, address="10.0.0.66",
                              limits=limits) is not None


def test_a_right_password_does_not_count_against_its_address(ops) -> None:
    limits = AuthSettings(max_failures_per_address=3)
    for i in range(10):
        assert users.authenticate(ops, "olga", PASSWORD, now=T0 + dt.timedelta(seconds=i), address="10.0.0.1",
                                  limits=limits) is not None


def test_everyone_together_is_limited_per_minute(ops) -> None:
    limits = AuthSettings(max_attempts_per_minute=4)
    at = lambda seconds: T0 + dt.timedelta(seconds=seconds)
    for i in range(4):  # successes count too: the limit bounds the password checks per minute
        assert users.authenticate(ops, "olga", PASSWORD, now=at(i), address=f"10.0.1.{i}", limits=limits)
    with pytest.raises(users.SignInLocked) as refused:
        users.authenticate(ops, "olga", PASSWORD, now=at(30), address="10.0.2.1", limits=limits)
    assert refused.value.scope == "all" and refused.value.retry_at == at(60)
    assert str(refused.value) == "Too many sign-in attempts on this dashboard: try again in 30 s (after 12:01:00 UTC)."
    assert users.authenticate(ops, "olga", PASSWORD, now=at(60), address="10.0.2.1", limits=limits) is not None


def test_unknown_names_are_counted_per_address_and_audited_at_most_once_per_window(ops) -> None:
    limits = AuthSettings(max_failures_per_address=1000, max_attempts_per_minute=1000)
    before = len(audit(ops))
    for i in range(200):  # 200 different unknown names, 2 s apart: 400 s, within one window
        name = f"user{i:03d}"
        assert users.authenticate(ops, name, "guess", now=T0 + dt.timedelta(seconds=2 * i), address="10.9.9.9",
                                  limits=limits) is None
    rows = audit(ops)[before:]
    assert [(a.action, a.target, a.details["count"]) for a in rows] == [(users.SIGNIN_FAILED, None, 1)]
    assert rows[0].reason == "1 failed sign-in with unknown names from 10.9.9.9"
    # The next one a window after that report sums up the rest.
    users.authenticate(ops, "user999", "guess", now=T0 + FAILURE_WINDOW, address="10.9.9.9", limits=limits)
    rows = audit(ops)[before:]
    assert [a.details["count"] for a in rows] == [1, 200]
    assert rows[1].reason == "200 failed sign-ins with unknown names from 10.9.9.9"
    assert all("user0" not in repr(a) for a in rows)  # the names typed are not stored


def test_counts_pending_when_an_address_goes_quiet_are_audited_later(ops) -> None:
    for i in range(3):
        users.authenticate(ops, f"nobody{i}", "guess", now=T0 + dt.timedelta(seconds=i), address="10.0.0.9")
    # Much later, any sign-in removes the stale counts and writes what they still held.
    users.authenticate(ops, "olga", PASSWORD, now=T0 + dt.timedelta(hours=2), address="10.0.0.1")
    unknown = [a for a in audit(ops) if a.action == users.SIGNIN_FAILED]
    assert [(a.details["count"], a.details["address"]) for a in unknown] == [(1, "10.0.0.9"), (2, "10.0.0.9")]


class _WriteWhileChecking(PasswordHasher):
    """A real hasher that, while it checks a password, writes to the database from another connection that
    does not wait for a lock (timeout 0): that write fails when the sign-in holds the write lock."""

    def __init__(self, db_path: str) -> None:
        super().__init__(time_cost=1, memory_cost=8, parallelism=1)
        self.db_path, self.writes = db_path, 0

    def verify(self, hash, password) -> bool:
        conn = sqlite3.connect(self.db_path, timeout=0, isolation_level=None)
        try:
            conn.execute("BEGIN IMMEDIATE")
            conn.execute("UPDATE scheduler_lease SET pid = pid WHERE id = 1")
            conn.execute("COMMIT")
            self.writes += 1
        finally:
            conn.close()
        return super().verify(hash, password)


def test_the_password_is_checked_while_others_can_write(ops, settings, monkeypatch: pytest.MonkeyPatch) -> None:
    hasher = _WriteWhileChecking(str(settings.home / "roadwork.db"))
    monkeypatch.setattr(users, "HASHER", hasher)
    assert users.authenticate(ops, "olga", "wrong password", now=T0) is None
    assert users.authenticate(ops, "nobody", "wrong password", now=T0) is None
    assert users.authenticate(ops, "olga", PASSWORD, now=T0) is not None
    assert hasher.writes == 3  # "database is locked" would have failed the sign-in instead


def test_concurrent_failures_cannot_pass_the_name_limit_together(ops) -> None:
    def attempt(_: int) -> str:
        try:
            return "failed" if users.authenticate(ops, "olga", "guess", now=T0) is None else "signed in"
        except users.SignInLocked:
            return "refused"

    with ThreadPoolExecutor(8) as pool:
        outcomes = list(pool.map(attempt, range(16)))
    assert (outcomes.count("failed"), outcomes.count("refused")) == (MAX_FAILURES, 16 - MAX_FAILURES)
    assert sum(a.action == users.SIGNIN_FAILED for a in audit(ops)) == MAX_FAILURES


def test_a_password_reset_during_the_check_wins(ops, monkeypatch: pytest.MonkeyPatch) -> None:
    class ResetWhileChecking(PasswordHasher):
        def verify(self, hash, password) -> bool:
            users.reset_password(ops, "olga", "a-brand-new-password", "local:root", "")
            return super().verify(hash, password)

    monkeypatch.setattr(users, "HASHER", ResetWhileChecking(time_cost=1, memory_cost=8, parallelism=1))
    assert users.authenticate(ops, "olga", PASSWORD, now=T0) is None  # the old password no longer signs in


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

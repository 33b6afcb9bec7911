"""Dashboard users: argon2 password hashes, roles, sign-in with a lock-out, and an audit event for every change.

A user is a `viewer` (reads) or an `operator` (reads and acts). Every change of a user needs an actor who is an
enabled operator in the users table, or the local command line (`local_actor()`: whoever runs `roadwork user`
on the machine already holds the database), and writes an audit event naming the actor and the reason.

Failed sign-ins are counted from `audit_events` rows (action `signin_failed`, target the username), so the
lock-out holds across dashboard processes and restarts: after `MAX_FAILURES` failures within `FAILURE_WINDOW`
a username is refused, even with the right password, until the oldest of those failures leaves the window.
A successful sign-in or a password reset starts the count afresh. Refused attempts are audited as
`signin_locked` and do not extend the lock-out. Passwords and hashes are never returned, logged or audited.
"""

from __future__ import annotations

import datetime as dt
import getpass
import os
import re
from dataclasses import dataclass

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError
from sqlalchemy import Engine
from sqlalchemy.orm import Session

from roadwork.clock import utcnow
from roadwork.db import repo
from roadwork.db.engine import read_session, write_session

VIEWER, OPERATOR = "viewer", "operator"
ROLES = (VIEWER, OPERATOR)
USERNAME_RE = re.compile(r"[a-z0-9_.-]{3,64}")
MIN_PASSWORD_LEN = 10
MAX_FAILURES = 5  # failed sign-ins of one username ...
FAILURE_WINDOW = dt.timedelta(minutes=15)  # ... within this window lock it out
LOCAL_ACTOR_PREFIX = "local:"  # ':' is not allowed in usernames, so no dashboard user can pose as the CLI
ANONYMOUS = "anonymous"

# Audit actions.
SIGNIN, SIGNIN_FAILED, SIGNIN_LOCKED, SIGNOUT = "signin", "signin_failed", "signin_locked", "signout"
CREATED, ROLE_CHANGED, PASSWORD_RESET = "user_created", "user_role_changed", "user_password_reset"
DISABLED, ENABLED = "user_disabled", "user_enabled"
_COUNT_RESETS = (SIGNIN, PASSWORD_RESET)  # failures before the newest of these no longer count

# argon2id with the library's current defaults; replace it (tests use cheap parameters) and stored hashes of
# other parameters are rehashed at their next successful sign-in.
HASHER = PasswordHasher()
_dummy_hashes: dict[int, str] = {}


@dataclass(frozen=True)
class UserInfo:
    """A user as shown and checked: never the password hash."""

    id: int
    username: str
    role: str  # viewer | operator
    created_at: dt.datetime  # naive UTC
    disabled: bool


class SignInLocked(PermissionError):
    """Too many failed sign-ins of one username: refused until `retry_at` (naive UTC)."""

    def __init__(self, username: str, retry_at: dt.datetime, now: dt.datetime) -> None:
        self.username = username
        self.retry_at = retry_at
        minutes = max(1, -(-int((retry_at - now).total_seconds()) // 60))  # rounded up
        super().__init__(
            f"Too many failed sign-ins for {username!r}: try again in {minutes} min "
            f"(after {retry_at:%H:%M} UTC)."
        )


# --- passwords -------------------------------------------------------------------------------------------------


def hash_password(password: str) -> str:
    """An argon2id hash of `password` (PHC string format, salted)."""
    return HASHER.hash(password)


def verify_password(password_hash: str, password: str) -> bool:
    """Whether `password` matches `password_hash`; False also for a malformed hash."""
    try:
        return HASHER.verify(password_hash, password or "")
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return False


def needs_rehash(password_hash: str) -> bool:
    """Whether the hash was made with other parameters than `HASHER`'s."""
    try:
        return HASHER.check_needs_rehash(password_hash)
    except (InvalidHashError, ValueError):
        return True


def _dummy_hash() -> str:
    # Unknown usernames still cost one verification, so response time does not tell which names exist.
    key = id(HASHER)
    if key not in _dummy_hashes:
        _dummy_hashes[key] = HASHER.hash("not a password of anyone")
    return _dummy_hashes[key]


def validate_username(username: str) -> str:
    """`username` if it is 3-64 characters of a-z, 0-9, `_`, `.`, `-`; else a ValueError saying so."""
    if not isinstance(username, str) or not USERNAME_RE.fullmatch(username):
        raise ValueError(
            f"Invalid username {username!r}: use 3-64 characters of a-z, 0-9, '_', '.' and '-'."
        )
    return username


def validate_password(password: str) -> str:
    if not isinstance(password, str) or len(password) < MIN_PASSWORD_LEN:
        raise ValueError(f"The password is too short: use at least {MIN_PASSWORD_LEN} characters.")
    return password


def _validate_role(role: str) -> str:
    if role not in ROLES:
        raise ValueError(f"Unknown role {role!r}: use one of {', '.join(ROLES)}.")
    return role


# --- actors ------------------------------------------------------------------------------------------------------


def os_user() -> str:
    """The operating-system user: $LOGNAME / $USER when set, else the password database's name of this process's
    user id (so an unset $USER, as under cron or `env -u USER`, still names who acted), else `uid<N>`."""
    try:
        return getpass.getuser()
    except (KeyError, OSError):  # no variable and no passwd entry (a container's arbitrary uid)
        return f"uid{os.getuid()}" if hasattr(os, "getuid") else "unknown"


def local_actor(name: str | None = None) -> str:
    """The actor of the local command line, e.g. `local:alice` (the OS user by default)."""
    return f"{LOCAL_ACTOR_PREFIX}{name or os_user()}"


def is_local_actor(actor: str) -> bool:
    return isinstance(actor, str) and actor.startswith(LOCAL_ACTOR_PREFIX) and len(actor) > len(LOCAL_ACTOR_PREFIX)


def _info(row: repo.UserRecord) -> UserInfo:
    return UserInfo(id=row.id, username=row.username, role=row.role, created_at=row.created_at,
                    disabled=bool(row.disabled))


def _row(session: Session, username: str) -> repo.UserRecord | None:
    return repo.find_user(session, username)


def _existing(session: Session, username: str) -> repo.UserRecord:
    row = _row(session, username)
    if row is None:
        raise ValueError(f"No user {username!r}.")
    return row


def _operator_in(session: Session, username: str) -> UserInfo:
    row = _row(session, username) if isinstance(username, str) else None
    if row is None:
        raise PermissionError(f"{username!r} is not a user; this needs an operator.")
    if row.disabled:
        raise PermissionError(f"User {username!r} is disabled; this needs an enabled operator.")
    if row.role != OPERATOR:
        raise PermissionError(f"User {username!r} is a {row.role}; this needs an operator.")
    return _info(row)


def _authorize(session: Session, actor: str, reason: str) -> str:
    """The stripped reason, once `actor` may change users; a local actor may leave the reason empty."""
    if not is_local_actor(actor):
        _operator_in(session, actor)
    reason = (reason or "").strip()
    if not reason and not is_local_actor(actor):
        raise ValueError("A reason is required.")
    return reason


def _enabled_operators(session: Session) -> int:
    return repo.count_users(session, role=OPERATOR, enabled_only=True)


def _audit(session: Session, *, actor: str, action: str, target: str | None, reason: str = "",
           details: dict | None = None, now: dt.datetime | None = None) -> None:
    # Sign-in events carry the caller's `now`, which the lock-out counts by.
    repo.add_audit(session, actor=actor, action=action, target=target, reason=reason, details=details,
                   created_at=now or utcnow())


# --- reads -------------------------------------------------------------------------------------------------------


def get_user(engine: Engine, username: str) -> UserInfo | None:
    with read_session(engine) as session:
        row = _row(session, username)
        return _info(row) if row is not None else None


def list_users(engine: Engine) -> list[UserInfo]:
    """Every user, by username (no hashes)."""
    with read_session(engine) as session:
        return [_info(r) for r in repo.list_users(session)]


def count_users(engine: Engine) -> int:
    with read_session(engine) as session:
        return repo.count_users(session)


def count_operators(engine: Engine) -> int:
    """Enabled operators."""
    with read_session(engine) as session:
        return _enabled_operators(session)


def require_operator(engine: Engine, username: str) -> UserInfo:
    """The user, if it exists, is enabled and is an operator; else `PermissionError` saying which is missing."""
    with read_session(engine) as session:
        return _operator_in(session, username)


# --- changes -----------------------------------------------------------------------------------------------------


def create_user(engine: Engine, username: str, password: str, role: str, actor: str, *, reason: str = "") -> UserInfo:
    """A new enabled user. ValueError for a bad name, short password, unknown role or a taken name."""
    validate_username(username)
    validate_password(password)
    _validate_role(role)
    with write_session(engine) as session:
        reason = _authorize(session, actor, reason)
        if _row(session, username) is not None:
            raise ValueError(f"User {username!r} already exists.")
        row = repo.add_user(session, username=username, password_hash=hash_password(password), role=role,
                            disabled=False)
        _audit(session, actor=actor, action=CREATED, target=username, reason=reason, details={"role": role})
        return _info(row)


def set_role(engine: Engine, username: str, role: str, actor: str, reason: str) -> UserInfo:
    """Change `username`'s role; the last enabled operator cannot be demoted."""
    _validate_role(role)
    with write_session(engine) as session:
        reason = _authorize(session, actor, reason)
        row = _existing(session, username)
        if row.role == role:
            raise ValueError(f"User {username!r} is already a {role}.")
        if row.role == OPERATOR and not row.disabled and _enabled_operators(session) <= 1:
            raise ValueError(f"User {username!r} is the last enabled operator; make another operator first.")
        before = row.role
        row = repo.update_user(session, row.id, role=role)
        _audit(session, actor=actor, action=ROLE_CHANGED, target=username, reason=reason,
               details={"from": before, "to": role})
        return _info(row)


def reset_password(engine: Engine, username: str, new_password: str, actor: str, reason: str) -> UserInfo:
    """Give `username` a new password; this also lifts a sign-in lock-out."""
    validate_password(new_password)
    with write_session(engine) as session:
        reason = _authorize(session, actor, reason)
        row = _existing(session, username)
        row = repo.update_user(session, row.id, password_hash=hash_password(new_password))
        _audit(session, actor=actor, action=PASSWORD_RESET, target=username, reason=reason)
        return _info(row)


def disable_user(engine: Engine, username: str, actor: str, reason: str) -> UserInfo:
    """Disable `username` (it can no longer sign in or act); the last enabled operator cannot be disabled."""
    with write_session(engine) as session:
        reason = _authorize(session, actor, reason)
        row = _existing(session, username)
        if row.disabled:
            raise ValueError(f"User {username!r} is already disabled.")
        if row.role == OPERATOR and _enabled_operators(session) <= 1:
            raise ValueError(f"User {username!r} is the last enabled operator; make another operator first.")
        row = repo.update_user(session, row.id, disabled=True)
        _audit(session, actor=actor, action=DISABLED, target=username, reason=reason)
        return _info(row)


def enable_user(engine: Engine, username: str, actor: str, reason: str) -> UserInfo:
    """Enable a disabled user again."""
    with write_session(engine) as session:
        reason = _authorize(session, actor, reason)
        row = _existing(session, username)
        if not row.disabled:
            raise ValueError(f"User {username!r} is not disabled.")
        row = repo.update_user(session, row.id, disabled=False)
        _audit(session, actor=actor, action=ENABLED, target=username, reason=reason)
        return _info(row)


# --- sign-in -----------------------------------------------------------------------------------------------------


def _locked_until(session: Session, username: str, now: dt.datetime) -> dt.datetime | None:
    """When `username` may try again, or None when it is not locked out at `now`."""
    since = now - FAILURE_WINDOW
    reset = repo.newest_audit_time(session, target=username, actions=_COUNT_RESETS, upto=now)
    if reset is not None and reset > since:
        since = reset
    failures = repo.audit_times(session, target=username, action=SIGNIN_FAILED, after=since, upto=now)
    if len(failures) < MAX_FAILURES:
        return None
    # The count drops below the limit once the failure MAX_FAILURES-th from the newest leaves the window.
    return failures[len(failures) - MAX_FAILURES] + FAILURE_WINDOW


def locked_until(engine: Engine, username: str, now: dt.datetime | None = None) -> dt.datetime | None:
    """When `username` may sign in again (naive UTC), or None when it is not locked out."""
    with read_session(engine) as session:
        return _locked_until(session, username, now or utcnow())


def authenticate(engine: Engine, username: str, password: str, now: dt.datetime | None = None) -> UserInfo | None:
    """The user when `password` is right and the user enabled; None otherwise (audited as `signin_failed`).

    Raises `SignInLocked` (audited as `signin_locked`) while the username is locked out, whatever the password.
    """
    now = now or utcnow()
    name = (username or "").strip()
    locked: dt.datetime | None = None
    user: UserInfo | None = None
    # One write transaction: on SQLite concurrent attempts queue at BEGIN IMMEDIATE, so the count is exact.
    with write_session(engine) as session:
        if not USERNAME_RE.fullmatch(name):
            # Not a possible username (perhaps a password typed in the wrong box): not written to the audit.
            _audit(session, actor=ANONYMOUS, action=SIGNIN_FAILED, target=None, details={"why": "invalid username"},
                   now=now)
            return None
        locked = _locked_until(session, name, now)
        if locked is not None:
            _audit(session, actor=ANONYMOUS, action=SIGNIN_LOCKED, target=name,
                   details={"retry_at": locked.isoformat(timespec="seconds")}, now=now)
        else:
            row = _row(session, name)
            if row is None:
                verify_password(_dummy_hash(), password)
                why = "unknown user"
            elif not verify_password(row.password_hash, password):
                why = "wrong password"
            elif row.disabled:
                why = "disabled"
            else:
                why = None
                if needs_rehash(row.password_hash):
                    row = repo.update_user(session, row.id, password_hash=hash_password(password))
                user = _info(row)
                _audit(session, actor=name, action=SIGNIN, target=name, details={"role": row.role}, now=now)
            if why is not None:
                _audit(session, actor=ANONYMOUS, action=SIGNIN_FAILED, target=name, details={"why": why}, now=now)
    if locked is not None:  # raised after the commit, so that the refused attempt stays audited
        raise SignInLocked(name, locked, now)
    return user


def record_sign_out(engine: Engine, username: str) -> None:
    with write_session(engine) as session:
        _audit(session, actor=username, action=SIGNOUT, target=username)


"""Dashboard users: argon2 password hashes, roles, sign-in with a lock-out, and an audit event for every change.

A user is a `viewer` (reads) or an `operator` (reads and acts). Every change of a user needs an actor who is an
enabled operator in the users table, or the local command line (`local_actor()`: whoever runs `roadwork user`
on the machine already holds the database), and writes an audit event naming the actor and the reason.

Sign-in is limited per user name, per client address and for everyone (`platform.signin_limits`, counted in
the database, so the limits hold across dashboard processes and restarts): a refused attempt is refused even
with the right password, until the limit's window has passed. A successful sign-in or a password reset starts
the name's count afresh. The password is checked with no transaction open. A failure of a known name is audited
as `signin_failed` (target the name); unknown names and refused attempts are audited in sums. Passwords and
hashes are never returned, logged or audited.
"""

from __future__ import annotations

import datetime as dt
import getpass
import math
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
from roadwork.platform import signin_limits
from roadwork.settings import AuthSettings

VIEWER, OPERATOR = "viewer", "operator"
ROLES = (VIEWER, OPERATOR)
USERNAME_RE = re.compile(r"[a-z0-9_.-]{3,64}")
MIN_PASSWORD_LEN = 10
LOCAL_ACTOR_PREFIX = "local:"  # ':' is not allowed in usernames, so no dashboard user can pose as the CLI
ANONYMOUS = signin_limits.ANONYMOUS

# Audit actions (the sign-in limits write SIGNIN_FAILED for unknown names and SIGNIN_LOCKED, in sums).
SIGNIN, SIGNOUT = "signin", "signout"
SIGNIN_FAILED, SIGNIN_LOCKED = signin_limits.SIGNIN_FAILED, signin_limits.SIGNIN_LOCKED
CREATED, ROLE_CHANGED, PASSWORD_RESET = "user_created", "user_role_changed", "user_password_reset"
DISABLED, ENABLED = "user_disabled", "user_enabled"

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
    """A sign-in limit refuses attempts until `retry_at` (naive UTC): of this name (`scope` "name"), of this
    client address ("address") or of everyone ("all"). The message says which, never whether the name exists."""

    def __init__(self, username: str, retry_at: dt.datetime, now: dt.datetime, scope: str = "name") -> None:
        self.username, self.retry_at, self.scope = username, retry_at, scope
        self.retry_in_s = max(1, math.ceil((retry_at - now).total_seconds()))
        whose = {"name": f"failed sign-ins for {username!r}", "address": "failed sign-ins from this address",
                 "all": "sign-in attempts on this dashboard"}[scope]
        super().__init__(f"Too many {whose}: try again in {self.retry_in_s} s (after {retry_at:%H:%M:%S} UTC).")


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
    # Sign-in events carry the caller's `now`, which the sign-in limits count by.
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
        signin_limits.forget_name(session, username, utcnow())
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


def locked_until(engine: Engine, username: str, now: dt.datetime | None = None,
                 limits: AuthSettings | None = None) -> dt.datetime | None:
    """When `username` may sign in again (naive UTC), or None when it is not locked out."""
    with read_session(engine) as session:
        return signin_limits.name_refused_until(session, limits or AuthSettings(), username, now or utcnow())


def authenticate(engine: Engine, username: str, password: str, now: dt.datetime | None = None, *,
                 address: str | None = None, limits: AuthSettings | None = None) -> UserInfo | None:
    """The user when `password` is right and the user enabled; None otherwise.

    Raises `SignInLocked` while a limit refuses the attempt (of the name, of the client `address`, or of
    everyone; `limits` default to the `auth` settings' defaults), whatever the password. The password is checked
    with no transaction open: the attempt is counted in one short write transaction before the check and, for a
    user, its outcome written in another, so sign-ins never hold the database's write lock while argon2 runs.
    """
    now = now or utcnow()
    limits = limits or AuthSettings()
    address = (address or "").strip() or signin_limits.UNKNOWN_ADDRESS
    name = (username or "").strip()
    possible = USERNAME_RE.fullmatch(name) is not None  # else perhaps a password typed in the wrong box
    limited = name if possible else None
    # Refused attempts are found without a write: a flood of them never takes the write lock (but once a second).
    with read_session(engine) as session:
        refusal = signin_limits.check(session, limits=limits, name=limited, address=address, now=now)
        known = refusal is not None and refusal.scope == signin_limits.NAME and _row(session, name) is not None
        flush = refusal is not None and signin_limits.note_refusal(session, refusal, target=name if known else None)
    if refusal is not None:
        if flush:
            with write_session(engine) as session:
                signin_limits.flush_refusals(session, limits, now)
        raise SignInLocked(name, refusal.retry_at, now, scope=refusal.scope)
    with write_session(engine) as session:
        row = _row(session, name) if possible else None
        refusal = signin_limits.reserve(session, limits, name=limited, known=row is not None, address=address,
                                        now=now)
    if refusal is not None:
        raise SignInLocked(name, refusal.retry_at, now, scope=refusal.scope)

    # The slow part, outside any transaction: unknown names cost one check too, so timing reveals no names.
    right = verify_password(row.password_hash if row is not None else _dummy_hash(), password)
    new_hash = hash_password(password) if right and row is not None and needs_rehash(row.password_hash) else None

    if row is None:  # already counted as an unknown name by `reserve`
        return None
    with write_session(engine) as session:
        current = _row(session, name)  # changed since the check (password reset, disabled, removed)?
        if current is None:
            signin_limits.failed_unknown(session, limits, address=address, now=now)
            return None
        if not right or current.password_hash != row.password_hash:
            why = "wrong password"
        elif current.disabled:
            why = "disabled"
        else:
            if new_hash is not None:
                current = repo.update_user(session, current.id, password_hash=new_hash)
            signin_limits.succeeded(session, name=name, address=address, now=now)
            _audit(session, actor=name, action=SIGNIN, target=name, details={"role": current.role}, now=now)
            return _info(current)
        _audit(session, actor=ANONYMOUS, action=SIGNIN_FAILED, target=name,
               details={"why": why, "address": address}, now=now)
        return None


def record_sign_out(engine: Engine, username: str) -> None:
    with write_session(engine) as session:
        _audit(session, actor=username, action=SIGNOUT, target=username)


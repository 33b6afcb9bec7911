"""Sign-in limits: per user name, per client address, and for everyone, counted in the database.

Three sliding windows (`auth` settings), each a row of `signin_limits` shared by every dashboard process:

- a **name** is refused after `max_failures_per_name` failed sign-ins within `failure_window_s`; unknown names
  are counted the same way, so the answer does not tell which names exist (rows are keyed by the name's sha256:
  a password typed into the name box is not stored);
- an **address** is refused after `max_failures_per_address` failed sign-ins within the same window, whatever
  the names;
- **everyone** is refused after `max_attempts_per_minute` attempts within a minute.

An attempt is counted (as a failure of its name and address) in `reserve()`, a short write transaction before
the password check, so that concurrent attempts cannot slip past a limit together; a success takes it back. A
refused attempt costs no password check and is not counted against the windows (it does not extend a lock-out).
Most refusals need no write at all: `check()` finds them in a read transaction (which never waits for or blocks
a writer), and they are added to the rows by the process's next sign-in write, or at most once per
`FLUSH_EVERY_S` (refusals of a process that dies before that are not counted).

Refused attempts and failures with unknown names are not written to the audit one event each: they are counted
in their row, and at most one audit event per row and window sums them up ("7 failed sign-ins with unknown names
from 10.0.0.5"); counts still pending when a row is removed (success, password reset, or unused for a window)
are written then.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import threading
import time
from dataclasses import dataclass, replace

from sqlalchemy.orm import Session

from roadwork.db import repo
from roadwork.settings import AuthSettings

NAME, ADDRESS, EVERYONE = "name", "address", "all"  # the scopes
EVERYONE_KEY = "*"
UNKNOWN_ADDRESS = "unknown"
MINUTE = dt.timedelta(minutes=1)
ANONYMOUS = "anonymous"
FLUSH_EVERY_S = 1.0  # refused attempts seen by `check` are stored at most this often per process (or sooner)

# Audit actions written here (and by `platform.users` for failures of known names).
SIGNIN_FAILED, SIGNIN_LOCKED = "signin_failed", "signin_locked"


@dataclass(frozen=True)
class Refusal:
    """An attempt refused by the limit of `scope` until `retry_at` (naive UTC)."""

    scope: str  # name | address | all
    retry_at: dt.datetime
    key: str = ""  # the row of the limit


def name_key(username: str) -> str:
    return hashlib.sha256(username.encode()).hexdigest()


def _window(limits: AuthSettings, scope: str) -> dt.timedelta:
    return MINUTE if scope == EVERYONE else dt.timedelta(seconds=limits.failure_window_s)


def _limit(limits: AuthSettings, scope: str) -> int:
    return {NAME: limits.max_failures_per_name, ADDRESS: limits.max_failures_per_address,
            EVERYONE: limits.max_attempts_per_minute}[scope]


def _recent(count: repo.SignInCount, window: dt.timedelta, now: dt.datetime) -> tuple[dt.datetime, ...]:
    return tuple(t for t in count.times if now - window < t <= now)


def _refused_until(count: repo.SignInCount, limits: AuthSettings, now: dt.datetime) -> dt.datetime | None:
    window, limit = _window(limits, count.scope), _limit(limits, count.scope)
    recent = _recent(count, window, now)
    if len(recent) < limit:
        return None
    # Free again once the attempt `limit`-th from the newest leaves the window.
    return recent[len(recent) - limit] + window


def _get(session: Session, scope: str, key: str) -> repo.SignInCount:
    return repo.get_signin_count(session, scope, key) or repo.SignInCount(scope, key, (), 0, 0, None)


def _report(session: Session, count: repo.SignInCount, now: dt.datetime, target: str | None
            ) -> repo.SignInCount:
    """Write the pending counts of `count` as audit events; the count with them taken out."""
    where = f" from {count.key}" if count.scope == ADDRESS else ""
    address = {"address": count.key} if count.scope == ADDRESS else {}
    if count.unknown:
        n = count.unknown
        repo.add_audit(session, actor=ANONYMOUS, action=SIGNIN_FAILED, target=None, created_at=now,
                       reason=f"{n} failed sign-in{'s' if n != 1 else ''} with unknown names{where}",
                       details={"why": "unknown user", "count": n, **address})
    if count.refused:
        n = count.refused
        repo.add_audit(session, actor=ANONYMOUS, action=SIGNIN_LOCKED, target=target, created_at=now,
                       reason=f"{n} sign-in attempt{'s' if n != 1 else ''} refused by the limit per {count.scope}"
                              f"{where}",
                       details={"limit": count.scope, "count": n, **address})
    return replace(count, unknown=0, refused=0, reported_at=now)


def _store(session: Session, count: repo.SignInCount, limits: AuthSettings, now: dt.datetime,
           target: str | None = None) -> None:
    """Store `count`, reporting its pending counts when its last report is a window old (or there was none)."""
    due = count.reported_at is None or now - count.reported_at >= dt.timedelta(seconds=limits.failure_window_s)
    if (count.unknown or count.refused) and due:
        count = _report(session, count, now, target)
    repo.put_signin_count(session, count, now=now)


def _prune(session: Session, limits: AuthSettings, now: dt.datetime) -> None:
    unused_since = now - max(dt.timedelta(seconds=limits.failure_window_s), MINUTE)
    for count in repo.remove_signin_counts_before(session, unused_since):
        if count.unknown or count.refused:
            _report(session, count, now, None)


# Refused attempts not yet stored: (database URL, scope, key, target) -> n.
_pending: dict[tuple[str, str, str, str | None], int] = {}
_pending_lock = threading.Lock()
_last_flush = [0.0]  # time.monotonic() of this process's last flush


def _limit_keys(name: str | None, address: str) -> list[tuple[str, str]]:
    return [(EVERYONE, EVERYONE_KEY), (ADDRESS, address)] + ([(NAME, name_key(name))] if name else [])


def _refusal_of(counts: list[repo.SignInCount], limits: AuthSettings, now: dt.datetime) -> Refusal | None:
    refusals = [Refusal(c.scope, at, c.key) for c in counts if (at := _refused_until(c, limits, now)) is not None]
    return max(refusals, key=lambda r: r.retry_at) if refusals else None  # the one that lasts longest


def check(session: Session, *, limits: AuthSettings, name: str | None, address: str, now: dt.datetime
          ) -> Refusal | None:
    """Read only: the refusal a limit gives an attempt now, or None (then `reserve` decides, in a write)."""
    return _refusal_of([_get(session, scope, key) for scope, key in _limit_keys(name, address)], limits, now)


def _database(session: Session) -> str:
    return str(session.get_bind().engine.url)


def note_refusal(session: Session, refusal: Refusal, target: str | None) -> bool:
    """Remember a refusal found by `check` in `session` (`target`: the user name an audit event may show); True
    when this process should store its pending refusals now (`flush_refusals`, in a write transaction)."""
    with _pending_lock:
        key = (_database(session), refusal.scope, refusal.key, target)
        _pending[key] = _pending.get(key, 0) + 1
        return time.monotonic() - _last_flush[0] >= FLUSH_EVERY_S


def flush_refusals(session: Session, limits: AuthSettings, now: dt.datetime) -> None:
    """Add this process's pending refusals to their rows (each reported when due)."""
    database = _database(session)
    with _pending_lock:
        pending = {k: _pending.pop(k) for k in list(_pending) if k[0] == database}
        _last_flush[0] = time.monotonic()
    for (_, scope, key, target), n in pending.items():
        count = _get(session, scope, key)
        _store(session, replace(count, refused=count.refused + n), limits, now, target)


def reserve(session: Session, limits: AuthSettings, *, name: str | None, known: bool, address: str,
            now: dt.datetime) -> Refusal | None:
    """The refusal when a limit is reached (the refused attempt is counted); else None, and the attempt is
    counted as a failure of `name` (None: not a possible user name) and `address`, and an attempt of everyone.

    `known` says whether `name` is a user: an attempt with an unknown name cannot succeed, so it is counted as
    such here at once (no second write), and an audit event about a refusal names only a user.
    """
    _prune(session, limits, now)
    flush_refusals(session, limits, now)
    counts = [_get(session, scope, key) for scope, key in _limit_keys(name, address)]
    refusal = _refusal_of(counts, limits, now)
    if refusal is not None:
        count = next(c for c in counts if c.scope == refusal.scope)
        _store(session, replace(count, refused=count.refused + 1), limits, now,
               target=name if refusal.scope == NAME and known else None)
        return refusal
    for count in counts:
        times = (*_recent(count, _window(limits, count.scope), now), now)[-_limit(limits, count.scope):]
        count = replace(count, times=times)
        if count.scope == ADDRESS and not known:
            _store(session, replace(count, unknown=count.unknown + 1), limits, now)
        else:
            repo.put_signin_count(session, count, now=now)
    return None


def succeeded(session: Session, *, name: str, address: str, now: dt.datetime) -> None:
    """A right password: the name's failures are forgotten and the address's count takes this attempt back."""
    forget_name(session, name, now)
    count = repo.get_signin_count(session, ADDRESS, address)
    if count is not None and now in count.times:
        times = list(count.times)
        times.remove(now)
        repo.put_signin_count(session, replace(count, times=tuple(times)), now=now)


def forget_name(session: Session, name: str, now: dt.datetime) -> None:
    """Start the count of `name` afresh (after a success or a password reset), reporting what was pending."""
    count = repo.get_signin_count(session, NAME, name_key(name))
    if count is None:
        return
    if count.refused:
        _report(session, count, now, name)
    repo.delete_signin_count(session, NAME, count.key)


def failed_unknown(session: Session, limits: AuthSettings, *, address: str, now: dt.datetime) -> None:
    """A sign-in whose user was removed during the password check: counted as an unknown name."""
    count = _get(session, ADDRESS, address)
    _store(session, replace(count, unknown=count.unknown + 1), limits, now)


def name_refused_until(session: Session, limits: AuthSettings, name: str, now: dt.datetime) -> dt.datetime | None:
    """When `name` may try again, or None when its limit is not reached at `now`."""
    count = repo.get_signin_count(session, NAME, name_key(name))
    return None if count is None else _refused_until(count, limits, now)

"""The deploy lock: one deploy, rollback or repair at a time across processes and machines sharing a registry.

A lease row in the database (`deploy_lock`), so it holds wherever the registry is shared, SQLite or PostgreSQL.
It expires after `publish.lock_ttl_s` without renewal, and a holder on this machine whose process is gone is
taken over at once (a `kill -9` must not block deploys for the whole TTL). Each acquisition gets a larger
fencing token; writes that need the lock check the token in their own transaction (`HeldLock.fence`).
"""

from __future__ import annotations

import contextlib
import os
import random
import socket
import time
from collections.abc import Iterator
from dataclasses import dataclass

from sqlalchemy import Engine
from sqlalchemy.orm import Session

from roadwork.clock import utcnow
from roadwork.db import deploy_state, repo
from roadwork.db.engine import read_session, write_session
from roadwork.platform.processes import process_alive
from roadwork.platform.registry.errors import DeployBusyError
from roadwork.settings import Settings

POLL_S = 0.25


@dataclass(frozen=True)
class HeldLock:
    engine: Engine
    token: int
    holder: str
    ttl_s: float

    def fence(self, session: Session) -> None:
        """Inside a write transaction: raise `LockLostError` unless we still hold the lock (and extend it)."""
        deploy_state.fence(session, self.token, self.ttl_s)


def abandoned(lock: deploy_state.DeployLock, hostname: str) -> bool:
    """Held by a process of this machine that no longer exists."""
    return lock.holder is not None and lock.hostname == hostname and lock.pid is not None and not process_alive(
        lock.pid
    )


def busy_message(lock: deploy_state.DeployLock, waited_s: float) -> str:
    since = f" since {lock.acquired_at:%Y-%m-%d %H:%M:%S} UTC" if lock.acquired_at else ""
    return (
        f"another deploy is in progress ({lock.purpose or 'unknown'}, held by {lock.holder}{since}); "
        f"waited {waited_s:.0f} s (publish.lock_wait_s). Try again when it has finished."
    )


def _try_once(engine: Engine, *, holder: str, hostname: str, purpose: str, ttl_s: float
              ) -> tuple[deploy_state.DeployLock | None, deploy_state.DeployLock]:
    """(our lock or None, the lock as seen). Reads first, so that waiters do not queue on the write lock."""
    with read_session(engine) as session:
        seen = deploy_state.current_lock(session)
    now = utcnow()
    if not (seen.free(now) or abandoned(seen, hostname)):
        return None, seen
    with write_session(engine) as session:
        seen = deploy_state.current_lock(session)
        dead = abandoned(seen, hostname)
        if not (seen.free(now) or dead):
            return None, seen
        ours = deploy_state.try_acquire(session, holder=holder, hostname=hostname, pid=os.getpid(),
                                        purpose=purpose, ttl_s=ttl_s, seen=seen, now=now)
        if ours is not None and seen.holder is not None:  # it was not released: its holder died or hung
            repo.add_audit(session, actor="deploy-lock", action="deploy_lock_taken_over", target=purpose,
                           details={"from": seen.holder, "purpose": seen.purpose, "process_gone": dead,
                                    "expired_at": seen.expires_at.isoformat() if seen.expires_at else None})
    return ours, seen


@contextlib.contextmanager
def deploy_lock(
    engine: Engine, settings: Settings, purpose: str, *, wait_s: float | None = None
) -> Iterator[HeldLock]:
    """Hold the deploy lock for the block; waits up to `wait_s` (default `publish.lock_wait_s`).

    Raises `DeployBusyError` with who holds it when the wait runs out.
    """
    wait_s = settings.publish.lock_wait_s if wait_s is None else wait_s
    ttl_s = settings.publish.lock_ttl_s
    hostname = socket.gethostname()
    holder = f"{hostname}:{os.getpid()}:{os.urandom(4).hex()}"
    start = time.monotonic()
    while True:
        ours, seen = _try_once(engine, holder=holder, hostname=hostname, purpose=purpose, ttl_s=ttl_s)
        if ours is not None:
            break
        waited = time.monotonic() - start
        if waited >= wait_s:
            raise DeployBusyError(busy_message(seen, waited))
        time.sleep(min(POLL_S * (0.5 + random.random()), max(wait_s - waited, 0.01)))
    held = HeldLock(engine=engine, token=ours.token, holder=holder, ttl_s=ttl_s)
    try:
        yield held
    finally:
        # If this fails (database gone), the lease expires after lock_ttl_s or is taken over once we exit.
        with contextlib.suppress(Exception), write_session(engine) as session:
            deploy_state.release(session, held.token)

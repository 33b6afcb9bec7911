"""What must hold after any fault: the champion is what every target serves, every folder in use verifies, and
no half-written folder is left under a final name."""

from __future__ import annotations

import itertools
import socket
from pathlib import Path

from sqlalchemy import Engine

from roadwork.db import deploy_state, repo
from roadwork.db.engine import read_session
from roadwork.platform.registry import manifest, publish
from roadwork.platform.registry import service as registry
from roadwork.platform.registry.lock import abandoned
from roadwork.settings import Settings


def assert_consistent(engine: Engine, settings: Settings) -> repo.Version | None:
    """Reconcile (as a fresh process would on its first champion read), then check everything; the champion."""
    champion = registry.champion(engine, settings)
    want = None if champion is None else registry.release_name(champion)
    for target in settings.publish_dirs:
        served = publish.serving(target)
        assert (None if served is None else served.name) == want, f"{target} serves {served}, champion is {want}"
        if served is not None:
            assert manifest.problem(served) is None, manifest.problem(served)
    with read_session(engine) as session:
        assert deploy_state.pending_intents(session) == []
        lock = deploy_state.current_lock(session)
        # free, or held by a process that is gone (the next deployer takes it over at once)
        assert lock.holder is None or abandoned(lock, socket.gethostname()), f"the deploy lock is held: {lock}"
        history = repo.alias_history(session)
    if champion is not None:  # history intact: the newest event is the champion's, each event follows the last
        assert history[0].to_version_id == champion.id
        for newer, older in itertools.pairwise(history):
            assert newer.from_version_id == older.to_version_id
    for folder in final_folders(settings):
        assert manifest.problem(folder) is None, f"a folder under its final name does not verify: {folder}"
    return champion


def final_folders(settings: Settings) -> list[Path]:
    """Every export and release folder under its final (non-hidden) name."""
    out = [p for p in (settings.home / "exports").glob("*") if p.is_dir() and not p.name.startswith(".")]
    for target in settings.publish_dirs:
        out += [p for p in (target / publish.RELEASES).glob("*") if p.is_dir() and not p.name.startswith(".")]
    return out

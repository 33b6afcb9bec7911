"""Registry services: register a trained checkpoint, deploy a version, roll back.

A deploy holds the deploy lock (one deploy at a time across processes and machines), verifies the artifact,
exports it (or reuses an export that verifies against its manifest), records its intent, publishes it to every
target (each release verified before its link switches), reloads, smoke-tests the published copy and only then
moves the `champion` alias. If any step fails, every target is switched back to what it served before and the
alias does not move. If the process dies instead, the next deploy, rollback or `champion()` call reconciles
(`reconcile.py`): completes or reverts the recorded intent, so the champion always matches what is published.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import shutil
import subprocess
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from PIL import Image
from sqlalchemy import Engine
from sqlalchemy.orm import Session

from roadwork import __version__
from roadwork.db import deploy_state, repo
from roadwork.db.engine import read_session, write_session
from roadwork.platform.registry import manifest, publish
from roadwork.platform.registry.artifacts import ArtifactStore
from roadwork.platform.registry.errors import DeployBusyError, DeployError
from roadwork.platform.registry.faults import fault_point
from roadwork.platform.registry.hub import publish_to_hub
from roadwork.platform.registry.lock import HeldLock, deploy_lock
from roadwork.platform.registry.packaging import export_version, version_to_publish
from roadwork.platform.registry.reconcile import (
    ReconcileReport,
    reconcile,
    reconcile_locked,
    release_name,
)
from roadwork.settings import Settings
from roadwork.trainer.eval.predict import Predictor
from roadwork.trainer.model.checkpoint import load_checkpoint

__all__ = ["DeployBusyError", "DeployError", "DeployResult", "ReconcileReport", "champion", "deploy", "reconcile",
           "rollback"]


# A check that a caller (the scheduler: its lease) runs inside the transaction of every step that changes what is
# served, after the deploy lock's own fence; it raises to stop the deploy there.
Fence = Callable[[Session], None]


@dataclass(frozen=True)
class DeployResult:
    version: repo.Version
    previous: repo.Version | None
    event: repo.AliasEvent
    published: list[str]
    smoke_score: float
    requested: repo.Version | None = None  # the teacher asked for, when its student was published instead


def code_revision() -> str:
    """The git commit of the running code, or the package version outside a checkout."""
    try:
        out = subprocess.run(
            ["git", "rev-parse", "--short=12", "HEAD"],
            cwd=Path(__file__).parent,
            capture_output=True,
            text=True,
            timeout=5,
            check=False,
        )
        if out.returncode == 0 and out.stdout.strip():
            return out.stdout.strip()
    except OSError:
        pass
    return f"roadwork-{__version__}"


def store(settings: Settings) -> ArtifactStore:
    return ArtifactStore(settings.artifacts_dir)


def register_version(
    engine: Engine,
    settings: Settings,
    checkpoint_dir: Path,
    *,
    config: dict[str, Any],
    metrics: dict[str, Any],
    data_fingerprint: str | None,
    parent_id: int | None,
    hard_negative_set_id: int | None = None,
    actor: str = "cli",
) -> repo.Version:
    """Store the checkpoint's files by content and add an immutable candidate version."""
    manifest_sha = store(settings).put_dir(Path(checkpoint_dir))
    with write_session(engine) as session:
        version = repo.create_version(
            session,
            name=settings.model_name,
            version=repo.next_semver(session, settings.model_name),
            artifact_sha256=manifest_sha,
            artifact_path=str(store(settings).path(manifest_sha)),
            config=config,
            metrics=metrics,
            parent_id=parent_id,
            data_fingerprint=data_fingerprint,
            code_revision=code_revision(),
            hard_negative_set_id=hard_negative_set_id,
            created_by=actor,
        )
        repo.add_audit(session, actor=actor, action="register", target=version.label, details={"metrics": metrics})
    return version


def checkout(settings: Settings, version: repo.Version) -> Path:
    """A verified local copy of the version's checkpoint files (cached by content; a copy that no longer matches
    the blob manifest is rebuilt from the blobs, a corrupt blob raises `ArtifactError`)."""
    return store(settings).materialize(version.artifact_sha256, settings.home / "cache" / version.artifact_sha256)


def load_version(settings: Settings, version: repo.Version, device: str = "cpu"):  # noqa: ANN201
    """(model, train config) of a registered version, verified before load."""
    return load_checkpoint(checkout(settings, version), device)


def smoke_predict(model_dir: Path) -> float:
    """Load a published copy as the miner would and score one grey 224 px image: must be a probability."""
    image = Image.new("RGB", (224, 224), (128, 128, 128))
    score = Predictor.load(model_dir).predict([image])[0]  # a student folder: the stock pipeline's number
    if not 0.0 <= score <= 1.0:  # also false for NaN
        raise DeployError(f"smoke prediction is not a probability: {score}")
    return float(score)


def export_for_deploy(settings: Settings, version: repo.Version) -> Path:
    """The version's export folder, verified against its manifest: reused when intact, else rebuilt.

    Built in a staging folder private to this process (pid + random), then renamed into place, so that a crash
    or a concurrent writer never leaves a half-written folder under the final name.
    """
    exports = settings.home / "exports"
    export_dir = exports / release_name(version)
    cache = checkout(settings, version)  # verified (repaired from the blobs) on every deploy, reused or not
    if export_dir.exists():
        if manifest.problem(export_dir) is None:
            return export_dir
        manifest.discard(export_dir)  # partial or corrupt: rebuilt from the verified cache
    exports.mkdir(parents=True, exist_ok=True)
    for stale in exports.glob("*.partial"):  # left by crashed deploys (callers hold the deploy lock)
        shutil.rmtree(stale, ignore_errors=True)
    for stale in exports.glob(".*.partial"):
        shutil.rmtree(stale, ignore_errors=True)
    staging = exports / f".{export_dir.name}.{os.getpid()}-{os.urandom(4).hex()}.partial"
    try:
        export_version(cache, version, settings, staging)
        fault_point("mid_export")
        manifest.write_manifest(staging)
        os.rename(staging, export_dir)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return export_dir


def _undo_all(done: list[publish.Published]) -> None:
    for item in reversed(done):
        publish.undo(item)


def _fenced(engine: Engine, lock: HeldLock, fence: Fence | None) -> Callable[[], None]:
    """A check of the deploy lock (and the caller's `fence`) in a transaction of its own."""
    def check() -> None:
        with write_session(engine) as session:
            lock.fence(session)
            if fence is not None:
                fence(session)
    return check


def _publish_everywhere(
    engine: Engine, settings: Settings, lock: HeldLock, version: repo.Version, intent_fields: dict[str, Any],
    fence: Fence | None = None,
) -> tuple[list[publish.Published], float, deploy_state.DeployIntent]:
    """Export, record the intent, publish to each target (the lock and `fence` checked right before each link
    switch); on any failure undo the targets already switched, unless the deploy lock itself was lost (then its
    new holder reconciles the intent, and the links are no longer ours to touch)."""
    export_dir = export_for_deploy(settings, version)
    fault_point("after_export")
    name = release_name(version)
    check = _fenced(engine, lock, fence)
    with write_session(engine) as session:
        lock.fence(session)
        if fence is not None:
            fence(session)
        intent = deploy_state.record_intent(
            session, lock_token=lock.token, version_id=version.id, release=name,
            previous={str(t): _serving_text(t) for t in settings.publish_dirs}, **intent_fields,
        )
    fault_point("after_intent")
    done: list[publish.Published] = []
    try:
        for target in settings.publish_dirs:
            done.append(publish.publish_local(export_dir, target, name, before_switch=check))
        for item in done:
            publish.run_reload_hook(settings.publish.reload_command, item.target / publish.CURRENT)
        score = smoke_predict(done[0].target / publish.CURRENT)
        if settings.publish.hf_repo:  # last: a Hub commit cannot be taken back, a link switch can
            hub_commit = publish_to_hub(export_dir, repo_id=settings.publish.hf_repo, token=settings.token(),
                                        version=version.version, endpoint=settings.publish.hf_endpoint,
                                        private=settings.publish.hf_private, api=hub_api())
            uri = f"hf://{settings.publish.hf_repo}@{hub_commit}"
            done.append(publish.Published(target=export_dir, release=export_dir, previous=None, remote=True, uri=uri))
        with write_session(engine) as session:
            lock.fence(session)
            intent = deploy_state.set_intent(session, intent.id, phase="published",
                                             published_to=[p.location for p in done])
    except deploy_state.LockLostError:
        raise
    except BaseException as exc:
        _undo_all(done)
        with contextlib.suppress(Exception), write_session(engine) as session:  # else reconcile reverts it
            deploy_state.set_intent(session, intent.id, status="reverted", outcome=f"failed: {exc}")
        raise
    return done, score, intent


def _serving_text(target: Path) -> str | None:
    release = publish.serving(target)
    return None if release is None else str(release)


def hub_api():  # noqa: ANN201 - a seam for tests, which record the commit operations instead of sending them
    return None


def _move(
    engine: Engine,
    settings: Settings,
    choose: Callable[[], repo.Version],
    *,
    action: str,
    actor: str,
    reason: str,
    gate_result: dict[str, Any] | None,
    label: str,
    fence: Fence | None = None,
) -> DeployResult:
    """Under the deploy lock: reconcile, pick the version (`choose`), publish it, move the alias. `fence` is
    checked with the lock before each link switch and in the alias move's transaction."""
    with deploy_lock(engine, settings, f"{action} {label}") as lock:
        fault_point("after_lock")
        reconcile_locked(engine, settings, lock)
        version = choose()
        with read_session(engine) as session:
            previous = repo.alias_holder(session)
        intent_fields = {"action": action, "from_version_id": previous.id if previous else None, "actor": actor,
                         "reason": reason, "gate_result": gate_result}
        try:
            done, score, intent = _publish_everywhere(engine, settings, lock, version, intent_fields, fence)
        except Exception as exc:
            with write_session(engine) as session:
                repo.add_audit(
                    session, actor=actor, action=f"{action}_failed", target=version.label, reason=reason,
                    details={"error": str(exc)},
                )
            raise DeployError(f"{action} of {version.label} failed, champion unchanged: {exc}") from exc
        published = [p.location for p in done]
        fault_point("before_alias_move")
        try:
            with write_session(engine) as session:
                lock.fence(session)
                if fence is not None:
                    fence(session)
                event = repo.move_alias(
                    session, alias=repo.CHAMPION, to_version_id=version.id, action=action, actor=actor,
                    reason=reason, gate_result=gate_result, published_to=published,
                )
                repo.add_audit(session, actor=actor, action=action, target=version.label, reason=reason)
                deploy_state.set_intent(session, intent.id, status="done", outcome="alias moved")
        except deploy_state.LockLostError as exc:
            # Another process holds the lock now and reconciles our intent (it is `published`): leave the links.
            raise DeployError(f"{action} of {version.label} lost the deploy lock before the alias move: {exc}"
                              ) from exc
        except BaseException as exc:
            _undo_all(done)  # we still hold the deploy lock: put every target back and close the intent
            with contextlib.suppress(Exception), write_session(engine) as session:
                deploy_state.set_intent(session, intent.id, status="reverted", outcome=f"failed: {exc}")
            if isinstance(exc, Exception):
                raise DeployError(f"{action} of {version.label} stopped before the alias move, champion "
                                  f"unchanged: {exc}") from exc
            raise
        fault_point("after_alias_move")
    return DeployResult(version=version, previous=previous, event=event, published=published, smoke_score=score)


def deploy(
    engine: Engine,
    settings: Settings,
    ref: str | int,
    *,
    actor: str,
    reason: str = "",
    gate_result: dict[str, Any] | None = None,
    fence: Fence | None = None,
) -> DeployResult:
    """Publish version `ref` (under `deploy.format: stock`, its newest student) and make it the champion
    (`fence`: see `_move`)."""
    with read_session(engine) as session:
        requested = repo.get_version(session, ref)  # unknown versions fail before waiting for the lock
        version = version_to_publish(session, settings, requested)  # so does a teacher without a student
    result = _move(engine, settings, lambda: version, action="deploy", actor=actor, reason=reason,
                   gate_result=gate_result, label=version.label, fence=fence)
    return result if version.id == requested.id else dataclasses.replace(result, requested=requested)


def champion(engine: Engine, settings: Settings) -> repo.Version | None:
    """The champion, after reconciling it with what is published (see `reconcile`)."""
    reconcile(engine, settings)
    with read_session(engine) as session:
        return repo.alias_holder(session)


def rollback_target(engine: Engine, to: str | int | None = None) -> repo.Version:
    """The version a rollback goes to: `to`, or the holder before the current champion."""
    with read_session(engine) as session:
        if to is not None:
            return repo.get_version(session, to)
        current = repo.alias_holder(session)
        if current is None:
            raise DeployError("nothing to roll back: no champion is set")
        for event in repo.alias_history(session):
            if event.from_version_id is not None and event.from_version_id != current.id:
                return repo.get_version(session, event.from_version_id)
            if event.to_version_id != current.id:
                return repo.get_version(session, event.to_version_id)
    raise DeployError("nothing to roll back to: the champion has had no other holder")


def rollback(
    engine: Engine, settings: Settings, *, reason: str, actor: str, to: str | int | None = None,
    fence: Fence | None = None,
) -> DeployResult:
    """Make an earlier version the champion again and republish it. A reason is required."""
    if not reason.strip():
        raise ValueError("a rollback needs a reason (--reason)")
    if to is not None:
        rollback_target(engine, to)  # an unknown version fails at once, before waiting for the lock

    def choose() -> repo.Version:  # under the lock: the champion cannot move between the choice and the publish
        with read_session(engine) as session:
            target = version_to_publish(session, settings, rollback_target(engine, to))
            current = repo.alias_holder(session)
        if current is not None and current.id == target.id:
            raise DeployError(f"{target.label} is already the champion")
        return target

    return _move(engine, settings, choose, action="rollback", actor=actor, reason=reason, gate_result=None,
                 label=f"to {to}" if to is not None else "to the previous champion", fence=fence)

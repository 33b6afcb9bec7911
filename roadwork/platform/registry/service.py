"""Registry services: register a trained checkpoint, deploy a version, roll back.

A deploy verifies the artifact, exports it, publishes it to every target, reloads, smoke-tests the published
copy and only then moves the `champion` alias. If any step fails, every target is switched back to what it
served before and the alias does not move: the previous champion stays in place.
"""

from __future__ import annotations

import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from PIL import Image
from sqlalchemy import Engine

from roadwork import __version__
from roadwork.settings import Settings
from roadwork.db import repo
from roadwork.db.engine import read_session, write_session
from roadwork.platform.registry import publish
from roadwork.platform.registry.artifacts import ArtifactStore
from roadwork.platform.registry.packaging import export_version
from roadwork.platform.registry.hub import publish_to_hub
from roadwork.trainer.model.checkpoint import load_checkpoint
from roadwork.trainer.eval.predict import Predictor


class DeployError(RuntimeError):
    """A deploy or rollback failed; the previous champion is still serving."""


@dataclass(frozen=True)
class DeployResult:
    version: repo.Version
    previous: repo.Version | None
    event: repo.AliasEvent
    published: list[str]
    smoke_score: float


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
    """A verified local copy of the version's checkpoint files (cached by content)."""
    return store(settings).materialize(version.artifact_sha256, settings.home / "cache" / version.artifact_sha256)


def load_version(settings: Settings, version: repo.Version, device: str = "cpu"):  # noqa: ANN201
    """(model, train config) of a registered version, verified before load."""
    return load_checkpoint(checkout(settings, version), device)


def smoke_predict(model_dir: Path) -> float:
    """Load a published copy as the miner would and score one grey 224 px image: must be a probability."""
    score = Predictor.load(model_dir).predict([Image.new("RGB", (224, 224), (128, 128, 128))])[0]
    if not 0.0 <= score <= 1.0:  # also false for NaN
        raise DeployError(f"smoke prediction is not a probability: {score}")
    return float(score)


def _publish_everywhere(settings: Settings, version: repo.Version) -> tuple[list[publish.Published], float]:
    """Export and publish to each target; on any failure undo the targets already switched."""
    export_dir = settings.home / "exports" / f"{version.version}-{version.artifact_sha256[:12]}"
    if not export_dir.exists():
        staging = export_dir.with_name(export_dir.name + ".partial")
        shutil.rmtree(staging, ignore_errors=True)
        export_version(checkout(settings, version), version, settings, staging)
        staging.rename(export_dir)
    done: list[publish.Published] = []
    try:
        for target in settings.publish_dirs:
            done.append(publish.publish_local(export_dir, target, f"{version.version}-{version.artifact_sha256[:12]}"))
        for item in done:
            publish.run_reload_hook(settings.publish.reload_command, item.target / publish.CURRENT)
        score = smoke_predict(done[0].target / publish.CURRENT)
        if settings.publish.hf_repo:  # last: a Hub commit cannot be taken back, a link switch can
            hub_commit = publish_to_hub(export_dir, repo_id=settings.publish.hf_repo, token=settings.token(),
                                        version=version.version, endpoint=settings.publish.hf_endpoint,
                                        private=settings.publish.hf_private, api=hub_api())
            uri = f"hf://{settings.publish.hf_repo}@{hub_commit}"
            done.append(publish.Published(target=export_dir, release=export_dir, previous=None, remote=True, uri=uri))
    except BaseException:
        for item in reversed(done):
            publish.undo(item)
        raise
    return done, score


def hub_api():  # noqa: ANN201 - a seam for tests, which record the commit operations instead of sending them
    return None


def _move(
    engine: Engine,
    settings: Settings,
    version: repo.Version,
    *,
    action: str,
    actor: str,
    reason: str,
    gate_result: dict[str, Any] | None,
) -> DeployResult:
    with read_session(engine) as session:
        previous = repo.alias_holder(session)
    try:
        done, score = _publish_everywhere(settings, version)
    except Exception as exc:
        with write_session(engine) as session:
            repo.add_audit(
                session, actor=actor, action=f"{action}_failed", target=version.label, reason=reason,
                details={"error": str(exc)},
            )
        raise DeployError(f"{action} of {version.label} failed, champion unchanged: {exc}") from exc
    published = [p.location for p in done]
    try:
        with write_session(engine) as session:
            event = repo.move_alias(
                session, alias=repo.CHAMPION, to_version_id=version.id, action=action, actor=actor,
                reason=reason, gate_result=gate_result, published_to=published,
            )
            repo.add_audit(session, actor=actor, action=action, target=version.label, reason=reason)
    except BaseException:
        for item in reversed(done):
            publish.undo(item)
        raise
    return DeployResult(version=version, previous=previous, event=event, published=published, smoke_score=score)


def deploy(
    engine: Engine,
    settings: Settings,
    ref: str | int,
    *,
    actor: str,
    reason: str = "",
    gate_result: dict[str, Any] | None = None,
) -> DeployResult:
    """Publish version `ref` and make it the champion."""
    with read_session(engine) as session:
        version = repo.get_version(session, ref)
    return _move(engine, settings, version, action="deploy", actor=actor, reason=reason, gate_result=gate_result)


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
    engine: Engine, settings: Settings, *, reason: str, actor: str, to: str | int | None = None
) -> DeployResult:
    """Make an earlier version the champion again and republish it. A reason is required."""
    if not reason.strip():
        raise ValueError("a rollback needs a reason (--reason)")
    target = rollback_target(engine, to)
    with read_session(engine) as session:
        current = repo.alias_holder(session)
    if current is not None and current.id == target.id:
        raise DeployError(f"{target.label} is already the champion")
    return _move(engine, settings, target, action="rollback", actor=actor, reason=reason, gate_result=None)

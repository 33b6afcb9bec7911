"""Keep the champion alias and the published `current` links in agreement, also after a crash mid-deploy.

A deploy records an intent before it switches any link (`deploy_intents`, phase `publishing`), marks it
`published` once every target is switched and smoke-tested, and closes it in the same transaction that moves
the alias. A process killed in between leaves the intent pending; `reconcile()`:
- completes a `published` intent whose release is still served and intact (moves the alias, as the deploy
  would have), and reverts any other pending intent (switches every target back to what it served before);
  each repair is an audit event (action `reconcile`);
- then compares each target's link with the champion's release and writes an `alert` audit event (once per
  distinct mismatch) where the two disagree and no intent says how to repair it.
It runs under the deploy lock; while another process holds the lock, a deploy is in flight and nothing is judged.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from sqlalchemy import Engine

from roadwork.db import deploy_state, repo
from roadwork.db.engine import read_session, write_session
from roadwork.platform.registry import manifest, publish
from roadwork.platform.registry.errors import DeployBusyError
from roadwork.platform.registry.lock import HeldLock, deploy_lock
from roadwork.settings import Settings

ALERT_TARGET = "published != champion"


@dataclass(frozen=True)
class ReconcileReport:
    consistent: bool  # after the repairs, every target serves the champion's release
    repaired: list[str] = field(default_factory=list)
    alerts: list[str] = field(default_factory=list)
    skipped: str | None = None  # why nothing was judged (a deploy in progress)


def release_name(version: repo.Version) -> str:
    """The release folder of a version on every local target."""
    return f"{version.version}-{version.artifact_sha256[:12]}"


def serving_names(settings: Settings) -> dict[str, str | None]:
    """Each local target -> the release folder name its `current` link points at (None: no link)."""
    out: dict[str, str | None] = {}
    for target in settings.publish_dirs:
        release = publish.serving(target)
        out[str(target)] = None if release is None else release.name
    return out


def _expected(engine: Engine) -> tuple[repo.Version | None, list[deploy_state.DeployIntent]]:
    with read_session(engine) as session:
        return repo.alias_holder(session), deploy_state.pending_intents(session)


def needs_reconcile(engine: Engine, settings: Settings) -> bool:
    """A read-only check: is an intent pending, or does any target serve something other than the champion?"""
    champion, pending = _expected(engine)
    want = None if champion is None else release_name(champion)
    return bool(pending) or any(name != want for name in serving_names(settings).values())


def reconcile(engine: Engine, settings: Settings, *, wait_s: float = 0.0) -> ReconcileReport:
    """Repair or report a champion that differs from what is published. Cheap when all is well (no lock)."""
    if not needs_reconcile(engine, settings):
        return ReconcileReport(consistent=True)
    try:
        with deploy_lock(engine, settings, "reconcile", wait_s=wait_s) as lock:
            return reconcile_locked(engine, settings, lock)
    except DeployBusyError:
        return ReconcileReport(consistent=False, skipped="a deploy or rollback is in progress")


def _serves_intact(target: Path, release: str) -> bool:
    current = publish.serving(target)
    return current is not None and current.name == release and manifest.problem(current) is None


def _complete(engine: Engine, lock: HeldLock, intent: deploy_state.DeployIntent) -> str:
    with write_session(engine) as session:
        lock.fence(session)
        version = repo.get_version(session, intent.version_id)
        # A pending intent never has its alias event yet (the move closes the intent in the same transaction).
        repo.move_alias(
            session, alias=repo.CHAMPION, to_version_id=version.id, action=intent.action, actor=intent.actor,
            reason=f"{intent.reason} (completed by reconcile after an interrupted {intent.action})".strip(),
            gate_result=intent.gate_result, published_to=intent.published_to,
        )
        outcome = f"completed {intent.action} of {version.label}: published and smoke-tested before the crash"
        deploy_state.set_intent(session, intent.id, status="completed", outcome=outcome)
        repo.add_audit(session, actor="reconcile", action="reconcile", target=version.label, reason=outcome,
                       details={"intent": intent.id, "repair": "complete"})
    return outcome


def _revert(engine: Engine, lock: HeldLock, intent: deploy_state.DeployIntent) -> tuple[str, list[str]]:
    problems: list[str] = []
    for target_text, previous in intent.previous.items():
        target = Path(target_text)
        if previous is None:
            (target / publish.CURRENT).unlink(missing_ok=True)
        elif not Path(previous).is_dir():
            problems.append(f"{target}: the previous release {previous} is missing")
        elif Path(previous, manifest.MANIFEST).exists() and manifest.problem(Path(previous)) is not None:
            problems.append(f"{target}: the previous release {previous} is corrupt")
        else:  # intact (or published before releases had manifests: trusted as it was served)
            publish.switch_current(target, Path(previous))
    with write_session(engine) as session:
        lock.fence(session)
        version = repo.get_version(session, intent.version_id)
        outcome = f"reverted the interrupted {intent.action} of {version.label}: targets serve what they did before"
        if problems:
            outcome += "; could not restore " + "; ".join(problems)
        deploy_state.set_intent(session, intent.id, status="reverted", outcome=outcome)
        repo.add_audit(session, actor="reconcile", action="reconcile", target=version.label, reason=outcome,
                       details={"intent": intent.id, "repair": "revert", "problems": problems})
    return outcome, problems


def reconcile_locked(engine: Engine, settings: Settings, lock: HeldLock) -> ReconcileReport:
    """`reconcile()` for a caller that holds the deploy lock (a deploy or rollback, before it starts)."""
    repaired: list[str] = []
    with read_session(engine) as session:
        pending = [i for i in deploy_state.pending_intents(session) if i.lock_token != lock.token]
    for intent in pending:
        targets = [Path(t) for t in intent.previous]
        if intent.phase == "published" and all(_serves_intact(t, intent.release) for t in targets):
            repaired.append(_complete(engine, lock, intent))
        else:
            repaired.append(_revert(engine, lock, intent)[0])

    champion, _ = _expected(engine)
    want = None if champion is None else release_name(champion)
    serving = serving_names(settings)
    wrong = {target: name for target, name in serving.items() if name != want}
    if not wrong:
        return ReconcileReport(consistent=True, repaired=repaired)
    details = {"champion": None if champion is None else champion.label, "expected_release": want,
               "serving": serving}
    alert = (f"the champion is {details['champion']} (release {want}) but "
             + ", ".join(f"{t} serves {n}" for t, n in wrong.items()) + "; no recorded deploy explains it")
    with write_session(engine) as session:
        if deploy_state.last_alert_details(session, ALERT_TARGET) != details:
            repo.add_audit(session, actor="reconcile", action="alert", target=ALERT_TARGET, reason=alert,
                           details=details)
    return ReconcileReport(consistent=False, repaired=repaired, alerts=[alert])

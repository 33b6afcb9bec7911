"""Every page first reconciles the champion with what is published: a page never shows a champion nobody serves."""

from __future__ import annotations

from pathlib import Path

from roadwork.db import deploy_state, repo
from roadwork.platform.registry import publish
from roadwork.platform.registry.reconcile import release_name
from roadwork.settings import load_settings
from tests.dashboard.conftest import app, page_text, sign_in


def _targets() -> list[Path]:
    return [Path(t) for t in load_settings().publish_dirs]


def _audit(read_db, action: str) -> list[repo.AuditEvent]:  # noqa: ANN001
    with read_db() as session:
        return [a for a in repo.list_audit(session, limit=100) if a.action == action]


def test_a_consistent_registry_shows_no_banner_and_writes_nothing(seeded_home, operator, read_db) -> None:
    at = sign_in(app(), operator).run()
    assert not at.exception
    assert not at.error
    assert "roadwork-ops:0.2.0" in page_text(at)
    assert _audit(read_db, "alert") == [] and _audit(read_db, "reconcile") == []


def test_a_champion_nobody_serves_is_shown_as_an_alert_once(seeded_home, operator, read_db) -> None:
    for target in _targets():
        (target / publish.CURRENT).unlink()  # the published link is gone, the registry still names 0.2.0
    at = sign_in(app(), operator).run()
    errors = [e.value for e in at.error]
    assert len(errors) == 1 and "The champion is not what is published" in errors[0]
    assert "roadwork-ops:0.2.0" in errors[0]
    at.run()  # every rerun shows it again; the audit trail gets one alert per distinct mismatch
    assert any("not what is published" in e.value for e in at.error)
    assert len(_audit(read_db, "alert")) == 1


def test_an_interrupted_deploy_is_reverted_before_the_page_renders(seeded_home, operator, read_db) -> None:
    # A deploy of 0.3.0 killed after it switched the links, before it moved the alias.
    from roadwork.db.engine import make_engine, write_session

    engine = make_engine(seeded_home.db_url)
    try:
        with write_session(engine) as session:
            v3 = repo.get_version(session, seeded_home.version_ids["0.3.0"])
            before = {str(t): str(publish.serving(t)) for t in _targets()}
            deploy_state.record_intent(session, lock_token=0, action="deploy", version_id=v3.id,
                                       from_version_id=seeded_home.version_ids["0.2.0"], release=release_name(v3),
                                       previous=before, published_to=None, actor="alice", reason="killed",
                                       gate_result=None)
    finally:
        engine.dispose()
    for target in _targets():
        release = target / publish.RELEASES / release_name(v3)
        release.mkdir(parents=True)
        publish.switch_current(target, release)

    at = sign_in(app(), operator).run()
    assert not at.error
    assert any("reverted the interrupted deploy of" in i.value for i in at.info)
    assert {str(publish.serving(t)) for t in _targets()} == set(before.values())
    assert "roadwork-ops:0.2.0" in page_text(at)
    assert [a.actor for a in _audit(read_db, "reconcile")] == ["reconcile"]

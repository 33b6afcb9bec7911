"""Gated candidates on the Deployments page: operators approve or reject them with a reason; viewers only see."""

from __future__ import annotations

import pytest

from roadwork.db import repo
from roadwork.db.engine import make_engine, read_session, write_session
from tests.dashboard.conftest import app, rendered, sign_in


@pytest.fixture
def gated(seeded_home):  # noqa: ANN001, ANN201
    """0.3.0 passed the gate and waits for an operator."""
    engine = make_engine(seeded_home.db_url)
    with write_session(engine) as s:
        repo.add_audit(s, actor="scheduler", action="gate_passed", target="roadwork-ops:0.3.0",
                       reason="replay MCC 0.71 vs champion 0.66", details={"passed": True,
                       "reasons": ["replay MCC 0.7100 vs champion 0.6600: change +0.0500 (passed)"]})
    yield seeded_home, engine
    engine.dispose()


def _deployments(login):  # noqa: ANN001, ANN202
    at = sign_in(app(), login).run()
    at.switch_page("views/deployments.py").run()
    assert not at.exception, at.exception
    return at


def test_operator_approves_a_candidate_with_a_reason(gated, operator) -> None:
    seeded, engine = gated
    at = _deployments(operator)
    vid = seeded.version_ids["0.3.0"]
    assert any("change +0.0500" in rendered(c.value) for c in at.caption)
    at.button(key=f"decide_approve_{vid}").click().run()  # no reason: refused, nothing written
    assert at.error and "reason is required" in rendered(at.error[0].value)
    with read_session(engine) as s:
        assert not [c for c in repo.pending_commands(s) if c.kind == "approve"]
    at.text_input(key=f"decide_reason_{vid}").input("better on rain, checked the cells")
    at.button(key=f"decide_approve_{vid}").click().run()
    assert not at.exception, at.exception
    with read_session(engine) as s:
        command = next(c for c in repo.pending_commands(s) if c.kind == "approve")
    assert command.payload == {"version": vid} and command.requested_by == operator.username
    assert command.reason == "better on rain, checked the cells"


def test_viewer_sees_the_candidate_but_no_decision_controls(gated, viewer) -> None:
    seeded, _ = gated
    at = _deployments(viewer)
    assert any("roadwork-ops:0.3.0" in rendered(m.value) for m in at.markdown)
    assert not [b for b in at.button if str(b.key).startswith("decide_")]
    assert not [t for t in at.text_input if str(t.key).startswith("decide_")]

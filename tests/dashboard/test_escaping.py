"""Stored text on a page is shown as text: a record id, reason or name cannot become a link, an image or HTML."""

from __future__ import annotations

import datetime as dt

import pytest
from streamlit.testing.v1 import AppTest

from roadwork.clock import utcnow
from roadwork.dashboard import auth
from roadwork.dashboard.formatting import md
from roadwork.db import repo
from roadwork.db.engine import make_engine, write_session
from roadwork.settings import load_settings
from tests.conftest import ROOT
from tests.dashboard.conftest import (
    MARKDOWN_TEXT_KINDS,
    OPS_VIEWER,
    active_markup,
    rendered,
)

HOSTILE_IDS = [
    "cone`](https://evil.example/x.png)`",  # breaks out of an inline code span
    "![tracker](https://evil.example/pixel.png)",
    "[click me](https://evil.example/login)",
    "<img src=https://evil.example/a.png onerror=alert(1)>",
    "**bold** _it_ :red[red] :material/home: $x^2$ www.evil.example",
]


@pytest.mark.parametrize("text", [*HOSTILE_IDS, "a\\`b", "plain-id_0001.jpg"])
def test_md_renders_as_the_same_text_without_markup(text: str) -> None:
    assert rendered(md(text)) == text
    assert active_markup(md(text)) == []


def test_hostile_record_ids_on_the_hard_negatives_page_are_plain_text(ops_home) -> None:
    engine = make_engine(load_settings().db_url)
    try:
        with write_session(engine) as session:
            hostile = repo.add_hard_negative_set(
                session, name="[set](https://evil.example)", source_version_id=None, pool="/nowhere/`pool`",
                items=[repo.NewHardNegativeItem(rid, 0, 0.9, "confident_mistake", None) for rid in HOSTILE_IDS])
    finally:
        engine.dispose()

    at = AppTest.from_file(str(ROOT / "roadwork" / "dashboard" / "views" / "hard_negatives.py"), default_timeout=30)
    at.session_state[auth.SESSION_KEY] = auth.SignedIn(OPS_VIEWER, "viewer", utcnow() + dt.timedelta(hours=1))
    at.run()
    assert not at.exception, at.exception
    assert at.selectbox(key="hn_selected_set").value == hostile.id
    elements = [str(e.value) for kind in MARKDOWN_TEXT_KINDS for e in at.get(kind)]
    shown = "\n".join(rendered(e) for e in elements)
    for rid in HOSTILE_IDS:
        assert rid in shown  # each id appears exactly as stored
    assert "/nowhere/`pool`" in shown
    assert [kind for e in elements for kind in active_markup(e)] == []  # no link, image or HTML anywhere
    assert not at.get("image")  # the pool is not here: nothing is fetched for the items

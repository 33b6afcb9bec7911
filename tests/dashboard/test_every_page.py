"""Every page of the navigation renders for a viewer and for an operator, on a seeded registry."""

from __future__ import annotations

import pytest

from roadwork.dashboard.formatting import NO_VALUE
from tests.dashboard.conftest import APP, app, sign_in

VIEWS = sorted(p.name for p in (APP.parent / "views").glob("*.py"))


@pytest.mark.parametrize("page", VIEWS)
@pytest.mark.parametrize("role", ["viewer", "operator"])
def test_page_renders_for_each_role(seeded_home, operator, viewer, page: str, role: str) -> None:
    at = sign_in(app(), operator if role == "operator" else viewer).run()
    at.switch_page(f"views/{page}").run()
    assert not at.exception, at.exception
    assert at.title, f"{page} rendered no title"
    # A value that is not there shows as a dash in every table, never as the text "None".
    assert [d.proto.placeholder for d in at.dataframe] == [NO_VALUE] * len(at.dataframe)
    if role == "viewer":  # no form that changes state (the Users page says "operators only")
        submit_labels = {b.label for b in at.button}
        assert not submit_labels & {"Request rollback", "Approve and deploy", "Reject", "Add user"}, submit_labels

"""What the A/B tests page reads: the tests with their newest verdict, a test's stored result, the versions a new
test can compare, and the A/B commands with their outcome.

Every statistic shown (CIs, McNemar's p-value) was computed when the result was stored: this page never imports
the statistics of `platform.ab.service` (numpy, scipy).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import streamlit as st

from roadwork.dashboard.context import CACHE_TTL_S, db_url, engine_for
from roadwork.dashboard.formatting import local
from roadwork.dashboard.queries.common import CommandRow, recent_commands
from roadwork.db import repo
from roadwork.db.engine import read_session
from roadwork.db.repo import MIN_N, ABResult, ABTest

__all__ = ["KINDS", "MIN_N", "VersionChoices", "ab_result", "ab_tests", "commands", "version_choices"]

KINDS = ("create_ab_test",)
COMMANDS_SHOWN = 10


@st.cache_data(ttl=CACHE_TTL_S, show_spinner=False)
def _ab_tests(url: str) -> list[ABTest]:
    with read_session(engine_for(url)) as session:
        return [dataclasses.replace(t, created_at=local(t.created_at)) for t in repo.list_ab_tests(session)]


def ab_tests() -> list[ABTest]:
    """A/B tests, newest first, with their status and newest verdict."""
    return _ab_tests(db_url())


@st.cache_data(ttl=CACHE_TTL_S, show_spinner=False)
def _ab_result(url: str, test_id: int) -> ABResult | None:
    with read_session(engine_for(url)) as session:
        result = repo.latest_ab_result(session, test_id)
    return None if result is None else dataclasses.replace(result, created_at=local(result.created_at))


def ab_result(test_id: int) -> ABResult | None:
    """The newest result of a test, or None before its first run."""
    return _ab_result(db_url(), test_id)


@dataclass(frozen=True)
class VersionChoices:
    options: dict[int, str]  # version id -> label ("  (champion)" marked), newest semantic version first
    champion_id: int | None


@st.cache_data(ttl=CACHE_TTL_S, show_spinner=False)
def _version_choices(url: str) -> VersionChoices:
    with read_session(engine_for(url)) as session:
        heads = repo.list_version_heads(session)  # labels only: no config or metrics JSON
        champion_id = repo.alias_target(session, repo.CHAMPION)
    ordered = sorted(heads, key=lambda v: (repo.semver_key(v.version), v.id), reverse=True)
    return VersionChoices({v.id: v.label + ("  (champion)" if v.id == champion_id else "") for v in ordered},
                          champion_id)


def version_choices() -> VersionChoices:
    """The versions a new test can compare, newest first, and which one is the champion."""
    return _version_choices(db_url())


def commands(limit: int = COMMANDS_SHOWN) -> list[CommandRow]:
    """The newest create-A/B-test commands with status and outcome."""
    return recent_commands(KINDS, limit)

"""What the Deployments page reads: the champion's alias history, the versions it can be rolled back to, gated
candidates waiting for an operator, and the recent scheduler commands."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import streamlit as st

from roadwork.dashboard.context import CACHE_TTL_S, db_url, engine_for, settings
from roadwork.dashboard.formatting import local
from roadwork.dashboard.queries.common import CommandRow, recent_commands
from roadwork.db import repo
from roadwork.db.engine import read_session
from roadwork.platform.evaluation.gate import latest_gate_event, pending_candidates

COMMANDS_SHOWN = 20


@dataclass(frozen=True)
class AliasEventRow:
    id: int
    when: dt.datetime  # local
    action: str
    from_version: str | None
    to_version: str
    to_version_id: int
    actor: str
    reason: str


@dataclass(frozen=True)
class RollbackChoices:
    champion_id: int | None
    options: dict[int, str]  # version id -> label, every version but the champion, newest first
    default_id: int | None  # the previous holder, when it is an option


@st.cache_data(ttl=CACHE_TTL_S, show_spinner=False)
def _alias_events(url: str, alias: str) -> list[AliasEventRow]:
    with read_session(engine_for(url)) as session:
        events = repo.alias_history(session, alias)
        ids = {e.to_version_id for e in events} | {e.from_version_id for e in events if e.from_version_id}
        by_id = repo.versions_by_id(session, ids)
    return [
        AliasEventRow(
            id=e.id,
            when=local(e.created_at),
            action=e.action,
            from_version=by_id[e.from_version_id].version if e.from_version_id in by_id else None,
            to_version=by_id[e.to_version_id].version,
            to_version_id=e.to_version_id,
            actor=e.actor,
            reason=e.reason,
        )
        for e in events
    ]


def alias_events(alias: str = repo.CHAMPION) -> list[AliasEventRow]:
    """Moves of `alias`, newest first."""
    return _alias_events(db_url(), alias)


@st.cache_data(ttl=CACHE_TTL_S, show_spinner=False)
def _rollback_choices(url: str) -> RollbackChoices:
    with read_session(engine_for(url)) as session:
        holder = repo.alias_holder(session, repo.CHAMPION)
        history = repo.alias_history(session, repo.CHAMPION, limit=1)
        versions = repo.list_version_heads(session)  # labels only: no config or metrics JSON
    champion_id = holder.id if holder else None
    ordered = sorted(versions, key=lambda v: (repo.semver_key(v.version), v.id), reverse=True)
    options = {v.id: v.label for v in ordered if v.id != champion_id}
    previous = history[0].from_version_id if history else None
    return RollbackChoices(
        champion_id=champion_id, options=options, default_id=previous if previous in options else None
    )


def rollback_choices() -> RollbackChoices:
    """Versions the champion can be rolled back to, and the previous holder as the default."""
    return _rollback_choices(db_url())


@st.cache_data(ttl=CACHE_TTL_S, show_spinner=False)
def _version_order(url: str) -> list[str]:
    with read_session(engine_for(url)) as session:
        heads = repo.list_version_heads(session)
    return [h.version for h in sorted(heads, key=lambda h: (repo.semver_key(h.version), h.id))]


def version_order() -> list[str]:
    """Every version string, oldest semantic version first (the y axis of the alias timeline)."""
    return _version_order(db_url())


def commands(limit: int = COMMANDS_SHOWN) -> list[CommandRow]:
    """The newest scheduler commands of any kind, with status and outcome."""
    return recent_commands(None, limit)


@dataclass(frozen=True)
class Candidate:
    version_id: int
    label: str
    gated_at: dt.datetime | None  # local
    reasons: list[str]


@st.cache_data(ttl=CACHE_TTL_S, show_spinner=False)
def _candidates(url: str) -> list[Candidate]:
    with read_session(engine_for(url)) as session:
        out = []
        for version in pending_candidates(session):
            event = latest_gate_event(session, version.id)
            details = (event.details or {}) if event else {}
            out.append(Candidate(version.id, version.label, local(event.created_at) if event else None,
                                 list(details.get("reasons", []))))
        return out


def gate_policy() -> str:
    """`auto` or `manual` (settings `gate.policy`)."""
    return settings().gate.policy


def candidates() -> list[Candidate]:
    """Versions that passed the gate and wait for an operator (gate policy manual), newest first."""
    return _candidates(db_url())

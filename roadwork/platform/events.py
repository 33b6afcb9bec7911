"""Events: the audit rows that matter to a person on call, forwarded to an optional webhook.

Every process writes audit events to the database (CLI, dashboard, jobs); the scheduler alone forwards the
notable ones to `events.webhook_url` as Slack-compatible JSON, so each event is sent once, from one place.
"""

from __future__ import annotations

import logging

import requests
from sqlalchemy import Engine

from roadwork.db import repo
from roadwork.db.engine import read_session

log = logging.getLogger(__name__)

NOTABLE = frozenset({
    "deploy", "deploy_failed", "rollback", "rollback_failed", "gate_passed", "gate_failed", "candidate_rejected",
    "job_failed", "job_missed", "job_parked", "alert", "retrain_scheduled", "ab_verdict", "reconcile",
    "deploy_lock_taken_over",
})


def format_event(event: repo.AuditEvent) -> str:
    target = f" {event.target}" if event.target else ""
    reason = f": {event.reason}" if event.reason else ""
    return f"[roadwork] {event.action}{target} by {event.actor}{reason}"


def post_webhook(url: str, text: str, timeout_s: float) -> None:
    """POST {"text": ...}; raises on a transport error or a non-2xx answer."""
    response = requests.post(url, json={"text": text}, timeout=timeout_s)
    response.raise_for_status()


def _failure(exc: requests.RequestException) -> str:
    if exc.response is not None:
        return f"HTTP {exc.response.status_code}"
    return type(exc).__name__


class EventForwarder:
    """Forwards notable audit events written after it was primed (no replay of old history on start)."""

    def __init__(self, engine: Engine, url: str | None, timeout_s: float = 5.0) -> None:
        self.engine, self.url, self.timeout_s = engine, url, timeout_s
        with read_session(engine) as session:
            self.last_id = repo.newest_audit_id(session)

    def forward(self) -> int:
        """Send what is new; returns how many were sent. A failing webhook is logged and retried next time."""
        if not self.url:
            return 0
        with read_session(self.engine) as session:
            newest = repo.newest_audit_id(session)
            events = repo.audit_events_between(session, self.last_id, newest, NOTABLE)
        sent = 0
        for event in events:
            try:
                post_webhook(self.url, format_event(event), self.timeout_s)
            except requests.RequestException as exc:
                # requests puts the URL into its messages, and the URL is a secret: say what failed, not where
                log.warning("webhook failed for event %s (will retry): %s", event.id, _failure(exc))
                return sent
            self.last_id, sent = event.id, sent + 1
        self.last_id = newest  # everything up to `newest` is sent or not notable
        return sent

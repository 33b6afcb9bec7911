"""Errors of deploys and rollbacks (the CLI prints them as one line and exits 2)."""

from __future__ import annotations


class DeployError(RuntimeError):
    """A deploy or rollback failed; the previous champion is still serving."""


class DeployBusyError(DeployError):
    """Another deploy or rollback holds the deploy lock and did not finish within the wait."""

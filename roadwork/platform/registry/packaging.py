"""Export a registered version: the trainer's model repository plus the competition's model_card.json."""

from __future__ import annotations

import time
from pathlib import Path

from roadwork.settings import Settings
from roadwork.db.repo import Version
from roadwork.trainer.export.repo import export_model


def model_card(version: Version, settings: Settings, submission_time: int | None = None) -> dict:
    """The competition's `model_card.json` (COMPETITION.md)."""
    return {
        "model_name": version.name,
        "description": f"Roadwork Ops {version.label}; data {str(version.data_fingerprint)[:12]}",
        "version": version.version,
        "submitted_by": settings.hotkey or "",
        "submission_time": int(submission_time if submission_time is not None else time.time()),
    }


def export_version(checkpoint_dir: Path, version: Version, settings: Settings, out_dir: Path) -> Path:
    """Write the model repository for `version` into `out_dir` (new or empty)."""
    return export_model(checkpoint_dir, out_dir, model_card=model_card(version, settings), version=version.version)

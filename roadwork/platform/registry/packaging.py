"""Export a registered version for deploy: what gets published, in which format, and its model_card.json.

Two formats (`deploy.format`):
- `stock` (default): a student (a version whose config has a `student` section, distilled by `roadwork distill`)
  exports to a plain model repository that the stock miner loads with no code of ours
  (`roadwork.trainer.export.stock`). Deploying any other version publishes its newest student instead, or is
  refused when it has none.
- `remote-code`: the version itself with its model code (`roadwork.trainer.export.repo`), for miners that install
  the detector plug-in. A student still exports as a stock repository: it needs no code.
Every export is refused when it is larger than `deploy.max_size_mb`, before anything is published.
"""

from __future__ import annotations

import time
from pathlib import Path

from sqlalchemy.orm import Session

from roadwork.db import repo
from roadwork.db.repo import Version
from roadwork.platform.registry.errors import DeployError
from roadwork.settings import Settings
from roadwork.trainer.export.repo import export_model
from roadwork.trainer.export.stock import export_stock
from roadwork.trainer.student.model import is_student_dir

STOCK = "stock"
MB = 1_000_000


def model_card(version: Version, settings: Settings, submission_time: int | None = None) -> dict:
    """The competition's `model_card.json` (COMPETITION.md)."""
    return {
        "model_name": version.name,
        "description": f"Roadwork Ops {version.label}; data {str(version.data_fingerprint)[:12]}",
        "version": version.version,
        "submitted_by": settings.hotkey or "",
        "submission_time": int(submission_time if submission_time is not None else time.time()),
    }


def version_to_publish(session: Session, settings: Settings, version: Version) -> Version:
    """What a deploy of `version` publishes under `deploy.format`: the version itself, or (stock format, a
    version that is not a student) its newest student. Raises `DeployError` when there is none."""
    if settings.deploy.format != STOCK or repo.is_student(version):
        return version
    student = repo.newest_student(session, version.id)
    if student is None:
        raise DeployError(f"{version.label} is not in a stock architecture: run `roadwork distill {version.label}` "
                          "first, or set deploy.format: remote-code")
    return student


def folder_bytes(folder: Path) -> int:
    return sum(p.stat().st_size for p in Path(folder).rglob("*") if p.is_file())


def check_size(folder: Path, max_size_mb: float) -> None:
    """Refuse a model folder larger than `max_size_mb` (the competition allows 500 MB)."""
    size = folder_bytes(folder)
    if size > max_size_mb * MB:
        raise DeployError(f"the model folder is {size / MB:.1f} MB, over the {max_size_mb:g} MB limit "
                          "(deploy.max_size_mb): not published")


def export_version(checkpoint_dir: Path, version: Version, settings: Settings, out_dir: Path) -> Path:
    """Write the model repository for `version` into `out_dir` (new or empty): a stock repository for a student,
    the remote-code repository otherwise. Raises `DeployError` when it is over `deploy.max_size_mb`."""
    card = model_card(version, settings)
    if is_student_dir(checkpoint_dir):
        export_stock(checkpoint_dir, out_dir, model_card=card)
    else:
        export_model(checkpoint_dir, out_dir, model_card=card, version=version.version)
    check_size(out_dir, settings.deploy.max_size_mb)
    return out_dir

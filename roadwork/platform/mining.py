"""Hard-negative mining: run a version over a pool and keep what it gets most confidently wrong or is least sure of.

A pool is a labelled parquet dataset (the NATIX schema, read by `read_records`) or a folder of unlabelled
images (jpg/png, searched recursively; an image's id is its path relative to the folder). The answers are the
version's calibrated probabilities, the number the miner sends. From a labelled pool the `confident_mistakes`
wrong answers furthest from 0.5 are kept ("confident_mistake"); from any pool the `uncertain` remaining answers
closest to 0.5 ("uncertain"). The set is stored in one transaction and the next training run oversamples it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from sqlalchemy import Engine
from sqlalchemy.orm import Session

from roadwork.clock import utcnow
from roadwork.settings import Settings
from roadwork.db import repo
# The readers live in the repository: the dashboard shows sets without the model or the image readers.
from roadwork.db.repo.mining import HardNegativeItemInfo, HardNegativeSetInfo  # noqa: F401
from roadwork.db.repo.mining import get_hard_negative_set as get_set  # noqa: F401
from roadwork.db.repo.mining import hard_negative_items as set_items
from roadwork.db.repo.mining import list_hard_negative_sets as list_sets
from roadwork.db.engine import read_session, write_session
from roadwork.trainer.data.records import BadImageError, decode_image, read_records

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png")
BATCH = 64
CONFIDENT_MISTAKE, UNCERTAIN = "confident_mistake", "uncertain"


@dataclass(frozen=True)
class PoolImage:
    """One image to score: its id, the label if the pool has labels, and its known conditions."""

    id: str
    label: int | None
    conditions: dict[str, str] | None
    image_bytes: bytes | None = None  # parquet rows carry their bytes
    path: Path | None = None  # folder images are read when scored

    def read(self) -> bytes:
        return self.image_bytes if self.image_bytes is not None else Path(self.path).read_bytes()


# --- pools -----------------------------------------------------------------------------------------------------


def is_parquet_pool(path: Path) -> bool:
    return (path.is_file() and path.suffix == ".parquet") or (path.is_dir() and any(path.rglob("*.parquet")))


def image_files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)


def read_pool(path: Path) -> tuple[list[PoolImage], int, bool]:
    """(images, rows skipped while reading, labelled?) of a parquet dataset or an image folder."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"mining pool does not exist: {path}")
    if is_parquet_pool(path):
        records, report = read_records(path)
        images = [PoolImage(r.id, r.label, _conditions(r.weather, r.daytime, r.scene), r.image_bytes) for r in records]
        return images, sum(report.skipped.values()), True
    if path.is_file():
        raise ValueError(f"mining pool {path} is neither a parquet file nor a folder")
    files = image_files(path)
    if not files:
        raise FileNotFoundError(f"no parquet files or images ({', '.join(IMAGE_SUFFIXES)}) under {path}")
    return [PoolImage(f.relative_to(path).as_posix(), None, None, path=f) for f in files], 0, False


def _conditions(weather: str | None, daytime: str | None, scene: str | None) -> dict[str, str] | None:
    known = {k: v for k, v in (("weather", weather), ("daytime", daytime), ("scene", scene)) if v is not None}
    return known or None


def score_pool(
    predictor: Any, images: Sequence[PoolImage], progress: Callable[[int], None] | None = None
) -> tuple[list[PoolImage], np.ndarray, int]:
    """Calibrated answers for every decodable image: (scored images, answers, undecodable count)."""
    kept: list[PoolImage] = []
    answers: list[np.ndarray] = []
    skipped = 0
    for batch in _batches(images, BATCH):
        decoded = []
        for item in batch:
            try:
                decoded.append(decode_image(item.read()))
            except (BadImageError, OSError):  # undecodable, or a file that cannot be read
                skipped += 1
                continue
            kept.append(item)
        if decoded:
            answers.append(predictor.predict(decoded))
        if progress is not None:
            progress(len(kept) + skipped)
    return kept, (np.concatenate(answers) if answers else np.zeros(0)), skipped


def _batches(items: Sequence[PoolImage], size: int) -> Iterator[Sequence[PoolImage]]:
    for i in range(0, len(items), size):
        yield items[i : i + size]


# --- selection (pure) ------------------------------------------------------------------------------------------


def select_hard(
    labels: Sequence[int | None], answers: np.ndarray, n_mistakes: int, n_uncertain: int
) -> list[tuple[int, str]]:
    """(index, reason) of the hard negatives: the `n_mistakes` wrong answers furthest from 0.5 (labelled rows
    only), most confident first, then the `n_uncertain` other answers closest to 0.5, least confident first.
    Ties break by index, so the choice is deterministic."""
    distance = np.abs(np.asarray(answers, dtype=np.float64) - 0.5)
    wrong = [i for i, y in enumerate(labels) if y is not None and int(answers[i] >= 0.5) != y]
    mistakes = sorted(wrong, key=lambda i: (-distance[i], i))[:n_mistakes]
    taken = set(mistakes)
    rest = [i for i in range(len(labels)) if i not in taken]
    uncertain = sorted(rest, key=lambda i: (distance[i], i))[:n_uncertain]
    return [(i, CONFIDENT_MISTAKE) for i in mistakes] + [(i, UNCERTAIN) for i in uncertain]


# --- service ---------------------------------------------------------------------------------------------------


def default_pool(settings: Settings, version: repo.Version) -> Path:
    """`settings.mining.pool`, else the dataset `version` was trained on."""
    if settings.mining.pool:
        return Path(settings.mining.pool).expanduser()
    from roadwork.platform.evaluation.gate import training_data_path

    return training_data_path(settings, version)


def mine_hard_negatives(
    engine: Engine,
    settings: Settings,
    *,
    pool: Path | None = None,
    version_ref: str | int | None = None,
    actor: str = "scheduler",
    progress: Callable[[int], None] | None = None,
) -> HardNegativeSetInfo:
    """Run the champion (or `version_ref`) over `pool` (default: `default_pool`) and store a hard-negative set.

    Raises `LookupError` when there is no champion and no `version_ref`."""
    from roadwork.platform.registry.service import checkout
    from roadwork.trainer.eval.predict import Predictor

    with read_session(engine) as session:
        version = repo.get_version(session, version_ref) if version_ref is not None else repo.alias_holder(session)
    if version is None:
        raise repo.NotFoundError("nothing to mine with: no champion is set and no version was given")
    path = Path(pool) if pool is not None else default_pool(settings, version)
    images, read_skipped, _ = read_pool(path)
    scored, answers, undecodable = score_pool(Predictor.load(checkout(settings, version)), images, progress)
    cfg = settings.mining
    chosen = select_hard([s.label for s in scored], answers, cfg.confident_mistakes, cfg.uncertain)
    name = f"{version.label} on {path.name} {utcnow():%Y-%m-%dT%H:%M:%SZ}"
    items = [repo.NewHardNegativeItem(record_id=scored[i].id[:255], label=scored[i].label, score=float(answers[i]),
                                      reason=reason, conditions=scored[i].conditions)
             for i, reason in chosen]
    with write_session(engine) as session:
        stored = repo.add_hard_negative_set(session, name=name, source_version_id=version.id,
                                            pool=str(path.resolve()), items=items)
        repo.add_audit(session, actor=actor, action="mine", target=version.label,
                       details={"set_id": stored.id, "pool": str(path), "n_items": len(chosen)})
        set_id, created_at = stored.id, stored.created_at
    reasons = [r for _, r in chosen]
    return HardNegativeSetInfo(
        id=set_id, name=name, source_version_id=version.id, pool=str(path.resolve()), n_items=len(chosen),
        created_at=created_at, n_confident_mistakes=reasons.count(CONFIDENT_MISTAKE),
        n_uncertain=reasons.count(UNCERTAIN), n_scored=len(scored), skipped=read_skipped + undecodable,
    )


# --- readers ---------------------------------------------------------------------------------------------------


def latest_set(session: Session, source_version_id: int) -> HardNegativeSetInfo | None:
    """The newest set mined with version `source_version_id`, or None."""
    sets = list_sets(session, source_version_id=source_version_id, limit=1)
    return sets[0] if sets else None


def hard_negative_ids(session: Session, set_id: int) -> list[str]:
    """The record ids of a set, in chosen order."""
    return [item.record_id for item in set_items(session, set_id)]


# --- job -------------------------------------------------------------------------------------------------------


def mine_job() -> dict[str, Any]:
    """Scheduled job: mine hard negatives with the champion over the configured pool."""
    from roadwork.settings import load_settings
    from roadwork.db.engine import get_engine

    settings = load_settings()
    engine = get_engine(settings.db_url)
    with read_session(engine) as session:
        champion = repo.alias_holder(session)
    if champion is None:
        return {"skipped": "no champion yet"}
    info = mine_hard_negatives(engine, settings, version_ref=champion.id)
    return {"version": champion.label, "set_id": info.id, "pool": info.pool, "n_items": info.n_items,
            "confident_mistakes": info.n_confident_mistakes, "uncertain": info.n_uncertain,
            "scored": info.n_scored, "skipped": info.skipped}

"""A replay: a seeded stream of challenges drawn from a labelled dataset the way validators draw them.

Per challenge: the label is 0 or 1 with p = 1/2; then a source among those the label has (with "real" and
"synthetic" both present, p = 1/2 each); then a record of that label and source, uniformly; then the
parameters from :func:`sample_params` for the image's size.  Challenge ``i`` uses its own generator seeded
with ``(seed, i)``, so it does not depend on ``n`` or on what other challenges drew.

Description filter: the validator's image cache skips a row whose ``scene_description`` disagrees with its
label (non-empty with label 0, empty with label 1).  Here that applies to ``source == "real"`` rows, and only
when the dataset has at least one description at all (a dataset without the column would otherwise lose
every roadwork row).  The filtered rows are left out before drawing, which is what rejection-sampling them,
as the validator does, amounts to.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from PIL import Image

from roadwork.platform.evaluation.challenge.params import DISTORTION_ORDER, ChallengeParams, sample_params
from roadwork.platform.evaluation.challenge.rendering import render_jpeg
from roadwork.trainer.data.records import BadImageError, Record, decode_image

__all__ = [
    "MISSING",
    "Challenge",
    "ReplayStats",
    "challenge_tags",
    "description_disagrees",
    "build_replay",
    "replay_from_params",
]

MISSING = "(missing)"  # tag value of a metadata field the record lacks (as in evaluation reports)


@dataclass(frozen=True)
class Challenge:
    """One rendered challenge: what the miner receives (``jpeg``) and what it was made from."""

    index: int  # position in the replay
    record_id: str
    label: int
    source: str  # Record.source: "real", "synthetic", ...
    params: ChallengeParams
    jpeg: bytes = field(repr=False)
    tags: dict[str, str] = field(default_factory=dict)  # level, CS..GB, source, weather, daytime, scene

    def to_dict(self) -> dict[str, Any]:
        """JSON-able log entry (no image bytes, their sha256 instead); input of :func:`replay_from_params`."""
        return {
            "index": self.index,
            "record_id": self.record_id,
            "label": self.label,
            "source": self.source,
            "params": self.params.to_dict(),
            "tags": dict(self.tags),
            "jpeg_sha256": hashlib.sha256(self.jpeg).hexdigest(),
        }


@dataclass
class ReplayStats:
    """Counts a replay fills in as it runs (pass one to :func:`build_replay` to read them)."""

    built: int = 0  # challenges yielded so far
    undecodable: int = 0  # records skipped because their image does not decode (each counted once)
    undecodable_ids: list[str] = field(default_factory=list)
    description_filtered: int = 0  # real rows left out by the description filter (set before the first draw)


def challenge_tags(record: Record, params: ChallengeParams) -> dict[str, str]:
    """Condition tags of a challenge: level, each distortion's level ("0" when off), source and metadata."""
    levels = dict(params.distortions)
    tags = {"level": str(params.level)}
    tags.update({name: str(levels.get(name, 0)) for name in DISTORTION_ORDER})
    tags["source"] = record.source or MISSING
    for attr in ("weather", "daytime", "scene"):
        tags[attr] = getattr(record, attr) or MISSING
    return tags


def description_disagrees(record: Record) -> bool:
    """True for a row the validator's cache skips: a description with label 0, or none with label 1."""
    has_description = bool(record.scene_description and record.scene_description.strip())
    return has_description if record.label == 0 else not has_description


def _pools(records: Sequence[Record], stats: ReplayStats) -> dict[int, dict[str, list[Record]]]:
    """label -> source -> records (input order kept), after the description filter."""
    filter_on = any(r.scene_description and r.scene_description.strip() for r in records)
    pools: dict[int, dict[str, list[Record]]] = {0: {}, 1: {}}
    for r in records:
        if r.label not in pools:
            raise ValueError(f"label: record {r.id!r} has label {r.label!r}, expected 0 or 1")
        if filter_on and r.source == "real" and description_disagrees(r):
            stats.description_filtered += 1
            continue
        pools[r.label].setdefault(r.source, []).append(r)
    for label, by_source in pools.items():
        if not by_source:
            raise ValueError(f"records: no usable record with label {label} (a replay needs both labels)")
    return pools


def _draw(
    rng: np.random.Generator, pools: dict[int, dict[str, list[Record]]], stats: ReplayStats
) -> tuple[Record, Image.Image]:
    """Label, source, record; a record that fails to decode is dropped from its pool and the draw repeated."""
    label = int(rng.integers(0, 2))
    by_source = pools[label]
    while True:
        if not by_source:
            raise ValueError(f"records: every record with label {label} failed to decode")
        sources = sorted(by_source)
        pool = by_source[sources[int(rng.integers(0, len(sources)))]]
        record = pool[int(rng.integers(0, len(pool)))]
        try:
            return record, decode_image(record.image_bytes)
        except BadImageError:
            stats.undecodable += 1
            stats.undecodable_ids.append(record.id)
            pool.remove(record)
            if not pool:
                del by_source[record.source]


def build_replay(
    records: Sequence[Record], n: int, seed: int, *, flips: bool = False, stats: ReplayStats | None = None
) -> Iterator[Challenge]:
    """``n`` challenges drawn from ``records``, deterministic from ``seed`` (>= 0).

    Checks and the description filter run at the call (``ValueError`` when a label has no usable record);
    the challenges are rendered lazily.  Undecodable records are skipped and counted in ``stats``.
    """
    if n < 0:
        raise ValueError(f"n: expected >= 0, got {n}")
    if seed < 0:
        raise ValueError(f"seed: expected >= 0, got {seed}")
    stats = stats if stats is not None else ReplayStats()
    pools = _pools(records, stats)

    def generate() -> Iterator[Challenge]:
        for index in range(n):
            rng = np.random.default_rng([seed, index])
            record, image = _draw(rng, pools, stats)
            params = sample_params(rng, image.width, image.height, flips=flips)
            jpeg = render_jpeg(image, params)
            stats.built += 1
            yield Challenge(index, record.id, record.label, record.source, params, jpeg, challenge_tags(record, params))

    return generate()


def replay_from_params(records_by_id: Mapping[str, Record], logged: Iterable[dict[str, Any]]) -> Iterator[Challenge]:
    """Re-render logged challenges (:meth:`Challenge.to_dict` entries) from their records, byte for byte.

    Each entry needs ``record_id`` and ``params``; ``index`` defaults to the position and a logged
    ``label`` must match the record's.  Raises ``ValueError`` naming the bad field (an unknown
    ``record_id``, invalid ``params``, a ``crop`` outside the image); an image that no longer decodes
    raises :class:`BadImageError` (a ``ValueError``).
    """
    for position, entry in enumerate(logged):
        rid = entry.get("record_id")
        if rid not in records_by_id:
            raise ValueError(f"record_id: {rid!r} is not among the records")
        record = records_by_id[rid]
        if "label" in entry and entry["label"] != record.label:
            raise ValueError(f"label: logged {entry['label']!r} but record {rid!r} has {record.label}")
        if "params" not in entry:
            raise ValueError("params: missing")
        params = ChallengeParams.from_dict(entry["params"])
        jpeg = render_jpeg(decode_image(record.image_bytes), params)
        index = int(entry.get("index", position))
        yield Challenge(index, record.id, record.label, record.source, params, jpeg, challenge_tags(record, params))

"""A replay: a seeded stream of challenges drawn from a labelled dataset the way validators draw them.

Per challenge: the label is 0 or 1 with p = 1/2; then a source pool as validators draw one (real 1/2,
text-to-image 1/4, image-to-image 1/4; :func:`pool_weights`); then a record of that label and pool, uniformly;
then the parameters from :func:`sample_params` for the image's size.  Challenge ``i`` uses its own generator
seeded with ``(seed, i)``, so it does not depend on ``n`` or on what other challenges drew.

Source pools: a record's ``source`` names its pool (:func:`source_pool`): "real"; "t2i" or "i2i" for a
synthetic row whose generator is known (the value "t2i"/"i2i", or spelt out, "text-to-image", also with a
"synthetic" prefix); any other value is a synthetic row whose generator is not recorded ("synthetic").
COMPETITION.md says nothing about a missing pool (the validator always has all three), so here the weight
of a pool a label lacks goes to the others on its side of the tree: the synthetic half is split evenly over
the synthetic pools present (the untyped "synthetic" pool counting as one), and a label with no synthetic
rows draws only real ones (and the other way round).  Real and synthetic keep 1/2 each whenever both exist.

Cache re-save: validators render real rows from their cache's Pillow re-save of the row (:mod:`.cache`);
``cache_resave=True`` (the default) does the same, and each challenge's params record whether it applied.

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
    "draw_pool",
    "pool_weights",
    "source_pool",
    "build_replay",
    "replay_from_params",
]

MISSING = "(missing)"  # tag value of a metadata field the record lacks (as in evaluation reports)
REAL, T2I, I2I, SYNTHETIC = "real", "t2i", "i2i", "synthetic"  # source pools; SYNTHETIC: generator unknown
SYNTHETIC_POOLS = (T2I, I2I, SYNTHETIC)
_GENERATOR_NAMES = {
    T2I: {"t2i", "text-to-image", "text2image", "text_to_image"},
    I2I: {"i2i", "image-to-image", "image2image", "image_to_image"},
}


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


def source_pool(source: str | None) -> str:
    """The pool a record's ``source`` belongs to: "real", "t2i", "i2i" or "synthetic" (generator unknown)."""
    value = (source or REAL).strip().lower()
    if value == REAL:
        return REAL
    for prefix in ("synthetic_", "synthetic-", "synthetic:", "synthetic/"):
        if value.startswith(prefix):
            value = value[len(prefix):]
            break
    for pool, names in _GENERATOR_NAMES.items():
        if value in names:
            return pool
    return SYNTHETIC


def pool_weights(present: Iterable[str]) -> dict[str, float]:
    """Probability of each present pool: real 1/2, the synthetic half split evenly over the synthetic pools
    present (t2i 1/4 and i2i 1/4 when both are there); an absent pool's weight goes to its own side, or to the
    other side when a whole side is absent.  Empty ``present``: ``{}``."""
    present = set(present)
    synthetic = [p for p in SYNTHETIC_POOLS if p in present]
    real_share = 0.0 if REAL not in present else (0.5 if synthetic else 1.0)
    weights = {REAL: real_share} if REAL in present else {}
    weights.update({p: (1.0 - real_share) / len(synthetic) for p in synthetic})
    return weights


def draw_pool(rng: np.random.Generator, present: Iterable[str]) -> str:
    """One source pool among ``present``, with the probabilities of :func:`pool_weights` (one ``rng.random()``)."""
    weights = pool_weights(present)
    if not weights:
        raise ValueError("present: no source pool to draw from")
    names = sorted(weights)
    cumulative = np.cumsum([weights[name] for name in names])
    position = int(np.searchsorted(cumulative, rng.random() * cumulative[-1], side="right"))
    return names[min(position, len(names) - 1)]  # min: guards a float sum a hair below the draw


def _pools(records: Sequence[Record], stats: ReplayStats) -> dict[int, dict[str, list[Record]]]:
    """label -> source pool -> records (input order kept), after the description filter."""
    filter_on = any(r.scene_description and r.scene_description.strip() for r in records)
    pools: dict[int, dict[str, list[Record]]] = {0: {}, 1: {}}
    for r in records:
        if r.label not in pools:
            raise ValueError(f"label: record {r.id!r} has label {r.label!r}, expected 0 or 1")
        pool = source_pool(r.source)
        if filter_on and pool == REAL and description_disagrees(r):
            stats.description_filtered += 1
            continue
        pools[r.label].setdefault(pool, []).append(r)
    for label, by_pool in pools.items():
        if not by_pool:
            raise ValueError(f"records: no usable record with label {label} (a replay needs both labels)")
    return pools


def _draw(
    rng: np.random.Generator, pools: dict[int, dict[str, list[Record]]], stats: ReplayStats, cache_resave: bool
) -> tuple[Record, Image.Image, bool]:
    """Label, pool, record, its decoded image and whether the cache re-saves it (a real row, with the switch
    on); a record that fails to decode is dropped from its pool and the draw repeated."""
    label = int(rng.integers(0, 2))
    by_pool = pools[label]
    while True:
        if not by_pool:
            raise ValueError(f"records: every record with label {label} failed to decode")
        name = draw_pool(rng, by_pool)
        pool = by_pool[name]
        record = pool[int(rng.integers(0, len(pool)))]
        try:
            return record, decode_image(record.image_bytes), cache_resave and name == REAL
        except BadImageError:
            stats.undecodable += 1
            stats.undecodable_ids.append(record.id)
            pool.remove(record)
            if not pool:
                del by_pool[name]


def build_replay(
    records: Sequence[Record],
    n: int,
    seed: int,
    *,
    flips: bool = False,
    cache_resave: bool = True,
    stats: ReplayStats | None = None,
) -> Iterator[Challenge]:
    """``n`` challenges drawn from ``records``, deterministic from ``seed`` (>= 0).

    Checks and the description filter run at the call (``ValueError`` when a label has no usable record);
    the challenges are rendered lazily.  Undecodable records are skipped and counted in ``stats``.
    ``cache_resave``: render real rows from the validator cache's JPEG re-save of them (the default), as
    validators do; ``False`` renders every row from its bytes as they are.
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
            record, image, resaved = _draw(rng, pools, stats, cache_resave)
            params = sample_params(rng, image.width, image.height, flips=flips, cache_resave=resaved)
            jpeg = render_jpeg(image, params)
            stats.built += 1
            yield Challenge(index, record.id, record.label, record.source, params, jpeg, challenge_tags(record, params))

    return generate()


def replay_from_params(records_by_id: Mapping[str, Record], logged: Iterable[dict[str, Any]]) -> Iterator[Challenge]:
    """Re-render logged challenges (:meth:`Challenge.to_dict` entries) from their records, byte for byte.

    Each entry needs ``record_id`` and ``params``; ``index`` defaults to the position and a logged
    ``label`` must match the record's; the source is re-saved as the cache does when the logged params say
    ``cache_resave`` (logs from before that field: not re-saved).  Raises ``ValueError`` naming the bad
    field (an unknown
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
        jpeg = render_jpeg(decode_image(record.image_bytes), params)  # params.cache_resave: render re-saves
        index = int(entry.get("index", position))
        yield Challenge(index, record.id, record.label, record.source, params, jpeg, challenge_tags(record, params))

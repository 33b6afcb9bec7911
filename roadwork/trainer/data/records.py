"""Tolerant reader for roadwork datasets, the train/validation split and a torch ``Dataset`` over it.

:func:`read_records` is the single entry point.  It reads parquet files
(:mod:`roadwork.trainer.data.rows`), an image folder with a ``metadata.jsonl``
or a Hugging Face ``datasets`` reference (both in
:mod:`roadwork.trainer.data.readers`); every source goes through the same
row -> :class:`Record` code (:func:`record_from_row`), and every image
through :func:`decode_image` (:mod:`roadwork.trainer.data.images`).

Bad rows never stop a read: they are skipped and counted by reason in a
:class:`ReadReport` (``zero_byte``, ``missing_image``, ``undecodable``,
``truncated``, ``unsupported_mode``, ``bad_label``; the image-folder reader
adds ``bad_json``, ``missing_file`` and ``unsafe_path``).  Structural
problems (no such path, no parquet files, no ``image``/``label`` column) are
errors.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset

from roadwork.trainer.data import readers as sources
from roadwork.trainer.data.images import (
    BAD_IMAGE_REASONS,
    BadImageError,
    RowSkipped,
    center_square,
    decode_image,
)
from roadwork.trainer.data.rows import (
    MISSING_VALUES,
    ReadReport,
    Record,
    find_parquet_files,
    read_parquet,
    record_from_row,
)

# Re-exported: callers read every dataset through this module, whichever module defines the piece.
__all__ = [
    "BAD_IMAGE_REASONS",
    "MISSING_VALUES",
    "BadImageError",
    "ImageDataset",
    "ReadReport",
    "Record",
    "RowSkipped",
    "decode_image",
    "find_parquet_files",
    "read_parquet",
    "read_records",
    "record_from_row",
    "split_records",
]


def read_records(
    source: Path | str, validate_images: bool = True, *, cache_dir: Path | str | None = None
) -> tuple[list[Record], ReadReport]:
    """Read a dataset into :class:`Record` objects, whatever form it comes in.

    ``source`` (a ``Path`` or a string) is one of:

    - a parquet file, or a directory: every ``*.parquet`` under it (recursive);
    - a directory with a ``metadata.jsonl`` (and no parquet files): the Hugging
      Face "imagefolder" layout, one JSON object per line with ``file_name``
      (the image, relative to the directory) and the NATIX columns (``label``,
      ``id``, ``gps``, ``city_name``, ``scene_description``, ``width``,
      ``height``, ``scene_level_tags`` nested or as dotted keys).  The id
      defaults to ``file_name``;
    - ``dataset:<ref>[@<revision>][:<split>]``: loaded with
      ``datasets.load_dataset(<ref>, split=<split>, revision=<revision>)``,
      where ``<ref>`` is a Hub id (``dataset:natix-network-org/roadwork``,
      ``dataset:natix-network-org/roadwork@main:train``) or a local dataset
      repository directory (``dataset:/data/roadwork-repo:train``; no
      ``@revision``).  The split defaults to ``train`` and may be a slice
      (``:train[:10%]``).  ``cache_dir`` is passed to ``load_dataset``;
    - a bare Hub id ``owner/name[@revision][:split]`` that is not an existing
      local path: the same as ``dataset:owner/name...``;
    - ``parquet:<path>`` or ``imagefolder:<dir>``: force that reader, for a
      directory that holds both parquet files and a ``metadata.jsonl``.

    Rows with a missing/invalid label (``bad_label``), no image bytes
    (``missing_image`` for null, ``zero_byte`` for empty) or - when
    ``validate_images`` - an image that does not fully decode are skipped and
    counted; image folders also count ``bad_json`` (a line that is not a JSON
    object), ``missing_file`` (no such image file) and ``unsafe_path`` (a
    ``file_name`` that leaves the folder; never read).  Raises
    ``FileNotFoundError`` for a missing path, a directory with neither parquet
    files nor ``metadata.jsonl`` or a dataset that cannot be found, and
    ``ValueError`` naming a missing ``image`` or ``label`` column, an unknown
    split or a directory with both layouts.
    """
    kind, target = sources.resolve_source(source)
    if kind == sources.IMAGEFOLDER:
        return sources.read_image_folder(target, validate_images)
    if kind == sources.DATASET:
        return sources.read_dataset(target, validate_images, cache_dir=cache_dir)
    return read_parquet(target, validate_images)


# --------------------------------------------------------------------------
# splitting
# --------------------------------------------------------------------------


def _unit_hash(seed: int, rid: str) -> float:
    h = hashlib.blake2b(f"{seed}\x00{rid}".encode(), digest_size=8).digest()
    return int.from_bytes(h, "big") / 2.0**64


def split_records(records: Sequence[Record], val_fraction: float = 0.2, seed: int = 0) -> tuple[list[Record], list[Record]]:
    """Deterministic train/val split by a hash of ``(seed, id)``.

    A record goes to validation when its hash falls below ``val_fraction``, so
    its side does not depend on which other records exist (adding data never
    moves an old validation record into training; duplicate ids stay
    together).  If that leaves a label with two or more distinct ids entirely
    on one side, the id closest to the threshold is moved across, so both
    splits contain both labels whenever possible.  Input order is preserved.
    """
    if not 0.0 <= val_fraction < 1.0:
        raise ValueError(f"val_fraction must be in [0, 1), got {val_fraction}")
    hashes = {r.id: _unit_hash(seed, r.id) for r in records}
    in_val = {rid: h < val_fraction for rid, h in hashes.items()}
    if val_fraction > 0:
        for lab in sorted({r.label for r in records}):
            ids = sorted({r.id for r in records if r.label == lab}, key=lambda rid: hashes[rid])
            if len(ids) < 2:
                continue
            sides = {in_val[rid] for rid in ids}
            if sides == {False}:  # nothing of this label in val: move the lowest hash over
                in_val[ids[0]] = True
            elif sides == {True}:  # nothing in train: move the highest hash over
                in_val[ids[-1]] = False
    train = [r for r in records if not in_val[r.id]]
    val = [r for r in records if in_val[r.id]]
    return train, val


# --------------------------------------------------------------------------
# torch dataset
# --------------------------------------------------------------------------


class ImageDataset(Dataset):
    """Records -> ``(image float32 (3, S, S) in [0, 1], label int64 scalar)``.

    Level-0 preprocessing: decode to RGB, centre square crop on the shorter
    side, bilinear resize to ``image_size``.  A record whose image does not
    decode raises :class:`BadImageError` (read with ``validate_images=True``
    to exclude those up front).
    """

    def __init__(self, records: Sequence[Record], image_size: int) -> None:
        if image_size <= 0:
            raise ValueError(f"image_size must be positive, got {image_size}")
        self.records = list(records)
        self.image_size = int(image_size)

    def __len__(self) -> int:
        return len(self.records)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        rec = self.records[index]
        img = center_square(decode_image(rec.image_bytes), self.image_size)
        arr = np.asarray(img, dtype=np.uint8)
        x = torch.from_numpy(arr.copy()).permute(2, 0, 1).to(torch.float32).div_(255.0)
        return x.contiguous(), torch.tensor(rec.label, dtype=torch.int64)

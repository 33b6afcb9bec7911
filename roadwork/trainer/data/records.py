"""Tolerant reader for roadwork datasets and a torch ``Dataset`` over it.

:func:`read_records` is the single entry point.  It reads parquet files (here),
an image folder with a ``metadata.jsonl`` or a Hugging Face ``datasets``
reference (both in :mod:`roadwork.trainer.data.readers`); every source goes
through the same row -> :class:`Record` code (:func:`record_from_row`).

The parquet reader accepts the NATIX ``natix-network-org/roadwork`` layout
(nested ``image`` / ``scene_level_tags`` / ``video_info`` struct columns), the
same data with flattened dotted column names (``image.bytes``,
``scene_level_tags.daytime``, ...), and a plain binary ``image`` column.

Bad rows never stop a read: they are skipped and counted by reason in a
:class:`ReadReport` (``zero_byte``, ``missing_image``, ``undecodable``,
``truncated``, ``unsupported_mode``, ``bad_label``; the image-folder reader
adds ``bad_json``, ``missing_file`` and ``unsafe_path``).  Structural
problems (no such path, no parquet files, no ``image``/``label`` column) are
errors.
"""

from __future__ import annotations

import hashlib
import io
import logging
import math
import struct
import warnings
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import torch
from PIL import Image, UnidentifiedImageError
from torch.utils.data import Dataset

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
    "read_records",
    "record_from_row",
    "split_records",
]

log = logging.getLogger(__name__)

BATCH_SIZE = 128
BAD_IMAGE_REASONS = ("zero_byte", "undecodable", "truncated", "unsupported_mode")
# metadata string values that mean "not recorded"
MISSING_VALUES = frozenset({"", "null", "none", "nan", "[]"})
# words in Pillow's errors for data that ends early
_TRUNCATION_HINTS = ("truncated", "broken data stream", "premature end", "end of file")


@dataclass(frozen=True)
class Record:
    """One usable row: image bytes, label and normalised metadata (None = missing)."""

    id: str
    image_bytes: bytes = field(repr=False)
    label: int
    width: int | None
    height: int | None
    gps: str | None
    city: str | None
    scene_description: str | None
    daytime: str | None
    scene: str | None  # scene_level_tags.scene_environment
    travel_alteration: str | None
    weather: str | None  # raw list-string as stored, e.g. "['Cloudy']"
    source: str  # "real" unless the data says otherwise


@dataclass(frozen=True)
class ReadReport:
    """Counts from :func:`read_records`; ``n_ok + sum(skipped.values()) == n_read``."""

    n_read: int  # rows in the files
    n_ok: int
    skipped: dict[str, int]  # reason -> count


class RowSkipped(ValueError):
    """A row that cannot become a :class:`Record`; ``reason`` is its :attr:`ReadReport.skipped` key."""

    def __init__(self, reason: str, detail: str = "") -> None:
        self.reason = reason
        self.detail = detail
        super().__init__(f"{reason}: {detail}" if detail else reason)


class BadImageError(RowSkipped):
    """An image that cannot be used; ``reason`` is one of :data:`BAD_IMAGE_REASONS`."""


# --------------------------------------------------------------------------
# images
# --------------------------------------------------------------------------


def _scaled_to_uint8(img: Image.Image) -> Image.Image:
    """High-bit-depth / float greyscale -> 8-bit L, scaling instead of clipping."""
    a = np.asarray(img)
    if a.dtype.kind == "f":
        a = a.astype(np.float64)
        finite = np.isfinite(a)
        if not finite.any():
            a = np.zeros(a.shape)
        else:
            a = np.where(finite, a, 0.0)
            lo, hi = float(a.min()), float(a.max())
            if lo >= 0.0 and hi <= 1.0:
                a = a * 255.0
            elif hi > lo:
                a = (a - lo) / (hi - lo) * 255.0
    else:
        a = a.astype(np.int64)
        lo, hi = int(a.min()), int(a.max())
        if img.mode.startswith("I;16") or (lo >= 0 and hi <= 65535 and hi > 255):
            a = a / 257.0
        elif lo < 0 or hi > 255:
            a = (a - lo) / max(1, hi - lo) * 255.0
    return Image.fromarray(np.clip(np.rint(a), 0, 255).astype(np.uint8), mode="L")


def _to_rgb(img: Image.Image) -> Image.Image:
    mode = img.mode
    if mode == "RGB":
        return img
    if mode in ("I", "F") or mode.startswith("I;16"):
        return _scaled_to_uint8(img).convert("RGB")
    if mode == "P" and "transparency" in img.info:
        return img.convert("RGBA").convert("RGB")
    return img.convert("RGB")


def decode_image(data: bytes) -> Image.Image:
    """Fully decode ``data`` and return an RGB image.

    Raises :class:`BadImageError` with reason ``zero_byte`` (empty),
    ``undecodable`` (not an image Pillow can read), ``truncated`` (the data
    ends early) or ``unsupported_mode`` (decoded, but cannot become RGB).
    """
    if data is None or len(data) == 0:
        raise BadImageError("zero_byte")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            img = Image.open(io.BytesIO(bytes(data)))
    except UnidentifiedImageError as e:
        raise BadImageError("undecodable", str(e)) from None
    except Exception as e:  # Pillow raises many types for malformed headers
        msg = str(e)
        reason = "truncated" if "truncated" in msg.lower() or isinstance(e, EOFError) else "undecodable"
        raise BadImageError(reason, f"{type(e).__name__}: {msg}") from None
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            img.load()
    except (EOFError, OSError, SyntaxError, ValueError, IndexError, struct.error) as e:
        msg = str(e).lower()
        truncated = isinstance(e, EOFError) or any(k in msg for k in _TRUNCATION_HINTS)
        raise BadImageError("truncated" if truncated else "undecodable", f"{type(e).__name__}: {e}") from None
    except Exception as e:
        raise BadImageError("undecodable", f"{type(e).__name__}: {e}") from None
    try:
        rgb = _to_rgb(img)
        if rgb.mode != "RGB":
            raise ValueError(f"conversion produced mode {rgb.mode}")
        rgb.load()
    except Exception as e:
        raise BadImageError("unsupported_mode", f"mode {img.mode}: {type(e).__name__}: {e}") from None
    return rgb


# --------------------------------------------------------------------------
# parquet reading
# --------------------------------------------------------------------------


def find_parquet_files(path: Path) -> list[Path]:
    """A parquet file itself, or every ``*.parquet`` under a directory (recursive, sorted)."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"dataset path does not exist: {path}")
    if path.is_file():
        return [path]
    files = sorted(p for p in path.rglob("*.parquet") if p.is_file())
    if not files:
        raise FileNotFoundError(f"no .parquet files found under {path}")
    return files


def _flatten(table: pa.Table) -> pa.Table:
    """Flatten struct columns (recursively) into dotted names."""
    while any(pa.types.is_struct(f.type) for f in table.schema):
        table = table.flatten()
    return table


def _leaf_names(schema: pa.Schema) -> set[str]:
    out: set[str] = set()

    def walk(prefix: str, t: pa.DataType) -> None:
        if pa.types.is_struct(t):
            for k in range(t.num_fields):
                f = t.field(k)
                walk(f"{prefix}.{f.name}", f.type)
        else:
            out.add(prefix)

    for f in schema:
        walk(f.name, f.type)
    return out


def _image_column(leaves: set[str], schema: pa.Schema, file: str | Path) -> str:
    if "image.bytes" in leaves:
        return "image.bytes"
    if "image" in schema.names:
        t = schema.field("image").type
        binary_checks = (pa.types.is_binary, pa.types.is_large_binary, pa.types.is_fixed_size_binary,
                         getattr(pa.types, "is_binary_view", lambda _t: False))
        if any(check(t) for check in binary_checks):
            return "image"
        raise ValueError(
            f"{file}: column 'image' has type {t}; expected binary or a struct with a 'bytes' field ('image.bytes')"
        )
    raise ValueError(f"{file}: missing required column 'image' (found columns: {', '.join(schema.names)})")


def _norm(v: Any) -> str | None:
    """Normalise a metadata value: None/""/"null"/"None"/"nan"/"[]" -> None."""
    if v is None:
        return None
    if isinstance(v, float) and math.isnan(v):
        return None
    if isinstance(v, bytes):
        v = v.decode("utf-8", errors="replace")
    if isinstance(v, (list, tuple)):
        items = [str(x) for x in v if x is not None]
        return repr(items) if items else None
    s = str(v).strip()
    return None if s.lower() in MISSING_VALUES else s


def _label(v: Any) -> int | None:
    if v is None:
        return None
    if isinstance(v, (bool, np.bool_)):
        return int(v)
    if isinstance(v, (int, np.integer)):
        return int(v) if v in (0, 1) else None
    if isinstance(v, (float, np.floating)):
        return int(v) if v in (0.0, 1.0) else None
    if isinstance(v, (str, bytes)):
        s = v.decode() if isinstance(v, bytes) else v
        s = s.strip()
        return int(s) if s in ("0", "1") else None
    return None


def _dim(v: Any) -> int | None:
    try:
        d = int(v)
    except (TypeError, ValueError, OverflowError):
        return None
    return d if d > 0 else None


def _source(row: dict[str, Any]) -> str:
    src = _norm(row.get("source"))
    if src is not None:
        return src
    syn = row.get("is_synthetic")
    if isinstance(syn, str):
        syn = {"true": True, "1": True, "yes": True, "false": False, "0": False, "no": False}.get(syn.strip().lower())
    if syn is True or (isinstance(syn, (int, float)) and not isinstance(syn, bool) and syn == 1):
        return "synthetic"
    return "real"


_FIELDS = {
    "id": ("id",),
    "width": ("width",),
    "height": ("height",),
    "gps": ("gps",),
    "city": ("city_name", "city"),
    "scene_description": ("scene_description",),
    "daytime": ("scene_level_tags.daytime", "daytime"),
    "scene": ("scene_level_tags.scene_environment", "scene_environment"),
    "travel_alteration": ("scene_level_tags.travel_alteration", "travel_alteration"),
    "weather": ("scene_level_tags.weather", "weather"),
    "source": ("source",),
    "is_synthetic": ("is_synthetic",),
}

# An image as a row carries it: the bytes, None (not recorded), or a loader called only once the label is
# known to be good, so that a reader backed by files does not open an image it is going to skip anyway.
ImageData = bytes | None | Callable[[], "bytes | None"]


def _field_sources(available: Iterable[str]) -> dict[str, str]:
    """Map each optional :data:`_FIELDS` name to the first of its candidate keys in ``available``."""
    present = set(available)
    out: dict[str, str] = {}
    for name, candidates in _FIELDS.items():
        for c in candidates:
            if c in present:
                out[name] = c
                break
    return out


def canonical_row(flat: dict[str, Any], image: ImageData) -> dict[str, Any]:
    """A flat (dotted-key) mapping -> the row dict :func:`record_from_row` takes, with ``image`` set."""
    row = {name: flat[key] for name, key in _field_sources(flat).items()}
    row["label"] = flat.get("label")
    row["image"] = image
    return row


def record_from_row(row: dict[str, Any], default_id: str, validate_images: bool) -> Record:
    """Turn one canonical row into a :class:`Record`, or raise :class:`RowSkipped` with the reason.

    ``row`` holds ``label``, ``image`` (see :data:`ImageData`; a loader may
    itself raise :class:`RowSkipped`) and any of the :data:`_FIELDS` names.
    Checks run in a fixed order - ``bad_label``, then the image's presence
    (``missing_image``, ``zero_byte``), then, when ``validate_images``, a full
    decode (:data:`BAD_IMAGE_REASONS`) - so a row with several faults is
    always counted under the same reason.  ``default_id`` is used when the
    row has no usable ``id``.
    """
    label = _label(row.get("label"))
    if label is None:
        raise RowSkipped("bad_label", repr(row.get("label")))
    data = row.get("image")
    if callable(data):
        data = data()
    if data is None:
        raise RowSkipped("missing_image")
    if len(data) == 0:
        raise RowSkipped("zero_byte")
    width, height = _dim(row.get("width")), _dim(row.get("height"))
    if validate_images:
        img = decode_image(data)  # BadImageError is a RowSkipped
        width, height = width or img.width, height or img.height
    return Record(
        id=_norm(row.get("id")) or default_id,
        image_bytes=bytes(data),
        label=label,
        width=width,
        height=height,
        gps=_norm(row.get("gps")),
        city=_norm(row.get("city")),
        scene_description=_norm(row.get("scene_description")),
        daytime=_norm(row.get("daytime")),
        scene=_norm(row.get("scene")),
        travel_alteration=_norm(row.get("travel_alteration")),
        weather=_norm(row.get("weather")),
        source=_source(row),
    )


class RowCollector:
    """Accumulates the records and skip counts of one read (shared by every source reader)."""

    def __init__(self, validate_images: bool) -> None:
        self.validate_images = validate_images
        self.records: list[Record] = []
        self.skipped: dict[str, int] = {}
        self.n_read = 0

    def take(self, row: dict[str, Any], default_id: str, where: str) -> None:
        """Count one row read; keep it as a Record or count its skip reason. ``where`` is for the log."""
        self.n_read += 1
        try:
            self.records.append(record_from_row(row, default_id, self.validate_images))
        except RowSkipped as e:
            self._count(e.reason, where, e.detail)

    def reject(self, reason: str, where: str, detail: str = "") -> None:
        """Count one row read that a reader refused before it became a row (e.g. ``bad_json``)."""
        self.n_read += 1
        self._count(reason, where, detail)

    def _count(self, reason: str, where: str, detail: str) -> None:
        self.skipped[reason] = self.skipped.get(reason, 0) + 1
        if self.skipped[reason] <= 3:  # enough to diagnose, without one line per row of a bad dataset
            log.debug("skipping %s: %s %s", where, reason, detail)

    def result(self, what: str) -> tuple[list[Record], ReadReport]:
        """The records and their :class:`ReadReport`; logs a summary when rows were skipped. ``what``: the source."""
        report = ReadReport(n_read=self.n_read, n_ok=len(self.records), skipped=dict(sorted(self.skipped.items())))
        if report.skipped:
            log.info("read %d rows from %s: %d ok, skipped %s", report.n_read, what, report.n_ok, report.skipped)
        return self.records, report


def _first_columns(table: pa.Table) -> dict[str, pa.ChunkedArray]:
    cols: dict[str, pa.ChunkedArray] = {}
    for k, name in enumerate(table.schema.names):
        cols.setdefault(name, table.column(k))
    return cols


def table_rows(table: pa.Table, image_col: str) -> Iterable[dict[str, Any]]:
    """Rows of an Arrow table as canonical row dicts (``image`` = the bytes in ``image_col``).

    When the table has an ``image.path`` column, its value is passed on as
    ``image_path`` for readers that can resolve it (parquet rows ignore it).
    """
    cols = _first_columns(_flatten(table))
    wanted: dict[str, list[Any]] = {"image": cols[image_col].to_pylist(), "label": cols["label"].to_pylist()}
    for name, key in _field_sources(cols).items():
        wanted[name] = cols[key].to_pylist()
    if "image.path" in cols:
        wanted["image_path"] = cols["image.path"].to_pylist()
    for i in range(table.num_rows):
        yield {k: v[i] for k, v in wanted.items()}


def _rows(file: Path, image_col: str) -> Iterable[dict[str, Any]]:
    pf = pq.ParquetFile(file)
    for batch in pf.iter_batches(batch_size=BATCH_SIZE):
        yield from table_rows(pa.Table.from_batches([batch]), image_col)


def check_columns(schema: pa.Schema, where: str | Path) -> str:
    """The image column to read from ``schema``; ``ValueError`` naming ``where`` if ``image``/``label`` is missing."""
    image_col = _image_column(_leaf_names(schema), schema, where)
    if "label" not in schema.names:
        raise ValueError(f"{where}: missing required column 'label' (found columns: {', '.join(schema.names)})")
    return image_col


def read_parquet(path: Path, validate_images: bool = True) -> tuple[list[Record], ReadReport]:
    """Read a parquet file, or every parquet file under a directory (see :func:`read_records`)."""
    files = find_parquet_files(path)
    plans = [(f, check_columns(pq.read_schema(f), f)) for f in files]  # every file's columns before any rows
    rows = RowCollector(validate_images)
    for f, image_col in plans:
        for k, row in enumerate(_rows(f, image_col)):
            rows.take(row, f"{f.name}#{k}", f"{f} row {k}")
    return rows.result(f"{len(files)} parquet file(s)")


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
    from roadwork.trainer.data import readers as sources  # imported here: readers builds on this module

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


def _center_square(img: Image.Image, size: int) -> Image.Image:
    w, h = img.size
    side = min(w, h)
    left, top = (w - side) // 2, (h - side) // 2
    square = img.crop((left, top, left + side, top + side))  # crop first: no filter bleed from outside
    return square.resize((size, size), Image.Resampling.BILINEAR)


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
        img = _center_square(decode_image(rec.image_bytes), self.image_size)
        arr = np.asarray(img, dtype=np.uint8)
        x = torch.from_numpy(arr.copy()).permute(2, 0, 1).to(torch.float32).div_(255.0)
        return x.contiguous(), torch.tensor(rec.label, dtype=torch.int64)

"""One row of any source -> a :class:`Record`, with the same validation and skip reasons everywhere; and the
parquet reader, which is the plainest source.

The parquet reader accepts the NATIX ``natix-network-org/roadwork`` layout
(nested ``image`` / ``scene_level_tags`` / ``video_info`` struct columns), the
same data with flattened dotted column names (``image.bytes``,
``scene_level_tags.daytime``, ...), and a plain binary ``image`` column.
The other readers (:mod:`roadwork.trainer.data.readers`) build on the row
code here; :func:`roadwork.trainer.data.records.read_records` picks a reader.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from roadwork.trainer.data.images import (
    RowSkipped,
    decode_image,
)

log = logging.getLogger(__name__)

BATCH_SIZE = 128
# metadata string values that mean "not recorded"
MISSING_VALUES = frozenset({"", "null", "none", "nan", "[]"})


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
    decode (:data:`~roadwork.trainer.data.images.BAD_IMAGE_REASONS`) - so a row with several faults is
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

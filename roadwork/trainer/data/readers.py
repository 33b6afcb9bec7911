"""Where training records come from: which reader a source needs, and the non-parquet readers.

:func:`roadwork.trainer.data.records.read_records` is the entry point; it asks
:func:`resolve_source` what ``source`` is and hands it to one of

- :func:`roadwork.trainer.data.rows.read_parquet` (parquet files),
- :func:`read_image_folder` (a folder with a Hugging Face style ``metadata.jsonl``),
- :func:`read_dataset` (anything ``datasets.load_dataset`` loads: a Hub id or
  a local dataset repository).

Accepted source syntaxes (``Path`` or ``str``):

===========================================  ===============================================
``/data/ds`` or ``/data/ds/x.parquet``        parquet, or an image folder if ``/data/ds`` has a
                                              ``metadata.jsonl`` (both present: ``ValueError``)
``parquet:<path>``                            parquet, even beside a ``metadata.jsonl``
``imagefolder:<dir>``                         image folder, even beside parquet files
``dataset:<owner>/<name>[@<rev>][:<split>]``  ``datasets.load_dataset`` from the Hub
``dataset:<local dir>[:<split>]``             ``datasets.load_dataset`` on a local repository
``<owner>/<name>[@<rev>][:<split>]``          as ``dataset:...``, when no such local path exists
===========================================  ===============================================

The split defaults to ``train`` and takes ``datasets`` slice syntax
(``train[:10%]``).  All readers share the row -> ``Record`` code of
:mod:`roadwork.trainer.data.rows`, so the validation and skip reasons are the same.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

from roadwork.trainer.data.images import RowSkipped
from roadwork.trainer.data.rows import (
    BATCH_SIZE,
    ReadReport,
    Record,
    RowCollector,
    canonical_row,
    check_columns,
    table_rows,
)

__all__ = [
    "DATASET",
    "DEFAULT_SPLIT",
    "IMAGEFOLDER",
    "METADATA_FILE",
    "PARQUET",
    "DatasetRef",
    "parse_dataset_ref",
    "read_dataset",
    "read_image_folder",
    "resolve_source",
]

PARQUET, IMAGEFOLDER, DATASET = "parquet", "imagefolder", "dataset"
SCHEMES = {f"{kind}:": kind for kind in (PARQUET, IMAGEFOLDER, DATASET)}
METADATA_FILE = "metadata.jsonl"
DEFAULT_SPLIT = "train"

# A Hub repository id (owner/name: letters, digits, '-', '_', '.'), then an optional @revision (a branch, tag
# or commit; branches may hold '/', never ':') and an optional :split (which may hold ':' in a slice).
_HUB_REF = re.compile(
    r"^(?P<repo>[A-Za-z0-9][\w.-]*/[A-Za-z0-9][\w.-]*)(?:@(?P<revision>[^:\s]+))?(?::(?P<split>\S*))?$"
)


@dataclass(frozen=True)
class DatasetRef:
    """A parsed ``dataset:`` reference: what to pass to ``datasets.load_dataset``."""

    path: str  # the Hub id or the local directory
    split: str
    revision: str | None
    text: str  # the source as the user wrote it, for messages


# --------------------------------------------------------------------------
# which reader
# --------------------------------------------------------------------------


def _split_local(rest: str) -> tuple[Path, str | None] | None:
    """``<existing path>[:<split>]`` -> (path, split or None); None when no prefix of ``rest`` exists locally."""
    if Path(rest).expanduser().exists():
        return Path(rest).expanduser(), None
    for i, ch in enumerate(rest):  # the shortest existing prefix before a ':' (a slice split holds ':' too)
        if ch == ":" and i > 0 and Path(rest[:i]).expanduser().exists():
            return Path(rest[:i]).expanduser(), rest[i + 1 :]
    return None


def parse_dataset_ref(rest: str, text: str | None = None) -> DatasetRef:
    """Parse what follows ``dataset:`` into a :class:`DatasetRef`.

    ``rest`` is an existing local directory (optionally ``:<split>``) or a
    Hub id ``owner/name[@revision][:split]``.  ``text`` is the full source for
    messages.  Raises ``ValueError`` for an empty split, ``FileNotFoundError``
    when ``rest`` is neither an existing path nor an id.
    """
    text = text if text is not None else f"dataset:{rest}"
    local = _split_local(rest)
    if local is not None:
        path, split = local
        return DatasetRef(path=str(path), split=_check_split(split, text), revision=None, text=text)
    m = _HUB_REF.match(rest)
    if m is None:
        raise FileNotFoundError(
            f"{text}: {rest!r} is neither an existing local dataset directory nor a Hugging Face dataset id "
            "(owner/name[@revision][:split])"
        )
    return DatasetRef(path=m["repo"], split=_check_split(m["split"], text), revision=m["revision"], text=text)


def _check_split(split: str | None, text: str) -> str:
    """The split to load: ``None`` -> :data:`DEFAULT_SPLIT`; an empty one is an error."""
    if split is None:
        return DEFAULT_SPLIT
    if not split.strip():
        raise ValueError(f"{text}: empty split after ':' (e.g. ':train')")
    return split


def _local_kind(path: Path) -> str:
    """Which reader an existing path needs: a file is parquet; a directory is decided by what it holds."""
    if path.is_file():
        return PARQUET
    has_metadata = (path / METADATA_FILE).is_file()
    first_parquet = next((p for p in sorted(path.rglob("*.parquet")) if p.is_file()), None)
    if has_metadata and first_parquet is not None:
        raise ValueError(
            f"{path} holds both an image folder ({path / METADATA_FILE}) and parquet files ({first_parquet}): "
            f"choose one with 'imagefolder:{path}' or 'parquet:{path}'"
        )
    if has_metadata:
        return IMAGEFOLDER
    if first_parquet is None:
        raise FileNotFoundError(f"no .parquet files and no {METADATA_FILE} found under {path}")
    return PARQUET


def resolve_source(source: Path | str) -> tuple[str, Path | DatasetRef]:
    """Decide how to read ``source``: ``(PARQUET | IMAGEFOLDER, Path)`` or ``(DATASET, DatasetRef)``.

    See the module docstring for the syntaxes.  A scheme prefix always wins;
    otherwise an existing local path is read locally, and only a string that
    does not exist locally and looks like ``owner/name`` is taken as a Hub id.
    Raises ``FileNotFoundError`` for anything else that does not exist.
    """
    text = str(source)  # str(Path("dataset:a/b")) is "dataset:a/b", so a Path wrapper keeps the scheme
    for prefix, kind in SCHEMES.items():
        if text.startswith(prefix):
            return _resolve_scheme(kind, text[len(prefix) :], text)
    path = Path(source).expanduser()
    if path.exists():
        return _local_kind(path), path
    if _HUB_REF.match(text) and not text.startswith(("/", ".", "~")):
        return DATASET, parse_dataset_ref(text, text)
    raise FileNotFoundError(f"dataset path does not exist: {path}")


def canonical_source(source: Path | str) -> str:
    """A stable text for a data source, as recorded in a run's config: a local path made absolute (its scheme
    prefix kept), a Hugging Face dataset reference kept as written. Raises like `resolve_source`."""
    kind, target = resolve_source(source)
    if kind == DATASET:
        return str(source)
    text = str(source)
    prefix = next((p for p in SCHEMES if text.startswith(p)), "")
    return prefix + str(Path(target).resolve())


def _resolve_scheme(kind: str, rest: str, text: str) -> tuple[str, Path | DatasetRef]:
    """A source with an explicit ``kind:`` prefix; local kinds need an existing path."""
    if not rest:
        raise ValueError(f"{text}: nothing after '{kind}:'")
    if kind == DATASET:
        return DATASET, parse_dataset_ref(rest, text)
    path = Path(rest).expanduser()
    if not path.exists():
        raise FileNotFoundError(f"dataset path does not exist: {path}")
    if kind == IMAGEFOLDER and not (path / METADATA_FILE).is_file():
        raise FileNotFoundError(f"{text}: no {METADATA_FILE} in {path}")
    return kind, path


# --------------------------------------------------------------------------
# image folder with metadata.jsonl
# --------------------------------------------------------------------------


def _flat_dict(obj: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """Nested dicts -> dotted keys (``{"a": {"b": 1}}`` -> ``{"a.b": 1}``); the first value for a key wins."""
    out: dict[str, Any] = {}
    for key, value in obj.items():
        name = f"{prefix}{key}"
        items = _flat_dict(value, f"{name}.").items() if isinstance(value, dict) else [(name, value)]
        for k, v in items:
            out.setdefault(k, v)
    return out


def _image_file(root: Path, file_name: Any) -> Path:
    """The file ``file_name`` names inside ``root`` (resolved); raises :class:`RowSkipped` otherwise.

    ``missing_image``: no usable ``file_name``; ``unsafe_path``: absolute, has
    a ``..`` part, or resolves (through a link) outside ``root`` - never read;
    ``missing_file``: not an existing regular file.
    """
    if not isinstance(file_name, str) or not file_name.strip():
        raise RowSkipped("missing_image", f"file_name={file_name!r}")
    rel = PurePosixPath(file_name.replace("\\", "/"))  # a Windows-written metadata file uses backslashes
    if rel.is_absolute() or ".." in rel.parts or re.match(r"^[A-Za-z]:", file_name):
        raise RowSkipped("unsafe_path", file_name)
    full = (root / rel).resolve()
    if not full.is_relative_to(root):
        raise RowSkipped("unsafe_path", f"{file_name} -> {full}")
    if not full.is_file():
        raise RowSkipped("missing_file", file_name)
    return full


def _file_loader(root: Path, file_name: Any) -> Callable[[], bytes]:
    """A loader (see ``data.ImageData``) that checks and reads ``file_name`` only when called."""

    def load() -> bytes:
        full = _image_file(root, file_name)
        try:
            return full.read_bytes()
        except OSError as e:  # e.g. no permission: as unusable as a missing file
            raise RowSkipped("missing_file", f"{file_name}: {e}") from None

    return load


def _parse_line(raw: bytes) -> dict[str, Any]:
    """One metadata line -> its JSON object; :class:`RowSkipped` ``bad_json`` when it is not one."""
    try:
        obj = json.loads(raw)
    except ValueError as e:  # JSONDecodeError and UnicodeDecodeError are both ValueErrors
        raise RowSkipped("bad_json", str(e)) from None
    if not isinstance(obj, dict):
        raise RowSkipped("bad_json", f"a JSON {type(obj).__name__}, not an object")
    return obj


def read_image_folder(root: Path, validate_images: bool = True) -> tuple[list[Record], ReadReport]:
    """Read ``root/metadata.jsonl`` and the images it names into Records.

    Every non-blank line counts as a row read.  Lines that are not JSON
    objects are ``bad_json``; the rest go through the shared row checks with
    the image loaded from ``root / file_name`` (see :func:`_image_file` for
    ``missing_image`` / ``unsafe_path`` / ``missing_file``).  The record id is
    the line's ``id``, else its ``file_name``.  Images not named in the
    metadata are ignored.
    """
    root = Path(root).resolve()
    meta = root / METADATA_FILE
    rows = RowCollector(validate_images)
    with meta.open("rb") as fh:  # bytes: a line with bad UTF-8 is one bad_json row, not a failed read
        for lineno, raw in enumerate(fh, 1):
            if not raw.strip():
                continue  # blank lines (a trailing newline, say) are not rows
            where = f"{meta}:{lineno}"
            try:
                obj = _parse_line(raw)
            except RowSkipped as e:
                rows.reject(e.reason, where, e.detail)
                continue
            file_name = obj.get("file_name")
            row = canonical_row(_flat_dict(obj), _file_loader(root, file_name))
            rows.take(row, file_name if isinstance(file_name, str) else f"{METADATA_FILE}:{lineno}", where)
    return rows.result(str(meta))


# --------------------------------------------------------------------------
# datasets.load_dataset
# --------------------------------------------------------------------------


def _load(ref: DatasetRef, cache_dir: Path | str | None) -> Any:
    """``datasets.load_dataset(ref.path, split=..., revision=...)``, its failures rewrapped to name ``ref``.

    Raises ``ImportError`` without ``datasets``, ``FileNotFoundError`` when
    the dataset cannot be found or reached, ``ValueError`` for a bad split.
    """
    try:
        import datasets  # here, not at module level: it is heavy and only this reader needs it
    except ImportError as e:
        raise ImportError(f"reading {ref.text} needs the 'datasets' package: pip install 'datasets>=2.19'") from e
    kwargs: dict[str, Any] = {"split": ref.split}
    if ref.revision:
        kwargs["revision"] = ref.revision
    if cache_dir is not None:
        kwargs["cache_dir"] = str(cache_dir)
    try:
        return datasets.load_dataset(ref.path, **kwargs)
    except (OSError, datasets.exceptions.DatasetsError) as e:  # not found, unreachable, gated, no data files
        offline = " (offline mode is on: only local paths and the datasets cache were searched)" \
            if datasets.config.HF_HUB_OFFLINE else ""
        # a bare owner/name is only tried on the Hub because no such local path exists: say so
        local = "" if ref.text.startswith("dataset:") else f"no local path {ref.text!r}, and "
        raise FileNotFoundError(f"{local}cannot load dataset {ref.text!r}: {_first_line(e)}{offline}") from None
    except ValueError as e:  # an unknown split or config
        raise ValueError(f"cannot load dataset {ref.text!r} (split {ref.split!r}): {_first_line(e)}") from None


def _first_line(e: BaseException) -> str:
    """An exception's message, first line only (``datasets`` appends long hints)."""
    lines = str(e).strip().splitlines()
    return lines[0] if lines else type(e).__name__


def _path_loader(path: Any) -> Callable[[], bytes | None]:
    """A loader for an image ``datasets`` stored by path only (e.g. a Hub image folder, downloaded).

    Only absolute paths are read: a relative one is a label from the original
    upload, meaningless here, and would otherwise be resolved against the
    working directory.  So such a row is ``missing_image``; an absolute path
    that is gone is ``missing_file``.
    """

    def load() -> bytes | None:
        if not isinstance(path, str) or not Path(path).is_absolute():
            return None
        try:
            return Path(path).read_bytes()
        except OSError as e:
            raise RowSkipped("missing_file", f"{path}: {e}") from None

    return load


def read_dataset(
    ref: DatasetRef, validate_images: bool = True, *, cache_dir: Path | str | None = None
) -> tuple[list[Record], ReadReport]:
    """Load ``ref`` with ``datasets`` and convert its rows like the parquet reader does.

    The rows are read in Arrow format, which hands over the ``Image``
    feature's storage untouched - ``{bytes, path}``, what
    ``Image(decode=False)`` gives - so nothing is decoded twice.  Ids default
    to ``<ref>#<row>``.
    """
    ds = _load(ref, cache_dir)
    image_col = check_columns(ds.features.arrow_schema, ref.text)
    rows = RowCollector(validate_images)
    k = 0
    for table in ds.with_format("arrow").iter(batch_size=BATCH_SIZE):
        for row in table_rows(table, image_col):
            if row["image"] is None:
                row["image"] = _path_loader(row.get("image_path"))
            rows.take(row, f"{ref.text}#{k}", f"{ref.text} row {k}")
            k += 1
    return rows.result(ref.text)

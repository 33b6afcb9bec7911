"""NULL-safe parsing of the roadwork dataset's metadata, and vocabularies for the categorical fields.

Everything here is pure: strings in, frozen dataclasses out, and nothing raises on bad data.
A value is *missing* when it is None, a float NaN, or a string that strips to one of
``"", "null", "None", "nan", "[]"`` (any case; :data:`roadwork.trainer.data.records.MISSING_VALUES`).

GPS strings become ``(lat, lon)`` in decimal degrees. Accepted forms (spaces optional, signs allowed):

- ``"40.7128,-74.0060"``, ``"40.7128, -74.0060"``, ``"40.7128 -74.0060"``, ``"40.7128;-74.0060"``
- ``"(40.7128, -74.0060)"``, ``"[40.7128, -74.0060]"``  (bracketed pairs are lat, lon too)
- ``"POINT(-74.0060 40.7128)"``, ``"SRID=4326;POINT (-74.006 40.7128)"``  (WKT: **lon lat**)
- hemisphere letters, prefix or suffix, any order: ``"40.7128N 74.0060W"``, ``"40.7128° N, 74.0060° W"``,
  ``"W74.006 N40.7128"``, degrees-minutes-seconds ``"40°42'46\\"N 74°0'22\\"W"``

Each parse reports a status: ``ok``, ``missing``, ``out_of_range`` (|lat| > 90 or |lon| > 180),
``zero`` (exactly 0, 0: "null island", a common placeholder for no fix) or ``unparseable``; only ``ok``
gives coordinates. Weather list-strings (``"['Cloudy', 'Rain']"``) go through ``ast.literal_eval`` (never
``eval``) on at most :data:`MAX_WEATHER_CHARS` characters; status ``ok``, ``missing`` (incl. ``"[]"``) or
``malformed``.
"""

from __future__ import annotations

import ast
import math
import re
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from roadwork.trainer.data.records import MISSING_VALUES

__all__ = [
    "GPS_STATUSES",
    "NULL_TOKEN",
    "VOCAB_FIELDS",
    "WEATHER_STATUSES",
    "MetadataReport",
    "MetadataVocab",
    "ParsedMetadata",
    "build_vocab",
    "is_missing",
    "parse_gps",
    "parse_gps_status",
    "parse_record",
    "parse_records",
    "parse_text",
    "parse_weather",
    "parse_weather_status",
]

NULL_TOKEN = "<null>"  # vocabulary entry 0: missing, or a value the vocabulary has not seen
VOCAB_FIELDS = ("weather", "daytime", "scene")
GPS_STATUSES = ("ok", "missing", "out_of_range", "zero", "unparseable")
WEATHER_STATUSES = ("ok", "missing", "malformed")
MAX_WEATHER_CHARS = 500  # literal_eval is safe but not cheap on huge or deeply nested input

# --------------------------------------------------------------------------------------------- missing


def is_missing(v: Any) -> bool:
    """None, NaN, or a string meaning "not recorded" (see the module docstring)."""
    if v is None:
        return True
    if isinstance(v, float):
        return math.isnan(v)
    if isinstance(v, (str, bytes)):
        s = v.decode("utf-8", errors="replace") if isinstance(v, bytes) else v
        return s.strip().lower() in MISSING_VALUES
    if isinstance(v, (list, tuple)):
        return len(v) == 0
    return False


def parse_text(v: Any) -> str | None:
    """A free-text or categorical value: stripped, inner whitespace collapsed; None when missing."""
    if is_missing(v):
        return None
    s = v.decode("utf-8", errors="replace") if isinstance(v, bytes) else str(v)
    s = " ".join(s.split())
    return None if is_missing(s) else s


# ------------------------------------------------------------------------------------------------- gps

_NUM = r"[+-]?(?:\d+(?:\.\d*)?|\.\d+)"
_PLAIN_NUM = re.compile(rf"^{_NUM}$")
_WKT = re.compile(
    rf"^(?:SRID=\d+\s*;\s*)?POINT\s*(?:Z\s*|M\s*|ZM\s*)?\(\s*({_NUM})\s+({_NUM})(?:\s+{_NUM}){{0,2}}\s*\)$",
    re.IGNORECASE,
)
# one coordinate without its hemisphere letter: degrees [°] [minutes '] [seconds "]
_DMS = r"(\d+(?:\.\d*)?|\.\d+)\s*[°º]?\s*(?:(\d+(?:\.\d*)?)\s*['′]\s*)?(?:(\d+(?:\.\d*)?)\s*(?:\"|″|'')\s*)?"
_HEMI_SUFFIX = re.compile(rf"^{_DMS}([NSEW])\s*[,;]?\s*{_DMS}([NSEW])$", re.IGNORECASE)
_HEMI_PREFIX = re.compile(rf"^([NSEW])\s*{_DMS}[,;]?\s*([NSEW])\s*{_DMS}$", re.IGNORECASE)
_BRACKETS = {"(": ")", "[": "]", "{": "}"}


def _checked(lat: float, lon: float) -> tuple[tuple[float, float] | None, str]:
    if not (math.isfinite(lat) and math.isfinite(lon)):
        return None, "unparseable"
    if abs(lat) > 90.0 or abs(lon) > 180.0:
        return None, "out_of_range"
    if lat == 0.0 and lon == 0.0:
        return None, "zero"
    return (lat, lon), "ok"


def _degrees(deg: str, mins: str | None, secs: str | None) -> float | None:
    if (mins is not None and float(mins) >= 60) or (secs is not None and float(secs) >= 60):
        return None
    return float(deg) + float(mins or 0) / 60.0 + float(secs or 0) / 3600.0


def _parse_hemispheres(s: str) -> tuple[float, float] | None:
    """Two coordinates tagged N/S and E/W (both prefixes or both suffixes, either order) -> (lat, lon)."""
    m = _HEMI_SUFFIX.match(s)
    if m:
        g = m.groups()
        parts = [(g[3], g[0:3]), (g[7], g[4:7])]
    else:
        m = _HEMI_PREFIX.match(s)
        if not m:
            return None
        g = m.groups()
        parts = [(g[0], g[1:4]), (g[4], g[5:8])]
    coords: dict[str, float] = {}
    for hemi, dms in parts:
        value = _degrees(*dms)
        if value is None:
            return None
        axis = "lat" if hemi.upper() in "NS" else "lon"
        coords[axis] = -value if hemi.upper() in "SW" else value
    if len(coords) != 2:  # both N/S or both E/W
        return None
    return coords["lat"], coords["lon"]


def _strip_brackets(s: str) -> str:
    if len(s) >= 2 and s[0] in _BRACKETS and s[-1] == _BRACKETS[s[0]]:
        return s[1:-1].strip()
    return s


def parse_gps_status(v: Any) -> tuple[tuple[float, float] | None, str]:
    """A GPS value -> ``((lat, lon) or None, status)``; status is one of :data:`GPS_STATUSES`."""
    if is_missing(v):
        return None, "missing"
    if isinstance(v, (list, tuple)):  # an already split pair: (lat, lon)
        if len(v) != 2:
            return None, "unparseable"
        try:
            return _checked(float(v[0]), float(v[1]))
        except (TypeError, ValueError):
            return None, "unparseable"
    if isinstance(v, bytes):
        v = v.decode("utf-8", errors="replace")
    if not isinstance(v, str):
        return None, "unparseable"
    s = v.strip()
    if len(s) > 200:
        return None, "unparseable"
    m = _WKT.match(s)
    if m:
        return _checked(float(m.group(2)), float(m.group(1)))  # WKT is x y = lon lat
    if re.search(r"[A-Za-z]", s):  # the only letters a coordinate pair may carry are hemispheres
        pair = _parse_hemispheres(s)
        return _checked(*pair) if pair else (None, "unparseable")
    tokens = [t for t in re.split(r"[\s,;]+", _strip_brackets(s)) if t]
    if len(tokens) != 2 or not all(_PLAIN_NUM.match(t) for t in tokens):
        return None, "unparseable"  # also keeps out "nan", "inf", "1e5" that float() would take
    return _checked(float(tokens[0]), float(tokens[1]))


def parse_gps(v: Any) -> tuple[float, float] | None:
    """A GPS value -> ``(lat, lon)`` in decimal degrees, or None (missing, out of range or garbage)."""
    return parse_gps_status(v)[0]


# --------------------------------------------------------------------------------------------- weather

_BARE_LABEL = re.compile(r"^[A-Za-z][A-Za-z0-9 _\-/]*$")


def _labels(items: Iterable[Any]) -> tuple[tuple[str, ...] | None, str]:
    out: list[str] = []
    for x in items:
        if not isinstance(x, str):
            return None, "malformed"
        t = parse_text(x)
        if t is not None and t not in out:
            out.append(t)
    return (tuple(out), "ok") if out else (None, "missing")


def parse_weather_status(v: Any) -> tuple[tuple[str, ...] | None, str]:
    """A weather value -> ``(labels or None, status)``; status is one of :data:`WEATHER_STATUSES`.

    ``"['Cloudy', 'Rain']"`` -> ``("Cloudy", "Rain")``; a bare label ``"Cloudy"`` -> ``("Cloudy",)``;
    a list or tuple of strings is taken as is. Labels are stripped and deduplicated, order kept.
    """
    if is_missing(v):
        return None, "missing"
    if isinstance(v, (list, tuple)):
        return _labels(v)
    if isinstance(v, bytes):
        v = v.decode("utf-8", errors="replace")
    if not isinstance(v, str):
        return None, "malformed"
    s = v.strip()
    if _BARE_LABEL.match(s):
        return _labels([s])
    if len(s) > MAX_WEATHER_CHARS or s[0] not in "[(":
        return None, "malformed"
    try:
        value = ast.literal_eval(s)
    except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
        return None, "malformed"
    if not isinstance(value, (list, tuple)):
        return None, "malformed"
    return _labels(value)


def parse_weather(v: Any) -> tuple[str, ...] | None:
    """A weather value -> a tuple of labels, or None (missing, empty or malformed)."""
    return parse_weather_status(v)[0]


# --------------------------------------------------------------------------------------------- records


@dataclass(frozen=True)
class ParsedMetadata:
    """One record's metadata, parsed; None = missing."""

    gps: tuple[float, float] | None  # (lat, lon), decimal degrees
    weather: tuple[str, ...] | None  # labels, e.g. ("Cloudy", "Rain")
    daytime: str | None  # e.g. "Light", "Dark"
    scene: str | None  # scene_environment, e.g. "Highway", "Urban"
    travel_alteration: str | None
    city: str | None
    description: str | None  # scene_description
    gps_status: str = "ok"  # one of GPS_STATUSES
    weather_status: str = "ok"  # one of WEATHER_STATUSES


# the names a value may have on a Record (first) or in a raw row mapping (then the dataset's own names)
_KEYS = {
    "gps": ("gps",),
    "weather": ("weather", "scene_level_tags.weather"),
    "daytime": ("daytime", "scene_level_tags.daytime"),
    "scene": ("scene", "scene_environment", "scene_level_tags.scene_environment"),
    "travel_alteration": ("travel_alteration", "scene_level_tags.travel_alteration"),
    "city": ("city", "city_name"),
    "description": ("scene_description", "description"),
}


def _get(record: Any, name: str) -> Any:
    for key in _KEYS[name]:
        if isinstance(record, Mapping):
            if key in record:
                return record[key]
            tags = record.get("scene_level_tags")
            if key.startswith("scene_level_tags.") and isinstance(tags, Mapping):
                return tags.get(key.split(".", 1)[1])
        elif hasattr(record, key):
            return getattr(record, key)
    return None


def parse_record(record: Any) -> ParsedMetadata:
    """A :class:`~roadwork.trainer.data.records.Record` (or a raw row mapping) -> :class:`ParsedMetadata`. Never raises."""
    gps, gps_status = parse_gps_status(_get(record, "gps"))
    weather, weather_status = parse_weather_status(_get(record, "weather"))
    return ParsedMetadata(
        gps=gps,
        weather=weather,
        daytime=parse_text(_get(record, "daytime")),
        scene=parse_text(_get(record, "scene")),
        travel_alteration=parse_text(_get(record, "travel_alteration")),
        city=parse_text(_get(record, "city")),
        description=parse_text(_get(record, "description")),
        gps_status=gps_status,
        weather_status=weather_status,
    )


@dataclass(frozen=True)
class MetadataReport:
    """Counts from :func:`parse_records`: status -> rows, per parsed field (JSON-able via ``as_dict``)."""

    n: int
    gps: dict[str, int] = field(default_factory=dict)  # GPS_STATUSES -> count
    weather: dict[str, int] = field(default_factory=dict)  # WEATHER_STATUSES -> count
    missing: dict[str, int] = field(default_factory=dict)  # text field -> rows where it is missing

    def as_dict(self) -> dict[str, Any]:
        return {"n": self.n, "gps": dict(self.gps), "weather": dict(self.weather), "missing": dict(self.missing)}


def parse_records(records: Iterable[Any]) -> tuple[list[ParsedMetadata], MetadataReport]:
    """Parse every record; the report counts GPS / weather statuses and missing text fields."""
    parsed = [parse_record(r) for r in records]
    gps = Counter(p.gps_status for p in parsed)
    weather = Counter(p.weather_status for p in parsed)
    text = ("daytime", "scene", "travel_alteration", "city", "description")
    report = MetadataReport(
        n=len(parsed),
        gps={s: gps.get(s, 0) for s in GPS_STATUSES},
        weather={s: weather.get(s, 0) for s in WEATHER_STATUSES},
        missing={f: sum(getattr(p, f) is None for p in parsed) for f in text},
    )
    return parsed, report


# ----------------------------------------------------------------------------------------- vocabularies


@dataclass(frozen=True)
class MetadataVocab:
    """Index tables for the categorical fields; entry 0 of each is :data:`NULL_TOKEN`.

    Missing values and values not in the table both map to 0, so a model trained with these indices
    runs unchanged when no metadata reaches it (as on the network: see COMPETITION.md).
    """

    weather: tuple[str, ...] = (NULL_TOKEN,)
    daytime: tuple[str, ...] = (NULL_TOKEN,)
    scene: tuple[str, ...] = (NULL_TOKEN,)

    def size(self, name: str) -> int:
        return len(self._table(name))

    def index(self, name: str, value: str | None) -> int:
        """The index of ``value`` in field ``name``'s table; 0 for None or an unseen value."""
        if value is None:
            return 0
        return self._lookup(name).get(value, 0)

    def weather_indices(self, labels: tuple[str, ...] | None) -> tuple[int, ...]:
        """Weather labels -> their indices (unseen labels dropped); ``(0,)`` when none remain."""
        idx = tuple(i for i in (self.index("weather", w) for w in labels or ()) if i != 0)
        return idx or (0,)

    def encode(self, meta: ParsedMetadata) -> dict[str, Any]:
        """``{"weather": (indices...), "daytime": int, "scene": int}`` for one record."""
        return {
            "weather": self.weather_indices(meta.weather),
            "daytime": self.index("daytime", meta.daytime),
            "scene": self.index("scene", meta.scene),
        }

    def to_json(self) -> dict[str, list[str]]:
        return {name: list(self._table(name)) for name in VOCAB_FIELDS}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> MetadataVocab:
        tables = {}
        for name in VOCAB_FIELDS:
            table = tuple(str(x) for x in data.get(name, [NULL_TOKEN]))
            if not table or table[0] != NULL_TOKEN or len(set(table)) != len(table):
                raise ValueError(f"vocabulary {name!r} must start with {NULL_TOKEN!r} and hold no duplicates")
            tables[name] = table
        return cls(**tables)

    def _table(self, name: str) -> tuple[str, ...]:
        if name not in VOCAB_FIELDS:
            raise KeyError(f"no vocabulary for {name!r}; fields: {VOCAB_FIELDS}")
        return getattr(self, name)

    def _lookup(self, name: str) -> dict[str, int]:
        # built on demand: a frozen dataclass holding only tuples stays trivially hashable and JSON-able
        return {v: i for i, v in enumerate(self._table(name))}


def build_vocab(records: Iterable[Any], min_count: int = 1) -> MetadataVocab:
    """Vocabularies from records (or already :class:`ParsedMetadata`): values seen at least ``min_count``
    times, sorted alphabetically after the NULL entry at index 0."""
    if min_count < 1:
        raise ValueError(f"min_count must be >= 1, got {min_count}")
    counts: dict[str, Counter] = {name: Counter() for name in VOCAB_FIELDS}
    for r in records:
        p = r if isinstance(r, ParsedMetadata) else parse_record(r)
        counts["weather"].update(p.weather or ())
        counts["daytime"].update([p.daytime] if p.daytime is not None else [])
        counts["scene"].update([p.scene] if p.scene is not None else [])
    tables = {
        name: (NULL_TOKEN,) + tuple(sorted(v for v, c in counts[name].items() if c >= min_count and v != NULL_TOKEN))
        for name in VOCAB_FIELDS
    }
    return MetadataVocab(**tables)

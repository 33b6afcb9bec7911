"""Metagraph rows parsed defensively from whatever JSON a source returns.

Rules, the same for every source:
- A field is looked up under a few spellings (`uid`/`uids`, `incentive`/`incentives`, ...; case-insensitive).
  A missing or unreadable value becomes None; a row without a usable uid (missing, negative, not an integer)
  is skipped and counted, as is a second row for a uid already seen.
- Numbers may be JSON numbers or decimal strings ("0.0123", "1,234.5", "τ12.5"); NaN and infinities are None.
- Booleans may be true/false, 0/1 or "true"/"false"/"yes"/"no".
- Hotkeys and coldkeys may be strings or `{"ss58": ..., "hex": ...}` objects: the ss58 address is kept.
- Fields we do not model are kept, as received, in `extra` (JSON-able, stored with the row).
- Amounts are in alpha, the subnet's own token (every amount on a subnet is, since dynamic TAO), never TAO:
  `stake` and `emission` are multiplied by the source's `amount_scale` (1e-9 for Taostats, which sends alpha
  in rao; 1 for btcli, which prints alpha, and for generic JSON, taken as alpha).
- `owner` marks the subnet owner's hotkey (Taostats' `is_owner_hotkey`; for btcli see `btcli`): it is no miner.
- `trust`, `consensus`, `incentive` and `dividends` are 0-1 on the chain but may arrive as raw u16 (0-65535):
  when any row of a response has one of these above 1, that field is divided by 65535 for every row.
  `rank` is stored as received (the chain's rank value, not our position; see `analysis.derive_standing`);
  neither btcli 9.23 nor Taostats sends it (Taostats' `rank` is its own position, kept in `extra`).
"""

from __future__ import annotations

import dataclasses
import json
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any


class StandingsError(RuntimeError):
    """A source failed or returned nothing usable; the message says why and never holds a secret."""


RAO_PER_TAO = 1_000_000_000
RAO_PER_ALPHA = 1_000_000_000  # alpha, like TAO, has 9 decimals: 1 alpha = 1e9 rao
U16_MAX = 65535
U16_FIELDS = ("trust", "consensus", "incentive", "dividends")
FLOAT_FIELDS = ("rank", "incentive", "emission", "trust", "consensus", "dividends", "stake")
AMOUNT_FIELDS = ("stake", "emission")
BOOL_FIELDS = ("active", "validator_permit", "owner")
KEY_FIELDS = ("hotkey", "coldkey")
MAX_KEY_LEN = 64  # the hotkey/coldkey columns; a longer value (a bare hex key) stays in `extra` only

# Our field -> accepted spellings (lower case; plurals for btcli's parallel lists). The first one present wins.
ALIASES: dict[str, tuple[str, ...]] = {
    "uid": ("uid", "uids", "neuron_uid"),
    "hotkey": ("hotkey", "hotkeys", "hotkey_ss58"),
    "coldkey": ("coldkey", "coldkeys", "coldkey_ss58"),
    "rank": ("rank", "ranks"),
    "incentive": ("incentive", "incentives"),
    "emission": ("emission", "emissions"),
    "trust": ("trust", "trusts"),
    "consensus": ("consensus", "consensuses"),
    "dividends": ("dividends", "dividend"),
    "stake": ("stake", "stakes", "total_stake"),
    "active": ("active", "actives", "is_active"),
    "validator_permit": ("validator_permit", "validator_permits"),
    "owner": ("is_owner_hotkey", "is_owner"),
}
MAPPABLE_FIELDS = frozenset(ALIASES) | {"block"}


@dataclass(frozen=True)
class MinerRow:
    """One UID of the metagraph. Amounts (stake, emission per epoch) in alpha; trust..dividends 0-1; `owner` True
    for the subnet owner's hotkey; None when unknown."""

    uid: int
    hotkey: str | None = None
    coldkey: str | None = None
    rank: float | None = None
    incentive: float | None = None
    emission: float | None = None
    trust: float | None = None
    consensus: float | None = None
    dividends: float | None = None
    stake: float | None = None
    active: bool | None = None
    validator_permit: bool | None = None
    owner: bool | None = None
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Fetched:
    """What a source returns: the usable rows, the block number if known, how many rows were skipped, and
    whether the rows are sample data (the demo's file) rather than the network's."""

    rows: tuple[MinerRow, ...]
    block: int | None = None
    skipped: int = 0
    sample: bool = False


# --- scalar values -------------------------------------------------------------------------------------------


def to_float(value: Any) -> float | None:
    if value is None or isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        number = float(value)
    elif isinstance(value, str):
        text = value.strip().replace(",", "").strip("τα \t")
        if not text:
            return None
        try:
            number = float(text)
        except ValueError:
            return None
    else:
        return None
    return number if math.isfinite(number) else None


def to_int(value: Any) -> int | None:
    if value is None or isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, str):
        try:
            return int(value.strip())
        except ValueError:
            pass
    number = to_float(value)
    return int(number) if number is not None and number.is_integer() else None


def to_bool(value: Any) -> bool | None:
    if isinstance(value, bool):
        return value
    if isinstance(value, int | float) and value in (0, 1):
        return bool(value)
    if isinstance(value, str):
        text = value.strip().lower()
        if text in ("true", "t", "yes", "y", "1"):
            return True
        if text in ("false", "f", "no", "n", "0"):
            return False
    return None


def to_key(value: Any) -> str | None:
    if isinstance(value, Mapping):
        return to_key(value.get("ss58")) or to_key(value.get("hex"))
    if isinstance(value, str) and value.strip() and len(value.strip()) <= MAX_KEY_LEN:
        return value.strip()
    return None


def dotted_get(obj: Any, path: str) -> Any:
    """`obj["a"]["b"][0]` for the path "a.b.0"; None where any step is missing."""
    for part in path.split("."):
        if isinstance(obj, Mapping):
            obj = obj.get(part)
        elif isinstance(obj, list) and part.lstrip("-").isdigit() and -len(obj) <= int(part) < len(obj):
            obj = obj[int(part)]
        else:
            return None
    return obj


def json_safe(value: Any) -> Any:
    """`value` if it survives a JSON round trip, else its string form (extra fields land in a JSON column)."""
    try:
        json.dumps(value, allow_nan=False)
        return value
    except (TypeError, ValueError):
        return str(value)


# --- rows ----------------------------------------------------------------------------------------------------


def parse_row(
    raw: Mapping[str, Any],
    *,
    amount_scale: float = 1.0,
    paths: Mapping[str, str] | None = None,
    consumed: Iterable[str] = (),
) -> MinerRow | None:
    """One row, or None when it has no usable uid. `paths` maps our field names to dotted paths in `raw`
    (fields not in `paths` are looked up by their usual spellings); keys named in `consumed` are read by the
    caller and left out of `extra`."""
    lowered = {str(key).strip().lower(): key for key in raw}
    used = {lowered[name.lower()] for name in consumed if name.lower() in lowered}
    values: dict[str, Any] = {}
    for name, aliases in ALIASES.items():
        if paths and name in paths:
            values[name] = dotted_get(raw, paths[name])
            head = paths[name].split(".", 1)[0]
            used.update(key for key in raw if key == head)
            continue
        for alias in aliases:
            if alias in lowered:
                values[name] = raw[lowered[alias]]
                used.add(lowered[alias])
                break
    uid = to_int(values.get("uid"))
    if uid is None or uid < 0:
        return None
    numbers = {name: to_float(values.get(name)) for name in FLOAT_FIELDS}
    for name in AMOUNT_FIELDS:
        if numbers[name] is not None:
            numbers[name] *= amount_scale
    extra = {str(key): json_safe(value) for key, value in raw.items() if key not in used}
    for name in KEY_FIELDS:  # a key we cannot store in its column (too long) is kept as received
        if values.get(name) is not None and to_key(values[name]) is None:
            extra.setdefault(name, json_safe(values[name]))
    return MinerRow(
        uid=uid,
        hotkey=to_key(values.get("hotkey")),
        coldkey=to_key(values.get("coldkey")),
        **numbers,
        active=to_bool(values.get("active")),
        validator_permit=to_bool(values.get("validator_permit")),
        owner=to_bool(values.get("owner")),
        extra=extra,
    )


def rows_from_dicts(
    items: Iterable[Any],
    *,
    amount_scale: float = 1.0,
    paths: Mapping[str, str] | None = None,
    netuid: int | None = None,
    consumed: Iterable[str] = (),
) -> tuple[list[MinerRow], int]:
    """(rows, skipped): unusable rows, duplicate uids and rows of another subnet (a `netuid` field that
    differs from `netuid`) are skipped; u16-scaled fields are normalised to 0-1."""
    consumed = tuple(consumed)
    rows: list[MinerRow] = []
    seen: set[int] = set()
    skipped = 0
    for item in items:
        if not isinstance(item, Mapping):
            skipped += 1
            continue
        row = parse_row(item, amount_scale=amount_scale, paths=paths, consumed=consumed)
        other_subnet = netuid is not None and _netuid_of(item) not in (None, netuid)
        if row is None or other_subnet or row.uid in seen:
            skipped += 1
            continue
        seen.add(row.uid)
        rows.append(row)
    return normalise_u16(rows), skipped


def _netuid_of(item: Mapping[str, Any]) -> int | None:
    for key, value in item.items():
        if str(key).lower() == "netuid":
            return to_int(value)
    return None


def normalise_u16(rows: list[MinerRow]) -> list[MinerRow]:
    """Divide a 0-1 field by 65535 in every row when any row has it above 1 (raw u16 from the chain)."""
    raw_fields = [name for name in U16_FIELDS if any((getattr(r, name) or 0.0) > 1.0 for r in rows)]
    if not raw_fields:
        return rows
    return [
        dataclasses.replace(
            row, **{name: getattr(row, name) / U16_MAX for name in raw_fields if getattr(row, name) is not None}
        )
        for row in rows
    ]


def columns_to_dicts(columns: Mapping[str, Any]) -> list[dict[str, Any]]:
    """btcli's "dict of parallel lists" shape (`{"uids": [...], "hotkeys": [...], ...}`) as row dicts.

    The `uids` list sets the row count; a shorter list gives None for the rows it lacks."""
    lists = {key: value for key, value in columns.items() if isinstance(value, list)}
    n = max((len(v) for k, v in lists.items() if str(k).lower() in ALIASES["uid"]), default=0)
    return [{key: (value[i] if i < len(value) else None) for key, value in lists.items()} for i in range(n)]


def has_uid_column(obj: Mapping[str, Any]) -> bool:
    return any(str(key).lower() in ALIASES["uid"] and isinstance(value, list) for key, value in obj.items())


# --- where the rows are in a JSON document -------------------------------------------------------------------

ROW_LIST_KEYS = ("data", "neurons", "rows", "uids", "metagraph", "miners", "results")
BLOCK_KEYS = ("block", "block_number", "current_block")


def find_rows(data: Any, label: str, depth: int = 2) -> tuple[list[Any], dict[str, Any]]:
    """(row items, top-level scalar fields) of a JSON document: a list of rows; a dict holding one under
    `data`/`neurons`/`rows`/`uids`/...; or a dict of parallel lists keyed by field (`uids`, `hotkeys`, ...),
    possibly one level down (`{"netuid": 72, "metagraph": {...}}`). Raises `StandingsError` when none fits."""
    if isinstance(data, list):
        return data, {}
    if not isinstance(data, Mapping):
        raise StandingsError(f"{label}: expected a JSON list or object of rows, got {type(data).__name__}")
    meta = {str(k).lower(): v for k, v in data.items() if not isinstance(v, list | Mapping)}
    lowered = {str(key).lower(): value for key, value in data.items()}
    for key in ROW_LIST_KEYS:
        value = lowered.get(key)
        if isinstance(value, list) and any(isinstance(item, Mapping) for item in value):
            return value, meta
    if has_uid_column(data):
        return columns_to_dicts(data), meta
    for key in ROW_LIST_KEYS:
        value = lowered.get(key)
        if isinstance(value, list) and not value:
            return [], meta
        if isinstance(value, Mapping) and depth > 0:
            items, inner = find_rows(value, label, depth - 1)
            return items, {**meta, **inner}
    keys = ", ".join(sorted(lowered)[:12]) or "none"
    raise StandingsError(
        f"{label}: no rows found (expected a list of rows, {{\"data\": [...]}} or parallel lists keyed "
        f"'uids', 'hotkeys', ...; got keys: {keys})"
    )


def block_of(meta: Mapping[str, Any], items: Iterable[Any] = ()) -> int | None:
    """The block number: a top-level field, else the highest `block_number`/`block` among the raw rows."""
    for key in BLOCK_KEYS:
        if to_int(meta.get(key)) is not None:
            return to_int(meta.get(key))
    blocks = [
        to_int(value)
        for item in items
        if isinstance(item, Mapping)
        for key, value in item.items()
        if str(key).lower() in BLOCK_KEYS
    ]
    return max((b for b in blocks if b is not None), default=None)

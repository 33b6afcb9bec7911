"""Where standings come from. Each source has a `name` and `fetch() -> Fetched`, and raises `StandingsError`.

- `TaostatsSource`: the Taostats HTTP API, paginated, rate limited, with an API key in `Authorization`.
- `BtcliSource` (module `btcli`): the JSON that `btcli subnets show --netuid 72 --mechid 0 --json-output
  --no-prompt` prints, from a file or by running the command.

Every amount is in alpha, the subnet's token: Taostats sends alpha in rao, btcli prints alpha.
- `JsonSource`: any JSON URL with rows, fields mapped by dotted paths.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from typing import Any, Protocol

import requests
from pydantic import SecretStr

from roadwork.platform.standings.btcli import MIN_TIMEOUT_S as BTCLI_MIN_TIMEOUT_S
from roadwork.platform.standings.btcli import BtcliSource, default_command
from roadwork.platform.standings.http import Clock, JsonHttp, RateLimiter, Sleep
from roadwork.platform.standings.parsing import (
    MAPPABLE_FIELDS,
    RAO_PER_ALPHA,
    Fetched,
    StandingsError,
    block_of,
    dotted_get,
    find_rows,
    rows_from_dicts,
    to_int,
)
from roadwork.settings import Settings

log = logging.getLogger(__name__)

DEFAULT_TAOSTATS_URL = "https://api.taostats.io"


class Source(Protocol):
    name: str

    def fetch(self) -> Fetched: ...


# --- Taostats ------------------------------------------------------------------------------------------------


class TaostatsSource:
    """`GET {base_url}/api/metagraph/latest/v1?netuid=..&limit=256&page=N` with `Authorization: <api key>`.

    Pages are followed by the response's `pagination` (`next_page`, else `total_pages`, else `total_items`;
    with none of them, a full page asks for the next) and stop at an empty page.

    Row fields (COMPETITION.md): `emission` and `total_alpha_stake` arrive in alpha rao and become `emission` and
    `stake` in alpha; `stake` is always "0" (documented as unused) and is dropped; `rank` is Taostats' own
    position, kept in `extra` as `taostats_rank`, never as the chain's rank; `is_owner_hotkey` marks the owner.
    Everything else (`validator_trust`, `alpha_stake`, `daily_reward`, the `_as_tao` fields, ...) is kept in
    `extra` as received (rao strings stay rao)."""

    name = "taostats"
    PATH = "/api/metagraph/latest/v1"
    PAGE_SIZE = 256
    MAX_PAGES = 20  # 256 UIDs fit one page; a runaway `next_page` must not loop for ever

    def __init__(
        self,
        base_url: str | None = DEFAULT_TAOSTATS_URL,
        api_key: str | SecretStr | None = None,
        netuid: int = 72,
        timeout_s: float = 10.0,
        retries: int = 3,
        calls_per_minute: float = 5.0,
        session: requests.Session | None = None,
        *,
        sleep: Sleep = time.sleep,
        clock: Clock = time.monotonic,
        backoff_s: float = 1.0,
    ):
        self.base_url = (base_url or DEFAULT_TAOSTATS_URL).rstrip("/")
        self.netuid = netuid
        self._api_key = api_key.get_secret_value() if isinstance(api_key, SecretStr) else api_key
        limiter = RateLimiter(calls_per_minute, clock=clock, sleep=sleep)
        self._http = JsonHttp(self.name, timeout_s=timeout_s, retries=retries, limiter=limiter, session=session,
                              sleep=sleep, backoff_s=backoff_s, secrets=[self._api_key])

    def __repr__(self) -> str:  # never the key
        return f"TaostatsSource(base_url={self.base_url!r}, netuid={self.netuid})"

    def fetch(self) -> Fetched:
        url = self.base_url + self.PATH
        headers = {"Accept": "application/json"}
        if self._api_key:
            headers["Authorization"] = self._api_key
        items: list[Any] = []
        page = 1
        for _ in range(self.MAX_PAGES):
            body = self._http.get(url, params={"netuid": self.netuid, "limit": self.PAGE_SIZE, "page": page},
                                  headers=headers)
            data, pagination = _taostats_page(body)
            if not data:
                break
            items.extend(data)
            following = _next_page(pagination, page, len(items), len(data), self.PAGE_SIZE)
            if following is None:
                break
            page = following
        else:
            log.warning("taostats: stopped after %d pages; the rest of the metagraph is missing", self.MAX_PAGES)
        if not items:
            raise StandingsError(f"taostats: no rows for netuid {self.netuid}")
        rows, skipped = rows_from_dicts([_taostats_row(item) for item in items], amount_scale=1 / RAO_PER_ALPHA,
                                        paths={"stake": "total_alpha_stake"}, netuid=self.netuid,
                                        consumed=("netuid", "block_number"))
        if not rows:
            raise StandingsError(f"taostats: none of the {len(items)} rows has a usable uid")
        return Fetched(tuple(rows), block_of({}, items), skipped)


def _taostats_row(item: Any) -> Any:
    if not isinstance(item, Mapping):
        return item
    row = {key: value for key, value in item.items() if key not in ("stake", "rank")}
    if "rank" in item:
        row["taostats_rank"] = item["rank"]
    return row


def _taostats_page(body: Any) -> tuple[list[Any], Mapping[str, Any]]:
    if isinstance(body, list):
        return body, {}
    if not isinstance(body, Mapping):
        raise StandingsError(f"taostats: expected a JSON object, got {type(body).__name__}")
    data = body.get("data")
    if not isinstance(data, list):
        keys = ", ".join(sorted(map(str, body))[:12]) or "none"
        raise StandingsError(f"taostats: response has no 'data' list (keys: {keys})")
    pagination = body.get("pagination")
    return data, pagination if isinstance(pagination, Mapping) else {}


def _next_page(pagination: Mapping[str, Any], page: int, seen: int, page_len: int, page_size: int) -> int | None:
    if "next_page" in pagination:  # explicit, even when null (the last page)
        following = to_int(pagination.get("next_page"))
        return following if following is not None and following > page else None
    total_pages = to_int(pagination.get("total_pages"))
    if total_pages is not None:
        return page + 1 if page < total_pages else None
    total_items = to_int(pagination.get("total_items"))
    if total_items is not None:
        return page + 1 if seen < total_items else None
    return page + 1 if page_len >= page_size else None


# --- any JSON URL --------------------------------------------------------------------------------------------


class JsonSource:
    """Rows from any JSON URL returning a list, `{"data": [...]}` (or another shape `find_rows` knows).

    `field_map` maps our field names (uid, hotkey, coldkey, rank, incentive, emission, trust, consensus,
    dividends, stake, active, validator_permit, block) to dotted paths in each row (`"scores.incentive"`,
    `"keys.0"`); unmapped fields are looked up by their usual names. Values are taken as they come; amounts as alpha."""

    name = "json"

    def __init__(
        self,
        url: str,
        field_map: Mapping[str, str] | None = None,
        timeout_s: float = 10.0,
        retries: int = 3,
        calls_per_minute: float = 60.0,
        session: requests.Session | None = None,
        *,
        sleep: Sleep = time.sleep,
        clock: Clock = time.monotonic,
        backoff_s: float = 1.0,
    ):
        unknown = sorted(set(field_map or {}) - MAPPABLE_FIELDS)
        if unknown:
            raise StandingsError(
                f"leaderboard.field_map: unknown field(s) {', '.join(unknown)}; "
                f"known: {', '.join(sorted(MAPPABLE_FIELDS))}"
            )
        self.url = url
        self.field_map = dict(field_map or {})
        limiter = RateLimiter(calls_per_minute, clock=clock, sleep=sleep)
        self._http = JsonHttp(self.name, timeout_s=timeout_s, retries=retries, limiter=limiter, session=session,
                              sleep=sleep, backoff_s=backoff_s)

    def fetch(self) -> Fetched:
        items, meta = find_rows(self._http.get(self.url), "json")
        if not items:
            raise StandingsError(f"json: no rows at {self.url}")
        paths = {k: v for k, v in self.field_map.items() if k != "block"}
        rows, skipped = rows_from_dicts(items, paths=paths)
        if not rows:
            raise StandingsError(f"json: none of the {len(items)} rows has a usable uid")
        block = block_of(meta, items)
        if "block" in self.field_map:
            blocks = [to_int(dotted_get(item, self.field_map["block"])) for item in items]
            block = max((b for b in blocks if b is not None), default=block)
        return Fetched(tuple(rows), block, skipped)


# --- from settings -------------------------------------------------------------------------------------------


def source_from_settings(settings: Settings, *, sleep: Sleep = time.sleep, clock: Clock = time.monotonic) -> Source:
    """The source `settings.leaderboard` describes. Raises `StandingsError` when it is incomplete, ValueError
    for source `none`."""
    lb = settings.leaderboard
    if lb.source == "taostats":
        return TaostatsSource(lb.url, settings.leaderboard_api_key, lb.netuid, lb.timeout_s, lb.retries,
                              lb.calls_per_minute, sleep=sleep, clock=clock)
    if lb.source == "btcli":
        timeout_s = max(lb.timeout_s, BTCLI_MIN_TIMEOUT_S)
        if lb.command:
            return BtcliSource(command=lb.command, timeout_s=timeout_s, netuid=lb.netuid)
        if lb.url:
            return BtcliSource(path=lb.url, timeout_s=timeout_s, netuid=lb.netuid)
        return BtcliSource(command=default_command(lb.netuid), timeout_s=timeout_s, netuid=lb.netuid)
    if lb.source == "json":
        if not lb.url:
            raise StandingsError("json: set leaderboard.url")
        return JsonSource(lb.url, lb.field_map, lb.timeout_s, lb.retries, lb.calls_per_minute, sleep=sleep,
                          clock=clock)
    raise ValueError("leaderboard.source is none: nothing to poll")

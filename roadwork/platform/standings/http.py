"""GET a JSON document politely: a rate limit, a timeout on every request, retries with exponential backoff.

Retried: connection errors, timeouts, broken responses, HTTP 5xx and 408, and 429 (which waits for
`Retry-After` when the server sends one). Not retried: any other 4xx, which a retry cannot fix. Every error
message names the URL without its query and never holds a secret: the secrets given to the client are
replaced by `***` in anything quoted from a response.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterable, Mapping
from typing import Any

import requests

from roadwork.platform.standings.parsing import StandingsError

Sleep = Callable[[float], None]
Clock = Callable[[], float]

MAX_RETRY_AFTER_S = 300.0
SNIPPET_CHARS = 200


def redact(text: str, secrets: Iterable[str | None]) -> str:
    """`text` with every non-empty secret replaced by `***`."""
    for secret in secrets:
        if secret:
            text = text.replace(secret, "***")
    return text


class RateLimiter:
    """At most `calls_per_minute` calls: each call starts at least 60/calls_per_minute s after the previous one.

    A minimum interval rather than a bucket with a burst, because the Taostats free tier counts calls per
    minute and a burst of pages would be refused. `clock` and `sleep` are injectable for tests."""

    def __init__(self, calls_per_minute: float, *, clock: Clock = time.monotonic, sleep: Sleep = time.sleep):
        if calls_per_minute <= 0:
            raise ValueError("calls_per_minute must be positive")
        self.interval_s = 60.0 / calls_per_minute
        self._clock = clock
        self._sleep = sleep
        self._last: float | None = None

    def wait(self) -> None:
        now = self._clock()
        if self._last is not None and now < self._last + self.interval_s:
            self._sleep(self._last + self.interval_s - now)
            now = max(self._clock(), self._last + self.interval_s)  # a fake sleep need not move a fake clock
        self._last = now


class JsonHttp:
    """GETs JSON with retries; one instance per source. `session` None: a fresh connection per request."""

    def __init__(
        self,
        label: str,
        *,
        timeout_s: float,
        retries: int,
        limiter: RateLimiter | None = None,
        session: requests.Session | None = None,
        sleep: Sleep = time.sleep,
        backoff_s: float = 1.0,
        max_backoff_s: float = 30.0,
        secrets: Iterable[str | None] = (),
    ):
        self.label = label
        self.timeout_s = timeout_s
        self.attempts = max(0, retries) + 1
        self.limiter = limiter
        self.session = session
        self.sleep = sleep
        self.backoff_s = backoff_s
        self.max_backoff_s = max_backoff_s
        self._secrets = tuple(s for s in secrets if s)

    def get(self, url: str, *, params: Mapping[str, Any] | None = None, headers: Mapping[str, str] | None = None) -> Any:
        """The decoded JSON body of `url`. Raises `StandingsError` once retries are spent or on a 4xx."""
        reason = "no attempt made"
        for attempt in range(self.attempts):
            if self.limiter is not None:
                self.limiter.wait()
            wait_s = None
            try:
                response = (self.session or requests).get(
                    url, params=params, headers=dict(headers or {}), timeout=self.timeout_s
                )
            except requests.Timeout:
                reason = f"timed out after {self.timeout_s:g} s"
            except (requests.ConnectionError, requests.exceptions.ChunkedEncodingError) as exc:
                reason = f"connection failed ({type(exc).__name__})"
            except requests.RequestException as exc:  # a bad URL and the like: retrying cannot help
                raise StandingsError(self._safe(f"{self.label}: request to {url} failed: {exc}")) from None
            else:
                with response:
                    status = response.status_code
                    if status < 300:
                        return self._decode(response.content, url)
                    reason = f"HTTP {status}"
                    if status == 429:
                        reason = "HTTP 429 (rate limited)"
                        wait_s = _retry_after(response.headers.get("Retry-After"))
                    elif status < 500 and status != 408:
                        hint = " (check ROADWORK_LEADERBOARD_API_KEY)" if status in (401, 403) else ""
                        snippet = response.text[:SNIPPET_CHARS].strip()
                        raise StandingsError(self._safe(f"{self.label}: HTTP {status} from {url}{hint}: {snippet}"))
            if attempt + 1 < self.attempts:
                self.sleep(wait_s if wait_s is not None else self._backoff(attempt))
        raise StandingsError(
            self._safe(f"{self.label}: {reason} from {url}; gave up after {self.attempts} attempt(s)")
        )

    def _backoff(self, attempt: int) -> float:
        return min(self.backoff_s * 2**attempt, self.max_backoff_s)

    def _decode(self, content: bytes, url: str) -> Any:
        try:
            return json.loads(content)
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            detail = f"{exc.msg} at char {exc.pos}" if isinstance(exc, json.JSONDecodeError) else "not UTF-8"
            raise StandingsError(f"{self.label}: response from {url} is not JSON ({detail})") from None

    def _safe(self, text: str) -> str:
        return redact(text, self._secrets)


def _retry_after(value: str | None) -> float | None:
    """Seconds from a `Retry-After` header (the seconds form; an HTTP date falls back to backoff)."""
    try:
        return min(max(float(value), 0.0), MAX_RETRY_AFTER_S) if value is not None else None
    except ValueError:
        return None

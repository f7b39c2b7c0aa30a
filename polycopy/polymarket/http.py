"""The one module that imports httpx: the venue's public REST reads (Data API trades and leaderboard, Gamma,
the CLOB's books), and the one-shot transport of authenticated CLOB order calls (`ClobHttp`, never retrying by
itself).

The reads are blocking calls, paced by token buckets that honour the published rate limits (brief, section
5.1), with bounded retries on 429/5xx/transport errors: each is an idempotent GET, so a retry is always safe.
An order call is not, so `ClobHttp` sends once and answers with a value, Retry-After included.
"""

from __future__ import annotations

import logging
import random
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from email.utils import parsedate_to_datetime
from functools import partial
from typing import Any

import httpx

from polycopy.polymarket.reference import decode_json_string_fields
from polycopy.polymarket.text import decode_json

log = logging.getLogger(__name__)

TRADES_PATH = "/trades"
BOOK_PATH = "/book"
LEADERBOARD_PATH = "/v1/leaderboard"
MARKETS_PATH = "/markets"


class VenueHttpError(RuntimeError):
    """A venue REST call failed for good: a non-retryable status, retries used up, or an unexpected body."""

    def __init__(self, message: str, status_code: int | None = None) -> None:
        super().__init__(message)
        self.status_code = status_code


@dataclass(frozen=True)
class RateLimit:
    """A published limit: `requests` per `window_secs` (sliding window at the venue)."""

    requests: int
    window_secs: float

    @property
    def per_sec(self) -> float:
        return self.requests / self.window_secs


# Published limits per route (brief, section 5.1). The leaderboard falls under the Data API's general limit.
PUBLISHED_LIMITS: dict[str, RateLimit] = {
    TRADES_PATH: RateLimit(200, 10.0),
    MARKETS_PATH: RateLimit(300, 10.0),
    LEADERBOARD_PATH: RateLimit(1000, 10.0),
}


class TokenBucket:
    """A token bucket: `capacity` tokens, refilled at `rate_per_sec`; no I/O, the clock is injected.

    `reserve()` always takes a token, going into debt when empty, and returns how long the caller must wait
    before sending; callers that reserve in turn are spaced 1/rate apart.
    """

    def __init__(
        self, rate_per_sec: float, capacity: float | None = None, clock: Callable[[], float] = time.monotonic
    ) -> None:
        if rate_per_sec <= 0:
            raise ValueError("rate_per_sec must be positive")
        self.rate_per_sec = rate_per_sec
        self.capacity = capacity if capacity is not None else max(1.0, rate_per_sec)
        self._clock = clock
        self._tokens = self.capacity
        self._updated = clock()

    def _refill(self) -> None:
        now = self._clock()
        self._tokens = min(self.capacity, self._tokens + (now - self._updated) * self.rate_per_sec)
        self._updated = now

    def try_acquire(self) -> bool:
        """Take a token if one is available now."""
        self._refill()
        if self._tokens >= 1:
            self._tokens -= 1
            return True
        return False

    def reserve(self) -> float:
        """Take a token now or on credit; returns the seconds to wait before using it (0 when available)."""
        self._refill()
        self._tokens -= 1
        return 0.0 if self._tokens >= 0 else -self._tokens / self.rate_per_sec


def should_retry(status: int) -> bool:
    """True for statuses worth retrying a GET: throttled (429), too early (425), timeout (408), 5xx."""
    return status in (408, 425, 429) or (500 <= status <= 599 and status not in (501, 505))


def parse_retry_after(value: str | None, now_epoch_secs: float) -> float | None:
    """Seconds to wait from a Retry-After header (seconds or an HTTP date); None when absent or unreadable."""
    if not value:
        return None
    text = value.strip()
    try:
        return max(0.0, float(text))
    except ValueError:
        pass
    try:
        return max(0.0, parsedate_to_datetime(text).timestamp() - now_epoch_secs)
    except (TypeError, ValueError, IndexError):
        return None


@dataclass(frozen=True)
class RetryPolicy:
    """Bounded retries with jittered exponential backoff (base x 2^attempt, capped, x [0.5, 1]).

    A Retry-After header, when the venue sends one, wins over the backoff (up to `max_retry_after_secs`).
    """

    max_attempts: int = 5
    base_secs: float = 0.5
    cap_secs: float = 30.0
    max_retry_after_secs: float = 120.0

    def delay(
        self,
        attempt: int,
        retry_after_secs: float | None = None,
        random_fn: Callable[[], float] = random.random,
    ) -> float:
        """Seconds to wait before retry number `attempt + 1` (attempt counts from 0)."""
        if retry_after_secs is not None:
            return min(retry_after_secs, self.max_retry_after_secs)
        return min(self.cap_secs, self.base_secs * 2.0 ** min(attempt, 16)) * (0.5 + random_fn() / 2)


def extract_rows(document: Any, what: str) -> list[dict[str, Any]]:
    """The rows of a list response: a bare array, or an envelope `{"data": [...]}` (a miss: `data: null`)."""
    if isinstance(document, dict) and "data" in document:
        document = document["data"] or []
    if not isinstance(document, list):
        raise VenueHttpError(
            f"{what}: expected a JSON array or a {{data: [...]}} envelope, "
            f"got a JSON {type(document).__name__}"
        )
    return [row for row in document if isinstance(row, dict)]


class VenueHttpClient:
    """Blocking client for the Data API (`/trades`, `/v1/leaderboard`) and Gamma (`/markets`).

    Each route is paced by its published limit and by `requests_per_sec` overall. `on_response` is told the
    outcome of every HTTP attempt (the status code as text, or "transport_error") for metrics.
    """

    def __init__(
        self,
        data_api_url: str,
        gamma_url: str,
        requests_per_sec: float = 15.0,
        *,
        timeout_secs: float = 10.0,
        retry: RetryPolicy = RetryPolicy(),
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
        random_fn: Callable[[], float] = random.random,
        wall_clock_ns: Callable[[], int] = time.time_ns,
        on_response: Callable[[str], None] | None = None,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self._data_api_url, self._gamma_url = data_api_url.rstrip("/"), gamma_url.rstrip("/")
        self._retry, self._sleep, self._random_fn = retry, sleep, random_fn
        self._wall_clock_ns = wall_clock_ns
        self._on_response = on_response
        self._overall = TokenBucket(requests_per_sec, clock=clock)
        self._routes = {
            path: TokenBucket(min(limit.per_sec, requests_per_sec), clock=clock)
            for path, limit in PUBLISHED_LIMITS.items()
        }
        self._http = httpx.Client(
            timeout=timeout_secs,
            transport=transport,
            headers={"Accept": "application/json", "User-Agent": "polycopy-stream"},
        )
        self.requests = 0
        self._last_buster = 0

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> VenueHttpClient:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def fetch_user_trades(
        self, wallet: str, *, start_secs: int | None = None, limit: int = 500, offset: int = 0
    ) -> list[dict[str, Any]]:
        """One page of a wallet's fills, newest first, maker fills included (`takerOnly=false`).

        A cache-busting `_` parameter forces a CDN miss: the venue caches identical URLs for up to 5 minutes.
        """
        params: list[tuple[str, str]] = [
            ("user", wallet),
            ("takerOnly", "false"),
            ("limit", str(limit)),
            ("offset", str(offset)),
        ]
        if start_secs is not None:
            params.append(("start", str(start_secs)))
        params.append(("_", self._cache_buster()))
        return extract_rows(self._get(self._data_api_url, TRADES_PATH, params), "GET /trades")

    def fetch_leaderboard(
        self,
        *,
        limit: int = 50,
        offset: int = 0,
        time_period: str = "MONTH",
        order_by: str = "PNL",
        category: str = "OVERALL",
    ) -> list[dict[str, Any]]:
        """One page of the trader leaderboard (`limit` at most 50 at the venue, `offset` at most 1000)."""
        params = [
            ("category", category),
            ("timePeriod", time_period),
            ("orderBy", order_by),
            ("limit", str(limit)),
            ("offset", str(offset)),
        ]
        return extract_rows(self._get(self._data_api_url, LEADERBOARD_PATH, params), "GET /v1/leaderboard")

    def fetch_markets(
        self,
        condition_ids: Sequence[str] = (),
        *,
        active_only: bool = False,
        closed: bool | None = None,
        limit: int = 500,
        offset: int = 0,
    ) -> list[dict[str, Any]]:
        """Gamma markets by condition id (repeated `condition_ids` parameters), or one page of all markets
        (`active_only`: open ones only; `closed`: only closed or only open ones, said explicitly because
        Gamma's default for it has differed from its documentation). JSON-encoded string fields come back
        decoded."""
        params: list[tuple[str, str]] = [("condition_ids", condition_id) for condition_id in condition_ids]
        if active_only:
            params += [("active", "true"), ("closed", "false")]
        elif closed is not None:
            params += [("closed", "true" if closed else "false")]
        params += [("limit", str(limit)), ("offset", str(offset))]
        rows = extract_rows(self._get(self._gamma_url, MARKETS_PATH, params), "GET /markets")
        return [decode_json_string_fields(row) for row in rows]

    def _cache_buster(self) -> str:
        # Strictly increasing, even when the wall clock is coarse or stands still.
        self._last_buster = max(self._wall_clock_ns(), self._last_buster + 1)
        return str(self._last_buster)

    def _pace(self, path: str) -> None:
        wait = max(self._overall.reserve(), self._routes[path].reserve())
        if wait > 0:
            self._sleep(wait)

    def _report(self, outcome: str) -> None:
        if self._on_response is not None:
            self._on_response(outcome)

    def _get(self, base_url: str, path: str, params: list[tuple[str, str]]) -> Any:
        last_error = ""
        last_status: int | None = None
        for attempt in range(self._retry.max_attempts):
            self._pace(path)
            self.requests += 1
            retry_after: float | None = None
            try:
                response = self._http.get(base_url + path, params=tuple(params))
            except httpx.TransportError as error:
                self._report("transport_error")
                last_error = f"{type(error).__name__}: {error}"
            else:
                self._report(str(response.status_code))
                if response.status_code == 200:
                    try:
                        # Decimals, not floats: prices, sizes and USDC figures are kept exactly as sent.
                        return decode_json(response.content)
                    except ValueError as error:
                        raise VenueHttpError(
                            f"GET {path} answered 200 with a body that is not JSON", 200
                        ) from error
                if not should_retry(response.status_code):
                    raise VenueHttpError(
                        f"GET {path} answered {response.status_code}: {response.text[:200]}",
                        response.status_code,
                    )
                last_error, last_status = f"status {response.status_code}", response.status_code
                retry_after = parse_retry_after(
                    response.headers.get("Retry-After"), self._wall_clock_ns() / 1e9
                )
            if attempt + 1 < self._retry.max_attempts:
                delay = self._retry.delay(attempt, retry_after, self._random_fn)
                log.warning("GET %s failed (%s); retry %d in %.1f s", path, last_error, attempt + 1, delay)
                self._sleep(delay)
        raise VenueHttpError(
            f"GET {path} failed after {self._retry.max_attempts} attempts: {last_error}", last_status
        )


@dataclass(frozen=True)
class HttpAnswer:
    """One HTTP exchange with the CLOB, as a value: a status and body, or how the transport failed."""

    status: int | None  # None: no answer (see `transport_error`)
    body: Any = None  # parsed JSON (decimals kept exact), or the text when it is not JSON
    retry_after_secs: float | None = None
    transport_error: str = ""  # "timeout" | "connect" | "network": empty when the venue answered

    @property
    def reached_venue(self) -> bool:
        """False only when the request provably never arrived (the connection was not established)."""
        return self.transport_error != "connect"


class ClobHttp:
    """One-shot authenticated CLOB requests (orders, look-ups, cancels): no retry here, ever.

    Whether and when to send again is the caller's decision (an order POST that timed out may have been
    placed), so every outcome comes back as an `HttpAnswer` value, headers such as Retry-After included.
    """

    def __init__(
        self,
        host: str,
        *,
        timeout_secs: float = 5.0,
        connect_timeout_secs: float = 2.0,
        transport: httpx.BaseTransport | None = None,
        wall_clock_ns: Callable[[], int] = time.time_ns,
    ) -> None:
        self.host = host.rstrip("/")
        self._wall_clock_ns = wall_clock_ns
        self._http = httpx.Client(
            timeout=httpx.Timeout(timeout_secs, connect=connect_timeout_secs),
            transport=transport,
            headers={"Accept": "application/json", "User-Agent": "polycopy-stream"},
        )

    def close(self) -> None:
        self._http.close()

    def send(
        self,
        method: str,
        path: str,
        *,
        headers: dict[str, str] | None = None,
        params: Sequence[tuple[str, str]] = (),
        body: str | None = None,
    ) -> HttpAnswer:
        """Send one request; never raises for HTTP or transport failures."""
        request_headers = dict(headers or {})
        if body is not None:
            request_headers["Content-Type"] = "application/json"
        try:
            response = self._http.request(
                method,
                self.host + path,
                params=tuple(params),
                headers=request_headers,
                content=body.encode() if body is not None else None,
            )
        except httpx.ConnectError:
            return HttpAnswer(None, transport_error="connect")
        except httpx.TimeoutException as error:
            # A connect time-out never reached the venue; a read or write time-out may have.
            kind = "connect" if isinstance(error, httpx.ConnectTimeout) else "timeout"
            return HttpAnswer(None, transport_error=kind)
        except httpx.TransportError:
            return HttpAnswer(None, transport_error="network")
        try:
            parsed: Any = decode_json(response.content) if response.content else None
        except ValueError:
            parsed = response.text
        return HttpAnswer(
            response.status_code,
            parsed,
            parse_retry_after(response.headers.get("Retry-After"), self._wall_clock_ns() / 1e9),
        )


class ClobBookReader:
    """`GET /book` on the CLOB, for the worker's REST fallback: one attempt, never retried here (a decision
    waiting on a book had rather be skipped with its reason than wait out a backoff).

    Not through the CLOB client: importing it pulls in the signing libraries, which take seconds to import,
    and a restarted worker would be that much later back (issue 8). The worker never signs anything.
    """

    def __init__(self, host: str, *, timeout_secs: float = 5.0, transport: httpx.BaseTransport | None = None):
        # Built at the first request: its TLS context takes 0.15 s, and a restarted worker needs a REST book
        # later if at all (the books topic is read first).
        self._build = partial(ClobHttp, host, timeout_secs=timeout_secs, transport=transport)
        self._http: ClobHttp | None = None
        self._building = threading.Lock()  # books are fetched from a thread pool

    def _client(self) -> ClobHttp:
        with self._building:
            if self._http is None:
                self._http = self._build()
            return self._http

    def fetch_book(self, token_id: str) -> dict[str, Any] | None:
        """The raw book payload, or None when the venue has no book for the token (404). Raises
        `VenueHttpError` on any other answer or a transport failure."""
        answer = self._client().send("GET", BOOK_PATH, params=[("token_id", token_id)])
        if answer.status == 404:
            return None
        if answer.status != 200 or not isinstance(answer.body, dict):
            failure = answer.transport_error or f"status {answer.status}: {str(answer.body)[:200]}"
            raise VenueHttpError(f"GET {BOOK_PATH} failed: {failure}", answer.status)
        return answer.body or None

    def close(self) -> None:
        if self._http is not None:
            self._http.close()

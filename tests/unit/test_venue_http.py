"""Tests of the venue REST client: token buckets on a fake clock, retries, response shapes, Gamma decoding.

HTTP goes through httpx.MockTransport (no sockets); time is a fake clock that `sleep` advances.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from decimal import Decimal
from typing import Any
from urllib.parse import parse_qs

import httpx
import pytest
from hypothesis import given
from hypothesis import strategies as st

from polycopy.polymarket.http import (
    PUBLISHED_LIMITS,
    TRADES_PATH,
    RetryPolicy,
    TokenBucket,
    VenueHttpClient,
    VenueHttpError,
    extract_rows,
    parse_retry_after,
    should_retry,
)
from polycopy.polymarket.reference import decode_json_string_fields
from tests.builders import (
    build_gamma_markets,
    build_leaderboard_rows,
    build_trade_payload,
    load_fixture_json,
)

WALLET = "0x" + "ab" * 20
Handler = Callable[[httpx.Request], httpx.Response]


class FakeClock:
    """Monotonic seconds that only move when the code under test sleeps (or the test says so)."""

    def __init__(self) -> None:
        self.now = 1000.0
        self.sleeps: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


def build_client(
    handler: Handler, clock: FakeClock | None = None, requests_per_sec: float = 15.0, **options: Any
) -> tuple[VenueHttpClient, FakeClock]:
    clock = clock or FakeClock()
    client = VenueHttpClient(
        "http://data.test",
        "http://gamma.test",
        requests_per_sec,
        clock=clock,
        sleep=clock.sleep,
        random_fn=lambda: 1.0,
        transport=httpx.MockTransport(handler),
        wall_clock_ns=lambda: 1_790_000_000_000_000_000 + len(clock.sleeps),
        **options,
    )
    return client, clock


def query_of(request: httpx.Request) -> dict[str, list[str]]:
    return parse_qs(request.url.query.decode())


# --- token bucket -------------------------------------------------------------------------------------------
def test_token_bucket_serves_a_full_burst_then_spaces_requests_one_interval_apart() -> None:
    clock = FakeClock()
    bucket = TokenBucket(rate_per_sec=20, capacity=20, clock=clock)

    burst = [bucket.reserve() for _ in range(20)]
    queued = [bucket.reserve() for _ in range(3)]

    assert burst == [0.0] * 20
    assert queued == pytest.approx([0.05, 0.10, 0.15])


def test_token_bucket_refills_with_time_but_never_above_its_capacity() -> None:
    clock = FakeClock()
    bucket = TokenBucket(rate_per_sec=2, capacity=4, clock=clock)
    assert all(bucket.try_acquire() for _ in range(4))
    assert not bucket.try_acquire()

    clock.now += 0.5
    assert bucket.try_acquire() and not bucket.try_acquire()

    clock.now += 3600
    assert sum(bucket.try_acquire() for _ in range(10)) == 4


@given(st.lists(st.floats(min_value=0, max_value=2), min_size=1, max_size=60))
def test_token_bucket_never_lets_more_than_capacity_plus_rate_x_elapsed_through(gaps: list[float]) -> None:
    clock = FakeClock()
    bucket = TokenBucket(rate_per_sec=5, capacity=5, clock=clock)
    started = clock.now
    for sent, gap in enumerate(gaps, 1):
        clock.now += gap
        clock.sleep(bucket.reserve())
        assert sent <= 5 + 5 * (clock.now - started) + 1e-9


def test_token_bucket_refuses_a_non_positive_rate() -> None:
    with pytest.raises(ValueError, match="rate_per_sec"):
        TokenBucket(0)


def test_client_paces_trades_requests_at_the_published_limit_even_when_allowed_more() -> None:
    client, clock = build_client(lambda request: httpx.Response(200, json=[]), requests_per_sec=1000)
    limit = PUBLISHED_LIMITS[TRADES_PATH]  # 200 per 10 s

    for _ in range(60):
        client.fetch_user_trades(WALLET)

    elapsed = clock.now - 1000.0
    assert limit.per_sec == 20
    assert elapsed == pytest.approx((60 - 20) / 20)  # a burst of 20, then 20 per second


def test_client_paces_every_route_at_its_own_requests_per_sec_setting() -> None:
    client, clock = build_client(lambda request: httpx.Response(200, json=[]), requests_per_sec=5)

    for _ in range(15):
        client.fetch_leaderboard()

    assert clock.now - 1000.0 == pytest.approx((15 - 5) / 5)


# --- retry rules --------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("status", "expected"),
    [
        (200, False),
        (400, False),
        (401, False),
        (403, False),
        (404, False),
        (422, False),
        (408, True),
        (425, True),
        (429, True),
        (500, True),
        (502, True),
        (503, True),
        (504, True),
        (501, False),
        (505, False),
    ],
)
def test_should_retry_only_throttling_timeouts_and_server_errors(status: int, expected: bool) -> None:
    assert should_retry(status) is expected


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        ("7", 7.0),
        (" 2.5 ", 2.5),
        ("-3", 0.0),
        ("Wed, 21 Oct 2026 07:28:10 GMT", 10.0),
        ("soon", None),
        ("", None),
        (None, None),
    ],
)
def test_retry_after_reads_seconds_and_http_dates(header: str | None, expected: float | None) -> None:
    now = 1792567680.0  # 2026-10-21 07:28:00 UTC
    assert parse_retry_after(header, now) == expected


@given(st.integers(min_value=0, max_value=100), st.floats(min_value=0, max_value=1))
def test_backoff_is_jittered_between_half_and_full_and_capped(attempt: int, draw: float) -> None:
    policy = RetryPolicy(base_secs=0.5, cap_secs=30)
    full = min(30.0, 0.5 * 2 ** min(attempt, 16))
    assert full / 2 <= policy.delay(attempt, None, lambda: draw) <= full


def test_retry_after_wins_over_backoff_up_to_its_bound() -> None:
    policy = RetryPolicy(max_retry_after_secs=60)
    assert policy.delay(0, 12.0) == 12.0
    assert policy.delay(0, 3600.0) == 60.0


def test_client_waits_what_retry_after_says_on_429_then_returns_the_rows() -> None:
    answers = [
        httpx.Response(429, headers={"Retry-After": "3"}, json={"error": "rate limited"}),
        httpx.Response(200, json=[build_trade_payload()]),
    ]
    statuses: list[str] = []
    client, clock = build_client(lambda request: answers.pop(0), on_response=statuses.append)

    rows = client.fetch_user_trades(WALLET)

    assert len(rows) == 1 and statuses == ["429", "200"]
    assert 3.0 in clock.sleeps


def test_client_retries_server_errors_and_transport_errors_with_backoff() -> None:
    calls = {"count": 0}

    def handler(request: httpx.Request) -> httpx.Response:
        calls["count"] += 1
        if calls["count"] == 1:
            raise httpx.ConnectError("connection refused", request=request)
        if calls["count"] == 2:
            return httpx.Response(503, text="upstream unavailable")
        return httpx.Response(200, json=[])

    statuses: list[str] = []
    client, clock = build_client(handler, on_response=statuses.append)

    assert client.fetch_leaderboard() == []
    assert statuses == ["transport_error", "503", "200"]
    assert [delay for delay in clock.sleeps if delay >= 0.5] == [0.5, 1.0]  # base x 2^attempt, random_fn = 1


def test_client_gives_up_after_its_attempts_with_the_last_status() -> None:
    client, _ = build_client(lambda request: httpx.Response(502), retry=RetryPolicy(max_attempts=3))

    with pytest.raises(VenueHttpError, match="after 3 attempts") as raised:
        client.fetch_markets(["0x01"])

    assert raised.value.status_code == 502 and client.requests == 3


def test_client_does_not_retry_a_client_error() -> None:
    client, clock = build_client(lambda request: httpx.Response(400, json={"error": "offset too large"}))

    with pytest.raises(VenueHttpError, match="400") as raised:
        client.fetch_user_trades(WALLET, offset=20_000)

    assert raised.value.status_code == 400 and client.requests == 1


def test_client_refuses_a_200_that_is_not_json() -> None:
    client, _ = build_client(lambda request: httpx.Response(200, text="<html>maintenance</html>"))
    with pytest.raises(VenueHttpError, match="not JSON"):
        client.fetch_user_trades(WALLET)


# --- requests and response shapes ---------------------------------------------------------------------------
def test_user_trades_request_asks_for_maker_fills_since_start_and_busts_the_cache() -> None:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200, json=[])

    client, _ = build_client(handler)
    client.fetch_user_trades(WALLET, start_secs=1_790_000_000, limit=500, offset=500)
    client.fetch_user_trades(WALLET, start_secs=1_790_000_000, limit=500, offset=500)

    first, second = (query_of(request) for request in seen)
    assert seen[0].url.path == "/trades" and seen[0].url.host == "data.test"
    assert first["user"] == [WALLET] and first["takerOnly"] == ["false"]
    assert first["limit"] == ["500"] and first["offset"] == ["500"] and first["start"] == ["1790000000"]
    assert first["_"] != second["_"]  # identical URLs are served from the CDN cache for minutes


@pytest.mark.parametrize(
    "body",
    [
        [build_trade_payload()],
        {"limit": 100, "next_cursor": "abc", "count": 1, "data": [build_trade_payload()]},
    ],
)
def test_user_trades_accepts_a_bare_array_or_an_envelope(body: Any) -> None:
    client, _ = build_client(lambda request: httpx.Response(200, json=body))
    rows = client.fetch_user_trades(WALLET)
    assert [row["transactionHash"] for row in rows] == [build_trade_payload()["transactionHash"]]


def test_numbers_are_read_as_decimals_exactly_as_sent() -> None:
    body = b'[{"proxyWallet": "0xab", "price": 0.10000000000000001, "size": 2.7027}]'
    client, _ = build_client(lambda request: httpx.Response(200, content=body))
    row = client.fetch_user_trades(WALLET)[0]
    assert row["price"] == Decimal("0.10000000000000001") and row["size"] == Decimal("2.7027")


@pytest.mark.parametrize(
    ("document", "rows"),
    [
        ([], []),
        ({"data": None}, []),
        ({"data": []}, []),
        ([{"a": 1}, "junk", None], [{"a": 1}]),
    ],
)
def test_extract_rows_takes_arrays_and_envelopes_skipping_non_objects(document: Any, rows: list[Any]) -> None:
    assert extract_rows(document, "GET /x") == rows


@pytest.mark.parametrize("document", [{"error": "bad"}, "text", 3])
def test_extract_rows_refuses_anything_else(document: Any) -> None:
    with pytest.raises(VenueHttpError, match="expected a JSON array"):
        extract_rows(document, "GET /x")


def test_leaderboard_request_names_period_order_and_page() -> None:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200, json=build_leaderboard_rows(50))

    client, _ = build_client(handler)
    rows = client.fetch_leaderboard(limit=50, offset=100, time_period="ALL", order_by="VOL")

    query = query_of(seen[0])
    assert seen[0].url.path == "/v1/leaderboard"
    assert query == {
        "category": ["OVERALL"],
        "timePeriod": ["ALL"],
        "orderBy": ["VOL"],
        "limit": ["50"],
        "offset": ["100"],
    }
    assert len(rows) == 50


def test_markets_request_repeats_condition_ids_and_decodes_the_json_string_fields() -> None:
    real = load_fixture_json("ra1nty__polymarket-cli/market_detail.json")
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200, json=[real])

    client, _ = build_client(handler)
    markets = client.fetch_markets([real["conditionId"], "0x02"])

    assert seen[0].url.host == "gamma.test" and seen[0].url.path == "/markets"
    assert query_of(seen[0])["condition_ids"] == [real["conditionId"], "0x02"]
    assert markets[0]["outcomes"] == ["Up", "Down"]
    assert markets[0]["clobTokenIds"] == json.loads(real["clobTokenIds"])
    assert markets[0]["outcomePrices"] == ["0.005", "0.995"]


def test_active_markets_page_asks_for_open_markets_only() -> None:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200, json=[])

    client, _ = build_client(handler)
    client.fetch_markets(active_only=True, limit=100, offset=200)

    assert query_of(seen[0]) == {"active": ["true"], "closed": ["false"], "limit": ["100"], "offset": ["200"]}


# --- Gamma double decoding on a listing ---------------------------------------------------------------------
def test_every_gamma_market_of_a_listing_decodes_into_lists() -> None:
    markets = build_gamma_markets(600, closed=300, neg_risk=236, repeated=4)
    assert len(markets) == 600 and all(isinstance(m["clobTokenIds"], str) for m in markets)  # as sent: text

    decoded = [decode_json_string_fields(market) for market in markets]

    for market, original in zip(decoded, markets, strict=True):
        assert len(market["outcomes"]) == len(market["clobTokenIds"]) == len(market["outcomePrices"]) == 2
        assert all(token.isdigit() and 70 <= len(token) <= 78 for token in market["clobTokenIds"])
        assert all(0 <= Decimal(price) <= 1 for price in market["outcomePrices"])
        assert market["conditionId"] == original["conditionId"]
        assert isinstance(original["outcomes"], str)  # the input is left alone


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ('["Yes", "No"]', ["Yes", "No"]),
        (["Yes", "No"], ["Yes", "No"]),
        ("", []),
        ("not json", []),
        (None, []),
        ('{"a": 1}', []),
    ],
)
def test_decoding_tolerates_lists_empty_and_broken_values(value: Any, expected: list[str]) -> None:
    assert decode_json_string_fields({"outcomes": value})["outcomes"] == expected

"""Tests of the safety-net poller's pure core: which wallets, which window, which pages, which watermark."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from producers.poller import advance_watermark, is_last_page, plan_poll, read_window, select_wallets
from schemas.trades import TradeSource
from tests.builders import OTHER_TRADER, TRADER, build_trade, build_trade_payload, build_wallet

SYNCED = "0x" + "ef" * 20
NOW_SECS = 1_790_000_000
NOW_MS = NOW_SECS * 1000 + 123


class FakeTradesClient:
    """Serves one wallet's rows newest first with offset pages, like the Data API; records every request."""

    def __init__(self, rows: list[dict[str, Any]], honours_start: bool = False) -> None:
        self.rows = sorted(rows, key=lambda row: int(row["timestamp"]), reverse=True)
        self.honours_start = honours_start
        self.requests: list[dict[str, Any]] = []

    def fetch_user_trades(
        self, wallet: str, *, start_secs: int | None = None, limit: int = 500, offset: int = 0
    ) -> list[dict[str, Any]]:
        self.requests.append({"wallet": wallet, "start_secs": start_secs, "limit": limit, "offset": offset})
        rows = [
            row
            for row in self.rows
            if not self.honours_start or start_secs is None or int(row["timestamp"]) >= start_secs
        ]
        return rows[offset : offset + limit]


def fills(count: int, newest: int = NOW_SECS, step: int = 10) -> list[dict[str, Any]]:
    """`count` distinct fills of TRADER, `step` seconds apart, the newest at `newest`."""
    return [
        build_trade_payload(timestamp=newest - index * step, transactionHash="0x" + f"{index:064x}")
        for index in range(count)
    ]


# --- which wallets ------------------------------------------------------------------------------------------
def test_enabled_wallets_targets_are_polled_and_disabled_ones_are_not() -> None:
    wallets = [
        build_wallet(id="a", targets=(TRADER,)),
        build_wallet(id="b", targets=(OTHER_TRADER,), enabled=False),
    ]
    assert select_wallets(wallets, [SYNCED]) == (TRADER,)


def test_a_wallet_without_targets_brings_in_the_synced_traders() -> None:
    wallets = [build_wallet(id="a", targets=(TRADER,)), build_wallet(id="b", targets=())]
    mixed_case = "0x" + SYNCED[2:].upper()
    assert select_wallets(wallets, [mixed_case, TRADER]) == tuple(sorted((TRADER, SYNCED)))


def test_synced_traders_are_not_polled_when_only_a_disabled_wallet_follows_them() -> None:
    wallets = [build_wallet(id="b", targets=(), enabled=False)]
    assert select_wallets(wallets, [SYNCED]) == ()


# --- which window -------------------------------------------------------------------------------------------
def test_window_starts_overlap_seconds_before_the_watermark() -> None:
    assert plan_poll(NOW_SECS - 300, NOW_SECS, overlap_secs=120, first_lookback_secs=420) == NOW_SECS - 420


def test_a_wallet_never_polled_looks_back_one_interval_plus_the_overlap_only() -> None:
    assert plan_poll(None, NOW_SECS, overlap_secs=120, first_lookback_secs=420) == NOW_SECS - 420


@given(
    st.one_of(st.none(), st.integers(min_value=0, max_value=2 * NOW_SECS)),
    st.integers(min_value=0, max_value=10**6),
)
def test_window_never_starts_after_the_watermark_or_below_zero(watermark: int | None, overlap: int) -> None:
    start = plan_poll(watermark, NOW_SECS, overlap, first_lookback_secs=420)
    assert start >= 0
    if watermark is not None:
        assert start <= watermark


# --- which watermark ----------------------------------------------------------------------------------------
def test_watermark_moves_to_the_newest_fill_and_never_back() -> None:
    trades = [build_trade(timestamp=NOW_SECS - 50), build_trade(timestamp=NOW_SECS - 5)]
    assert advance_watermark(None, trades) == NOW_SECS - 5
    assert advance_watermark(NOW_SECS - 60, trades) == NOW_SECS - 5
    assert advance_watermark(NOW_SECS, trades) == NOW_SECS
    assert advance_watermark(NOW_SECS - 60, []) == NOW_SECS - 60
    assert advance_watermark(None, []) is None


# --- which pages --------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("count", "oldest", "expected"),
    [
        (3, NOW_SECS, True),  # short page: nothing older exists
        (5, NOW_SECS, False),  # full page, all inside the window: there may be more
        (5, NOW_SECS - 10_000, True),  # full page reaching past the start: older pages are outside
    ],
)
def test_last_page_when_short_or_past_the_window_start(count: int, oldest: int, expected: bool) -> None:
    rows = [{"timestamp": NOW_SECS}] * (count - 1) + [{"timestamp": oldest}]
    assert is_last_page(rows, page_size=5, start_secs=NOW_SECS - 100) is expected


def test_read_window_keeps_only_fills_inside_the_window_when_the_venue_ignores_start() -> None:
    client = FakeTradesClient(fills(30), honours_start=False)  # 0..290 s old

    poll = read_window(client, TRADER, NOW_SECS - 95, received_at_ms=NOW_MS, page_size=4, max_pages=10)

    assert [trade.timestamp for trade in poll.trades] == [NOW_SECS - 10 * i for i in range(10)]
    assert all(trade.source is TradeSource.POLL and trade.received_at_ms == NOW_MS for trade in poll.trades)
    assert poll.fetched == 10 and not poll.truncated
    # it stops after the page that crosses the window start
    assert [request["offset"] for request in client.requests] == [0, 4, 8]
    assert all(request["start_secs"] == NOW_SECS - 95 for request in client.requests)


def test_read_window_stops_at_max_pages_and_says_it_was_truncated() -> None:
    client = FakeTradesClient(fills(30), honours_start=True)

    poll = read_window(client, TRADER, NOW_SECS - 10_000, received_at_ms=NOW_MS, page_size=5, max_pages=3)

    assert len(poll.trades) == 15 and poll.truncated
    assert [request["offset"] for request in client.requests] == [0, 5, 10]


def test_read_window_keeps_one_copy_of_a_fill_repeated_by_shifting_pages() -> None:
    rows = fills(6)
    client = FakeTradesClient(rows + [rows[2], rows[3]], honours_start=True)

    poll = read_window(client, TRADER, NOW_SECS - 1000, received_at_ms=NOW_MS, page_size=3, max_pages=5)

    assert len(poll.trades) == 6 and poll.fetched == 8
    assert len({trade.dedup_key for trade in poll.trades}) == 6


def test_read_window_sets_aside_unreadable_rows_with_the_reason() -> None:
    good = build_trade_payload(timestamp=NOW_SECS - 1)
    bad_price = build_trade_payload(timestamp=NOW_SECS - 2, price=1.5, transactionHash="0x" + "22" * 32)
    no_side = build_trade_payload(timestamp=NOW_SECS - 3)
    del no_side["side"]
    bad_time = build_trade_payload(timestamp="yesterday", transactionHash="0x" + "33" * 32)
    client = FakeTradesClient([good, bad_price, no_side])
    client.rows.append(bad_time)

    poll = read_window(client, TRADER, NOW_SECS - 100, received_at_ms=NOW_MS, page_size=10, max_pages=1)

    assert [trade.timestamp for trade in poll.trades] == [NOW_SECS - 1]
    reasons = [reason for reason, _ in poll.refused]
    assert len(reasons) == 3
    assert any("price" in reason for reason in reasons) and any("'side'" in reason for reason in reasons)

"""The end-of-run summary: counts, de-duplication of re-delivered messages, latency percentiles, rendering."""

from __future__ import annotations

import math
from decimal import Decimal
from fractions import Fraction

import pytest
from hypothesis import given
from hypothesis import strategies as st

from polycopy.tools.summary import RunSummary, is_replayed, percentile
from schemas.orders import OrderStatus
from schemas.trades import TradeSource
from tests.builders import RECEIVED_AT_MS, build_decision, build_order_event, build_trade

D = Decimal


# --- percentile -----------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("values", "fraction", "expected"),
    [
        ([5.0], 0.5, 5.0),
        ([4.0, 1.0, 3.0, 2.0], 0.5, 2.0),
        ([4.0, 1.0, 3.0, 2.0], 0.75, 3.0),
        ([4.0, 1.0, 3.0, 2.0], 0.76, 4.0),
        ([4.0, 1.0, 3.0, 2.0], 1.0, 4.0),
        ([4.0, 1.0, 3.0, 2.0], 0.0, 1.0),
        ([float(n) for n in range(1, 101)], 0.99, 99.0),
        ([float(n) for n in range(1, 101)], 0.07, 7.0),  # 0.07 x 100 is 7.000000000000001 in floating point
        ([float(n) for n in range(1, 201)], 0.14, 28.0),
    ],
)
def test_percentile_is_the_nearest_rank(values: list[float], fraction: float, expected: float) -> None:
    assert percentile(values, fraction) == expected


def test_percentile_of_nothing_is_none() -> None:
    assert percentile([], 0.5) is None


@given(
    values=st.lists(st.integers(-(10**6), 10**6).map(float), min_size=1, max_size=300),
    hundredths=st.integers(0, 100),
)
def test_percentile_matches_the_exact_nearest_rank_definition(values: list[float], hundredths: int) -> None:
    fraction = hundredths / 100
    rank = max(math.ceil(Fraction(hundredths, 100) * len(values)), 1)  # exact arithmetic, no float error

    assert percentile(values, fraction) == sorted(values)[rank - 1]


# --- RunSummary.build -----------------------------------------------------------------------------------
def test_duplicate_trades_are_counted_once_and_reported() -> None:
    first, second = build_trade(size=D("1")), build_trade(size=D("2"))
    again = build_trade(size=D("1"), feed_type="orders_matched", received_at_ms=RECEIVED_AT_MS + 5)

    summary = RunSummary.build([first, second, again], [], [])

    assert (summary.trades_seen, summary.duplicate_trades) == (2, 1)


def test_decisions_are_deduplicated_by_id_and_counted_by_reason() -> None:
    decisions = [
        build_decision(wallet_id="a", reason="copy", action="copy"),
        build_decision(wallet_id="a", reason="copy", action="copy"),  # re-delivered
        build_decision(wallet_id="b", reason="capital_exhausted"),
        build_decision(wallet_id="c", reason="capital_exhausted", dedup_key="f" * 32),
    ]

    summary = RunSummary.build([], decisions, [])

    assert summary.decisions == 3
    assert summary.decisions_by_reason == {"copy": 1, "capital_exhausted": 2}
    assert summary.targeted_trades == 2  # two distinct fills were evaluated


def test_orders_count_their_latest_status_and_filled_notional() -> None:
    other = "paper-other"
    events = [
        build_order_event("placed", 1, sent_at_ms=RECEIVED_AT_MS + 40),
        build_order_event("partially_filled", 2, matched_size=D("8"), average_price=D("0.50")),
        build_order_event("cancelled", 3, matched_size=D("8"), average_price=D("0.50")),
        build_order_event("placed", 1, order_id=other, sent_at_ms=RECEIVED_AT_MS + 60),
        build_order_event("filled", 2, order_id=other, matched_size=D("20")),  # no average: the limit, 0.52
    ]

    summary = RunSummary.build([], [], list(reversed(events)))

    assert summary.orders_by_status == {"cancelled": 1, "filled": 1}
    assert summary.orders == 2
    assert summary.filled_usdc == D("8") * D("0.50") + D("20") * D("0.52")
    assert sorted(summary.latencies_ms) == [40.0, 60.0]


def test_a_re_delivered_placed_event_counts_its_latency_once() -> None:
    placed = build_order_event(OrderStatus.PLACED, 1, sent_at_ms=RECEIVED_AT_MS + 40)

    summary = RunSummary.build([], [], [placed, placed, placed])

    assert summary.latencies_ms == [40.0]
    assert summary.orders == 1


def test_events_without_a_receive_time_add_no_latency() -> None:
    summary = RunSummary.build([], [], [build_order_event("placed", 1, received_at_ms=0)])

    assert summary.latencies_ms == []


# --- rendering ------------------------------------------------------------------------------------------
def test_render_lists_counts_reasons_statuses_and_latency() -> None:
    trade = build_trade()
    summary = RunSummary.build(
        [trade, trade],
        [build_decision(reason="copy", action="copy")],
        [build_order_event("placed", 1, sent_at_ms=RECEIVED_AT_MS + 40)],
        dead_letters=2,
    )

    text = summary.render()

    assert "trades seen              1  (+1 duplicates dropped)" in text
    assert "trades from targets      1" in text
    assert "  copy                   1" in text
    assert "orders                   1  (filled 0.00 USDC)" in text
    assert "  placed                 1" in text
    assert "signal -> order latency  p50 40 ms, p99 40 ms over 1 orders" in text
    assert text.endswith("dead letters             2")


def test_render_says_when_no_orders_were_placed_or_trades_were_replayed() -> None:
    empty = RunSummary.build([], [], [])

    assert "signal -> order latency  no orders placed" in empty.render()
    assert "n/a (replayed trades keep their recorded receive times)" in empty.render(replayed=True)
    assert "duplicates" not in empty.render()


@pytest.mark.parametrize(
    ("sources", "expected"), [((), False), (("rtds", "poll"), False), (("rtds", "replay"), True)]
)
def test_a_run_is_replayed_when_any_trade_came_from_a_replay(
    sources: tuple[str, ...], expected: bool
) -> None:
    trades = [build_trade(source=TradeSource(source), size=D(n + 1)) for n, source in enumerate(sources)]

    assert is_replayed(trades) is expected

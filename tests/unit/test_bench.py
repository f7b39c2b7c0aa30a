"""The benchmark's pure helpers: wallets, dedup in receive order, first report per order, latency splits."""

from __future__ import annotations

import pytest

from polycopy.tools.bench_figures import (
    LatencyStats,
    build_bench_wallets,
    first_report_per_order,
    ratio,
    split_by_receive_time,
    unique_in_receive_order,
)
from schemas.orders import OrderType, ReportKind
from tests.builders import OTHER_TRADER, RECEIVED_AT_MS, TRADER, build_intent, build_report, build_trade


def test_bench_wallets_are_fak_with_half_liquidity_and_follow_the_top_traders() -> None:
    wallets = build_bench_wallets([TRADER, OTHER_TRADER])

    assert len({wallet.id for wallet in wallets}) == len(wallets) >= 3
    assert all(wallet.order_type is OrderType.FAK for wallet in wallets)
    assert all(str(wallet.liquidity_min_fill_ratio) == "0.5" for wallet in wallets)
    assert all(wallet.follows(TRADER) for wallet in wallets)


def test_duplicate_fills_keep_their_first_copy_and_trades_come_out_in_receive_order() -> None:
    late = build_trade(received_at_ms=RECEIVED_AT_MS + 10)
    early = build_trade(received_at_ms=RECEIVED_AT_MS, transaction_hash="0x" + "f2" * 32)
    late_copy = build_trade(received_at_ms=RECEIVED_AT_MS + 20)

    assert unique_in_receive_order([late, early, late_copy]) == [early, late]


def test_only_the_first_report_of_an_order_is_kept() -> None:
    intent = build_intent()
    fill = build_report(ReportKind.FILL, intent=intent)
    cancel = build_report(ReportKind.CANCELLED, intent=intent)
    other = build_report(intent=build_intent(dedup_key="d" * 32))

    assert first_report_per_order([fill, cancel, other]) == [fill, other]


def test_latency_stats_of_no_samples_is_none_and_of_samples_is_nearest_rank() -> None:
    assert LatencyStats.of([]) is None
    assert LatencyStats.of([float(v) for v in range(1, 101)]) == LatencyStats(50.0, 99.0, 100.0, 100)


@pytest.mark.parametrize(("numerator", "denominator", "expected"), [(10, 4, 2.5), (1, 0, float("inf"))])
def test_ratio_over_zero_is_infinite(numerator: float, denominator: float, expected: float) -> None:
    assert ratio(numerator, denominator) == expected


def test_a_growing_latency_shows_in_the_last_window_and_not_in_the_first() -> None:
    samples = [(t, 10.0 + t) for t in range(0, 20_000, 100)]

    early, late = split_by_receive_time(samples, 5_000)

    assert early is not None and late is not None
    assert early < 5_100 < late
    assert split_by_receive_time([], 5_000) == (None, None)

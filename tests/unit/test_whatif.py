"""What-if replay on the copy engine: the live rules (synced traders, trader stats, market reference data),
the gate on the book it is given, paper fills on the gate's levels, deterministic decisions, PnL marks."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import pytest

from polycopy.tools.whatif import parse_time_ms
from processors.core.engine import StaticReference
from processors.core.whatif import WhatIfRun
from schemas.base import Side
from schemas.portfolio import MarketResolution
from schemas.reference import MarketReference, TraderReference
from schemas.wallets import WalletConfig
from tests.builders import (
    ASSET,
    CONDITION_ID,
    OTHER_ASSET,
    TRADER,
    build_book,
    build_resolution,
    build_trade,
    build_wallet,
)

DEEP = build_book(asks=[("0.50", "1000"), ("0.60", "1000")], bids=[("0.70", "1000"), ("0.40", "1000")])


def window() -> list:  # type: ignore[type-arg]
    return [
        build_trade(
            transaction_hash="0x" + f"{n:064x}",
            price=Decimal("0.40") + Decimal(n) / 100,
            received_at_ms=1_790_000_000_000 + n * 1000,
            timestamp=1_790_000_000 + n - 2,
        )
        for n in range(10)
    ]


def run_of(*wallets: WalletConfig, **reference: object) -> WhatIfRun:
    return WhatIfRun(StaticReference.build(wallets, **reference))  # type: ignore[arg-type]


def market(**fields: object) -> MarketReference:
    values: dict[str, object] = {
        "condition_id": CONDITION_ID,
        "token_ids": (ASSET,),
        "tick_size": Decimal("0.01"),
        "min_order_size": Decimal("5"),
        "updated_at_ms": 1,
    } | fields
    return MarketReference(**values)  # type: ignore[arg-type]


def test_replaying_the_same_window_twice_gives_identical_decisions() -> None:
    wallets = [build_wallet(id="a"), build_wallet(id="b", sizing={"mode": "ratio", "value": "0.5"})]
    first_run, second_run = run_of(*wallets), run_of(*wallets)
    first = [r.decision for t in window() for r in first_run.feed(t, DEEP)]
    second = [r.decision for t in window() for r in second_run.feed(t, DEEP)]
    key = [(d.decision_id, d.reason, d.size, d.limit_price) for d in first]
    assert key == [(d.decision_id, d.reason, d.size, d.limit_price) for d in second]
    assert {d.reason for d in first} == {"copy", "insufficient_liquidity"}  # asks from 0.50 up


def test_a_trade_logged_twice_is_evaluated_once() -> None:
    run = run_of(build_wallet())
    trade = build_trade()
    assert len(run.feed(trade, DEEP)) == 1
    assert run.feed(trade, DEEP) == []
    assert run.finish()[0].considered == 1


def test_copies_are_marked_to_the_last_price_seen_later_in_the_log() -> None:
    run = run_of(build_wallet(max_slippage=Decimal("0"), sizing={"mode": "fixed_usdc", "value": "10"}))
    run.feed(build_trade(price=Decimal("0.50"), size=Decimal("100")), DEEP)
    run.feed(
        build_trade(proxy_wallet="0x" + "99" * 20, price=Decimal("0.60"), transaction_hash="0x" + "22" * 32),
        DEEP,
    )
    report = run.finish()[0]
    assert (report.copied, report.capital_used_usdc) == (1, Decimal("10.00"))
    assert report.unrealised_pnl_usdc == Decimal("20") * Decimal("0.60") - Decimal("10.00")
    assert report.skipped == {}


def test_a_leader_sell_mirrors_the_copy_and_realises_pnl() -> None:
    run = run_of(build_wallet(max_slippage=Decimal("0")))
    run.feed(build_trade(side=Side.BUY, price=Decimal("0.50"), size=Decimal("100")), DEEP)
    run.feed(
        build_trade(
            side=Side.SELL, price=Decimal("0.70"), size=Decimal("100"), transaction_hash="0x" + "33" * 32
        ),
        DEEP,
    )
    report = run.finish()[0]
    assert report.copied == 2
    assert report.realised_pnl_usdc == Decimal("20") * (Decimal("0.70") - Decimal("0.50"))
    assert report.unrealised_pnl_usdc == 0


def test_a_copy_fills_only_what_the_gates_levels_hold_and_the_rest_is_released() -> None:
    """Not 'every copy fills at its limit': a FAK takes the 8 shares the book had and frees the rest."""
    thin = build_book(asks=[("0.50", "8")])
    run = run_of(build_wallet(liquidity_min_fill_ratio=Decimal("0.1"), max_slippage=Decimal("0")))
    [evaluation] = run.feed(build_trade(price=Decimal("0.50")), thin)
    assert evaluation.decision.reason == "copy" and evaluation.decision.size == Decimal("20")
    ledger = run.pipeline.state_of("copy-1").ledger
    assert ledger.positions[ASSET].shares == Decimal("8") and ledger.reserved == 0
    assert run.finish()[0].capital_used_usdc == Decimal("4.00")


def test_a_wallet_without_targets_follows_the_synced_traders() -> None:
    star = TraderReference(wallet=TRADER, win_rate=Decimal("0.9"), updated_at_ms=1)
    run = run_of(build_wallet(targets=()), traders=[star])
    assert [r.decision.reason for r in run.feed(build_trade(), DEEP)] == ["copy"]
    assert run_of(build_wallet(targets=())).feed(build_trade(), DEEP) == []


@pytest.mark.parametrize(("win_rate", "reason"), [("0.8", "copy"), ("0.55", "edge_below_min")])
def test_min_edge_reads_the_traders_win_rate(win_rate: str, reason: str) -> None:
    trader = TraderReference(wallet=TRADER, win_rate=Decimal(win_rate), updated_at_ms=1)
    run = run_of(build_wallet(min_edge=Decimal("0.1")), traders=[trader])
    assert [r.decision.reason for r in run.feed(build_trade(price=Decimal("0.50")), DEEP)] == [reason]


@pytest.mark.parametrize(("category", "reason"), [("Sports", "copy"), ("Politics", "category_denied")])
def test_categories_allow_reads_the_markets_category(category: str, reason: str) -> None:
    run = run_of(build_wallet(categories_allow=("sports",)), markets=[market(category=category)])
    assert [r.decision.reason for r in run.feed(build_trade(), DEEP)] == [reason]


@pytest.mark.parametrize(("days_left", "reason"), [(30, "copy"), (1, "market_closed")])
def test_min_days_to_end_reads_the_markets_end_date(days_left: int, reason: str) -> None:
    trade = build_trade()
    end = trade.timestamp * 1000 + days_left * 86_400_000
    run = run_of(build_wallet(min_days_to_end=Decimal("7")), markets=[market(end_date_ms=end)])
    assert [r.decision.reason for r in run.feed(trade, DEEP)] == [reason]


def test_the_market_references_tick_size_sets_the_limit() -> None:
    run = run_of(build_wallet(max_slippage=Decimal("0.015")), markets=[market(tick_size=Decimal("0.001"))])
    [evaluation] = run.feed(build_trade(price=Decimal("0.50")), DEEP)
    assert evaluation.decision.limit_price == Decimal("0.515")


def test_without_a_book_a_copy_is_a_recorded_book_unavailable_skip() -> None:
    run = run_of(build_wallet(), markets=[market()])
    [evaluation] = run.feed(build_trade(), None)
    assert (evaluation.decision.reason, evaluation.decision.book_id) == ("book_unavailable", None)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2026-11-20T12:00:00Z", 1_795_176_000_000),
        ("2026-11-20T12:00:00", 1_795_176_000_000),
        ("1795176000", 1_795_176_000_000),
        ("1795176000000", 1_795_176_000_000),
        ("90m", 1_800_000_000_000 - 90 * 60_000),
        ("2h", 1_800_000_000_000 - 2 * 3_600_000),
        ("1d", 1_800_000_000_000 - 86_400_000),
    ],
)
def test_times_are_read_as_iso_epoch_or_age(text: str, expected: int) -> None:
    assert parse_time_ms(text, now_ms=1_800_000_000_000) == expected


def test_an_unreadable_time_is_refused_with_the_forms_accepted() -> None:
    with pytest.raises(ValueError, match="ISO 8601"):
        parse_time_ms("yesterday", now_ms=1)


# --- settlement within the window ---------------------------------------------------------------------------
def window_at_half() -> list:  # type: ignore[type-arg]
    """Ten trades at 0.50 a second apart: a wallet without slippage copies each at the book's 0.50 ask."""
    return [
        build_trade(
            transaction_hash="0x" + f"{n + 100:064x}",
            price=Decimal("0.50"),
            received_at_ms=1_790_000_000_000 + n * 1000,
            timestamp=1_790_000_000 + n - 2,
        )
        for n in range(10)
    ]


def settling_run(*resolutions: MarketResolution, **reference: object) -> WhatIfRun:
    wallet = build_wallet(max_slippage=Decimal("0"), capital_usdc=Decimal("100"))
    return WhatIfRun(StaticReference.build([wallet], **reference), resolutions)  # type: ignore[arg-type]


def test_a_market_that_resolves_within_the_window_settles_when_the_replay_reaches_it() -> None:
    trades = window_at_half()
    resolution = build_resolution(ASSET, resolved_at_ms=trades[2].received_at_ms + 1)
    run = settling_run(resolution)
    run.feed(trades[0], DEEP)  # copies 20 shares at 0.50
    assert run.settled == []
    run.feed(trades[3], DEEP)  # after the resolution: settled first; then the market is closed
    [report] = run.finish(trades[-1].received_at_ms)

    assert run.settled == [resolution]
    assert report.snapshot is not None
    assert (report.snapshot.realised_pnl_usdc, report.snapshot.available_usdc) == (
        Decimal("10"),
        Decimal("110"),
    )
    assert (report.snapshot.settled_positions, report.snapshot.win_rate) == (1, Decimal(1))
    assert report.realised_pnl_usdc == Decimal("10") and report.unrealised_pnl_usdc == 0
    assert [point.total_usdc for point in report.history][-1] == Decimal("10")
    assert report.copied == 1 and report.skipped == {"market_closed": 1}


def test_a_market_closed_now_was_open_for_the_trades_before_its_resolution() -> None:
    trades = window_at_half()
    resolution = build_resolution(OTHER_ASSET, resolved_at_ms=trades[5].received_at_ms)
    closed_now = market(closed=True, accepting_orders=False)
    run = settling_run(resolution, markets=[closed_now])
    [before] = run.feed(trades[0], DEEP)
    [after] = run.feed(trades[6], DEEP)
    assert (before.decision.reason, after.decision.reason) == ("copy", "market_closed")
    [report] = run.finish()
    assert report.realised_pnl_usdc == Decimal("-10")  # the copy's 20 shares paid nothing
    assert report.snapshot is not None and report.snapshot.deployed_usdc == 0


def test_a_resolution_after_the_windows_end_is_not_applied() -> None:
    trades = window_at_half()
    run = settling_run(build_resolution(ASSET, resolved_at_ms=trades[-1].received_at_ms + 10_000))
    run.feed(trades[0], DEEP)
    [report] = run.finish(trades[-1].received_at_ms)
    assert (
        run.settled == [] and report.snapshot is not None and report.snapshot.deployed_usdc == Decimal("10")
    )


def test_a_pnl_chart_is_written_per_wallet(tmp_path: Path) -> None:
    from polycopy.tools.chart import write_pnl_charts

    trades = window_at_half()
    run = settling_run(build_resolution(ASSET, resolved_at_ms=trades[4].received_at_ms))
    for trade in trades:
        run.feed(trade, DEEP)
    [path] = write_pnl_charts(run.finish(trades[-1].received_at_ms), tmp_path / "charts")
    assert path.name == "copy-1-pnl.png" and path.read_bytes().startswith(b"\x89PNG")

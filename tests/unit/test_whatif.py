"""What-if replay: deterministic decisions over a logged window, gate on the leader's own fill, PnL marks."""

from __future__ import annotations

from decimal import Decimal

import pytest

from polycopy.tools.whatif import parse_time_ms
from processors.core.whatif import WhatIfRun, book_from_trade
from schemas.base import Side
from tests.builders import build_trade, build_wallet


def window() -> list:  # type: ignore[type-arg]
    return [
        build_trade(
            transaction_hash="0x" + f"{n:064x}",
            price=Decimal("0.40") + Decimal(n) / 100,
            received_at_ms=1_790_000_000_000 + n * 1000,
        )
        for n in range(10)
    ]


def test_a_buy_gate_sees_the_leaders_fill_as_ask_liquidity() -> None:
    trade = build_trade(side=Side.BUY, price=Decimal("0.42"), size=Decimal("30"))
    book = book_from_trade(trade)
    assert [(level.price, level.size) for level in book.asks] == [(Decimal("0.42"), Decimal("30"))]
    assert book.bids == ()


def test_replaying_the_same_window_twice_gives_identical_decisions() -> None:
    wallets = [build_wallet(id="a"), build_wallet(id="b", sizing={"mode": "ratio", "value": "0.5"})]
    first = [r.decision for t in window() for r in WhatIfRun(wallets).feed(t)]
    again_run = WhatIfRun(wallets)
    second = [r.decision for t in window() for r in again_run.feed(t)]
    key = [(d.decision_id, d.reason, d.size, d.limit_price) for d in first]
    assert key == [(d.decision_id, d.reason, d.size, d.limit_price) for d in second]


def test_a_trade_logged_twice_is_evaluated_once() -> None:
    run = WhatIfRun([build_wallet()])
    trade = build_trade()
    assert len(run.feed(trade)) == 1
    assert run.feed(trade) == []
    assert run.finish()[0].considered == 1


def test_copies_are_marked_to_the_last_price_seen_later_in_the_log() -> None:
    run = WhatIfRun([build_wallet(max_slippage=Decimal("0"), sizing={"mode": "fixed_usdc", "value": "10"})])
    run.feed(build_trade(price=Decimal("0.50"), size=Decimal("100")))
    run.feed(
        build_trade(proxy_wallet="0x" + "99" * 20, price=Decimal("0.60"), transaction_hash="0x" + "22" * 32)
    )
    report = run.finish()[0]
    assert (report.copied, report.capital_used_usdc) == (1, Decimal("10.00"))
    assert report.unrealised_pnl_usdc == Decimal("20") * Decimal("0.60") - Decimal("10.00")
    assert report.skipped == {}


def test_a_leader_sell_mirrors_the_copy_and_realises_pnl() -> None:
    run = WhatIfRun([build_wallet(max_slippage=Decimal("0"))])
    run.feed(build_trade(side=Side.BUY, price=Decimal("0.50"), size=Decimal("100")))
    run.feed(
        build_trade(
            side=Side.SELL, price=Decimal("0.70"), size=Decimal("100"), transaction_hash="0x" + "33" * 32
        )
    )
    report = run.finish()[0]
    assert report.copied == 2
    assert report.realised_pnl_usdc == Decimal("20") * (Decimal("0.70") - Decimal("0.50"))
    assert report.unrealised_pnl_usdc == 0


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

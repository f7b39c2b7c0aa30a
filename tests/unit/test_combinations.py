"""Combinations that mutations of the policy and the ledger used to survive: a SELL while a BUY is open on the
same token, a wallet's capital changed under a live ledger, a market that stopped accepting orders, category
lists in mixed case, a gain and a loss on the same day."""

from __future__ import annotations

from decimal import Decimal

import pytest

from processors.core.ledger import WalletLedger
from processors.core.policy import MarketInfo, day_of, evaluate_trade
from schemas.base import Side
from schemas.reference import MarketReference
from tests.builders import (
    ASSET,
    CONDITION_ID,
    NOW_MS,
    RECEIVED_AT_MS,
    TRADER,
    build_book,
    build_market,
    build_trade,
    build_wallet,
)

D = Decimal
DAY = day_of(RECEIVED_AT_MS)
BIDS = (("0.49", "100000"),)


def decide(trade, wallet, ledger, *, market=None, book=None):  # type: ignore[no-untyped-def]
    return evaluate_trade(
        trade,
        wallet,
        ledger,
        market=market or build_market(),
        book=book or build_book(bids=BIDS),
        now_ms=NOW_MS,
    )


def buy_open(ledger: WalletLedger, intent: str, shares: str, filled: str, price: str = "0.40") -> None:
    ledger.reserve(
        intent,
        asset=ASSET,
        condition_id=CONDITION_ID,
        side=Side.BUY,
        size=D(shares),
        limit_price=D(price),
        leader=TRADER,
    )
    if D(filled):
        ledger.apply_fill(intent, D(filled), D(price), DAY)


def identity_holds(ledger: WalletLedger) -> bool:
    return ledger.available + ledger.reserved + ledger.deployed == ledger.capital_usdc + ledger.realised_pnl


def test_a_sell_while_a_buy_is_open_on_the_token_sells_only_the_filled_part_and_keeps_the_buy_open() -> None:
    ledger = WalletLedger(D("1000"))
    buy_open(ledger, "open-buy", "100", "40")  # 40 of 100 filled, 60 still reserved at 0.40
    ledger.observe_leader_trade(TRADER, ASSET, Side.BUY, D("200"))

    result = decide(build_trade(side=Side.SELL, size=D("100")), build_wallet(), ledger)

    assert (result.decision.reason, result.decision.size) == ("copy", D("20"))  # half of the 40 we hold
    assert ledger.reservations["open-buy"].open_size == D("60")  # the BUY rests on, untouched
    assert ledger.reserved == D("24")  # only the BUY's open 60 x 0.40 holds capital; the SELL holds shares
    assert ledger.sellable_shares(ASSET) == D("20")
    assert identity_holds(ledger)
    # The open BUY fills on: its shares become sellable, the SELL's stay offered.
    ledger.apply_fill("open-buy", D("100"), D("0.40"), DAY)
    assert ledger.sellable_shares(ASSET) == D("80") and identity_holds(ledger)


def test_a_sell_while_a_buy_is_open_and_nothing_filled_yet_is_no_position() -> None:
    ledger = WalletLedger(D("1000"))
    buy_open(ledger, "open-buy", "100", "0")
    ledger.observe_leader_trade(TRADER, ASSET, Side.BUY, D("200"))

    result = decide(build_trade(side=Side.SELL, size=D("100")), build_wallet(), ledger)

    assert result.decision.reason == "no_position"
    assert list(ledger.reservations) == ["open-buy"]


@pytest.mark.parametrize(
    ("capital", "reason", "size"),
    [
        ("2000", "copy", D("19.23")),  # raised: 1100 available, the fixed 10 USDC copy goes through
        ("905", "capital_exhausted", None),  # cut to 905: 900 reserved + 5 deployed leave nothing
        ("500", "capital_exhausted", None),  # cut below what is already held: never a negative reservation
    ],
)
def test_a_capital_change_under_a_live_ledger_applies_to_the_next_copy(
    capital: str, reason: str, size: Decimal | None
) -> None:
    ledger = WalletLedger(D("1000"))
    buy_open(ledger, "held", "2260", "12.5")  # 2260 x 0.40 = 904: 899 reserved, 5 deployed
    wallet = build_wallet(capital_usdc=D(capital))

    result = decide(build_trade(transaction_hash="0x" + "c1" * 32), wallet, ledger)

    assert (result.decision.reason, result.decision.size) == (reason, size)
    assert ledger.capital_usdc == D(capital)
    assert identity_holds(ledger)
    assert ledger.reserved >= 0 and ledger.deployed >= 0


def test_a_market_that_stopped_accepting_orders_is_closed_whatever_the_book_says() -> None:
    reference = MarketReference(
        condition_id=CONDITION_ID,
        token_ids=(ASSET,),
        closed=False,
        accepting_orders=False,
        tick_size=D("0.01"),
        updated_at_ms=1,
    )
    market = MarketInfo.combine(reference, build_book())
    assert market is not None and market.closed

    result = decide(build_trade(), build_wallet(), WalletLedger(D("1000")), market=market)

    assert result.decision.reason == "market_closed"
    open_market = MarketInfo.combine(reference.model_copy(update={"accepting_orders": True}), build_book())
    assert open_market is not None and not open_market.closed


@pytest.mark.parametrize(
    ("allow", "deny", "category", "tags", "expected"),
    [
        (("SpOrTs",), (), "sports", (), "copy"),
        (("SPORTS", "Crypto"), (), "Politics", ("sPoRtS",), "copy"),
        (("Sports",), (), "Politics", ("Elections",), "category_denied"),
        ((), ("ELECTIONS",), "Politics", ("elections",), "category_denied"),
        ((), ("CrYpTo",), "crypto", (), "category_denied"),
        (("Politics",), ("ELECTIONS",), "politics", ("Elections",), "category_denied"),
    ],
)
def test_wallet_category_lists_in_mixed_case_match_the_market_in_any_case(
    allow: tuple[str, ...], deny: tuple[str, ...], category: str, tags: tuple[str, ...], expected: str
) -> None:
    wallet = build_wallet(categories_allow=allow, categories_deny=deny)
    market = build_market(category=category, tags=tags)

    assert decide(build_trade(), wallet, WalletLedger(D("1000")), market=market).decision.reason == expected


def _sell_filled(ledger: WalletLedger, intent: str, shares: str, price: str, day: str) -> Decimal:
    ledger.reserve(
        intent,
        asset=ASSET,
        condition_id=CONDITION_ID,
        side=Side.SELL,
        size=D(shares),
        limit_price=D(price),
        leader=TRADER,
    )
    before = ledger.realised_pnl
    ledger.apply_fill(intent, D(shares), D(price), day)
    return ledger.realised_pnl - before


@pytest.mark.parametrize(("cap", "reason"), [("20", "copy"), ("19.999", "daily_loss_cap"), ("30", "copy")])
def test_a_gain_and_a_loss_on_the_same_day_net_out_against_the_daily_loss_cap(cap: str, reason: str) -> None:
    ledger = WalletLedger(D("1000"))
    buy_open(ledger, "buy", "200", "200", price="0.50")  # 200 shares at 0.50
    gain = _sell_filled(ledger, "sell-high", "100", "0.80", DAY)  # +30
    loss = _sell_filled(ledger, "sell-low", "100", "0.00001", DAY)  # about -50
    assert gain == D("30") and loss == D("-49.999")
    assert ledger.daily_loss(DAY) == D("19.999") and ledger.daily_realised[DAY] == gain + loss
    assert identity_holds(ledger)

    wallet = build_wallet(max_daily_loss_usdc=D(cap))
    result = decide(build_trade(transaction_hash="0x" + "d2" * 32), wallet, ledger)

    assert result.decision.reason == reason  # the day's net loss (19.999), not the loss alone (49.999)


def test_a_gain_on_one_day_never_offsets_a_loss_on_the_next() -> None:
    ledger = WalletLedger(D("1000"))
    buy_open(ledger, "buy", "200", "200", price="0.50")
    _sell_filled(ledger, "sell-high", "100", "0.80", day_of(RECEIVED_AT_MS - 86_400_000))  # yesterday +30
    _sell_filled(ledger, "sell-low", "100", "0.30", DAY)  # today -20

    assert ledger.daily_loss(DAY) == D("20")
    wallet = build_wallet(max_daily_loss_usdc=D("20"))
    assert decide(build_trade(transaction_hash="0x" + "d3" * 32), wallet, ledger).decision.reason == (
        "daily_loss_cap"
    )

"""The copy policy: every skip reason fires, rules run in their documented order, sizing, caps and limits."""

from __future__ import annotations

import itertools
from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import ROUND_DOWN, Decimal
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from processors.core.ids import build_intent_id
from processors.core.ledger import WalletLedger
from processors.core.policy import (
    Evaluation,
    MarketInfo,
    TraderStats,
    compute_limit_price,
    day_of,
    evaluate_trade,
)
from schemas.base import Side
from schemas.decisions import DecisionAction, SkipReason
from schemas.orders import ExecutionMode
from schemas.trades import TradeSource
from schemas.wallets import WalletConfig
from tests.builders import (
    ASSET,
    CONDITION_ID,
    NOW_MS,
    OTHER_ASSET,
    OTHER_TRADER,
    RECEIVED_AT_MS,
    TRADE_TIMESTAMP,
    TRADER,
    build_book,
    build_market,
    build_trade,
    build_wallet,
)

D = Decimal
DEEP_ASKS = (("0.50", "100000"), ("0.51", "100000"), ("0.52", "100000"))
DEEP_BIDS = (("0.49", "100000"), ("0.48", "100000"), ("0.47", "100000"))
_DEFAULT = object()


def evaluate(
    trade: Any = None,
    wallet: WalletConfig | None = None,
    ledger: WalletLedger | None = None,
    *,
    market: Any = _DEFAULT,
    book: Any = _DEFAULT,
    stats: TraderStats | None = None,
    followed: frozenset[str] = frozenset(),
    now_ms: int = NOW_MS,
) -> Evaluation:
    wallet = wallet or build_wallet()
    return evaluate_trade(
        trade or build_trade(),
        wallet,
        ledger if ledger is not None else WalletLedger(wallet.capital_usdc),
        market=build_market() if market is _DEFAULT else market,
        book=build_book() if book is _DEFAULT else book,
        trader_stats=stats,
        followed=followed,
        now_ms=now_ms,
    )


def hold_position(
    ledger: WalletLedger, shares: str, price: str = "0.40", asset: str = ASSET, leader: str = TRADER
) -> None:
    """Give the ledger a position by filling a BUY, copied from `leader`, in full."""
    intent = f"setup-buy-{asset[:6]}-{shares}-{leader[:6]}"
    ledger.reserve(
        intent,
        asset=asset,
        condition_id=CONDITION_ID,
        side=Side.BUY,
        size=D(shares),
        limit_price=D(price),
        leader=leader,
    )
    ledger.apply_fill(intent, D(shares), D(price), day_of(RECEIVED_AT_MS))


def reserve_open_order(ledger: WalletLedger, usdc: str, *, condition_id: str = "0x" + "77" * 32) -> None:
    """An open BUY order holding `usdc` (at 0.50 a share), in another market unless told."""
    ledger.reserve(
        f"setup-open-{usdc}-{condition_id[-4:]}",
        asset=OTHER_ASSET,
        condition_id=condition_id,
        side=Side.BUY,
        size=D(usdc) * 2,
        limit_price=D("0.50"),
    )


# --- one scenario per rule, and the order they are evaluated in --------------------------------------------
@dataclass(frozen=True)
class Breaker:
    """What to change in the default (copyable) scenario so that exactly one rule fails."""

    reason: str
    wallet: dict[str, Any] = field(default_factory=dict)
    trade: dict[str, Any] = field(default_factory=dict)
    market: dict[str, Any] | None = field(default_factory=dict)  # None: market unknown
    book: Any = _DEFAULT
    stats: TraderStats | None = None
    ledger: Callable[[WalletLedger], None] | None = None
    twice: bool = False  # evaluate the same trade twice and look at the second decision

    @property
    def name(self) -> str:
        return str(self.wallet.get("id", self.reason))


def _daily_loss_50(ledger: WalletLedger) -> None:
    ledger.daily_realised[day_of(RECEIVED_AT_MS)] = D("-50")


def _one_open_order(ledger: WalletLedger) -> None:
    reserve_open_order(ledger, "0.50")


# In evaluation order. Each breaker alone fails its own rule (checked below).
BREAKERS_IN_ORDER = [
    Breaker("not_target", trade={"proxy_wallet": OTHER_TRADER}),
    Breaker("side_disabled", wallet={"sides": (Side.SELL,)}),
    Breaker("market_unknown", market=None),
    Breaker("market_closed", market={"closed": True}),
    Breaker(
        "market_closed",
        wallet={"id": "ends-too-soon", "min_days_to_end": D("2")},
        market={"end_date_ms": TRADE_TIMESTAMP * 1000 + 86_400_000},
    ),
    Breaker("category_denied", wallet={"categories_deny": ("politics",)}, market={"category": "Politics"}),
    Breaker("signal_stale", wallet={"max_signal_age_secs": 1}),
    Breaker("leader_too_small", wallet={"min_leader_usdc": D("1000")}),
    Breaker("price_out_of_band", wallet={"price_min": D("0.60")}),
    Breaker("edge_below_min", wallet={"min_edge": D("0.10")}, stats=TraderStats(win_rate=D("0.55"))),
    Breaker("below_min_order_size", wallet={"max_order_usdc": D("2")}),
    Breaker("exposure_cap", wallet={"max_total_exposure_usdc": D("2")}),
    Breaker("daily_loss_cap", wallet={"max_daily_loss_usdc": D("50")}, ledger=_daily_loss_50),
    Breaker("open_orders_cap", wallet={"max_open_orders": 1}, ledger=_one_open_order),
    Breaker("capital_exhausted", wallet={"capital_usdc": D("2")}),
    Breaker("insufficient_liquidity", book=build_book(asks=[("0.60", "1000")])),
    Breaker("book_unavailable", book=None),
    Breaker("duplicate", twice=True),
]


def run_breakers(*breakers: Breaker) -> Evaluation:
    wallet_fields: dict[str, Any] = {}
    trade_fields: dict[str, Any] = {}
    market_fields: dict[str, Any] = {}
    market_unknown, book, stats, twice = False, _DEFAULT, None, False
    for breaker in breakers:
        wallet_fields |= breaker.wallet
        trade_fields |= breaker.trade
        if breaker.market is None:
            market_unknown = True
        else:
            market_fields |= breaker.market
        book = breaker.book if breaker.book is not _DEFAULT else book
        stats = breaker.stats or stats
        twice = twice or breaker.twice
    wallet = build_wallet(**wallet_fields)
    ledger = WalletLedger(wallet.capital_usdc)
    for breaker in breakers:
        if breaker.ledger:
            breaker.ledger(ledger)
    market = None if market_unknown else build_market(**market_fields)
    trade = build_trade(**trade_fields)
    first = evaluate(trade, wallet, ledger, market=market, book=book, stats=stats)
    return evaluate(trade, wallet, ledger, market=market, book=book, stats=stats) if twice else first


def test_the_default_scenario_is_copied() -> None:
    result = run_breakers()

    assert result.decision.action is DecisionAction.COPY
    assert result.decision.reason == "copy"


@pytest.mark.parametrize("breaker", BREAKERS_IN_ORDER, ids=lambda b: b.name)
def test_each_rule_alone_skips_with_its_reason(breaker: Breaker) -> None:
    result = run_breakers(breaker)

    assert result.decision.action is DecisionAction.SKIP
    assert result.decision.reason == breaker.reason
    assert result.intent is None


def test_the_breakers_cover_every_skip_reason_except_no_position() -> None:
    covered = {breaker.reason for breaker in BREAKERS_IN_ORDER}

    assert covered == {reason.value for reason in SkipReason} - {"no_position"}


_ORDER_PAIRS = [
    (earlier, later)
    for earlier, later in itertools.combinations(BREAKERS_IN_ORDER, 2)
    # the two book breakers cannot both apply; the two market_closed breakers share one position
    if {earlier.reason, later.reason}
    not in ({"insufficient_liquidity", "book_unavailable"}, {"market_closed"})
]


@pytest.mark.parametrize(("earlier", "later"), _ORDER_PAIRS, ids=lambda b: b.name)
def test_a_trade_failing_two_rules_reports_the_earlier_rule(earlier: Breaker, later: Breaker) -> None:
    result = run_breakers(later, earlier)

    assert result.decision.reason == earlier.reason


def test_the_first_failing_rule_wins_when_every_rule_fails() -> None:
    applicable = [b for b in BREAKERS_IN_ORDER if b.reason != "insufficient_liquidity"]

    assert run_breakers(*reversed(applicable)).decision.reason == "not_target"


# --- targets ----------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("wallet_fields", "followed", "expected"),
    [
        ({"targets": (TRADER,)}, frozenset(), "copy"),
        ({"targets": (TRADER.upper().replace("0X", "0x"),)}, frozenset(), "copy"),
        ({"targets": (OTHER_TRADER,)}, frozenset({TRADER}), "not_target"),
        ({"targets": ()}, frozenset({TRADER}), "copy"),
        ({"targets": ()}, frozenset({OTHER_TRADER}), "not_target"),
        ({"targets": (TRADER,), "enabled": False}, frozenset(), "not_target"),
    ],
    ids=[
        "listed",
        "listed-mixed-case",
        "other-target-ignores-followed",
        "synced-follow",
        "not-synced",
        "disabled",
    ],
)
def test_target_rule_follows_listed_or_synced_traders_of_enabled_wallets(
    wallet_fields: dict[str, Any], followed: frozenset[str], expected: str
) -> None:
    assert evaluate(wallet=build_wallet(**wallet_fields), followed=followed).decision.reason == expected


@pytest.mark.parametrize(
    ("allow", "deny", "category", "tags", "expected"),
    [
        (("sports",), (), "Sports", (), "copy"),
        (("sports",), (), "Politics", ("Sports",), "copy"),
        (("sports",), (), "Politics", (), "category_denied"),
        (("sports",), (), None, (), "category_denied"),
        ((), ("crypto",), "Crypto", (), "category_denied"),
        ((), ("crypto",), "Sports", ("crypto",), "category_denied"),
        ((), ("crypto",), None, (), "copy"),
    ],
)
def test_category_rule_matches_category_and_tags_case_insensitively(
    allow: tuple[str, ...], deny: tuple[str, ...], category: str | None, tags: tuple[str, ...], expected: str
) -> None:
    wallet = build_wallet(categories_allow=allow, categories_deny=deny)

    result = evaluate(wallet=wallet, market=build_market(category=category, tags=tags))

    assert result.decision.reason == expected


@pytest.mark.parametrize(("age_ms", "expected"), [(5_000, "copy"), (5_001, "signal_stale")])
def test_signal_age_at_the_limit_is_fresh_and_one_ms_over_is_stale(age_ms: int, expected: str) -> None:
    trade = build_trade(received_at_ms=TRADE_TIMESTAMP * 1000 + 100)

    result = evaluate(trade, build_wallet(max_signal_age_secs=5), now_ms=TRADE_TIMESTAMP * 1000 + age_ms)

    assert result.decision.reason == expected


def test_a_fresh_signal_decided_late_from_a_backlog_is_stale_at_the_decision_time() -> None:
    # Issue 8, defect 6: the age was receive time minus trade time, so an hour-old backlog passed as fresh.
    trade = build_trade(received_at_ms=TRADE_TIMESTAMP * 1000 + 2_000)

    result = evaluate(trade, build_wallet(), now_ms=TRADE_TIMESTAMP * 1000 + 3_600_000)

    assert (result.decision.reason, result.decision.detail) == ("signal_stale", "signal 3600000 ms old")


@pytest.mark.parametrize(("received_after_ms", "expected"), [(2_000, "copy"), (601_000, "signal_stale")])
def test_a_replayed_trade_is_judged_at_its_recorded_receive_time_not_at_the_replay(
    received_after_ms: int, expected: str
) -> None:
    trade = build_trade(received_at_ms=TRADE_TIMESTAMP * 1000 + received_after_ms, source=TradeSource.REPLAY)

    result = evaluate(trade, build_wallet(), now_ms=TRADE_TIMESTAMP * 1000 + 86_400_000)  # a day later

    assert result.decision.reason == expected


def test_a_replayed_trade_is_never_copied_by_a_live_wallet() -> None:
    trade = build_trade(source=TradeSource.REPLAY)

    result = evaluate(trade, build_wallet(mode=ExecutionMode.LIVE))

    assert (result.decision.reason, result.decision.detail) == (
        "signal_stale",
        "a replayed trade is never copied by a live wallet",
    )
    assert result.intent is None


@pytest.mark.parametrize(
    ("end_date_ms", "expected"),
    [
        (TRADE_TIMESTAMP * 1000 + 2 * 86_400_000, "copy"),
        (TRADE_TIMESTAMP * 1000 + 2 * 86_400_000 - 1, "market_closed"),
        (None, "market_closed"),
    ],
    ids=["exactly-min-days", "just-under", "no-end-date"],
)
def test_min_days_to_end_skips_markets_ending_too_soon(end_date_ms: int | None, expected: str) -> None:
    result = evaluate(
        wallet=build_wallet(min_days_to_end=D("2")), market=build_market(end_date_ms=end_date_ms)
    )

    assert result.decision.reason == expected


@pytest.mark.parametrize(
    ("min_leader", "price_min", "price_max", "expected"),
    [
        ("50", "0.01", "0.99", "copy"),  # leader notional 100 x 0.50 = 50: at the minimum
        ("50.01", "0.01", "0.99", "leader_too_small"),
        ("0", "0.50", "0.50", "copy"),  # band bounds are inclusive
        ("0", "0.51", "0.99", "price_out_of_band"),
        ("0", "0.01", "0.49", "price_out_of_band"),
    ],
)
def test_leader_size_and_price_band_bounds_are_inclusive(
    min_leader: str, price_min: str, price_max: str, expected: str
) -> None:
    wallet = build_wallet(min_leader_usdc=D(min_leader), price_min=D(price_min), price_max=D(price_max))

    assert evaluate(wallet=wallet).decision.reason == expected


@pytest.mark.parametrize(
    ("min_edge", "win_rate", "expected"),
    [
        ("0.05", "0.55", "copy"),
        ("0.05", "0.5499", "edge_below_min"),
        ("0.05", None, "edge_below_min"),
        ("0", None, "copy"),
    ],
    ids=["edge-at-min", "edge-under-min", "no-stats", "rule-off"],
)
def test_edge_rule_needs_win_rate_minus_price_at_least_min_edge(
    min_edge: str, win_rate: str | None, expected: str
) -> None:
    stats = TraderStats(win_rate=D(win_rate)) if win_rate else None

    result = evaluate(wallet=build_wallet(min_edge=D(min_edge)), stats=stats)

    assert result.decision.reason == expected
    if win_rate is None and expected != "copy":
        assert result.decision.detail == "no trader stats"


# --- sizing and caps --------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("sizing", "expected_shares"),
    [
        ({"mode": "fixed_usdc", "value": "10"}, "19.23"),  # 10 / 0.52 = 19.2307...
        ({"mode": "ratio", "value": "0.1"}, "9.61"),  # 0.1 x (100 x 0.50) = 5 USDC -> 9.615...
        ({"mode": "percent_of_capital", "value": "2"}, "38.46"),  # 2% of 1000 = 20 USDC -> 38.461...
    ],
)
def test_sizing_modes_give_shares_at_the_limit_rounded_down(
    sizing: dict[str, str], expected_shares: str
) -> None:
    result = evaluate(wallet=build_wallet(sizing=sizing))

    assert result.decision.reason == "copy"
    assert result.decision.limit_price == D("0.52")
    assert result.decision.size == D(expected_shares)
    assert result.intent is not None and result.intent.size == D(expected_shares)


@pytest.mark.parametrize(
    ("wallet_fields", "setup", "expected_shares"),
    [
        ({"max_order_usdc": D("6")}, None, "11.53"),
        (
            {"max_market_exposure_usdc": D("15")},
            lambda ledger: reserve_open_order(ledger, "10", condition_id=CONDITION_ID),
            "9.61",
        ),
        ({"max_market_exposure_usdc": D("15")}, lambda ledger: reserve_open_order(ledger, "10"), "19.23"),
        ({"max_total_exposure_usdc": D("15")}, lambda ledger: reserve_open_order(ledger, "10"), "9.61"),
        (
            {"max_total_exposure_usdc": D("15")},
            lambda ledger: hold_position(ledger, "25", "0.40", OTHER_ASSET),
            "9.61",
        ),
        ({"capital_usdc": D("8")}, None, "15.38"),
        ({"capital_usdc": D("20")}, lambda ledger: reserve_open_order(ledger, "15"), "9.61"),
        (
            {"max_daily_loss_usdc": D("50")},
            lambda ledger: ledger.daily_realised.update({day_of(RECEIVED_AT_MS): D("-49.99")}),
            "19.23",
        ),
        ({"max_open_orders": 2}, lambda ledger: reserve_open_order(ledger, "1"), "19.23"),
    ],
    ids=[
        "max-order",
        "market-exposure-same-market",
        "market-exposure-other-market",
        "total-exposure-reserved",
        "total-exposure-deployed",
        "available-capital",
        "available-after-reservation",
        "daily-loss-under-cap",
        "open-orders-under-cap",
    ],
)
def test_caps_only_reduce_the_size(
    wallet_fields: dict[str, Any], setup: Callable[[WalletLedger], None] | None, expected_shares: str
) -> None:
    wallet = build_wallet(**wallet_fields)
    ledger = WalletLedger(wallet.capital_usdc)
    if setup:
        setup(ledger)

    result = evaluate(wallet=wallet, ledger=ledger)

    assert result.decision.reason == "copy"
    assert result.decision.size == D(expected_shares)


@pytest.mark.parametrize(
    ("wallet_fields", "setup", "reason"),
    [
        ({"sizing": {"mode": "fixed_usdc", "value": "2.59"}}, None, "below_min_order_size"),  # 4.98 shares
        (
            {"max_market_exposure_usdc": D("12")},
            lambda ledger: reserve_open_order(ledger, "10", condition_id=CONDITION_ID),
            "exposure_cap",
        ),
        (
            {"max_total_exposure_usdc": D("10")},
            lambda ledger: reserve_open_order(ledger, "11"),
            "exposure_cap",
        ),
        ({"capital_usdc": D("12")}, lambda ledger: reserve_open_order(ledger, "10"), "capital_exhausted"),
    ],
    ids=["sizing", "market-exposure", "total-exposure-overdrawn", "capital"],
)
def test_a_cap_that_leaves_less_than_the_venue_minimum_skips_with_its_reason(
    wallet_fields: dict[str, Any], setup: Callable[[WalletLedger], None] | None, reason: str
) -> None:
    wallet = build_wallet(**wallet_fields)
    ledger = WalletLedger(wallet.capital_usdc)
    if setup:
        setup(ledger)
    reserved_before = ledger.reserved

    result = evaluate(wallet=wallet, ledger=ledger)

    assert result.decision.reason == reason
    assert ledger.reserved == reserved_before


@pytest.mark.parametrize(("budget", "expected"), [("2.60", "copy"), ("2.5999", "below_min_order_size")])
def test_venue_minimum_is_inclusive(budget: str, expected: str) -> None:
    wallet = build_wallet(sizing={"mode": "fixed_usdc", "value": budget})

    assert evaluate(wallet=wallet).decision.reason == expected  # 2.60 / 0.52 = 5 shares exactly


def test_the_minimum_comes_from_the_market_not_a_constant() -> None:
    wallet = build_wallet(sizing={"mode": "fixed_usdc", "value": "2"})  # 3.84 shares

    assert evaluate(wallet=wallet, market=build_market(min_order_size="1")).decision.reason == "copy"
    assert (
        evaluate(wallet=wallet, market=build_market(min_order_size="5")).decision.reason
        == "below_min_order_size"
    )


def test_a_copy_reserves_size_times_limit_and_returns_a_matching_intent() -> None:
    wallet = build_wallet(order_type="GTD", expiry_secs=30)
    ledger = WalletLedger(wallet.capital_usdc)
    trade = build_trade()

    result = evaluate(trade, wallet, ledger, market=build_market(tick_size="0.001", neg_risk=True))

    intent = result.intent
    assert intent is not None
    assert intent.intent_id == result.decision.decision_id == build_intent_id(wallet.id, trade.dedup_key)
    assert (intent.size, intent.limit_price, intent.tick_size) == (D("19.23"), D("0.520"), D("0.001"))
    assert (intent.order_type.value, intent.expiry_secs, intent.neg_risk) == ("GTD", 30, True)
    assert (intent.wallet_id, intent.dedup_key, intent.asset, intent.condition_id) == (
        wallet.id,
        trade.dedup_key,
        ASSET,
        CONDITION_ID,
    )
    assert (intent.received_at_ms, intent.created_at_ms) == (RECEIVED_AT_MS, NOW_MS)
    assert ledger.reserved == D("19.23") * D("0.52")
    assert ledger.available == D("1000") - D("19.23") * D("0.52")
    assert result.decision.available_size == D("3000")  # default asks: 3 x 1000 at <= 0.52


# --- limit price ------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("side", "price", "slippage", "tick", "expected"),
    [
        (Side.BUY, "0.50", "0.02", "0.01", "0.52"),
        (Side.BUY, "0.505", "0.02", "0.01", "0.52"),  # 0.525 rounds down
        (Side.BUY, "0.968534758", "0.02", "0.01", "0.98"),  # a real fill price
        (Side.BUY, "0.968534758", "0.02", "0.001", "0.988"),
        (Side.BUY, "0.505", "0", "0.01", "0.50"),
        (Side.SELL, "0.50", "0.02", "0.01", "0.48"),
        (Side.SELL, "0.505", "0.02", "0.01", "0.49"),  # 0.485 rounds up
        (Side.SELL, "0.505", "0", "0.01", "0.51"),
        (Side.BUY, "0.99", "0.02", "0.01", "0.99"),  # 1.01 clamped below 1
        (Side.BUY, "0.995", "0.02", "0.001", "0.999"),
        (Side.SELL, "0.01", "0.02", "0.01", "0.01"),  # -0.01 clamped above 0
        (Side.SELL, "0.015", "0.02", "0.001", "0.001"),
    ],
)
def test_limit_is_leader_price_plus_slippage_rounded_away_from_the_trade_and_clamped(
    side: Side, price: str, slippage: str, tick: str, expected: str
) -> None:
    assert compute_limit_price(side, D(price), D(slippage), D(tick)) == D(expected)


@given(
    side=st.sampled_from(Side),
    price=st.decimals("0.001", "0.999", places=9),
    slippage=st.decimals("0", "0.2", places=3),
    tick=st.sampled_from([D("0.01"), D("0.001"), D("0.0001")]),
)
def test_limit_is_on_the_tick_grid_inside_zero_one_and_never_worse_than_the_slippage_allows(
    side: Side, price: Decimal, slippage: Decimal, tick: Decimal
) -> None:
    limit = compute_limit_price(side, price, slippage, tick)

    assert tick <= limit <= 1 - tick
    assert limit % tick == 0
    raw = price + slippage if side is Side.BUY else price - slippage
    if tick <= raw <= 1 - tick:
        assert (raw - tick < limit <= raw) if side is Side.BUY else (raw <= limit < raw + tick)


def test_decision_carries_the_rounded_limit_for_a_sell() -> None:
    ledger = WalletLedger(D("1000"))
    hold_position(ledger, "50")
    trade = build_trade(side=Side.SELL, price=D("0.505"), size=D("10"))

    result = evaluate(trade, ledger=ledger)

    assert result.decision.limit_price == D("0.49")


# --- SELL mirroring ---------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("held", "leader_held", "leader_sells", "expected"),
    [
        ("100", "200", "50", "25"),  # leader sold a quarter -> we sell a quarter
        ("100", "200", "200", "100"),  # leader closed -> we close
        ("100", "200", "300", "100"),  # leader sold more than we saw them buy: never more than we hold
        ("100", "0", "10", "100"),  # we hold their shares but their tracked position is gone: full exit
        ("33.33", "3", "1", "11.11"),  # a third, rounded down to 0.01
        ("100", "200", "194", "100"),  # 97 would leave 3 shares of dust below the minimum: sell all
        ("8", "2", "1", "8"),  # half would be 4 (< 5) and leave 4 of dust: sell all 8
    ],
    ids=[
        "quarter",
        "full-exit",
        "oversold",
        "leader-position-already-gone",
        "thirds",
        "dust-remainder",
        "dust-both-halves",
    ],
)
def test_sell_mirrors_the_fraction_the_leader_sold_of_their_tracked_position(
    held: str, leader_held: str, leader_sells: str, expected: str
) -> None:
    ledger = WalletLedger(D("1000"))
    hold_position(ledger, held)
    if D(leader_held) > 0:
        ledger.observe_leader_trade(TRADER, ASSET, Side.BUY, D(leader_held))
    trade = build_trade(side=Side.SELL, size=D(leader_sells))

    result = evaluate(trade, ledger=ledger, book=build_book(bids=DEEP_BIDS))

    assert result.decision.reason == "copy"
    assert result.decision.size == D(expected)
    assert ledger.sellable_shares(ASSET) == D(held) - D(expected)


@pytest.mark.parametrize(
    ("held", "leader_held", "leader_sells"),
    [("100", "200", "2"), ("4", "10", "10"), ("4.99", "0", "10")],
    ids=["proportional-share-below-minimum", "whole-position-below-minimum", "just-under-minimum"],
)
def test_sell_below_the_venue_minimum_is_skipped_and_never_inflated(
    held: str, leader_held: str, leader_sells: str
) -> None:
    ledger = WalletLedger(D("1000"))
    hold_position(ledger, held)
    if D(leader_held) > 0:
        ledger.observe_leader_trade(TRADER, ASSET, Side.BUY, D(leader_held))

    result = evaluate(build_trade(side=Side.SELL, size=D(leader_sells)), ledger=ledger)

    assert result.decision.reason == "below_min_order_size"
    assert ledger.sellable_shares(ASSET) == D(held)


def test_sell_without_a_position_is_no_position() -> None:
    assert evaluate(build_trade(side=Side.SELL)).decision.reason == "no_position"


def test_a_leader_never_seen_buying_sells_nothing_of_what_another_leader_made_us_buy() -> None:
    # Issue 8, defect 7: with fraction 1 for an unseen leader, this sold the whole position.
    ledger = WalletLedger(D("1000"))
    hold_position(ledger, "100", leader=OTHER_TRADER)
    wallet = build_wallet(targets=(TRADER, OTHER_TRADER))

    result = evaluate(
        build_trade(side=Side.SELL, size=D("10")), wallet, ledger, book=build_book(bids=DEEP_BIDS)
    )

    assert (result.decision.reason, result.decision.detail) == (
        "no_position",
        "nothing bought following this trader",
    )
    assert ledger.sellable_shares(ASSET) == D("100")


def test_a_sell_mirrors_only_the_shares_bought_following_the_selling_leader() -> None:
    # Issue 8, defect 7: sellable shares counted what any leader made us buy.
    ledger = WalletLedger(D("1000"))
    hold_position(ledger, "60", leader=TRADER)
    hold_position(ledger, "40", leader=OTHER_TRADER)
    ledger.observe_leader_trade(TRADER, ASSET, Side.BUY, D("200"))
    wallet = build_wallet(targets=(TRADER, OTHER_TRADER))

    result = evaluate(
        build_trade(side=Side.SELL, size=D("200")), wallet, ledger, book=build_book(bids=DEEP_BIDS)
    )

    assert (result.decision.reason, result.decision.size) == ("copy", D("60"))  # the leader closed: we close
    assert ledger.sellable_shares(ASSET, leader=TRADER) == 0
    assert ledger.sellable_shares(ASSET, leader=OTHER_TRADER) == D("40")


def test_sell_counts_shares_already_offered_by_open_sells() -> None:
    ledger = WalletLedger(D("1000"))
    hold_position(ledger, "100")
    ledger.reserve(
        "open-sell",
        asset=ASSET,
        condition_id=CONDITION_ID,
        side=Side.SELL,
        size=D("100"),
        limit_price=D("0.45"),
        leader=TRADER,
    )

    assert evaluate(build_trade(side=Side.SELL), ledger=ledger).decision.reason == "no_position"


def test_the_leader_position_is_tracked_from_every_trade_seen_even_skipped_ones() -> None:
    wallet = build_wallet(sides=(Side.SELL,))
    ledger = WalletLedger(wallet.capital_usdc)
    hold_position(ledger, "100")
    buy = build_trade(size=D("400"), transaction_hash="0x" + "01" * 32)

    assert evaluate(buy, wallet, ledger).decision.reason == "side_disabled"
    result = evaluate(
        build_trade(side=Side.SELL, size=D("100")), wallet, ledger, book=build_book(bids=DEEP_BIDS)
    )

    assert result.decision.size == D("25")  # the leader sold 100 of the 400 we saw: a quarter
    assert ledger.leader_position(TRADER, ASSET) == D("300")


@pytest.mark.parametrize(
    ("breaker", "reason"),
    [
        ({"ledger": None}, "no_position"),
        ({"ledger": "4"}, "below_min_order_size"),
        ({"wallet": {"max_open_orders": 1}}, "open_orders_cap"),
        ({"book": None}, "book_unavailable"),
        ({"book": build_book(bids=[("0.47", "1000")])}, "insufficient_liquidity"),
    ],
)
def test_sell_rules_skip_with_their_reason(breaker: dict[str, Any], reason: str) -> None:
    wallet = build_wallet(**breaker.get("wallet", {}))
    ledger = WalletLedger(wallet.capital_usdc)
    held = breaker.get("ledger", "100")
    if held:
        hold_position(ledger, held)
    if "max_open_orders" in breaker.get("wallet", {}):
        reserve_open_order(ledger, "1")
    book = breaker.get("book", build_book())

    result = evaluate(build_trade(side=Side.SELL), wallet, ledger, book=book)

    assert result.decision.reason == reason


def test_sell_caps_on_exposure_capital_and_daily_loss_do_not_block_an_exit() -> None:
    wallet = build_wallet(capital_usdc=D("40"), max_total_exposure_usdc=D("40"), max_daily_loss_usdc=D("5"))
    ledger = WalletLedger(wallet.capital_usdc)
    hold_position(ledger, "100")  # 40 USDC deployed: no capital or exposure left
    _daily_loss_50(ledger)

    result = evaluate(build_trade(side=Side.SELL), wallet, ledger)

    assert result.decision.reason == "copy"
    assert result.decision.size == D("100")


# --- liquidity and book -----------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("asks", "expected"),
    [
        ([("0.52", "9.615")], "copy"),  # exactly half of 19.23 shares
        ([("0.50", "5"), ("0.52", "4.615")], "copy"),  # summed over every level at or under the limit
        ([("0.52", "9.614")], "insufficient_liquidity"),
        ([("0.53", "1000")], "insufficient_liquidity"),  # depth above our limit does not count
        ([], "insufficient_liquidity"),
    ],
)
def test_liquidity_gate_needs_half_the_size_at_or_better_than_the_limit(
    asks: list[tuple[str, str]], expected: str
) -> None:
    result = evaluate(book=build_book(asks=asks))

    assert result.decision.reason == expected
    if expected == "insufficient_liquidity":
        assert result.decision.size == D("19.23")
        assert result.decision.available_size == sum((D(s) for p, s in asks if D(p) <= D("0.52")), D(0))


def test_book_unavailable_is_decided_after_the_caps_and_records_the_intended_order() -> None:
    result = evaluate(book=None)

    assert result.decision.reason == "book_unavailable"
    assert (result.decision.size, result.decision.limit_price) == (D("19.23"), D("0.52"))


# --- duplicates and determinism ---------------------------------------------------------------------------
def test_the_same_trade_twice_is_a_duplicate_and_reserves_once() -> None:
    wallet = build_wallet()
    ledger = WalletLedger(wallet.capital_usdc)
    trade = build_trade()

    first = evaluate(trade, wallet, ledger)
    reserved = ledger.reserved
    second = evaluate(trade, wallet, ledger)

    assert first.decision.reason == "copy"
    assert second.decision.reason == "duplicate"
    assert second.intent is None
    assert second.decision.decision_id == first.decision.decision_id
    assert ledger.reserved == reserved == D("19.23") * D("0.52")
    assert ledger.open_orders == 1
    assert ledger.leader_position(TRADER, ASSET) == D("100")  # the repeat is not counted as a new buy


def test_the_same_fill_from_the_other_feed_type_is_a_duplicate() -> None:
    wallet = build_wallet()
    ledger = WalletLedger(wallet.capital_usdc)

    evaluate(build_trade(feed_type="trades"), wallet, ledger)
    again = evaluate(
        build_trade(feed_type="orders_matched", source="poll", received_at_ms=RECEIVED_AT_MS + 9),
        wallet,
        ledger,
    )

    assert again.decision.reason == "duplicate"


def test_a_trade_is_still_a_duplicate_after_its_order_filled() -> None:
    wallet = build_wallet()
    ledger = WalletLedger(wallet.capital_usdc)
    trade = build_trade()
    first = evaluate(trade, wallet, ledger)
    assert first.intent is not None
    ledger.apply_fill(first.intent.intent_id, first.intent.size, D("0.50"), day_of(NOW_MS))

    assert evaluate(trade, wallet, ledger).decision.reason == "duplicate"
    assert ledger.reserved == 0


def test_a_skipped_trade_seen_again_is_a_duplicate_once_it_would_pass() -> None:
    wallet = build_wallet()
    ledger = WalletLedger(wallet.capital_usdc)
    trade = build_trade()

    assert evaluate(trade, wallet, ledger, book=None).decision.reason == "book_unavailable"
    assert evaluate(trade, wallet, ledger).decision.reason == "duplicate"
    assert ledger.reserved == 0


def test_two_fills_of_one_transaction_are_two_copies() -> None:
    wallet = build_wallet()
    ledger = WalletLedger(wallet.capital_usdc)

    first = evaluate(build_trade(size=D("100")), wallet, ledger)
    second = evaluate(build_trade(size=D("40")), wallet, ledger)

    assert (first.decision.reason, second.decision.reason) == ("copy", "copy")
    assert first.decision.decision_id != second.decision.decision_id
    assert ledger.open_orders == 2


@pytest.mark.parametrize("breaker", BREAKERS_IN_ORDER + [Breaker("copy")], ids=lambda b: b.name)
def test_same_inputs_give_identical_decisions_and_intents(breaker: Breaker) -> None:
    first, second = run_breakers(breaker), run_breakers(breaker)

    assert first == second
    assert first.decision.to_bytes() == second.decision.to_bytes()


def test_same_inputs_leave_identical_ledgers() -> None:
    states = []
    for _ in range(2):
        ledger = WalletLedger(D("1000"))
        hold_position(ledger, "100")
        evaluate(build_trade(), ledger=ledger)
        evaluate(build_trade(side=Side.SELL, size=D("50")), ledger=ledger)
        states.append(ledger.to_state())

    assert states[0] == states[1]


def test_same_trade_in_two_wallets_gets_distinct_ids_and_same_sizes() -> None:
    trade = build_trade()

    one = evaluate(trade, build_wallet(id="alpha"))
    two = evaluate(trade, build_wallet(id="beta"))

    assert one.decision.decision_id != two.decision.decision_id
    assert one.decision.size == two.decision.size


def test_decided_at_is_the_injected_clock_and_decision_keeps_the_leader_fill() -> None:
    trade = build_trade(size=D("123.45"), price=D("0.37"))

    decision = evaluate(trade).decision

    assert decision.decided_at_ms == NOW_MS
    assert decision.received_at_ms == RECEIVED_AT_MS
    assert (decision.trader, decision.leader_price, decision.leader_size) == (TRADER, D("0.37"), D("123.45"))


# --- property tests on sizing -----------------------------------------------------------------------------
@st.composite
def sizing_cases(draw: st.DrawFn) -> tuple[WalletConfig, Any, MarketInfo, WalletLedger]:
    mode = draw(st.sampled_from(["fixed_usdc", "ratio", "percent_of_capital"]))
    value = draw(
        {
            "fixed_usdc": st.decimals("0.5", "500", places=2),
            "ratio": st.decimals("0.001", "3", places=3),
            "percent_of_capital": st.decimals("0.1", "100", places=1),
        }[mode]
    )
    capital = draw(st.decimals("1", "5000", places=2))
    wallet = build_wallet(
        capital_usdc=capital,
        sizing={"mode": mode, "value": value},
        max_slippage=draw(st.decimals("0", "0.1", places=3)),
        max_order_usdc=draw(st.none() | st.decimals("0.5", "300", places=2)),
        max_market_exposure_usdc=draw(st.none() | st.decimals("1", "300", places=2)),
        max_total_exposure_usdc=draw(st.none() | st.decimals("1", "1000", places=2)),
        liquidity_min_fill_ratio=D("0"),
    )
    trade = build_trade(
        price=draw(st.decimals("0.01", "0.99", places=4)), size=draw(st.decimals("0.01", "100000", places=2))
    )
    market = build_market(
        tick_size=draw(st.sampled_from(["0.01", "0.001"])),
        min_order_size=draw(st.sampled_from(["0", "1", "5", "15"])),
    )
    ledger = WalletLedger(capital)
    committed = draw(st.decimals("0", capital, places=2))
    if committed > 0:
        ledger.reserve(
            "earlier",
            asset=OTHER_ASSET,
            condition_id=CONDITION_ID,
            side=Side.BUY,
            size=committed,
            limit_price=D("1"),
        )
    return wallet, trade, market, ledger


@settings(max_examples=200, deadline=None)
@given(sizing_cases())
def test_copied_sizes_are_whole_hundredths_within_every_budget_and_at_least_the_venue_minimum(
    case: tuple[WalletConfig, Any, MarketInfo, WalletLedger],
) -> None:
    wallet, trade, market, ledger = case
    available_before = ledger.available
    exposure_before = ledger.total_exposure()
    market_exposure_before = ledger.market_exposure(CONDITION_ID)
    book = build_book(
        asks=[("0.01", "10000000")], tick=str(market.tick_size), min_size=str(market.min_order_size)
    )

    result = evaluate(trade, wallet, ledger, market=market, book=book)

    decision = result.decision
    if decision.action is DecisionAction.SKIP:
        assert decision.reason in {"below_min_order_size", "exposure_cap", "capital_exhausted"}
        assert ledger.available == available_before
        return
    assert decision.size is not None and decision.limit_price is not None
    notional = decision.size * decision.limit_price
    assert decision.size > 0
    assert decision.size % D("0.01") == 0
    assert decision.size >= market.min_order_size
    assert notional <= available_before
    if wallet.max_order_usdc is not None:
        assert notional <= wallet.max_order_usdc
    if wallet.max_total_exposure_usdc is not None:
        assert exposure_before + notional <= wallet.max_total_exposure_usdc
    if wallet.max_market_exposure_usdc is not None:
        assert market_exposure_before + notional <= wallet.max_market_exposure_usdc
    assert ledger.available >= 0
    assert ledger.available + ledger.reserved + ledger.deployed == ledger.capital_usdc + ledger.realised_pnl


@settings(max_examples=200, deadline=None)
@given(
    held=st.decimals("0.01", "10000", places=2),
    leader_held=st.decimals("0", "10000", places=2),
    leader_sells=st.decimals("0.01", "20000", places=2),
    minimum=st.sampled_from(["0", "1", "5", "15"]),
)
def test_sells_are_whole_hundredths_never_above_holdings_and_never_below_the_venue_minimum(
    held: Decimal, leader_held: Decimal, leader_sells: Decimal, minimum: str
) -> None:
    ledger = WalletLedger(D("1000000"))
    hold_position(ledger, str(held), "0.10")
    if leader_held > 0:
        ledger.observe_leader_trade(TRADER, ASSET, Side.BUY, leader_held)

    result = evaluate(
        build_trade(side=Side.SELL, size=leader_sells),
        ledger=ledger,
        market=build_market(min_order_size=minimum),
        book=build_book(bids=[("0.99", "100000")]),
    )

    decision = result.decision
    effective_minimum = max(D(minimum), D("0.01"))
    fraction = min(leader_sells / leader_held, D(1)) if leader_held > 0 else D(1)
    proportional = (held * fraction).quantize(D("0.01"), rounding=ROUND_DOWN)
    if decision.action is DecisionAction.SKIP:
        assert decision.reason == "below_min_order_size"
        assert held < effective_minimum or (
            proportional < effective_minimum and held - proportional >= effective_minimum
        )
        return
    assert decision.size is not None
    assert decision.size % D("0.01") == 0
    assert effective_minimum <= decision.size <= held
    if decision.size == held:  # a full exit: the leader's fraction, or what it would leave is dust
        assert proportional == held or held - proportional < effective_minimum
    else:
        assert decision.size == proportional
        assert held - decision.size >= effective_minimum  # what is left can still be sold later

"""Settlement and PnL in the pure core: the ledger identity through buys, partial fills, sells, cancels,
marks and resolutions (hypothesis), and the scenarios: paper positions paid out, open paper orders
cancelled through the lifecycle, live positions redeemable until redeemed, late fills, fees, state."""

from __future__ import annotations

import json
from decimal import Decimal

import pytest
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import Bundle, RuleBasedStateMachine, initialize, invariant, rule

from processors.core import engine
from processors.core.ids import build_paper_order_id
from processors.core.orders import OrderRecord
from processors.core.paper import build_execution_report
from processors.core.policy import day_of
from processors.core.settlement import Redemption, apply_redemption, redeemable_positions
from processors.core.wallet_state import WalletState
from schemas.base import Side
from schemas.orders import ExecutionMode, OrderEventType, OrderIntent, OrderStatus, OrderType, ReportKind
from schemas.portfolio import MarketResolution, ResolutionSource
from tests.builders import (
    ASSET,
    CONDITION_ID,
    NOW_MS,
    OTHER_ASSET,
    WALLET_ID,
    build_intent,
    build_resolution,
    build_trade,
)

D = Decimal
PAPER, LIVE = ExecutionMode.PAPER, ExecutionMode.LIVE
OTHER_CONDITION = "0x" + "6e" * 32
THIRD_ASSET = "1" * 77
MARKET_OF = {ASSET: CONDITION_ID, OTHER_ASSET: CONDITION_ID, THIRD_ASSET: OTHER_CONDITION}
DAY_MS = 86_400_000


def assert_identity(state: WalletState) -> None:
    ledger = state.ledger
    assert ledger.available + ledger.reserved + ledger.deployed == ledger.capital_usdc + ledger.realised_pnl
    assert ledger.available >= 0 and ledger.reserved >= 0 and ledger.deployed >= 0


def reserve(state: WalletState, intent: OrderIntent) -> None:
    """What a copy decision does to the ledger (the policy reserves before the intent is sent)."""
    state.ledger.reserve(
        intent.intent_id,
        asset=intent.asset,
        condition_id=intent.condition_id,
        side=intent.side,
        size=intent.size,
        limit_price=intent.limit_price,
    )


def report(intent: OrderIntent, kind: ReportKind, matched: str = "0", average: str | None = None, **kw):  # type: ignore[no-untyped-def]
    return build_execution_report(
        intent,
        build_paper_order_id(intent.intent_id),
        kind,
        intent.mode,
        matched=D(matched),
        average=D(average) if average is not None else None,
        detail=kw.pop("detail", ""),
        sent_at_ms=intent.created_at_ms + 1,
        reported_at_ms=kw.pop("at_ms", intent.created_at_ms + 2),
    ).model_copy(update=kw)


def bought(
    state: WalletState,
    shares: str = "20",
    price: str = "0.5",
    *,
    n: int = 1,
    asset: str = ASSET,
    mode: ExecutionMode = PAPER,
    at_ms: int = NOW_MS,
) -> OrderIntent:
    """A BUY copy of `shares` at `price`, filled in full."""
    intent = build_intent(
        dedup_key=f"buy-{n}",
        asset=asset,
        condition_id=MARKET_OF[asset],
        size=D(shares),
        limit_price=D(price),
        mode=mode,
        created_at_ms=at_ms,
    )
    reserve(state, intent)
    engine.apply_report(state, report(intent, ReportKind.FILL, shares, price, at_ms=at_ms), at_ms)
    return intent


# --- the identity through every kind of event (hypothesis) -------------------------------------------------
class SettlementMachine(RuleBasedStateMachine):
    """Buys, partial fills, sells, resting orders, cancels, marks and resolutions in any order, on paper.

    Besides the identity, a cash model with teeth: available + reserved must equal the capital plus what sales
    and payouts brought in minus what purchases cost, to the last decimal; the shares held must equal the
    shares bought minus those sold or paid out; and the daily loss must be the day's booked PnL plus the open
    positions' change of value since the day began.
    """

    orders = Bundle("orders")

    @initialize(capital=st.decimals("5", "500", places=2))
    def start(self, capital: Decimal) -> None:
        self.state = WalletState.new(capital)
        self.cash = capital
        self.shares = dict.fromkeys(MARKET_OF, D(0))
        self.count = 0
        self.now = NOW_MS
        self.intents: dict[str, OrderIntent] = {}
        self.reported: dict[str, tuple[Decimal, Decimal]] = {}  # intent -> (matched, value) last reported
        self.resolved: set[str] = set()
        self.model_day = ""
        self.equity_at_day_start = capital

    def _equity(self) -> Decimal:
        """Cash plus the shares held at the prices they are marked at."""
        book, ledger = self.state.portfolio, self.state.ledger
        marked = sum(
            (
                self.shares[a] * book.marks[a].price if a in book.marks else ledger.positions[a].cost_usdc
                for a in ledger.positions
            ),
            D(0),
        )
        return self.cash + marked

    def _new_day(self) -> None:
        """Before an event: on a new UTC day, the day's PnL is counted from the equity now."""
        if day_of(self.now) != self.model_day:
            self.model_day = day_of(self.now)
            self.equity_at_day_start = self._equity()

    def _tick(self, ms: int = 1000) -> int:
        self.now += ms
        return self.now

    @rule(
        target=orders,
        asset=st.sampled_from(sorted(MARKET_OF)),
        size=st.decimals("5", "80", places=2),
        limit=st.decimals("0.05", "0.95", places=2),
        resting=st.booleans(),
    )
    def open_buy(self, asset: str, size: Decimal, limit: Decimal, resting: bool) -> str:
        self.count += 1
        intent = build_intent(
            dedup_key=f"o{self.count}",
            asset=asset,
            condition_id=MARKET_OF[asset],
            size=size,
            limit_price=limit,
            order_type=OrderType.GTC if resting else OrderType.FAK,
            created_at_ms=self._tick(),
        )
        if size * limit > self.state.ledger.available or MARKET_OF[asset] in self.resolved:
            return intent.intent_id  # the policy would not copy it (capital, or a closed market)
        reserve(self.state, intent)
        self.intents[intent.intent_id] = intent
        if resting:
            self._new_day()
            engine.apply_report(self.state, report(intent, ReportKind.ACCEPTED, at_ms=self.now), self.now)
        return intent.intent_id

    @rule(target=orders, asset=st.sampled_from(sorted(MARKET_OF)), fraction=st.sampled_from(["0.3", "1"]))
    def open_sell(self, asset: str, fraction: str) -> str:
        self.count += 1
        size = (self.state.ledger.sellable_shares(asset) * D(fraction)).quantize(D("0.01"))
        intent = build_intent(
            dedup_key=f"o{self.count}",
            asset=asset,
            condition_id=MARKET_OF[asset],
            side=Side.SELL,
            size=size if size > 0 else D("1"),
            limit_price=D("0.4"),
            created_at_ms=self._tick(),
        )
        if size <= 0:
            return intent.intent_id
        reserve(self.state, intent)
        self.intents[intent.intent_id] = intent
        return intent.intent_id

    @rule(
        intent_id=orders,
        fraction=st.sampled_from(["0.25", "0.5", "1"]),
        shift=st.sampled_from(["-0.03", "0", "0.02"]),
        fee=st.sampled_from([None, "0", "0.01"]),
    )
    def fill(self, intent_id: str, fraction: str, shift: str, fee: str | None) -> None:
        intent = self.intents.get(intent_id)
        reservation = self.state.ledger.reservations.get(intent_id)
        if intent is None or reservation is None:
            return
        at_ms = self._tick()
        self._new_day()
        matched = (intent.size * D(fraction)).quantize(D("0.01"))
        price = intent.limit_price + (D(shift) if intent.side is Side.SELL else -D(shift))
        price = min(max(price, D("0.01")), D("0.99"))
        before_matched, before_value = self.reported.get(intent_id, (D(0), D(0)))
        new = matched - reservation.matched
        record = self.state.orders.get(build_paper_order_id(intent_id))
        charged = record.fee_usdc if record else D(0)
        fee_total = D(fee) * matched if fee is not None else None
        if fee_total is not None and fee_total - charged > self.state.ledger.available:
            fee_total = None  # the venue refuses what it cannot charge
        if new > 0:
            value = matched * price
            new_value = max(value - before_value, D(0))
            self.reported[intent_id] = (matched, value)
            if intent.side is Side.BUY:
                self.cash -= min(new_value, new * intent.limit_price)
                self.shares[intent.asset] += new
            else:
                self.cash += new_value
                self.shares[intent.asset] -= new
            if fee_total is not None and fee_total > charged:
                self.cash -= fee_total - charged
        else:
            fee_total = None  # a report that fills nothing more changes nothing, fee included
        self._apply(
            report(intent, ReportKind.FILL, str(matched), str(price), at_ms=at_ms, fee_usdc=fee_total)
        )

    @rule(intent_id=orders)
    def cancel(self, intent_id: str) -> None:
        intent = self.intents.get(intent_id)
        reservation = self.state.ledger.reservations.get(intent_id)
        if intent is None or reservation is None:
            return
        self._apply(report(intent, ReportKind.CANCELLED, str(reservation.matched), at_ms=self._tick()))

    @rule(asset=st.sampled_from(sorted(MARKET_OF)), price=st.decimals("0.01", "0.99", places=2))
    def trade_seen(self, asset: str, price: Decimal) -> None:
        trade = build_trade(asset=asset, price=price, timestamp=self._tick() // 1000, received_at_ms=self.now)
        self._new_day()
        self.state.portfolio.observe_trade(self.state.ledger, trade, None, day_of(self.now))

    @rule(days=st.sampled_from([0, 1]))
    def time_passes(self, days: int) -> None:
        self._tick(days * DAY_MS + 1000)

    @rule(
        condition=st.sampled_from([CONDITION_ID, OTHER_CONDITION]),
        winner=st.sampled_from([ASSET, OTHER_ASSET, THIRD_ASSET, None]),
    )
    def resolve(self, condition: str, winner: str | None) -> None:
        tokens = [a for a, c in MARKET_OF.items() if c == condition]
        payouts = {a: D("0.5") if winner is None else D(a == winner) for a in tokens}
        resolution = MarketResolution(
            condition_id=condition,
            payouts=payouts,
            resolved_at_ms=self._tick(),
            source=ResolutionSource.IMPORT,
        )
        held = {a: p.shares for a, p in self.state.ledger.positions.items()}
        self._new_day()
        engine.settle(self.state, WALLET_ID, resolution, PAPER, self.now)
        self._book_payouts(held)
        self.resolved.add(condition)

    def _apply(self, execution_report) -> None:  # type: ignore[no-untyped-def]
        held = {a: p.shares for a, p in self.state.ledger.positions.items()}
        self._new_day()
        engine.apply_report(self.state, execution_report, self.now)
        self._book_payouts(held, also=execution_report.asset)

    def _book_payouts(self, held: dict[str, Decimal], also: str = "") -> None:
        """Positions that settled paid the model's shares times their payout."""
        for asset in {*held, also} - {""}:
            condition = MARKET_OF[asset]
            payouts = self.state.portfolio.resolutions.get(condition)
            if payouts is not None and asset not in self.state.ledger.positions and self.shares[asset] > 0:
                self.cash += self.shares[asset] * payouts.get(asset, D(0))
                self.shares[asset] = D(0)

    @invariant()
    def identity_holds(self) -> None:
        if hasattr(self, "state"):
            assert_identity(self.state)

    @invariant()
    def cash_and_shares_match_the_model(self) -> None:
        if hasattr(self, "state"):
            ledger = self.state.ledger
            assert ledger.available + ledger.reserved == self.cash
            for asset in MARKET_OF:
                held = ledger.positions[asset].shares if asset in ledger.positions else D(0)
                assert held == self.shares[asset]

    @invariant()
    def a_resolved_market_holds_nothing_but_shares_an_unreported_sell_still_offers(self) -> None:
        if hasattr(self, "state"):
            ledger, book = self.state.ledger, self.state.portfolio
            for asset, position in ledger.positions.items():
                if position.condition_id in book.resolutions:
                    assert ledger.sellable_shares(asset) < position.shares

    @invariant()
    def the_daily_loss_is_the_fall_of_equity_since_the_day_began(self) -> None:
        if hasattr(self, "state") and self.state.portfolio.day:
            day_pnl = self._equity() - self.equity_at_day_start
            assert self.state.ledger.daily_loss(self.state.portfolio.day) == max(-day_pnl, D(0))

    @invariant()
    def no_sell_offers_more_shares_than_are_held(self) -> None:
        if hasattr(self, "state"):
            ledger = self.state.ledger
            for asset in MARKET_OF:
                held = ledger.positions[asset].shares if asset in ledger.positions else D(0)
                offered = sum(
                    (
                        r.open_size
                        for r in ledger.reservations.values()
                        if r.asset == asset and r.side is Side.SELL
                    ),
                    D(0),
                )
                assert offered <= held

    @invariant()
    def state_round_trips_through_json(self) -> None:
        if hasattr(self, "state"):
            again = WalletState.load(json.loads(json.dumps(self.state.dump())), D(1))
            assert again.dump() == self.state.dump()


TestSettlementSequences = SettlementMachine.TestCase
TestSettlementSequences.settings = settings(max_examples=150, stateful_step_count=40, deadline=None)


# --- paper settlement --------------------------------------------------------------------------------------
def test_a_paper_position_in_a_resolved_market_pays_out_and_its_capital_is_available_again() -> None:
    state = WalletState.new(D("100"))
    bought(state, "20", "0.5")
    assert (state.ledger.available, state.ledger.deployed) == (D("90"), D("10"))

    events = engine.settle(state, WALLET_ID, build_resolution(ASSET), PAPER, NOW_MS + 10)

    assert events == []
    assert state.ledger.positions == {}
    assert (state.ledger.available, state.ledger.deployed, state.ledger.realised_pnl) == (
        D("110"),
        0,
        D("10"),
    )
    assert (state.portfolio.settled_positions, state.portfolio.winning_positions) == (1, 1)
    assert state.portfolio.realised_of(ASSET) == D("10")
    assert_identity(state)


def test_a_losing_position_settles_at_zero_and_counts_against_the_win_rate() -> None:
    state = WalletState.new(D("100"))
    bought(state, "20", "0.5", n=1, asset=ASSET)
    bought(state, "10", "0.3", n=2, asset=THIRD_ASSET)
    engine.settle(state, WALLET_ID, build_resolution(OTHER_ASSET), PAPER, NOW_MS + 10)
    engine.settle(
        state, WALLET_ID, build_resolution(THIRD_ASSET, condition_id=OTHER_CONDITION), PAPER, NOW_MS + 20
    )

    assert state.ledger.realised_pnl == D("-10") + D("7")
    assert state.ledger.available == D("97")
    assert state.portfolio.win_rate() == D("0.5")
    assert_identity(state)


def test_a_fifty_fifty_resolution_pays_half_a_dollar_a_share() -> None:
    state = WalletState.new(D("100"))
    bought(state, "20", "0.4")
    engine.settle(state, WALLET_ID, build_resolution(None), PAPER, NOW_MS + 10)
    assert state.ledger.realised_pnl == D("2")
    assert state.portfolio.winning_positions == 1


def test_the_same_resolution_applied_twice_changes_nothing() -> None:
    state = WalletState.new(D("100"))
    bought(state, "20", "0.5")
    engine.settle(state, WALLET_ID, build_resolution(ASSET), PAPER, NOW_MS + 10)
    first = state.dump()
    assert engine.settle(state, WALLET_ID, build_resolution(ASSET), PAPER, NOW_MS + 20) == []
    assert state.dump() == first


def test_a_resolution_of_another_market_leaves_the_position_open() -> None:
    state = WalletState.new(D("100"))
    bought(state, "20", "0.5")
    engine.settle(
        state, WALLET_ID, build_resolution(THIRD_ASSET, condition_id=OTHER_CONDITION), PAPER, NOW_MS + 10
    )
    assert state.ledger.positions[ASSET].shares == D("20")


def test_a_resting_paper_order_in_a_resolved_market_is_cancelled_through_the_lifecycle() -> None:
    state = WalletState.new(D("100"))
    intent = build_intent(dedup_key="resting", size=D("30"), limit_price=D("0.5"), order_type=OrderType.GTC)
    reserve(state, intent)
    engine.apply_report(state, report(intent, ReportKind.FILL, "10", "0.5"), NOW_MS)  # 10 of 30, rest resting
    assert state.ledger.reserved == D("10")

    events = engine.settle(state, WALLET_ID, build_resolution(OTHER_ASSET), PAPER, NOW_MS + 10)

    [cancelled] = events
    assert cancelled.event_type is OrderEventType.ORDER_CANCELLED
    assert (cancelled.status, cancelled.matched_size, cancelled.released_usdc) == (
        OrderStatus.CANCELLED,
        D("10"),
        D("10"),
    )
    assert cancelled.detail.startswith("market resolved")
    assert cancelled.received_at_ms == intent.received_at_ms  # the order keeps its own times
    assert state.ledger.reserved == 0 and state.ledger.positions == {}
    assert state.ledger.available == D("95")  # 100 - 5 paid for 10 shares that paid nothing
    assert state.is_closed(build_paper_order_id(intent.intent_id))
    assert_identity(state)


def test_an_open_paper_sell_is_cancelled_before_its_shares_settle() -> None:
    state = WalletState.new(D("100"))
    bought(state, "20", "0.5")
    sell = build_intent(dedup_key="sell", side=Side.SELL, size=D("20"), limit_price=D("0.9"))
    reserve(state, sell)
    engine.apply_report(state, report(sell, ReportKind.ACCEPTED), NOW_MS)

    events = engine.settle(state, WALLET_ID, build_resolution(ASSET), PAPER, NOW_MS + 10)

    assert [e.event_type for e in events] == [OrderEventType.ORDER_CANCELLED]
    assert state.ledger.positions == {} and state.ledger.reservations == {}
    assert state.ledger.realised_pnl == D("10")


def test_a_fill_reported_after_its_market_resolved_settles_at_once() -> None:
    state = WalletState.new(D("100"))
    intent = build_intent(dedup_key="late", size=D("20"), limit_price=D("0.5"))
    reserve(state, intent)  # decided before the resolution; the executor reports after it
    engine.settle(state, WALLET_ID, build_resolution(OTHER_ASSET), PAPER, NOW_MS + 10)
    assert state.ledger.reserved == D("10")  # no report yet: nothing to cancel, the executor's is coming

    events = engine.apply_report(state, report(intent, ReportKind.FILL, "20", "0.5"), NOW_MS + 20)

    assert [e.event_type for e in events] == [OrderEventType.ORDER_PLACED, OrderEventType.ORDER_FILLED]
    assert state.ledger.positions == {}
    assert state.ledger.realised_pnl == D("-10")
    assert state.ledger.daily_loss(day_of(NOW_MS)) == D("10")
    assert_identity(state)


# --- live: redeemable until redeemed ------------------------------------------------------------------------
def test_a_live_position_waits_as_redeemable_and_books_what_the_redemption_returned() -> None:
    state = WalletState.new(D("100"))
    bought(state, "20", "0.5", mode=LIVE)
    engine.settle(state, WALLET_ID, build_resolution(ASSET), LIVE, NOW_MS + 10)

    assert state.ledger.deployed == D("10")  # still held until redeemed
    assert state.portfolio.redeemable_usdc(state.ledger) == D("20")
    assert state.portfolio.unrealised(state.ledger) == D("10")  # marked at its payout
    [waiting] = redeemable_positions(state)
    assert (waiting.asset, waiting.shares, waiting.expected_usdc) == (ASSET, D("20"), D("20"))

    pnl = apply_redemption(state, Redemption(ASSET, CONDITION_ID, D("20"), D("19.98")), NOW_MS + 20)

    assert pnl == D("9.98")  # what arrived, not what was expected
    assert state.ledger.positions == {} and state.ledger.available == D("109.98")
    assert redeemable_positions(state) == []
    assert apply_redemption(state, Redemption(ASSET, CONDITION_ID, D("20"), D("19.98")), NOW_MS + 30) == 0
    assert_identity(state)


def test_a_live_order_in_a_resolved_market_is_left_to_the_venue_to_cancel() -> None:
    state = WalletState.new(D("100"))
    intent = build_intent(dedup_key="live", mode=LIVE, size=D("20"), limit_price=D("0.5"))
    reserve(state, intent)
    accepted = report(intent, ReportKind.ACCEPTED, order_id="0x" + "ab" * 32)
    engine.apply_report(state, accepted, NOW_MS)

    assert engine.settle(state, WALLET_ID, build_resolution(ASSET), LIVE, NOW_MS + 10) == []
    assert state.ledger.reserved == D("10")
    venue_cancel = report(
        intent, ReportKind.CANCELLED, order_id="0x" + "ab" * 32, detail="CANCELED_MARKET_RESOLVED"
    )
    [event] = engine.apply_report(state, venue_cancel, NOW_MS + 20)
    assert event.released_usdc == D("10")


# --- the daily loss ----------------------------------------------------------------------------------------
def test_a_position_marked_down_the_same_day_counts_as_that_days_loss() -> None:
    state = WalletState.new(D("100"))
    bought(state, "20", "0.5")
    day = day_of(NOW_MS)
    lower = build_trade(price=D("0.2"), timestamp=NOW_MS // 1000 + 5, received_at_ms=NOW_MS + 6000)
    state.portfolio.observe_trade(state.ledger, lower, None, day)
    assert state.ledger.daily_loss(day) == D("6")
    assert state.ledger.realised_pnl == 0


def test_yesterdays_fall_in_value_is_not_todays_loss() -> None:
    state = WalletState.new(D("100"))
    bought(state, "20", "0.5")
    today, tomorrow = NOW_MS, NOW_MS + DAY_MS
    fall = build_trade(price=D("0.2"), timestamp=today // 1000 + 5, received_at_ms=today + 6000)
    state.portfolio.observe_trade(state.ledger, fall, None, day_of(today))
    rise = build_trade(price=D("0.3"), timestamp=tomorrow // 1000, received_at_ms=tomorrow + 1000)
    state.portfolio.observe_trade(state.ledger, rise, None, day_of(tomorrow))
    assert state.ledger.daily_loss(day_of(today)) == D("6")
    assert state.ledger.daily_loss(day_of(tomorrow)) == 0  # from 0.2 to 0.3 made 2 today

    engine.settle(state, WALLET_ID, build_resolution(OTHER_ASSET), PAPER, tomorrow + 2000)
    assert state.ledger.daily_loss(day_of(tomorrow)) == D("4")  # worth 4 at the day's start, settled at 0


def buy_only_wallet_with_a_daily_loss_cap():  # type: ignore[no-untyped-def]
    from processors.core.engine import StaticReference
    from tests.builders import build_wallet

    wallet = build_wallet(sides=(Side.BUY,), max_daily_loss_usdc=D("5"))
    return wallet, StaticReference.build([wallet])


def trade_at(price: str, seconds: int, n: int):  # type: ignore[no-untyped-def]
    """A leader's BUY `seconds` after NOW_MS, in the market of ASSET or THIRD_ASSET (by `n`'s parity)."""
    asset = ASSET if n % 2 else THIRD_ASSET
    return build_trade(
        asset=asset,
        condition_id=MARKET_OF[asset],
        price=D(price),
        timestamp=NOW_MS // 1000 + seconds,
        received_at_ms=NOW_MS + seconds * 1000 + 500,
        transaction_hash="0x" + f"{n:064x}",
    )


def test_a_buy_only_wallets_daily_loss_cap_trips_when_its_position_loses_value_that_day() -> None:
    from tests.builders import build_book

    wallet, reference = buy_only_wallet_with_a_daily_loss_cap()
    state = WalletState.new(wallet.capital_usdc)
    bought(state, "20", "0.5")  # cost 10
    book = build_book(asks=[("0.2", "1000")], bids=[("0.19", "1000")], timestamp_ms=NOW_MS)
    assert engine.evaluate(trade_at("0.3", 1, 1), wallet, state, reference, book, NOW_MS).decision.reason == (
        "copy"
    )  # worth 6: a loss of 4 today, under the cap of 5
    state = WalletState.new(wallet.capital_usdc)
    bought(state, "20", "0.5")
    skipped = engine.evaluate(trade_at("0.2", 2, 3), wallet, state, reference, book, NOW_MS)
    assert state.ledger.realised_pnl == 0  # nothing sold, nothing settled: the loss is unrealised
    assert (skipped.decision.reason, skipped.intent) == ("daily_loss_cap", None)
    assert "lost 6.00 USDC today" in skipped.decision.detail


def test_a_buy_only_wallets_daily_loss_cap_trips_when_a_position_settles_at_zero() -> None:
    from tests.builders import build_book

    wallet, reference = buy_only_wallet_with_a_daily_loss_cap()
    state = WalletState.new(wallet.capital_usdc)
    bought(state, "20", "0.3", asset=THIRD_ASSET)  # cost 6, never marked
    book = build_book(asks=[("0.5", "1000")], bids=[("0.49", "1000")], timestamp_ms=NOW_MS)
    assert engine.evaluate(trade_at("0.5", 1, 1), wallet, state, reference, book, NOW_MS).decision.reason == (
        "copy"
    )
    engine.settle(
        state, WALLET_ID, build_resolution(ASSET, condition_id=OTHER_CONDITION), PAPER, NOW_MS + 2000
    )
    assert state.ledger.realised_pnl == D("-6")  # THIRD_ASSET paid nothing
    skipped = engine.evaluate(trade_at("0.5", 3, 5), wallet, state, reference, book, NOW_MS + 3000)
    assert (skipped.decision.reason, skipped.intent) == ("daily_loss_cap", None)
    assert_identity(state)


def test_the_book_mid_marks_a_position_when_the_book_is_newer_than_the_trade() -> None:
    from tests.builders import build_book

    state = WalletState.new(D("100"))
    bought(state, "20", "0.5")
    trade = build_trade(price=D("0.5"), timestamp=NOW_MS // 1000, received_at_ms=NOW_MS + 100)
    newer = build_book(asks=[("0.42", "10")], bids=[("0.38", "10")], timestamp_ms=NOW_MS + 50_000)
    state.portfolio.observe_trade(state.ledger, trade, newer, day_of(NOW_MS))
    assert state.portfolio.mark_of(state.ledger, ASSET) == D("0.40")
    older = build_book(asks=[("0.92", "10")], bids=[("0.88", "10")], timestamp_ms=NOW_MS - 50_000)
    later = build_trade(price=D("0.45"), timestamp=NOW_MS // 1000 + 60, received_at_ms=NOW_MS + 61_000)
    state.portfolio.observe_trade(state.ledger, later, older, day_of(NOW_MS))
    assert state.portfolio.mark_of(state.ledger, ASSET) == D("0.45")


# --- fees and state -----------------------------------------------------------------------------------------
def test_a_reported_fee_is_booked_once_as_a_realised_cost() -> None:
    state = WalletState.new(D("100"))
    intent = build_intent(dedup_key="fee", size=D("20"), limit_price=D("0.5"), order_type=OrderType.GTC)
    reserve(state, intent)
    half = report(intent, ReportKind.FILL, "10", "0.5", fee_usdc=D("0.05"))
    engine.apply_report(state, half, NOW_MS)
    engine.apply_report(state, half, NOW_MS)  # re-delivered
    engine.apply_report(state, report(intent, ReportKind.FILL, "20", "0.5", fee_usdc=D("0.1")), NOW_MS)
    assert state.portfolio.fees_usdc == D("0.1")
    assert state.ledger.realised_pnl == D("-0.1")
    assert state.portfolio.realised_of(ASSET) == D("-0.1")
    assert_identity(state)


def test_an_order_record_written_before_it_knew_its_intent_still_loads() -> None:
    record = OrderRecord.from_state(["paper-1", "placed", "2", 1, 0])
    assert (record.order_id, record.status, record.intent_id, record.fee_usdc) == (
        "paper-1",
        OrderStatus.PLACED,
        "",
        0,
    )


def test_a_wallet_state_written_before_the_pnl_book_existed_loads_with_an_empty_book() -> None:
    state = WalletState.new(D("100"))
    bought(state, "20", "0.5")
    value = state.dump()
    del value["portfolio"]
    del value["ledger"]["daily_unrealised"]
    loaded = WalletState.load(value, D("100"))
    assert loaded.portfolio.unrealised(loaded.ledger) == 0
    assert loaded.ledger.positions[ASSET].shares == D("20")


@pytest.mark.parametrize("payout", ["-0.1", "1.5"])
def test_a_resolution_with_a_payout_outside_zero_and_one_is_refused(payout: str) -> None:
    with pytest.raises(ValueError, match="payouts"):
        build_resolution(payouts={ASSET: D(payout)})


def test_a_trade_in_a_market_the_wallet_knows_resolved_is_a_market_closed_skip() -> None:
    from processors.core.engine import StaticReference
    from tests.builders import build_book, build_wallet

    wallet = build_wallet()
    reference = StaticReference.build([wallet])
    state = WalletState.new(D("100"))
    engine.settle(state, WALLET_ID, build_resolution(ASSET), PAPER, NOW_MS)
    evaluation = engine.evaluate(build_trade(), wallet, state, reference, build_book(), NOW_MS + 1)
    assert evaluation.decision.reason == "market_closed" and evaluation.intent is None

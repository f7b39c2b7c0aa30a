"""The wallet ledger: its invariant under any order of reserve / fill / release, and its state round trip."""

from __future__ import annotations

import json
from collections import OrderedDict
from decimal import Decimal

import pytest
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import Bundle, RuleBasedStateMachine, consumes, initialize, invariant, rule

from processors.core.ledger import RECENT_INTENTS_KEPT, ZERO, LedgerError, WalletLedger
from processors.core.portfolio import Portfolio
from schemas.base import Side
from tests.builders import ASSET, CONDITION_ID, OTHER_ASSET

D = Decimal
DAY = "2026-07-17"
ASSETS = (ASSET, OTHER_ASSET)
SHARES = st.decimals("0.01", "300", places=2)
PRICES = st.decimals("0.001", "0.999", places=3)


def assert_invariant(ledger: WalletLedger) -> None:
    assert ledger.available + ledger.reserved + ledger.deployed == ledger.capital_usdc + ledger.realised_pnl
    assert ledger.available >= 0
    assert ledger.reserved >= 0
    assert ledger.deployed >= 0
    for position in ledger.positions.values():
        assert position.shares > 0 and position.cost_usdc >= 0
    for reservation in ledger.reservations.values():
        assert 0 <= reservation.matched < reservation.size
    for asset in ASSETS:
        assert ledger.sellable_shares(asset) >= 0


def round_trip(ledger: WalletLedger) -> WalletLedger:
    return WalletLedger.from_state(json.loads(json.dumps(ledger.to_state())))


class LedgerMachine(RuleBasedStateMachine):
    """Random reserve / fill / partial fill / release sequences against a cash-flow model.

    The invariant as stated holds by construction of `available`; the model adds the check with teeth:
    available + reserved must equal the cash the fills actually moved, to the last decimal, and the shares
    held must equal the shares the fills bought minus those they sold.
    """

    orders = Bundle("orders")

    @initialize(capital=st.decimals("1", "2000", places=2))
    def start(self, capital: Decimal) -> None:
        self.ledger = WalletLedger(capital)
        self.portfolio = Portfolio()  # its unrealised PnL follows the ledger's positions and its own marks
        self.cash = capital  # capital plus sale proceeds minus purchase costs
        self.shares = {asset: D(0) for asset in ASSETS}
        self.reported_value: dict[
            str, Decimal
        ] = {}  # per order: matched_total x cumulative average, last report
        self.count = 0

    def _next_id(self) -> str:
        self.count += 1
        return f"intent-{self.count}"

    @rule(target=orders, asset=st.sampled_from(ASSETS), size=SHARES, limit=PRICES)
    def reserve_buy(self, asset: str, size: Decimal, limit: Decimal) -> str:
        intent_id = self._next_id()
        if size * limit > self.ledger.available:
            with pytest.raises(LedgerError):
                self.ledger.reserve(
                    intent_id,
                    asset=asset,
                    condition_id=CONDITION_ID,
                    side=Side.BUY,
                    size=size,
                    limit_price=limit,
                )
            return intent_id
        self.ledger.reserve(
            intent_id, asset=asset, condition_id=CONDITION_ID, side=Side.BUY, size=size, limit_price=limit
        )
        assert self.ledger.has_seen(intent_id)
        return intent_id

    @rule(
        target=orders,
        asset=st.sampled_from(ASSETS),
        fraction=st.sampled_from(["0.1", "0.5", "1", "1.5"]),
        limit=PRICES,
    )
    def reserve_sell(self, asset: str, fraction: str, limit: Decimal) -> str:
        intent_id = self._next_id()
        size = (self.ledger.sellable_shares(asset) * D(fraction)).quantize(D("0.01"))
        if size <= 0:
            return intent_id
        if size > self.ledger.sellable_shares(asset):
            with pytest.raises(LedgerError):
                self.ledger.reserve(
                    intent_id,
                    asset=asset,
                    condition_id=CONDITION_ID,
                    side=Side.SELL,
                    size=size,
                    limit_price=limit,
                )
            return intent_id
        self.ledger.reserve(
            intent_id, asset=asset, condition_id=CONDITION_ID, side=Side.SELL, size=size, limit_price=limit
        )
        return intent_id

    @rule(
        intent_id=orders,
        fraction=st.sampled_from(["0.25", "0.5", "0.999", "1", "2"]),
        price_shift=st.sampled_from(["-0.05", "-0.001", "0", "0.002", "0.03"]),
    )
    def fill(self, intent_id: str, fraction: str, price_shift: str) -> None:
        """A cumulative fill report (matched total, average price over it); BUYs may fill better than the
        limit, SELLs better (higher) too. The new shares are worth the reported total minus the last report's
        total, never negative; a BUY never pays more than its limit per share."""
        reservation = self.ledger.reservations.get(intent_id)
        if reservation is None:
            self.ledger.apply_fill(intent_id, D("1"), D("0.5"), DAY)  # unknown or closed order: no effect
            return
        matched_total = (reservation.size * D(fraction)).quantize(D("0.01"))
        shift = D(price_shift) if reservation.side is Side.SELL else -D(price_shift)
        average = min(max(reservation.limit_price + shift, D("0.001")), D("0.999"))
        matched_total = min(matched_total, reservation.size)
        new_shares = max(matched_total - reservation.matched, D(0))
        if new_shares > 0:
            value = matched_total * average
            new_value = max(value - self.reported_value.get(intent_id, D(0)), D(0))
            self.reported_value[intent_id] = value
            if reservation.side is Side.BUY:
                self.cash -= min(new_value, new_shares * reservation.limit_price)
                self.shares[reservation.asset] += new_shares
            else:
                self.cash += new_value
                self.shares[reservation.asset] -= new_shares
        self.ledger.apply_fill(intent_id, matched_total, average, DAY)
        self.ledger.apply_fill(intent_id, matched_total, average, DAY)  # re-delivered: changes nothing

    @rule(intent_id=consumes(orders))
    def release(self, intent_id: str) -> None:
        reservation = self.ledger.reservations.get(intent_id)
        expected = reservation.reserved_usdc if reservation else D(0)
        assert self.ledger.release(intent_id) == expected
        assert self.ledger.release(intent_id) == 0
        assert intent_id not in self.ledger.reservations

    @rule(
        trader=st.sampled_from(["0x" + "11" * 20, "0x" + "22" * 20]), side=st.sampled_from(Side), size=SHARES
    )
    def observe_leader(self, trader: str, side: Side, size: Decimal) -> None:
        before = self.ledger.leader_position(trader, ASSET)
        self.ledger.observe_leader_trade(trader, ASSET, side, size)
        expected = before + size if side is Side.BUY else max(before - size, D(0))
        assert self.ledger.leader_position(trader, ASSET) == expected

    @rule(asset=st.sampled_from(ASSETS), price=PRICES, refresh=st.booleans())
    def mark(self, asset: str, price: Decimal, refresh: bool) -> None:
        self.count += 1
        self.portfolio.update_mark(self.ledger, asset, price, self.count)
        if refresh:
            self.portfolio.refresh(self.ledger)

    @invariant()
    def running_totals_are_the_fresh_sums(self) -> None:
        """The ledger's and the PnL book's running totals equal summing afresh, to the text of the Decimal."""
        if not hasattr(self, "ledger"):
            return
        ledger, book = self.ledger, self.portfolio
        reserved = sum((r.reserved_usdc for r in ledger.reservations.values()), ZERO)
        deployed = sum((p.cost_usdc for p in ledger.positions.values()), ZERO)
        assert repr(ledger.reserved) == repr(reserved) and repr(ledger.deployed) == repr(deployed)
        assert repr(ledger.market_exposure(CONDITION_ID)) == repr(deployed + reserved)
        assert ledger.market_exposure("another market") == 0
        unrealised = sum((book.unrealised_of(ledger, asset) for asset in ledger.positions), ZERO)
        assert repr(book.unrealised(ledger)) == repr(unrealised)
        book.refresh(ledger)
        assert set(book.marks) <= set(ledger.positions)

    @invariant()
    def invariant_holds(self) -> None:
        if hasattr(self, "ledger"):
            assert_invariant(self.ledger)

    @invariant()
    def cash_and_shares_match_the_fills(self) -> None:
        if hasattr(self, "ledger"):
            assert self.ledger.available + self.ledger.reserved == self.cash
            for asset in ASSETS:
                held = self.ledger.positions[asset].shares if asset in self.ledger.positions else D(0)
                assert held == self.shares[asset]

    @invariant()
    def state_round_trips(self) -> None:
        if hasattr(self, "ledger"):
            assert round_trip(self.ledger) == self.ledger


TestLedgerSequences = LedgerMachine.TestCase
TestLedgerSequences.settings = settings(max_examples=60, stateful_step_count=30, deadline=None)


# --- examples ---------------------------------------------------------------------------------------------
def build_ledger_with_position(shares: str = "100", price: str = "0.40") -> WalletLedger:
    ledger = WalletLedger(D("1000"))
    ledger.reserve(
        "buy", asset=ASSET, condition_id=CONDITION_ID, side=Side.BUY, size=D(shares), limit_price=D(price)
    )
    ledger.apply_fill("buy", D(shares), D(price), DAY)
    return ledger


def test_a_buy_filled_below_its_limit_returns_the_difference_to_available() -> None:
    ledger = WalletLedger(D("100"))
    ledger.reserve(
        "a", asset=ASSET, condition_id=CONDITION_ID, side=Side.BUY, size=D("100"), limit_price=D("0.52")
    )

    ledger.apply_fill("a", D("100"), D("0.50"), DAY)

    assert (ledger.available, ledger.reserved, ledger.deployed) == (D("50"), D(0), D("50"))
    assert ledger.open_orders == 0


def test_a_partial_fill_then_release_gives_back_only_the_unfilled_part() -> None:
    ledger = WalletLedger(D("100"))
    ledger.reserve(
        "a", asset=ASSET, condition_id=CONDITION_ID, side=Side.BUY, size=D("100"), limit_price=D("0.50")
    )

    ledger.apply_fill("a", D("40"), D("0.50"), DAY)
    released = ledger.release("a")

    assert released == D("30")
    assert (ledger.available, ledger.reserved, ledger.deployed) == (D("80"), D(0), D("20"))


def test_selling_everything_realises_pnl_and_closes_the_position_exactly() -> None:
    ledger = WalletLedger(D("1000"))
    for intent_id, size, price in (
        ("b1", "3", "0.11"),
        ("b2", "4", "0.13"),
    ):  # average cost 0.85 / 7, not exact
        ledger.reserve(
            intent_id,
            asset=ASSET,
            condition_id=CONDITION_ID,
            side=Side.BUY,
            size=D(size),
            limit_price=D(price),
        )
        ledger.apply_fill(intent_id, D(size), D(price), DAY)
    ledger.reserve(
        "s1", asset=ASSET, condition_id=CONDITION_ID, side=Side.SELL, size=D("2"), limit_price=D("0.2")
    )
    ledger.apply_fill("s1", D("2"), D("0.2"), DAY)
    ledger.reserve(
        "s2", asset=ASSET, condition_id=CONDITION_ID, side=Side.SELL, size=D("5"), limit_price=D("0.2")
    )
    ledger.apply_fill("s2", D("5"), D("0.2"), DAY)

    assert ASSET not in ledger.positions
    assert ledger.deployed == 0
    assert ledger.realised_pnl == D("1.40") - D("0.85")
    assert ledger.available == D("1000.55")
    assert ledger.daily_loss(DAY) == 0


def test_a_losing_sell_counts_towards_that_days_loss() -> None:
    ledger = build_ledger_with_position("100", "0.40")
    ledger.reserve(
        "s", asset=ASSET, condition_id=CONDITION_ID, side=Side.SELL, size=D("50"), limit_price=D("0.30")
    )

    ledger.apply_fill("s", D("50"), D("0.30"), "2026-07-18")

    assert ledger.realised_pnl == D("-5")
    assert ledger.daily_loss("2026-07-18") == D("5")
    assert ledger.daily_loss(DAY) == 0
    assert ledger.positions[ASSET].shares == D("50")
    assert ledger.positions[ASSET].cost_usdc == D("20")


@pytest.mark.parametrize(
    ("side", "size", "limit", "message"),
    [
        (Side.BUY, "2001", "0.5", "exceeds available capital"),
        (Side.SELL, "100.01", "0.5", "exceeds held shares"),
        (Side.SELL, "1", "0.5", None),
    ],
    ids=["buy-over-capital", "sell-over-holdings", "sell-within-holdings"],
)
def test_reserve_refuses_what_the_wallet_cannot_cover(
    side: Side, size: str, limit: str, message: str | None
) -> None:
    ledger = build_ledger_with_position("100", "0.40")

    if message is None:
        ledger.reserve(
            "x", asset=ASSET, condition_id=CONDITION_ID, side=side, size=D(size), limit_price=D(limit)
        )
        assert ledger.sellable_shares(ASSET) == D("99")
        return
    with pytest.raises(LedgerError, match=message):
        ledger.reserve(
            "x", asset=ASSET, condition_id=CONDITION_ID, side=side, size=D(size), limit_price=D(limit)
        )
    assert "x" not in ledger.reservations


def test_reserving_the_same_intent_twice_is_refused() -> None:
    ledger = WalletLedger(D("100"))
    ledger.reserve(
        "a", asset=ASSET, condition_id=CONDITION_ID, side=Side.BUY, size=D("10"), limit_price=D("0.5")
    )

    with pytest.raises(LedgerError, match="already reserved"):
        ledger.reserve(
            "a", asset=ASSET, condition_id=CONDITION_ID, side=Side.BUY, size=D("10"), limit_price=D("0.5")
        )
    assert ledger.reserved == D("5")


def test_exposure_views_split_by_market() -> None:
    ledger = build_ledger_with_position("100", "0.40")  # 40 deployed in CONDITION_ID
    ledger.reserve(
        "o",
        asset=OTHER_ASSET,
        condition_id="0x" + "99" * 32,
        side=Side.BUY,
        size=D("10"),
        limit_price=D("0.5"),
    )

    assert ledger.market_exposure(CONDITION_ID) == D("40")
    assert ledger.market_exposure("0x" + "99" * 32) == D("5")
    assert ledger.total_exposure() == D("45")


def test_recent_intents_forget_the_oldest_beyond_the_limit() -> None:
    ledger = WalletLedger(D("1"))
    for number in range(RECENT_INTENTS_KEPT + 5):
        ledger.remember_intent(f"i{number}")

    assert len(ledger.recent_intents) == RECENT_INTENTS_KEPT
    assert not ledger.has_seen("i4")
    assert ledger.has_seen("i5") and ledger.has_seen(f"i{RECENT_INTENTS_KEPT + 4}")


def test_state_round_trip_keeps_every_field_and_is_plain_json() -> None:
    ledger = build_ledger_with_position("100", "0.40")
    ledger.reserve(
        "open-sell",
        asset=ASSET,
        condition_id=CONDITION_ID,
        side=Side.SELL,
        size=D("30"),
        limit_price=D("0.45"),
    )
    ledger.apply_fill("open-sell", D("10"), D("0.45"), DAY)
    ledger.reserve(
        "open-buy",
        asset=OTHER_ASSET,
        condition_id=CONDITION_ID,
        side=Side.BUY,
        size=D("12.34"),
        limit_price=D("0.555"),
    )
    ledger.observe_leader_trade("0x" + "11" * 20, ASSET, Side.BUY, D("42.5"))

    text = json.dumps(ledger.to_state())
    restored = WalletLedger.from_state(json.loads(text))

    assert restored == ledger
    assert list(restored.recent_intents) == ["buy", "open-sell", "open-buy"]
    assert isinstance(restored.recent_intents, OrderedDict)
    assert restored.reservations["open-sell"].matched == D("10")
    assert restored.to_state() == ledger.to_state()


def test_state_keeps_only_the_latest_seven_days_of_realised_pnl() -> None:
    ledger = WalletLedger(D("1"))
    for day in range(1, 10):
        ledger.daily_realised[f"2026-07-{day:02d}"] = D(-day)

    restored = WalletLedger.from_state(ledger.to_state())

    assert sorted(restored.daily_realised) == [f"2026-07-{day:02d}" for day in range(3, 10)]
    assert restored.daily_loss("2026-07-09") == D("9")


def test_an_order_filled_in_steps_costs_what_each_step_paid() -> None:
    """Reports carry the cumulative average: 10 @ 0.40, then 10 more @ 0.50 (average 0.45 over 20)."""
    ledger = WalletLedger(capital_usdc=Decimal("100"))
    ledger.reserve(
        "i1", asset="t", condition_id="c", side=Side.BUY, size=Decimal("30"), limit_price=Decimal("0.55")
    )
    ledger.apply_fill("i1", Decimal("10"), Decimal("0.40"), "2026-11-24")
    ledger.apply_fill("i1", Decimal("20"), Decimal("0.45"), "2026-11-24")
    ledger.apply_fill("i1", Decimal("20"), Decimal("0.45"), "2026-11-24")  # re-delivered: no change
    assert ledger.positions["t"].cost_usdc == Decimal("9.00")  # 4.00 + 5.00
    assert ledger.reserved == Decimal("10") * Decimal("0.55")
    assert ledger.available + ledger.reserved + ledger.deployed == ledger.capital_usdc


def test_a_sale_filled_in_steps_realises_what_each_step_received() -> None:
    ledger = WalletLedger(capital_usdc=Decimal("100"))
    ledger.reserve(
        "b", asset="t", condition_id="c", side=Side.BUY, size=Decimal("20"), limit_price=Decimal("0.50")
    )
    ledger.apply_fill("b", Decimal("20"), Decimal("0.50"), "2026-11-24")
    ledger.reserve(
        "s", asset="t", condition_id="c", side=Side.SELL, size=Decimal("20"), limit_price=Decimal("0.55")
    )
    ledger.apply_fill("s", Decimal("10"), Decimal("0.60"), "2026-11-24")
    ledger.apply_fill("s", Decimal("20"), Decimal("0.65"), "2026-11-24")  # second 10 at 0.70
    assert ledger.realised_pnl == Decimal("10") * Decimal("0.10") + Decimal("10") * Decimal("0.20")
    assert "t" not in ledger.positions


def test_a_sale_of_shares_a_failed_buy_took_back_credits_nothing_and_its_failure_gives_back_nothing() -> None:
    """A live BUY whose fill failed on chain while a SELL of those shares was open: the SELL's fill found no
    position (KeyError, the report dead-lettered). The venue cannot settle shares we never had: no proceeds,
    and when that sale fails on chain in turn, no shares come back."""
    ledger = WalletLedger(D("100"))
    ledger.reserve(
        "b", asset=ASSET, condition_id=CONDITION_ID, side=Side.BUY, size=D("10"), limit_price=D("0.5")
    )
    ledger.apply_fill("b", D("10"), D("0.5"), DAY)
    ledger.reserve(
        "s", asset=ASSET, condition_id=CONDITION_ID, side=Side.SELL, size=D("10"), limit_price=D("0.6")
    )
    ledger.reverse_fill("b", ASSET, Side.BUY, D("6"), D("0.5"), DAY)  # 4 shares left

    ledger.apply_fill("s", D("10"), D("0.6"), DAY)

    assert ASSET not in ledger.positions and "s" not in ledger.reservations
    assert ledger.realised_pnl == D("0.4")  # 4 shares sold at 0.6 that cost 0.5; the other 6 credit nothing
    assert ledger.unbacked_sells == {"s": D("6")}
    assert round_trip(ledger) == ledger
    assert_invariant(ledger)

    ledger.reverse_fill("s", ASSET, Side.SELL, D("10"), D("0.6"), DAY)  # the whole sale failed on chain

    # the 4 shares sold from what was held come back (at the sale price: nothing was left); no more
    assert ledger.positions[ASSET].shares == D("4") and ledger.positions[ASSET].cost_usdc == D("2.4")
    assert ledger.realised_pnl == D("0.4") and ledger.unbacked_sells == {}
    assert_invariant(ledger)


def test_a_sale_whose_whole_position_a_failed_buy_took_back_is_booked_without_error() -> None:
    ledger = WalletLedger(D("100"))
    ledger.reserve(
        "b", asset=ASSET, condition_id=CONDITION_ID, side=Side.BUY, size=D("10"), limit_price=D("0.5")
    )
    ledger.apply_fill("b", D("10"), D("0.5"), DAY)
    ledger.reserve(
        "s", asset=ASSET, condition_id=CONDITION_ID, side=Side.SELL, size=D("10"), limit_price=D("0.6")
    )
    ledger.reverse_fill("b", ASSET, Side.BUY, D("10"), D("0.5"), DAY)

    ledger.apply_fill("s", D("3"), D("0.6"), DAY)  # raised KeyError: no position

    assert (
        ledger.realised_pnl == 0 and ledger.available == D("100") and ledger.unbacked_sells == {"s": D("3")}
    )
    assert_invariant(ledger)

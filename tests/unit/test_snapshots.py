"""Position changes: built from the tokens an event changed (`capture_positions` before it, then
`build_position_changes`), they are exactly the messages the full comparison of every position's view before
and after gave, for every kind of event (trades and their marks, fills, fees, cancels, lost orders, reversed
fills, resolutions paper and live, redemptions), over random event sequences."""

from __future__ import annotations

import random
from collections.abc import Mapping
from decimal import Decimal
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from processors.core import engine, settlement
from processors.core.books import stamp_book
from processors.core.ids import build_paper_order_id
from processors.core.ledger import ZERO
from processors.core.snapshots import build_position_changes, capture_positions
from processors.core.wallet_state import WalletState
from schemas.base import Side
from schemas.books import BookSource
from schemas.orders import ExecutionMode, OrderIntent, ReportKind
from schemas.portfolio import PositionStatus, PositionView
from tests.builders import (
    ASSET,
    CONDITION_ID,
    NOW_MS,
    OTHER_ASSET,
    OTHER_TRADER,
    TRADER,
    build_book,
    build_report,
    build_resolution,
    build_trade,
    build_wallet,
)

D = Decimal
THIRD_ASSET = "3" * 77
OTHER_CONDITION = "0x" + "6e" * 32
ASSETS = ((ASSET, CONDITION_ID), (OTHER_ASSET, CONDITION_ID), (THIRD_ASSET, OTHER_CONDITION))
MARKETS = {CONDITION_ID: (ASSET, OTHER_ASSET), OTHER_CONDITION: (THIRD_ASSET, "4" * 77)}
_MARK_FIELDS = {"mark_price", "marked_at_ms", "unrealised_pnl_usdc", "version", "updated_at_ms"}


def full_views(wallet_id: str, state: WalletState, now_ms: int) -> dict[str, PositionView]:
    """Every position's view, as the worker built them before (the reference, kept apart from the code)."""
    ledger, book = state.ledger, state.portfolio
    views = {}
    for asset, position in ledger.positions.items():
        mark = book.marks.get(asset)
        price = book.mark_of(ledger, asset)
        payout = book.redeemable.get(asset)
        views[asset] = PositionView(
            wallet_id=wallet_id,
            asset=asset,
            condition_id=position.condition_id,
            status=PositionStatus.REDEEMABLE if payout is not None else PositionStatus.OPEN,
            shares=position.shares,
            cost_usdc=position.cost_usdc,
            average_price=position.average_price,
            mark_price=price,
            marked_at_ms=mark.at_ms if mark is not None else None,
            unrealised_pnl_usdc=book.unrealised_of(ledger, asset),
            realised_pnl_usdc=book.realised_of(asset),
            payout=payout,
            version=book.version,
            updated_at_ms=now_ms,
        )
    return views


def full_comparison(
    before: Mapping[str, PositionView], wallet_id: str, state: WalletState, now_ms: int
) -> list[PositionView]:
    """The changes as the worker computed them before: every position's view after the event against every
    one before it (kept here as the reference the new path must equal)."""
    after = full_views(wallet_id, state, now_ms)
    changes = [
        view
        for asset, view in after.items()
        if asset not in before
        or view.model_dump(exclude=_MARK_FIELDS) != before[asset].model_dump(exclude=_MARK_FIELDS)
    ]
    book = state.portfolio
    for asset, last in before.items():
        if asset in after:
            continue
        payout = book.settled.get(asset)
        settled = payout is not None
        changes.append(
            last.model_copy(
                update={
                    "status": PositionStatus.SETTLED if settled else PositionStatus.CLOSED,
                    "shares": last.shares if settled else ZERO,
                    "cost_usdc": last.cost_usdc if settled else ZERO,
                    "mark_price": payout if settled else last.mark_price,
                    "unrealised_pnl_usdc": ZERO,
                    "realised_pnl_usdc": book.realised_of(asset),
                    "payout": payout,
                    "version": book.version,
                    "updated_at_ms": now_ms,
                }
            )
        )
    return changes


class Run:
    """One wallet driven through the engine by a list of operations, as the worker's agents would."""

    def __init__(self, mode: ExecutionMode, reload: bool) -> None:
        self.wallet = build_wallet(
            mode=mode,
            targets=(TRADER,),
            sizing={"mode": "fixed_usdc", "value": "20"},
            liquidity_min_fill_ratio=D("0.1"),
        )
        self.reference = engine.StaticReference.build([self.wallet])
        self.state = WalletState.new(self.wallet.capital_usdc)
        self.reload, self.now_ms, self.trades = reload, NOW_MS, 0
        self.orders: list[tuple[OrderIntent, str]] = []  # every intent copied, with its order id
        self.matched: dict[str, Decimal] = {}
        self.last_report: dict[str, Any] = {}
        self.published: list[PositionView] = []

    def order(self, k: int) -> tuple[OrderIntent, str] | None:
        return self.orders[k % len(self.orders)] if self.orders else None

    def report(self, intent: OrderIntent, order_id: str, kind: ReportKind, **fields: Any) -> None:
        report = build_report(
            kind,
            intent=intent,
            order_id=order_id,
            condition_id=intent.condition_id,
            reported_at_ms=self.now_ms,
            **fields,
        )
        self.last_report[order_id] = report
        engine.apply_report(self.state, report, self.now_ms)

    def apply(self, op: tuple[Any, ...]) -> None:
        kind, *args = op
        if kind == "trade":
            trader, asset_index, side, cents, size, book_kind = args
            asset, condition_id = ASSETS[asset_index]
            self.trades += 1
            trade = build_trade(
                proxy_wallet=trader,
                asset=asset,
                condition_id=condition_id,
                side=side,
                price=D(cents) / 100,
                size=D(size),
                transaction_hash="0x" + f"{self.trades:064x}",
            )
            book = None
            if book_kind != "none":
                bid, ask = D(cents - 2) / 100, D(cents + 2) / 100
                depth = "500" if book_kind == "deep" else "6"
                book = build_book(
                    asks=[(str(ask), depth)],
                    bids=[(str(bid), depth)],
                    asset=asset,
                    market=condition_id,
                    timestamp_ms=trade.received_at_ms + (1000 if book_kind == "deep" else -1000),
                )
                book = stamp_book(book, BookSource.CHANNEL, self.now_ms)
            result = engine.evaluate(trade, self.wallet, self.state, self.reference, book, self.now_ms)
            if result.intent is not None and result.decision.reason == "copy":
                live = self.wallet.mode is ExecutionMode.LIVE
                order_id = f"live-{self.trades}" if live else build_paper_order_id(result.intent.intent_id)
                self.orders.append((result.intent, order_id))
            return
        if kind == "resolve":
            condition_index, winner = args
            condition_id = list(MARKETS)[condition_index]
            tokens = MARKETS[condition_id]
            payouts = {t: D("0.5") if winner is None else D(t == tokens[winner]) for t in tokens}
            resolution = build_resolution(condition_id=condition_id, payouts=payouts, winning_token_id=None)
            engine.settle(self.state, self.wallet.id, resolution, self.wallet.mode, self.now_ms)
            return
        if kind == "redeem":
            (k,) = args
            redeemable = settlement.redeemable_positions(self.state)
            if redeemable:
                position = redeemable[k % len(redeemable)]
                received = position.expected_usdc * D(k % 3 + 8) / 10  # what arrived may fall short
                redemption = settlement.Redemption(
                    position.asset, position.condition_id, position.shares, received
                )
                settlement.apply_redemption(self.state, redemption, self.now_ms)
            return
        picked = self.order(args[0])
        if picked is None:
            return
        intent, order_id = picked
        matched = self.matched.get(order_id, ZERO)
        if kind == "fill":
            _, quarters, fee_cents = args
            total = min(intent.size, matched + intent.size * quarters / 4)
            self.matched[order_id] = total
            fee = None if fee_cents is None else D(fee_cents) / 100
            self.report(
                intent,
                order_id,
                ReportKind.FILL,
                matched_size=total,
                average_price=intent.limit_price,
                fee_usdc=fee,
            )
        elif kind == "cancel":
            self.report(intent, order_id, ReportKind.CANCELLED, matched_size=matched)
        elif kind == "lost":
            self.report(intent, order_id, ReportKind.LOST, matched_size=matched, detail="lost")
        elif kind == "reverse" and matched > 0:
            _, quarters = args
            total = max(matched - intent.size * quarters / 4, ZERO)
            self.matched[order_id] = total
            self.report(
                intent,
                order_id,
                ReportKind.FILL_REVERSED,
                matched_size=total,
                average_price=intent.limit_price,
            )
        elif kind == "late" and order_id in self.last_report:
            engine.apply_report(self.state, self.last_report[order_id], self.now_ms)

    def step(self, op: tuple[Any, ...]) -> None:
        """One event as the worker publishes it: views before, the engine, the version bumped, the changes."""
        wallet_id = self.wallet.id
        if self.reload:  # the worker loads the state from its table for every event
            self.state = WalletState.load(self.state.dump(), self.wallet.capital_usdc)
        old_before = full_views(wallet_id, self.state, self.now_ms)
        new_before = capture_positions(wallet_id, self.state, self.now_ms)
        self.now_ms += 1000
        self.apply(op)
        self.state.portfolio.version += 1
        expected = full_comparison(old_before, wallet_id, self.state, self.now_ms)
        assert build_position_changes(new_before, self.state, self.now_ms) == expected, op
        self.published.extend(expected)


def draw_op(rng: random.Random, run: Run) -> tuple[Any, ...]:
    """One random event, weighted so that most sequences buy, fill, sell, pay fees and resolve."""
    open_orders = [
        k for k, (intent, _) in enumerate(run.orders) if intent.intent_id in run.state.ledger.reservations
    ]
    k = rng.choice(open_orders) if open_orders and rng.random() < 0.8 else rng.randrange(50)
    live = run.wallet.mode is ExecutionMode.LIVE  # only live fills fail on chain, and only live redeems
    kind = rng.choices(
        ["trade", "fill", "cancel", "lost", "reverse", "late", "resolve", "redeem"],
        weights=[10, 8, 1, 1, 2 if live else 0, 1, 1, 1 if live else 0],
    )[0]
    if kind == "trade":
        return (
            kind,
            rng.choice([TRADER, TRADER, TRADER, OTHER_TRADER]),  # the other trader's trades only mark
            rng.randrange(len(ASSETS)),
            rng.choice([Side.BUY, Side.BUY, Side.SELL]),
            rng.randint(20, 80),
            rng.randint(5, 400),
            rng.choice(["deep", "deep", "thin", "none"]),
        )
    if kind == "fill":
        return kind, k, rng.randint(0, 4), rng.choice([None, None, rng.randint(1, 30)])
    if kind == "reverse":
        return kind, k, rng.randint(1, 4)
    if kind == "resolve":
        return kind, rng.randrange(2), rng.choice([0, 1, None])
    return kind, k


@settings(max_examples=150, deadline=None)
@given(
    st.sampled_from([ExecutionMode.PAPER, ExecutionMode.LIVE]),
    st.booleans(),
    st.integers(0, 2**32),
    st.integers(1, 80),
)
def test_changes_from_the_touched_tokens_equal_the_full_comparison(
    mode: ExecutionMode, reload: bool, seed: int, events: int
) -> None:
    run, rng = Run(mode, reload), random.Random(seed)
    for _ in range(events):
        run.step(draw_op(rng, run))


BUY = ("trade", TRADER, 0, Side.BUY, 50, 100, "deep")


def statuses(run: Run, ops: list[tuple[Any, ...]]) -> list[tuple[str, str, Decimal]]:
    """The (token, status, shares) of the positions the events published."""
    start = len(run.published)
    for op in ops:
        run.step(op)
    return [(view.asset[:3], view.status.value, view.shares) for view in run.published[start:]]


def test_each_kind_of_event_publishes_what_it_changed_and_nothing_else() -> None:
    """The property above compares with the full comparison; this pins what that comparison publishes, so
    the property cannot pass on sequences that publish nothing."""
    paper = Run(ExecutionMode.PAPER, reload=True)
    assert statuses(paper, [BUY]) == []  # a copy reserves: no position yet
    size = paper.orders[0][0].size
    assert statuses(paper, [("fill", 0, 2, None)]) == [("713", "open", size / 2)]
    assert statuses(paper, [("fill", 0, 0, 25)]) == [("713", "open", size / 2)]  # a fee: its realised PnL
    assert statuses(paper, [("trade", OTHER_TRADER, 0, Side.BUY, 55, 10, "none")]) == []  # a mark only
    assert statuses(paper, [("fill", 0, 4, None)]) == [("713", "open", size)]
    assert statuses(paper, [("late", 0)]) == []
    assert statuses(paper, [("resolve", 0, 0)]) == [("713", "settled", size)]

    live = Run(ExecutionMode.LIVE, reload=False)
    assert statuses(live, [BUY, ("fill", 0, 4, None)]) == [("713", "open", size)]
    assert statuses(live, [("resolve", 0, 1)]) == [("713", "redeemable", size)]
    assert statuses(live, [("redeem", 0)]) == [("713", "settled", size)]

    sold = Run(ExecutionMode.LIVE, reload=True)
    statuses(sold, [BUY, ("fill", 0, 4, None)])
    sell = ("trade", TRADER, 0, Side.SELL, 50, 400, "deep")
    assert statuses(sold, [sell, ("fill", 1, 4, None)]) == [("713", "closed", ZERO)]

    reversed_ = Run(ExecutionMode.LIVE, reload=True)
    assert statuses(reversed_, [BUY, ("fill", 0, 2, None)]) == [("713", "open", size / 2)]
    assert statuses(reversed_, [("reverse", 0, 2)]) == [("713", "closed", ZERO)]  # the fill failed on chain

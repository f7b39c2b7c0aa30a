"""What a wallet state looks like from outside: its positions (and how they changed with an event) and its
snapshot (capital, PnL, open positions and orders). Pure: the worker publishes these, `whatif` prints them."""

from __future__ import annotations

from collections.abc import Mapping
from decimal import Decimal

from processors.core.ledger import ZERO
from processors.core.wallet_state import WalletState
from schemas.portfolio import OpenOrderView, PositionStatus, PositionView, WalletSnapshot

# Marks move with every trade the wallet evaluates: a position is published again when what it holds, made or
# is worth at resolution changes; its marks travel in the (rate-limited) snapshots.
_MARK_FIELDS = {"mark_price", "marked_at_ms", "unrealised_pnl_usdc", "version", "updated_at_ms"}


def build_position_views(wallet_id: str, state: WalletState, now_ms: int) -> dict[str, PositionView]:
    """The wallet's open (and, live, redeemable) positions by token."""
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


def build_position_changes(
    before: Mapping[str, PositionView], wallet_id: str, state: WalletState, now_ms: int
) -> list[PositionView]:
    """The positions an event changed, given the views from before it: new or changed holdings as they are
    now, and the positions that ended, as settled (at their payout, with the shares that paid out) or closed
    (sold out or reversed: no shares left)."""
    after = build_position_views(wallet_id, state, now_ms)
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


def build_open_orders(state: WalletState) -> tuple[OpenOrderView, ...]:
    """Every reservation (an order not yet ended), with the executor's order id and status where reported."""
    records = {record.intent_id: record for record in state.orders.values()}
    views = []
    for intent_id, reservation in state.ledger.reservations.items():
        record = records.get(intent_id)
        views.append(
            OpenOrderView(
                intent_id=intent_id,
                order_id=record.order_id if record else None,
                status=record.status.value if record else "pending",
                side=reservation.side,
                asset=reservation.asset,
                condition_id=reservation.condition_id,
                size=reservation.size,
                matched_size=reservation.matched,
                limit_price=reservation.limit_price,
                reserved_usdc=reservation.reserved_usdc,
            )
        )
    return tuple(views)


def build_snapshot(wallet_id: str, mode: str, state: WalletState, now_ms: int) -> WalletSnapshot:
    """The wallet's money, PnL (the daily figures of its latest event's day) and holdings now."""
    ledger, book = state.ledger, state.portfolio
    day = book.day
    daily_realised = ledger.daily_realised.get(day, ZERO)
    daily_unrealised = ledger.daily_unrealised.get(day, ZERO)
    return WalletSnapshot(
        wallet_id=wallet_id,
        mode=mode,
        capital_usdc=ledger.capital_usdc,
        available_usdc=ledger.available,
        reserved_usdc=ledger.reserved,
        deployed_usdc=ledger.deployed,
        realised_pnl_usdc=ledger.realised_pnl,
        unrealised_pnl_usdc=book.unrealised(ledger),
        fees_usdc=book.fees_usdc,
        redeemable_usdc=book.redeemable_usdc(ledger),
        day=day,
        daily_realised_pnl_usdc=daily_realised,
        daily_unrealised_pnl_usdc=daily_unrealised,
        daily_loss_usdc=ledger.daily_loss(day) if day else Decimal(0),
        settled_positions=book.settled_positions,
        winning_positions=book.winning_positions,
        win_rate=book.win_rate(),
        open_positions=tuple(build_position_views(wallet_id, state, now_ms).values()),
        open_orders=build_open_orders(state),
        version=book.version,
        as_of_ms=now_ms,
    )

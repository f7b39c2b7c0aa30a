"""What a wallet state looks like from outside: its positions (and how they changed with an event) and its
snapshot (capital, PnL, open positions and orders). Pure: the worker publishes these, `whatif` prints them."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from processors.core.ledger import ZERO, Position
from processors.core.portfolio import Mark
from processors.core.wallet_state import WalletState
from schemas.portfolio import OpenOrderView, PositionStatus, PositionView, WalletSnapshot

# Marks move with every trade the wallet evaluates: a position is published again when what it holds, made or
# is worth at resolution changes; its marks travel in the (rate-limited) snapshots.
_MARK_FIELDS = {"mark_price", "marked_at_ms", "unrealised_pnl_usdc", "version", "updated_at_ms"}

# What a held token's view is made of, marks apart: its market, shares, cost, realised PnL and payout. Every
# field a change is judged by (all but `_MARK_FIELDS`) is a function of these: equal parts, equal views.
Parts = tuple[str, Decimal, Decimal, Decimal, Decimal | None]


@dataclass(frozen=True)
class PositionsBefore:
    """A wallet's positions before an event, as plain values (no view built): enough to find the tokens the
    event changed and to build their views as they were. Taking it costs a tuple per held token; building a
    view of every position before and after each event, to compare them, was a fifth of the worker's time."""

    wallet_id: str
    parts: dict[str, Parts]  # by token, in the ledger's order
    marks: dict[str, Mark]  # a copy of the book's: a Mark is replaced when it moves, never changed in place
    version: int
    at_ms: int


def capture_positions(wallet_id: str, state: WalletState, now_ms: int) -> PositionsBefore:
    """What `build_position_changes` compares the state after an event with; take it before the event."""
    book = state.portfolio
    return PositionsBefore(wallet_id, _parts_of(state), dict(book.marks), book.version, now_ms)


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


def build_position_changes(before: PositionsBefore, state: WalletState, now_ms: int) -> list[PositionView]:
    """The positions an event changed: new or changed holdings as they are now, and the positions that ended,
    as settled (at their payout, with the shares that paid out) or closed (sold out or reversed: no shares
    left). Views are built only for tokens whose parts differ from `before`'s (a token with equal parts has an
    equal view), and a changed one is judged as ever: by its view without the marks."""
    wallet_id, book = before.wallet_id, state.portfolio
    after = _parts_of(state)
    changes = []
    for asset, parts in after.items():
        last = before.parts.get(asset)
        if last == parts:
            continue
        view = _view(wallet_id, asset, parts, book.marks.get(asset), book.version, now_ms)
        if last is None or view.model_dump(exclude=_MARK_FIELDS) != _view_before(before, asset).model_dump(
            exclude=_MARK_FIELDS
        ):
            changes.append(view)
    for asset in before.parts:
        if asset in after:
            continue
        last_view = _view_before(before, asset)
        payout = book.settled.get(asset)
        settled = payout is not None
        changes.append(
            last_view.model_copy(
                update={
                    "status": PositionStatus.SETTLED if settled else PositionStatus.CLOSED,
                    "shares": last_view.shares if settled else ZERO,
                    "cost_usdc": last_view.cost_usdc if settled else ZERO,
                    "mark_price": payout if settled else last_view.mark_price,
                    "unrealised_pnl_usdc": ZERO,
                    "realised_pnl_usdc": book.realised_of(asset),
                    "payout": payout,
                    "version": book.version,
                    "updated_at_ms": now_ms,
                }
            )
        )
    return changes


def _parts_of(state: WalletState) -> dict[str, Parts]:
    realised, redeemable = state.portfolio.realised_by_token, state.portfolio.redeemable
    return {
        asset: (p.condition_id, p.shares, p.cost_usdc, realised.get(asset, ZERO), redeemable.get(asset))
        for asset, p in state.ledger.positions.items()
    }


def _view_before(before: PositionsBefore, asset: str) -> PositionView:
    parts = before.parts[asset]
    return _view(before.wallet_id, asset, parts, before.marks.get(asset), before.version, before.at_ms)


def _view(
    wallet_id: str, asset: str, parts: Parts, mark: Mark | None, version: int, now_ms: int
) -> PositionView:
    """One held token's view: marked at its latest mark, else at what it cost (as `Portfolio.mark_of`)."""
    condition_id, shares, cost, realised, payout = parts
    average_price = Position(condition_id, shares, cost).average_price
    return PositionView(
        wallet_id=wallet_id,
        asset=asset,
        condition_id=condition_id,
        status=PositionStatus.REDEEMABLE if payout is not None else PositionStatus.OPEN,
        shares=shares,
        cost_usdc=cost,
        average_price=average_price,
        mark_price=mark.price if mark is not None else average_price,
        marked_at_ms=mark.at_ms if mark is not None else None,
        unrealised_pnl_usdc=shares * mark.price - cost if mark is not None else ZERO,
        realised_pnl_usdc=realised,
        payout=payout,
        version=version,
        updated_at_ms=now_ms,
    )


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

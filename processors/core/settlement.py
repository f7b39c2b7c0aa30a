"""Settlement of resolved markets in a wallet's state, and the redeem interface. Pure.

When a market resolves, the wallet's open paper orders in it are cancelled through the order lifecycle: a
CANCELLED report, as the paper venue would send, so `orders.apply_report` stays the one place reservations
are released (a live order is cancelled by the venue itself; its report comes through reconciliation).
Then each position in it becomes redeemable at its payout: 1 for the winning token, 0 for the others, or
the split of a 50-50 resolution. Paper wallets redeem at once (`PaperRedeemer`: shares x payout), booking
realised PnL and giving the capital back; live positions stay redeemable (deployed, marked at their payout)
until a `Redemption` reports what actually arrived. The wallet remembers the markets that resolved, so a
fill reported after its market resolved settles at once too (`sweep` runs after every report).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Protocol

from processors.core.ids import build_paper_order_id, build_report_id
from processors.core.ledger import Reservation, WalletLedger
from processors.core.orders import OrderRecord
from processors.core.orders import apply_report as advance_order
from processors.core.policy import day_of
from processors.core.wallet_state import WalletState
from schemas.base import Side
from schemas.orders import ExecutionMode, ExecutionReport, OrderEvent, ReportKind
from schemas.portfolio import MarketResolution

RESOLVED_DETAIL = "market resolved: the open order was cancelled"


@dataclass(frozen=True)
class Redeemable:
    """Shares of a resolved market that can be redeemed for their payout."""

    asset: str
    condition_id: str
    shares: Decimal
    payout: Decimal  # per share

    @property
    def expected_usdc(self) -> Decimal:
        return self.shares * self.payout


@dataclass(frozen=True)
class Redemption:
    """What a redemption of a position returned: the USDC that actually arrived for its shares."""

    asset: str
    condition_id: str
    shares: Decimal
    usdc_received: Decimal


class RedeemGateway(Protocol):
    """Redeems resolved positions (paper: `PaperRedeemer`; live: the conditional-token contract, later)."""

    def redeem(self, wallet_id: str, positions: Sequence[Redeemable]) -> list[Redemption]: ...


class PaperRedeemer:
    """Paper redemption: every share pays its payout, at once and in full."""

    def redeem(self, wallet_id: str, positions: Sequence[Redeemable]) -> list[Redemption]:
        return [Redemption(p.asset, p.condition_id, p.shares, p.expected_usdc) for p in positions]


PAPER_REDEEMER = PaperRedeemer()


def settle_market(
    state: WalletState, wallet_id: str, resolution: MarketResolution, mode: ExecutionMode, now_ms: int
) -> list[OrderEvent]:
    """Apply a market's resolution to one wallet; returns the order events (cancels) to publish. Applying the
    same resolution again changes nothing."""
    state.portfolio.roll_day(state.ledger, day_of(now_ms))
    state.portfolio.record_resolution(resolution.condition_id, resolution.payouts)
    return sweep(state, wallet_id, mode, now_ms)


def sweep(state: WalletState, wallet_id: str, mode: ExecutionMode, now_ms: int) -> list[OrderEvent]:
    """Settle whatever the wallet holds in markets it knows resolved: cancel their open paper orders, then
    make their positions redeemable (paper: redeemed at once). A position with an open SELL order waits for
    that order's end (its cancel is on the way), so no SELL reservation outlives its shares."""
    book, ledger = state.portfolio, state.ledger
    if not book.resolutions:
        return []
    events = _cancel_paper_orders(state, wallet_id, now_ms)
    redeemables = []
    for asset, position in list(ledger.positions.items()):
        payout = book.payout_of(position.condition_id, asset)
        if payout is None or asset in book.redeemable or _offered(ledger, asset):
            continue
        book.redeemable[asset] = payout
        book.set_mark(asset, payout, now_ms)
        redeemables.append(Redeemable(asset, position.condition_id, position.shares, payout))
    if mode is ExecutionMode.PAPER:
        for redemption in PAPER_REDEEMER.redeem(wallet_id, redeemables):
            apply_redemption(state, redemption, now_ms)
    book.refresh(ledger)
    return events


def redeemable_positions(state: WalletState) -> list[Redeemable]:
    """Live positions waiting to be redeemed, for a `RedeemGateway`."""
    ledger = state.ledger
    return [
        Redeemable(asset, ledger.positions[asset].condition_id, ledger.positions[asset].shares, payout)
        for asset, payout in state.portfolio.redeemable.items()
        if asset in ledger.positions
    ]


def apply_redemption(state: WalletState, redemption: Redemption, now_ms: int) -> Decimal:
    """Book what a redemption returned: the position closes for the USDC that arrived (realised PnL against
    its cost), the capital is available again, and the settlement counts towards the win rate. Returns the
    realised PnL (0 for a position no longer held: a redemption reported twice)."""
    ledger, book = state.ledger, state.portfolio
    position = ledger.positions.get(redemption.asset)
    if position is None:
        return Decimal(0)
    payout = book.redeemable.get(redemption.asset, redemption.usdc_received / position.shares)
    book.roll_day(ledger, day_of(now_ms))
    pnl = ledger.settle(redemption.asset, redemption.usdc_received, day_of(now_ms))
    book.attribute_realised(redemption.asset, pnl)
    book.record_settlement(redemption.asset, payout, pnl)
    book.refresh(ledger)
    return pnl


def book_fee(state: WalletState, record: OrderRecord, report: ExecutionReport) -> None:
    """A report's cumulative fee beyond what the order was charged so far is a realised cost of that day."""
    if report.fee_usdc is None or report.fee_usdc <= record.fee_usdc:
        return
    charged = report.fee_usdc - record.fee_usdc
    state.ledger.charge_fee(charged, day_of(report.reported_at_ms))
    state.portfolio.fees_usdc += charged
    record.fee_usdc = report.fee_usdc


def _offered(ledger: WalletLedger, asset: str) -> bool:
    return any(r.asset == asset and r.side is Side.SELL for r in ledger.reservations.values())


def _cancel_paper_orders(state: WalletState, wallet_id: str, now_ms: int) -> list[OrderEvent]:
    events: list[OrderEvent] = []
    for record in list(state.orders.values()):
        reservation = state.ledger.reservations.get(record.intent_id)
        if (
            reservation is None
            or reservation.condition_id not in state.portfolio.resolutions
            or record.order_id != build_paper_order_id(record.intent_id)  # live: the venue cancels it
        ):
            continue
        report = _paper_cancel(record, reservation, wallet_id, now_ms)
        advanced, new_events = advance_order(state.ledger, record, report, now_ms)
        state.record_order(advanced)
        events.extend(new_events)
    return events


def _paper_cancel(
    record: OrderRecord, reservation: Reservation, wallet_id: str, now_ms: int
) -> ExecutionReport:
    """The report the paper venue sends for an open order in a market that resolved."""
    average = reservation.filled_value / reservation.matched if reservation.matched > 0 else None
    return ExecutionReport(
        report_id=build_report_id(
            record.order_id, ReportKind.CANCELLED.value, record.matched, RESOLVED_DETAIL
        ),
        intent_id=record.intent_id,
        wallet_id=wallet_id,
        order_id=record.order_id,
        mode=ExecutionMode.PAPER,
        kind=ReportKind.CANCELLED,
        side=reservation.side,
        asset=reservation.asset,
        size=reservation.size,
        limit_price=reservation.limit_price,
        matched_size=record.matched,
        average_price=average,
        detail=RESOLVED_DETAIL,
        received_at_ms=record.received_at_ms,
        sent_at_ms=record.sent_at_ms,
        reported_at_ms=now_ms,
        condition_id=reservation.condition_id,
    )

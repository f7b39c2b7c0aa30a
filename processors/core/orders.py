"""Order lifecycle: one transition table, and the rule that turns executor reports into order events.

Fills move reserved capital into positions; terminal states release what did not fill. LOST comes from the
executor's lost-order rule (`processors.core.lost_orders`: three definitive not-founds in a row, and the
account's trades checked first), as a LOST report; NOT_FOUND reports only keep the count visible. A LOST order
stays fillable: a later fill books its position again (the venue's index can lag a fill by hours).
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from enum import StrEnum
from typing import Any

from processors.core.ids import build_event_id
from processors.core.ledger import ZERO, WalletLedger
from processors.core.policy import day_of
from schemas.orders import ExecutionReport, OrderEvent, OrderEventType, OrderStatus, ReportKind


class OrderTransition(StrEnum):
    """What can happen to an order."""

    ACCEPT = "accept"
    PARTIAL_FILL = "partial_fill"
    FILL = "fill"
    CANCEL = "cancel"
    REJECT = "reject"
    LOSE = "lose"


S, T = OrderStatus, OrderTransition
TRANSITIONS: dict[tuple[OrderStatus, OrderTransition], OrderStatus] = {
    (S.PENDING, T.ACCEPT): S.PLACED,
    (S.PENDING, T.REJECT): S.REJECTED,
    (S.PENDING, T.LOSE): S.LOST,
    (S.PLACED, T.PARTIAL_FILL): S.PARTIALLY_FILLED,
    (S.PLACED, T.FILL): S.FILLED,
    (S.PLACED, T.CANCEL): S.CANCELLED,
    (S.PLACED, T.LOSE): S.LOST,
    (S.PARTIALLY_FILLED, T.PARTIAL_FILL): S.PARTIALLY_FILLED,
    (S.PARTIALLY_FILLED, T.FILL): S.FILLED,
    (S.PARTIALLY_FILLED, T.CANCEL): S.CANCELLED,
    (S.PARTIALLY_FILLED, T.LOSE): S.LOST,
    # Lost is not gone: a fill the venue reports later is still booked.
    (S.LOST, T.PARTIAL_FILL): S.PARTIALLY_FILLED,
    (S.LOST, T.FILL): S.FILLED,
}
TERMINAL = frozenset({S.FILLED, S.CANCELLED, S.REJECTED, S.LOST})
REOPENED_BY_FILLS = frozenset({S.LOST})
EVENT_OF = {
    S.PLACED: OrderEventType.ORDER_PLACED,
    S.PARTIALLY_FILLED: OrderEventType.ORDER_PARTIAL_FILL,
    S.FILLED: OrderEventType.ORDER_FILLED,
    S.CANCELLED: OrderEventType.ORDER_CANCELLED,
    S.REJECTED: OrderEventType.ORDER_REJECTED,
    S.LOST: OrderEventType.ORDER_LOST,
}


class IllegalTransitionError(ValueError):
    """An order was asked to make a move its state does not allow."""


def transition(status: OrderStatus, move: OrderTransition) -> OrderStatus:
    """The next status; raises IllegalTransitionError on an edge the table does not have."""
    try:
        return TRANSITIONS[(status, move)]
    except KeyError:
        raise IllegalTransitionError(f"{move.value} is not allowed from {status.value}") from None


@dataclass
class OrderRecord:
    """What the lifecycle remembers about one open order."""

    order_id: str
    status: OrderStatus = OrderStatus.PENDING
    matched: Decimal = ZERO
    sequence: int = 0
    not_found_count: int = 0
    # From the order's first report: which intent (reservation) it is, and the times its events carry, so that
    # the order can be cancelled without a report of the executor (paper orders in a resolved market).
    intent_id: str = ""
    received_at_ms: int = 0
    sent_at_ms: int = 0
    fee_usdc: Decimal = ZERO  # fees booked for this order so far (reports carry the cumulative fee)

    def to_state(self) -> list[Any]:
        return [
            self.order_id,
            self.status.value,
            str(self.matched),
            self.sequence,
            self.not_found_count,
            self.intent_id,
            self.received_at_ms,
            self.sent_at_ms,
            str(self.fee_usdc),
        ]

    @classmethod
    def from_state(cls, state: list[Any]) -> OrderRecord:
        order_id, status, matched, sequence, not_found, *rest = state
        intent_id, received_at_ms, sent_at_ms, fee = rest or (
            "",
            0,
            0,
            "0",
        )  # records written before they had them
        return cls(
            order_id,
            OrderStatus(status),
            Decimal(matched),
            int(sequence),
            int(not_found),
            str(intent_id),
            int(received_at_ms),
            int(sent_at_ms),
            Decimal(fee),
        )


def apply_report(
    ledger: WalletLedger, record: OrderRecord | None, report: ExecutionReport, now_ms: int
) -> tuple[OrderRecord, list[OrderEvent]]:
    """Advance one order by one executor report; update the ledger; return the events to publish.

    Reports are idempotent: a fill is cumulative (`matched_size`), and a report that changes nothing yields
    no event, so re-delivery is harmless.
    """
    if record is None:
        record = OrderRecord(
            report.order_id,
            intent_id=report.intent_id,
            received_at_ms=report.received_at_ms,
            sent_at_ms=report.sent_at_ms,
        )
        if report.kind in PLACING_KINDS:
            _hold_as_reported(ledger, report)
    if record.status in REOPENED_BY_FILLS and report.matched_size > record.matched:
        return _fill_lost_order(ledger, record, report, now_ms)
    if report.kind is ReportKind.FILL_REVERSED:  # a settlement event: terminal orders are reversed too
        return _reverse_fill(ledger, record, report, now_ms)
    if record.status in TERMINAL:
        return record, []
    events: list[OrderEvent] = []

    def move(to: OrderTransition, detail: str = "", released: Decimal | None = None) -> None:
        record.status = transition(record.status, to)
        record.sequence += 1
        events.append(_event(record, report, now_ms, detail, released))

    if report.kind is ReportKind.NOT_FOUND:
        record.not_found_count += 1
        return record, events
    if report.kind is ReportKind.LOST:
        move(T.LOSE, report.detail or "lost", ledger.release(report.intent_id))
        return record, events
    record.not_found_count = 0
    if report.kind in (ReportKind.UNKNOWN, ReportKind.FILL_CONFIRMED):
        # UNKNOWN: an ambiguous submit keeps its capital reserved until reconciled. FILL_CONFIRMED: no change.
        return record, events
    if report.kind is ReportKind.REJECTED:
        if record.status is S.PENDING:
            move(T.REJECT, report.detail, ledger.release(report.intent_id))
        return record, events
    if record.status is S.PENDING:
        move(T.ACCEPT)
    if report.matched_size > record.matched:
        record.matched = min(report.matched_size, report.size)
        ledger.apply_fill(
            report.intent_id,
            record.matched,
            report.average_price or report.limit_price,
            day_of(report.reported_at_ms),
        )
        if record.matched >= report.size:
            # Nothing is left to fill: whatever the reservation still holds (it was made for a different size
            # than the order the executor placed) goes back.
            released = ledger.release(report.intent_id)
            move(T.FILL, released=released or None)
        else:
            move(T.PARTIAL_FILL)
    if report.kind is ReportKind.CANCELLED and record.status not in TERMINAL:
        move(T.CANCEL, report.detail, ledger.release(report.intent_id))
    return record, events


# Reports that say an order exists at the venue (or on paper): the first of them holds its capital.
PLACING_KINDS = frozenset({ReportKind.ACCEPTED, ReportKind.FILL, ReportKind.CANCELLED, ReportKind.UNKNOWN})


def _hold_as_reported(ledger: WalletLedger, report: ExecutionReport) -> None:
    """The first report of an order: make the reservation match the order the executor placed.

    Normally the evaluation reserved exactly this order. After a crash the evaluation can be computed again
    and differ from what was first sent (a configuration changed in between): the reservation is then
    missing, or sized for another order. The placed order is the truth, so a position is never lost and the
    ledger identity holds (the capital check is not applied: the order exists).
    """
    held = ledger.reservations.get(report.intent_id)
    if held is not None and (held.size, held.limit_price, held.side) == (
        report.size,
        report.limit_price,
        report.side,
    ):
        return
    ledger.rebook(
        report.intent_id,
        asset=report.asset,
        condition_id=report.condition_id or (held.condition_id if held else ""),
        side=report.side,
        size=report.size,
        limit_price=report.limit_price,
        matched=held.matched if held else ZERO,
        leader=held.leader if held else "",
    )


def _reverse_fill(
    ledger: WalletLedger, record: OrderRecord, report: ExecutionReport, now_ms: int
) -> tuple[OrderRecord, list[OrderEvent]]:
    if report.matched_size >= record.matched:
        return record, []
    reversed_shares = record.matched - report.matched_size
    price = report.average_price or report.limit_price
    day = day_of(report.reported_at_ms)
    ledger.reverse_fill(report.intent_id, report.asset, report.side, reversed_shares, price, day)
    record.matched = report.matched_size
    record.sequence += 1
    detail = f"{reversed_shares} shares failed on chain: {report.detail}".rstrip(": ")
    return record, [_event(record, report, now_ms, detail, None, OrderEventType.ORDER_FILL_REVERSED)]


def _fill_lost_order(
    ledger: WalletLedger, record: OrderRecord, report: ExecutionReport, now_ms: int
) -> tuple[OrderRecord, list[OrderEvent]]:
    ledger.rebook(
        report.intent_id,
        asset=report.asset,
        condition_id=report.condition_id,
        side=report.side,
        size=report.size,
        limit_price=report.limit_price,
        matched=record.matched,
    )
    record.matched = min(report.matched_size, report.size)
    ledger.apply_fill(
        report.intent_id,
        record.matched,
        report.average_price or report.limit_price,
        day_of(report.reported_at_ms),
    )
    record.status = transition(record.status, T.FILL if record.matched >= report.size else T.PARTIAL_FILL)
    record.sequence += 1
    detail = "filled after it was lost: the venue reported the fill late"
    return record, [_event(record, report, now_ms, detail, None)]


def _event(
    record: OrderRecord,
    report: ExecutionReport,
    now_ms: int,
    detail: str,
    released: Decimal | None,
    event_type: OrderEventType | None = None,
) -> OrderEvent:
    return OrderEvent(
        event_id=build_event_id(record.order_id, record.sequence),
        event_type=event_type or EVENT_OF[record.status],
        sequence=record.sequence,
        order_id=record.order_id,
        intent_id=report.intent_id,
        wallet_id=report.wallet_id,
        mode=report.mode,
        status=record.status,
        side=report.side,
        asset=report.asset,
        size=report.size,
        limit_price=report.limit_price,
        matched_size=record.matched,
        average_price=report.average_price,
        released_usdc=released,
        detail=detail,
        received_at_ms=report.received_at_ms,
        sent_at_ms=report.sent_at_ms,
        occurred_at_ms=now_ms,
    )

"""Execution reports, and paper execution: what an order gets against the book levels its intent carries
(those the liquidity gate saw), so a replay fills exactly as the live run did. Pure."""

from __future__ import annotations

from decimal import Decimal

from processors.core.books import simulate_fill
from processors.core.ids import build_report_id
from schemas.orders import ExecutionMode, ExecutionReport, OrderIntent, OrderType, ReportKind


def build_execution_report(
    intent: OrderIntent,
    order_id: str,
    kind: ReportKind,
    mode: ExecutionMode,
    *,
    matched: Decimal = Decimal(0),
    average: Decimal | None = None,
    detail: str = "",
    sent_at_ms: int,
    reported_at_ms: int,
) -> ExecutionReport:
    """One report about the order placed for `intent`; its id is stable for the same observation."""
    return ExecutionReport(
        report_id=build_report_id(order_id, kind.value, matched, detail),
        intent_id=intent.intent_id,
        wallet_id=intent.wallet_id,
        order_id=order_id,
        mode=mode,
        kind=kind,
        side=intent.side,
        asset=intent.asset,
        size=intent.size,
        limit_price=intent.limit_price,
        matched_size=matched,
        average_price=average,
        detail=detail,
        received_at_ms=intent.received_at_ms,
        sent_at_ms=sent_at_ms,
        reported_at_ms=reported_at_ms,
        condition_id=intent.condition_id,
    )


def execute_on_paper(
    intent: OrderIntent, order_id: str, *, sent_at_ms: int, reported_at_ms: int
) -> list[ExecutionReport]:
    """Cross the intent's book levels up to the limit like a taker. FAK kills the rest, FOK kills all unless
    fully filled, GTC/GTD rest the remainder (reported as accepted). An intent without book levels (decided
    without a book) is what the venue would reject."""

    def report(
        kind: ReportKind, matched: Decimal, average: Decimal | None, detail: str = ""
    ) -> ExecutionReport:
        return build_execution_report(
            intent,
            order_id,
            kind,
            ExecutionMode.PAPER,
            matched=matched,
            average=average,
            detail=detail,
            sent_at_ms=sent_at_ms,
            reported_at_ms=reported_at_ms,
        )

    if intent.book_levels is None:
        return [report(ReportKind.REJECTED, Decimal(0), None, "no order book for this token")]
    fill = simulate_fill(intent.book_levels, intent.side, intent.limit_price, intent.size)
    if intent.order_type is OrderType.FOK and fill.matched_size < intent.size:
        return [report(ReportKind.CANCELLED, Decimal(0), None, "FOK could not be fully filled")]
    reports = []
    if fill.matched_size > 0:
        reports.append(report(ReportKind.FILL, fill.matched_size, fill.average_price))
    if fill.matched_size < intent.size:
        if intent.order_type in (OrderType.FAK, OrderType.FOK):
            reports.append(
                report(ReportKind.CANCELLED, fill.matched_size, fill.average_price, "FAK remainder killed")
            )
        elif fill.matched_size == 0:
            reports.append(report(ReportKind.ACCEPTED, Decimal(0), None, "resting"))
    return reports

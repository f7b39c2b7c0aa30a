"""Execution reports, and paper execution: what an order gets against the book levels its intent carries
(those the liquidity gate saw), so a replay fills exactly as the live run did; and what a resting paper
order (GTC, GTD) gets later, as the books topic moves, until it fills or its time is up. Pure."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, replace
from decimal import Decimal
from typing import Any

from processors.core.books import simulate_fill
from processors.core.ids import build_report_id
from schemas.books import Level, OrderBook
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
        dedup_key=intent.dedup_key,
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


# --- resting paper orders (GTC, GTD) ------------------------------------------------------------------------
@dataclass(frozen=True)
class RestingOrder:
    """A paper GTC/GTD order with a remainder on the book: it fills as new liquidity reaches its limit and
    ends when filled, when it expires (GTD at its expiration; GTC after the paper limit, since no user is
    there to cancel it) or never otherwise.

    `seen` is the liquidity at or inside the limit in the last state considered: paper never removes what it
    takes from a book, so a level still standing in the next state is the same liquidity, not new sellers.
    """

    intent: OrderIntent
    order_id: str
    matched: Decimal
    notional: Decimal  # what the matched shares cost (BUY) or brought (SELL)
    seen: tuple[Level, ...]
    expires_at_ms: int

    @property
    def remaining(self) -> Decimal:
        return self.intent.size - self.matched

    @property
    def average_price(self) -> Decimal | None:
        return (self.notional / self.matched).quantize(Decimal("0.000001")) if self.matched > 0 else None

    def to_state(self) -> dict[str, Any]:
        """Plain JSON for the executor's table."""
        return {
            "intent": self.intent.model_dump(mode="json"),
            "order_id": self.order_id,
            "matched": str(self.matched),
            "notional": str(self.notional),
            "seen": [[str(level.price), str(level.size)] for level in self.seen],
            "expires_at_ms": self.expires_at_ms,
        }

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> RestingOrder:
        return cls(
            intent=OrderIntent.model_validate(state["intent"]),
            order_id=state["order_id"],
            matched=Decimal(state["matched"]),
            notional=Decimal(state["notional"]),
            seen=tuple(Level(Decimal(price), Decimal(size)) for price, size in state["seen"]),
            expires_at_ms=int(state["expires_at_ms"]),
        )


def rest_on_paper(
    intent: OrderIntent, order_id: str, reports: Iterable[ExecutionReport], *, gtc_max_secs: float
) -> RestingOrder | None:
    """The order left resting by `execute_on_paper`'s `reports` (GTC/GTD with a remainder), else None."""
    if intent.order_type not in (OrderType.GTC, OrderType.GTD) or intent.book_levels is None:
        return None
    done = [r for r in reports if r.kind in (ReportKind.CANCELLED, ReportKind.REJECTED)]
    fills = [r for r in reports if r.kind is ReportKind.FILL]
    matched = fills[-1].matched_size if fills else Decimal(0)
    if done or matched >= intent.size:
        return None
    notional = matched * fills[-1].average_price if fills and fills[-1].average_price else Decimal(0)
    if intent.order_type is OrderType.GTD and intent.expiry_secs is not None:
        lifetime_ms = intent.expiry_secs * 1000
    else:
        lifetime_ms = int(gtc_max_secs * 1000)
    return RestingOrder(
        intent, order_id, matched, notional, intent.book_levels, intent.created_at_ms + lifetime_ms
    )


def fill_resting(
    order: RestingOrder, book: OrderBook, *, now_ms: int
) -> tuple[RestingOrder, list[ExecutionReport]]:
    """A new book state for the order's token: take the liquidity that newly reached the limit (more than
    `seen` showed at that price), best first, up to the remainder. A cumulative FILL report if it took any."""
    intent = order.intent
    levels = book.levels_within(intent.side, intent.limit_price)
    before = {level.price: level.size for level in order.seen}
    fresh = [Level(level.price, level.size - before.get(level.price, Decimal(0))) for level in levels]
    fill = simulate_fill(
        [level for level in fresh if level.size > 0], intent.side, intent.limit_price, order.remaining
    )
    if fill.matched_size <= 0:
        return replace(order, seen=levels), []
    updated = replace(
        order, matched=order.matched + fill.matched_size, notional=order.notional + fill.notional, seen=levels
    )
    report = build_execution_report(
        intent,
        order.order_id,
        ReportKind.FILL,
        ExecutionMode.PAPER,
        matched=updated.matched,
        average=updated.average_price,
        sent_at_ms=intent.created_at_ms,
        reported_at_ms=now_ms,
    )
    return updated, [report]


def expire_resting(order: RestingOrder, *, now_ms: int) -> ExecutionReport | None:
    """The CANCELLED report of an order whose time is up (None while it may still rest)."""
    if now_ms < order.expires_at_ms:
        return None
    kind = (
        "GTD expired"
        if order.intent.order_type is OrderType.GTD
        else "GTC paper order ended at the paper limit"
    )
    return build_execution_report(
        order.intent,
        order.order_id,
        ReportKind.CANCELLED,
        ExecutionMode.PAPER,
        matched=order.matched,
        average=order.average_price,
        detail=kind,
        sent_at_ms=order.intent.created_at_ms,
        reported_at_ms=now_ms,
    )

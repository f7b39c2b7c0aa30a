"""The liquidity gate (can the book take enough of our order at our limit), the paper fill model, and the
stamp that makes a book a state of the books topic (its source, receive time and deterministic id)."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from decimal import Decimal

from processors.core.ids import build_book_id
from schemas.base import Side
from schemas.books import BookSource, Level, OrderBook


@dataclass(frozen=True)
class LiquidityCheck:
    """Result of the liquidity gate."""

    passed: bool
    available_size: Decimal
    required_size: Decimal


def check_liquidity(
    book: OrderBook, side: Side, limit_price: Decimal, size: Decimal, min_fill_ratio: Decimal
) -> LiquidityCheck:
    """BUY: ask sizes at prices <= limit; SELL: bid sizes at prices >= limit; pass when >= ratio x size."""
    available = sum((level.size for level in book.levels_within(side, limit_price)), Decimal(0))
    required = size * min_fill_ratio
    return LiquidityCheck(
        passed=available >= required and available > 0, available_size=available, required_size=required
    )


@dataclass(frozen=True)
class SimulatedFill:
    """What an order would get by crossing the book now."""

    matched_size: Decimal
    average_price: Decimal | None
    notional: Decimal


def simulate_fill(levels: Iterable[Level], side: Side, limit_price: Decimal, size: Decimal) -> SimulatedFill:
    """Walk `levels` (the side an order takes from, best first) up to the limit: the paper fill model
    (taker, no queue)."""
    remaining = size
    notional = Decimal(0)
    for level in levels:
        crosses = level.price <= limit_price if side is Side.BUY else level.price >= limit_price
        if not crosses or remaining <= 0:
            break
        take = min(remaining, level.size)
        notional += take * level.price
        remaining -= take
    matched = size - remaining
    average = (notional / matched).quantize(Decimal("0.000001")) if matched > 0 else None
    return SimulatedFill(matched_size=matched, average_price=average, notional=notional)


def stamp_book(book: OrderBook, source: BookSource, received_at_ms: int) -> OrderBook:
    """The book as a state of the books topic: where it came from, when, and its id."""
    book_id = build_book_id(
        asset=book.asset,
        source=source.value,
        received_at_ms=received_at_ms,
        timestamp_ms=book.timestamp_ms,
        venue_hash=book.venue_hash,
        tick_size=book.tick_size,
        min_order_size=book.min_order_size,
        neg_risk=book.neg_risk,
        bids=((level.price, level.size) for level in book.bids),
        asks=((level.price, level.size) for level in book.asks),
    )
    return book.model_copy(update={"source": source, "received_at_ms": received_at_ms, "book_id": book_id})


def is_fresh(received_at_ms: int, at_ms: int, max_age_ms: int) -> bool:
    """True when a state received at `received_at_ms` is at most `max_age_ms` old at `at_ms`. (A state a
    little "from the future" counts as fresh: the books producer's clock may run ahead of a worker's.)"""
    return at_ms - received_at_ms <= max_age_ms

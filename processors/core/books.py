"""The liquidity gate (can the book take enough of our order at our limit) and the paper fill model."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from schemas.base import Side
from schemas.books import OrderBook


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
    if side is Side.BUY:
        available = sum((lvl.size for lvl in book.asks if lvl.price <= limit_price), Decimal(0))
    else:
        available = sum((lvl.size for lvl in book.bids if lvl.price >= limit_price), Decimal(0))
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


def simulate_fill(book: OrderBook, side: Side, limit_price: Decimal, size: Decimal) -> SimulatedFill:
    """Walk the book best-first up to the limit: the paper executor's fill model (taker, no queue)."""
    remaining = size
    notional = Decimal(0)
    for level in book.levels_against(side):
        crosses = level.price <= limit_price if side is Side.BUY else level.price >= limit_price
        if not crosses or remaining <= 0:
            break
        take = min(remaining, level.size)
        notional += take * level.price
        remaining -= take
    matched = size - remaining
    average = (notional / matched).quantize(Decimal("0.000001")) if matched > 0 else None
    return SimulatedFill(matched_size=matched, average_price=average, notional=notional)

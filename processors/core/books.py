"""Order books as sorted levels, and the liquidity gate: can the book take enough of our order at our limit."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from schemas.base import Side


@dataclass(frozen=True)
class Level:
    """One price level."""

    price: Decimal
    size: Decimal


@dataclass(frozen=True)
class OrderBook:
    """A book with levels sorted best-first (the venue sends them worst-first; we never trust its order)."""

    asset: str
    market: str
    bids: tuple[Level, ...]
    asks: tuple[Level, ...]
    tick_size: Decimal
    min_order_size: Decimal
    neg_risk: bool
    timestamp_ms: int

    def levels_against(self, side: Side) -> tuple[Level, ...]:
        """The levels an order of `side` takes from: asks for a BUY, bids for a SELL."""
        return self.asks if side is Side.BUY else self.bids


class BookFormatError(ValueError):
    """The book payload did not have the venue's shape."""


def parse_book(payload: dict[str, Any]) -> OrderBook:
    """Parse a CLOB `GET /book` (or market-channel `book`) payload into a best-first book."""
    try:
        bids = sorted((_level(item) for item in payload.get("bids") or ()), key=lambda lvl: -lvl.price)
        asks = sorted((_level(item) for item in payload.get("asks") or ()), key=lambda lvl: lvl.price)
        return OrderBook(
            asset=str(payload["asset_id"]),
            market=str(payload.get("market", "")),
            bids=tuple(lvl for lvl in bids if lvl.size > 0),
            asks=tuple(lvl for lvl in asks if lvl.size > 0),
            tick_size=Decimal(str(payload.get("tick_size", "0.01"))),
            min_order_size=Decimal(str(payload.get("min_order_size", "0"))),
            neg_risk=bool(payload.get("neg_risk", False)),
            timestamp_ms=int(payload.get("timestamp") or 0),
        )
    except (KeyError, TypeError, ValueError, ArithmeticError) as error:
        raise BookFormatError(f"bad book payload: {error}") from error


def _level(item: dict[str, Any]) -> Level:
    return Level(price=Decimal(str(item["price"])), size=Decimal(str(item["size"])))


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
    return LiquidityCheck(passed=available >= required and available > 0, available_size=available,
                          required_size=required)


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

"""Order books as the pipeline sees them, whatever venue they came from: levels sorted best-first."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from schemas.base import Side


@dataclass(frozen=True)
class Level:
    """One price level."""

    price: Decimal
    size: Decimal


@dataclass(frozen=True)
class OrderBook:
    """A book with levels sorted best-first (venues may send them in any order; parsers sort them)."""

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

"""Order books as the pipeline sees them, whatever venue they came from: levels sorted best-first.

`OrderBook` is also the value of the books topic: the full book of one token after each change, so a reader
can start anywhere in the log and a replay sees the liquidity the live gate saw.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from enum import StrEnum

from schemas.base import Amount, Message, Side


# A plain frozen dataclass, not a model: books hold dozens of levels and are rebuilt on every venue change,
# and pydantic keeps dataclass instances as they are instead of validating each one again.
@dataclass(frozen=True, slots=True)
class Level:
    """One price level."""

    price: Amount
    size: Amount


class BookSource(StrEnum):
    """Where a book state came from."""

    CHANNEL = "channel"  # the CLOB market channel (the books producer's connection)
    REST = "rest"  # a `GET /book` fallback fetched by a worker


class OrderBook(Message):
    """A token's book with levels sorted best-first (venues may send them in any order; parsers sort them).

    Key on the books topic: `asset` (the token id). Built by the venue adapter without `source`,
    `received_at_ms` and `book_id`; the component that receives it stamps those before publishing.
    """

    asset: str
    market: str
    bids: tuple[Level, ...]
    asks: tuple[Level, ...]
    tick_size: Amount
    min_order_size: Amount
    neg_risk: bool = False
    timestamp_ms: int = 0  # the venue's time of this state (0 when it sent none)
    venue_hash: str | None = None  # the venue's hash of the book, when it sent one
    received_at_ms: int = 0  # when we received this state
    source: BookSource | None = None
    book_id: str | None = None  # deterministic id of this state (processors.core.ids.build_book_id)

    def levels_against(self, side: Side) -> tuple[Level, ...]:
        """The levels an order of `side` takes from: asks for a BUY, bids for a SELL."""
        return self.asks if side is Side.BUY else self.bids

    def levels_within(self, side: Side, limit_price: Decimal) -> tuple[Level, ...]:
        """The levels an order of `side` can take at `limit_price`, best first."""
        if side is Side.BUY:
            return tuple(level for level in self.asks if level.price <= limit_price)
        return tuple(level for level in self.bids if level.price >= limit_price)

"""A copy wallet's state between events: its ledger, its PnL book, its open orders and the ids of orders it
closed."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from processors.core.ledger import WalletLedger
from processors.core.orders import TERMINAL, OrderRecord
from processors.core.portfolio import Portfolio

CLOSED_ORDERS_KEPT = 2000


class WalletState:
    """A wallet's ledger, PnL book and open orders, as loaded for one event (or kept in memory by a replay).

    Only the newest CLOSED_ORDERS_KEPT closed ids are remembered: a late report comes within minutes.
    """

    def __init__(
        self,
        ledger: WalletLedger,
        orders: dict[str, OrderRecord],
        closed: list[str],
        portfolio: Portfolio | None = None,
    ) -> None:
        self.ledger, self.orders, self.closed = ledger, orders, closed
        self.portfolio = portfolio or Portfolio()

    @classmethod
    def new(cls, capital: Decimal) -> WalletState:
        """A wallet that has done nothing yet."""
        return cls(WalletLedger(capital_usdc=capital), {}, [])

    @classmethod
    def load(cls, value: dict[str, Any] | None, capital: Decimal) -> WalletState:
        """From the plain-JSON value `dump` wrote (None: a new wallet with `capital`)."""
        if not value:
            return cls.new(capital)
        return cls(
            WalletLedger.from_state(value["ledger"]),
            {k: OrderRecord.from_state(v) for k, v in value["orders"].items()},
            list(value["closed"]),
            Portfolio.from_state(value.get("portfolio")),
        )

    def dump(self) -> dict[str, Any]:
        """Plain JSON for processor tables."""
        return {
            "ledger": self.ledger.to_state(),
            "orders": {k: v.to_state() for k, v in self.orders.items()},
            "closed": list(self.closed),
            "portfolio": self.portfolio.to_state(),
        }

    def is_closed(self, order_id: str) -> bool:
        """True when the order reached a final state (a report about it now is late and changes nothing)."""
        return order_id in self.closed

    def record_order(self, record: OrderRecord) -> None:
        """Keep an open order; forget a finished one but remember its id (late reports are ignored)."""
        if record.status in TERMINAL:
            self.orders.pop(record.order_id, None)
            self.closed.append(record.order_id)
            del self.closed[:-CLOSED_ORDERS_KEPT]
        else:
            self.orders[record.order_id] = record

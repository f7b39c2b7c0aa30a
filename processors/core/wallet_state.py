"""A copy wallet's state between events: its ledger, its PnL book, its open orders and the ids of orders it
closed."""

from __future__ import annotations

from collections import Counter
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

    def dump(self, *, tokens: bool = True) -> dict[str, Any]:
        """Plain JSON for processor tables (`tokens=False`: without the positions, marks and realised PnL by
        token, which the worker keeps per token)."""
        return {
            "ledger": self.ledger.to_state(positions=tokens),
            "orders": {k: v.to_state() for k, v in self.orders.items()},
            "closed": list(self.closed),
            "portfolio": self.portfolio.to_state(tokens=tokens),
        }

    def dumps_whole(self) -> bool:
        """Whether `load(dump())` gives this state back, but for its running sums (which give what summing
        afresh gives): the PnL book and the orders always do; the ledger unless it holds more days of PnL
        than its state keeps."""
        return self.ledger.state_is_whole()

    def forget_closed(self) -> None:
        """Forget the closed ids and their index (saved, the worker keeps them in a table of their own)."""
        self.closed.clear()
        self.__dict__.pop("_closed_index_counts", None)

    def remember_closed(self, order_id: str) -> None:
        """Remember an order that ended before this state was loaded (the worker keeps those ids in a table),
        keeping the index in step if it was built."""
        self.closed.append(order_id)
        index: Counter[str] | None = self.__dict__.get("_closed_index_counts")
        if index is not None:
            index[order_id] += 1

    def is_closed(self, order_id: str) -> bool:
        """True when the order reached a final state (a report about it now is late and changes nothing)."""
        return order_id in self._closed_index()

    def record_order(self, record: OrderRecord) -> None:
        """Keep an open order; forget a finished one but remember its id (late reports are ignored)."""
        if record.status in TERMINAL:
            self.orders.pop(record.order_id, None)
            self.closed.append(record.order_id)
            forgotten = self.closed[:-CLOSED_ORDERS_KEPT]
            del self.closed[:-CLOSED_ORDERS_KEPT]
            index: Counter[str] | None = self.__dict__.get("_closed_index_counts")
            if index is not None:
                index[record.order_id] += 1
                index.subtract(forgotten)
                for order_id in forgotten:
                    if index[order_id] <= 0:
                        del index[order_id]
        else:
            self.orders[record.order_id] = record

    def _closed_index(self) -> Counter[str]:
        # Counts of the ids in `closed`, built on first use and kept in step by record_order: a state that a
        # replay keeps in memory answers each report in O(1) instead of scanning up to CLOSED_ORDERS_KEPT ids.
        index: Counter[str] | None = self.__dict__.get("_closed_index_counts")
        if index is None:
            index = self.__dict__["_closed_index_counts"] = Counter(self.closed)
        return index

"""The fake venue's order engine for our own (authenticated) orders, with no I/O: matching against the
simulated books, resting orders, delayed matching, the order index's lag (a matched FAK is "not found" for a
while), and fills that settle MATCHED -> MINED -> CONFIRMED or fail RETRYING -> FAILED (reference 3.7-3.8, 6).

Answers are (HTTP status, JSON body) in the venue's shapes; the CLOB order service adds authentication.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from polycopy.simulator.books import format_decimal
from polycopy.simulator.market import MarketSimulator

ZERO = Decimal(0)
NOT_FOUND_TEXT = "Unable to find requested resource"


@dataclass
class ExchangeScript:
    """Venue behaviours a test can switch on (counts are consumed one order or fill at a time)."""

    delay_next_orders: int = 0  # marketable orders answered `delayed`, matched `delay_ms` later
    delay_ms: int = 1500
    unmatch_delayed: bool = False  # a delayed order then finds nothing: UNMATCHED
    fail_next_fills: int = 0  # fills that go RETRYING -> FAILED instead of MINED -> CONFIRMED
    index_lag_ms: int = 0  # an order matched at placement is "not found" by GET /data/order this long
    mine_ms: int = 300
    confirm_ms: int = 1200


@dataclass
class ExchangeOrder:
    """One order the fake venue accepted."""

    order_id: str
    owner: str
    maker_address: str
    market: str
    asset: str
    outcome: str
    side: str
    price: Decimal
    original_size: Decimal
    order_type: str
    created_at_ms: int
    status: str = "LIVE"
    size_matched: Decimal = ZERO
    visible_at_ms: int = 0
    delayed_until_ms: int | None = None
    trade_ids: list[str] = field(default_factory=list)

    def to_row(self) -> dict[str, Any]:
        """The `GET /data/order/{id}` / `/data/orders` shape (REST prefixes the status)."""
        return {
            "id": self.order_id,
            "status": f"ORDER_STATUS_{self.status}",
            "owner": self.owner,
            "maker_address": self.maker_address,
            "market": self.market,
            "asset_id": self.asset,
            "side": self.side,
            "original_size": format_decimal(self.original_size),
            "size_matched": format_decimal(self.size_matched),
            "price": format_decimal(self.price),
            "outcome": self.outcome,
            "expiration": "0",
            "order_type": self.order_type,
            "associate_trades": list(self.trade_ids),
            "created_at": self.created_at_ms // 1000,
        }


@dataclass
class ExchangeTrade:
    """One fill of one of our orders; its status follows the clock (and whether it is scripted to fail)."""

    trade_id: str
    order: ExchangeOrder
    size: Decimal
    price: Decimal
    match_time_ms: int
    taker: bool
    fails: bool

    def status(self, now_ms: int, script: ExchangeScript) -> str:
        """MATCHED, then MINED (or RETRYING), then CONFIRMED (or FAILED)."""
        age = now_ms - self.match_time_ms
        if age < script.mine_ms:
            return "MATCHED"
        if age < script.confirm_ms:
            return "RETRYING" if self.fails else "MINED"
        return "FAILED" if self.fails else "CONFIRMED"

    def to_row(self, now_ms: int, script: ExchangeScript) -> dict[str, Any]:
        """The `GET /data/trades` shape; a resting order of ours that was hit is a maker order there."""
        order, status = self.order, self.status(now_ms, script)
        settled = status in ("MINED", "CONFIRMED")
        row: dict[str, Any] = {
            "id": self.trade_id,
            "taker_order_id": order.order_id if self.taker else "0x" + _digest("counterparty", self.trade_id),
            "market": order.market,
            "asset_id": order.asset,
            "side": order.side if self.taker else ("SELL" if order.side == "BUY" else "BUY"),
            "size": format_decimal(self.size),
            "fee_rate_bps": "0",
            "price": format_decimal(self.price),
            "status": status,
            "match_time": str(self.match_time_ms // 1000),
            "last_update": str(now_ms // 1000),
            "outcome": order.outcome,
            "owner": order.owner if self.taker else "",
            "maker_address": order.maker_address if self.taker else "",
            "transaction_hash": "0x" + _digest("tx", self.trade_id) if settled else "",
            "bucket_index": 0,
            "trader_side": "TAKER" if self.taker else "MAKER",
            "maker_orders": [],
        }
        if not self.taker:
            row["maker_orders"] = [
                {
                    "order_id": order.order_id,
                    "owner": order.owner,
                    "maker_address": order.maker_address,
                    "matched_amount": format_decimal(self.size),
                    "price": format_decimal(self.price),
                    "fee_rate_bps": "0",
                    "asset_id": order.asset,
                    "outcome": order.outcome,
                    "side": order.side,
                }
            ]
        return row


@dataclass(frozen=True)
class SubmittedOrder:
    """A verified `POST /order`: who sent it, its hash, and its terms in shares and price."""

    order_id: str
    owner: str
    maker_address: str
    asset: str
    side: str
    price: Decimal
    size: Decimal
    order_type: str
    post_only: bool


class SimulatedExchange:
    """Our account's orders and fills at the fake venue."""

    def __init__(self, simulator: MarketSimulator) -> None:
        self._simulator = simulator
        self.script = ExchangeScript()
        self.orders: dict[str, ExchangeOrder] = {}
        self.trades: list[ExchangeTrade] = []
        self.posts_received = 0

    def submit(self, submitted: SubmittedOrder, now_ms: int) -> tuple[int, dict[str, Any]]:
        """Place one order: (status, body) as `POST /order` answers."""
        self.posts_received += 1
        if submitted.order_id in self.orders:
            return 400, {"error": f"order {submitted.order_id} is invalid. Duplicated."}
        market = self._simulator.market_for_token(submitted.asset)
        if market is None:
            return 400, {"error": "the market is not yet ready to process new orders"}
        if submitted.order_type in ("GTC", "GTD") and submitted.size < market.min_order_size:
            return 400, {"error": f"Size ({submitted.size}) lower than the minimum: {market.min_order_size}"}
        order = ExchangeOrder(
            order_id=submitted.order_id,
            owner=submitted.owner,
            maker_address=submitted.maker_address,
            market=market.condition_id,
            asset=submitted.asset,
            outcome=market.outcomes[market.token_ids.index(submitted.asset)],
            side=submitted.side,
            price=submitted.price,
            original_size=submitted.size,
            order_type=submitted.order_type,
            created_at_ms=now_ms,
        )
        if submitted.post_only and self._crosses(order):
            return 400, {"error": "invalid post-only order: order crosses book"}
        if submitted.order_type in ("FAK", "FOK") and self.script.delay_next_orders > 0:
            self.script.delay_next_orders -= 1
            order.status, order.delayed_until_ms = "DELAYED", now_ms + self.script.delay_ms
            self.orders[order.order_id] = order
            return 200, _placement_body(order, "delayed", [])
        if submitted.order_type == "FOK" and self._available(order) < order.original_size:
            return 400, {"error": "order couldn't be fully filled. FOK orders are fully filled or killed."}
        new_trades = self._match(order, now_ms)
        if order.order_type in ("FAK", "FOK") and not new_trades:
            return 400, {
                "error": "no orders found to match with FAK order. FAK orders are partially filled or killed "
                "if no match is found.",
                "orderID": order.order_id,
                "success": False,
            }
        self.orders[order.order_id] = order
        if order.order_type in ("FAK", "FOK"):
            order.status = "MATCHED"  # filled, and any remainder killed
            order.visible_at_ms = now_ms + self.script.index_lag_ms
        elif order.size_matched >= order.original_size:
            order.status = "MATCHED"
        return 200, _placement_body(order, "matched" if new_trades else "live", new_trades)

    def advance(self, now_ms: int) -> None:
        """Delayed orders whose delay is over match now (or, when scripted, find nothing)."""
        for order in list(self.orders.values()):
            if order.status != "DELAYED" or order.delayed_until_ms is None or now_ms < order.delayed_until_ms:
                continue
            order.delayed_until_ms = None
            trades = [] if self.script.unmatch_delayed else self._match(order, now_ms)
            order.status = "MATCHED" if trades else "UNMATCHED"

    def look_up(self, order_id: str, owner: str, now_ms: int) -> dict[str, Any] | None:
        """`GET /data/order/{id}`: the order, or None (404) when unknown, not ours, or not indexed yet."""
        self.advance(now_ms)
        order = self.orders.get(order_id)
        if order is None or order.owner != owner or now_ms < order.visible_at_ms:
            return None
        return order.to_row()

    def open_orders(self, owner: str, asset: str = "", market: str = "") -> list[dict[str, Any]]:
        """`GET /data/orders`: resting orders only (matched ones are never listed)."""
        return [
            order.to_row()
            for order in self.orders.values()
            if order.owner == owner
            and order.status == "LIVE"
            and (not asset or order.asset == asset)
            and (not market or order.market == market)
        ]

    def trade_rows(self, owner: str, after_secs: int, now_ms: int) -> list[dict[str, Any]]:
        """`GET /data/trades`: the account's fills matched at or after `after_secs`, oldest first."""
        self.advance(now_ms)
        return [
            trade.to_row(now_ms, self.script)
            for trade in self.trades
            if trade.order.owner == owner and trade.match_time_ms // 1000 >= after_secs
        ]

    def cancel(self, owner: str, order_ids: list[str]) -> dict[str, Any]:
        """`DELETE /order(s)`: `{"canceled": [...], "not_canceled": {id: reason}}`."""
        canceled, not_canceled = [], {}
        for order_id in order_ids:
            order = self.orders.get(order_id)
            if order is None or order.owner != owner:
                not_canceled[order_id] = "order not found"
            elif order.status != "LIVE":
                not_canceled[order_id] = f"order can't be canceled: {order.status.lower()}"
            else:
                order.status = "CANCELED"
                canceled.append(order_id)
        return {"canceled": canceled, "not_canceled": not_canceled}

    def fill_resting(self, order_id: str, size: Decimal, now_ms: int) -> None:
        """A counterparty takes `size` of our resting order (we are the maker of that trade)."""
        order = self.orders[order_id]
        size = min(size, order.original_size - order.size_matched)
        if order.status != "LIVE" or size <= 0:
            raise ValueError(f"order {order_id} cannot fill {size} more (status {order.status})")
        self._record_fill(order, order.price, size, now_ms, taker=False)
        if order.size_matched >= order.original_size:
            order.status = "MATCHED"

    def _available(self, order: ExchangeOrder) -> Decimal:
        levels = self._simulator.book_levels(order.asset)
        if levels is None:
            return ZERO
        bids, asks = levels
        if order.side == "BUY":
            return sum((size for price, size in asks.items() if price <= order.price), ZERO)
        return sum((size for price, size in bids.items() if price >= order.price), ZERO)

    def _crosses(self, order: ExchangeOrder) -> bool:
        levels = self._simulator.book_levels(order.asset)
        if levels is None:
            return False
        bids, asks = levels
        if order.side == "BUY":
            return bool(asks) and min(asks) <= order.price
        return bool(bids) and max(bids) >= order.price

    def _match(self, order: ExchangeOrder, now_ms: int) -> list[ExchangeTrade]:
        wanted = order.original_size - order.size_matched
        fills = self._simulator.take_liquidity(order.asset, order.side, order.price, wanted)
        return [self._record_fill(order, price, size, now_ms, taker=True) for price, size in fills]

    def _record_fill(
        self, order: ExchangeOrder, price: Decimal, size: Decimal, now_ms: int, *, taker: bool
    ) -> ExchangeTrade:
        fails = self.script.fail_next_fills > 0
        if fails:
            self.script.fail_next_fills -= 1
        trade_id = _uuid(_digest("trade", order.order_id, str(len(self.trades))))
        trade = ExchangeTrade(trade_id, order, size, price, now_ms, taker, fails)
        self.trades.append(trade)
        order.trade_ids.append(trade_id)
        order.size_matched += size
        return trade


def _placement_body(order: ExchangeOrder, status: str, trades: list[ExchangeTrade]) -> dict[str, Any]:
    shares = sum((trade.size for trade in trades), ZERO)
    usdc = sum((trade.size * trade.price for trade in trades), ZERO)
    making, taking = (usdc, shares) if order.side == "BUY" else (shares, usdc)
    return {
        "success": True,
        "errorMsg": "",
        "orderID": order.order_id,
        "status": status,
        "makingAmount": format_decimal(making) if trades else "",
        "takingAmount": format_decimal(taking) if trades else "",
        "transactionsHashes": [],  # settlement is asynchronous: hashes come later, on the trades
        "tradeIDs": [trade.trade_id for trade in trades],
    }


def _digest(*parts: str) -> str:
    return hashlib.sha256("|".join(parts).encode()).hexdigest()


def _uuid(hex_digest: str) -> str:
    h = hex_digest
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:32]}"

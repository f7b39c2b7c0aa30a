"""The fake CLOB user channel (`/ws/user`, reference 2.3): a socket authenticates with the API key, secret
and passphrase the fake CLOB issued (anything else is closed with a reason), then hears an `order` event when
one of its account's orders is placed, updated (matched) or cancelled, and a `trade` event when a fill of
one is matched and at each later status (MINED, CONFIRMED; RETRYING, FAILED), with the documented fields.

Events are found by diffing the exchange against what each socket was sent, every few milliseconds, so
changes made by tests on another thread (`fill_resting`) and clock-driven ones (delays, settlement) are
pushed the same way.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from aiohttp import WSCloseCode, WSMsgType, web

from polycopy.simulator.clob_auth import ApiKey
from polycopy.simulator.exchange import ExchangeOrder, ExchangeTrade, SimulatedExchange

AUTH_REFUSED = b"invalid authentication"


@dataclass(eq=False)
class _UserClient:
    socket: web.WebSocketResponse
    owner: str = ""  # the API key, once authenticated
    markets: frozenset[str] = frozenset()  # condition ids followed; empty = the whole account
    orders: dict[str, tuple[str, Decimal]] = field(default_factory=dict)  # id -> (status, matched) sent
    trades: dict[str, str] = field(default_factory=dict)  # trade id -> status sent


class UserChannelService:
    """Serves user-channel sockets on the CLOB port, as the venue does under `/ws/user`."""

    def __init__(
        self, exchange: SimulatedExchange, keys: Mapping[str, ApiKey], clock_ms: Callable[[], int]
    ) -> None:
        self._exchange, self._keys, self._clock_ms = exchange, keys, clock_ms
        self._clients: set[_UserClient] = set()
        self.refused = 0  # sockets closed for bad credentials

    @property
    def authenticated_clients(self) -> int:
        return sum(1 for client in self._clients if client.owner)

    def add_routes(self, router: web.UrlDispatcher) -> None:
        """Register `/ws/user`."""
        router.add_get("/ws/user", self._handle)

    async def push_changes(self) -> None:
        """Send every authenticated socket the events of its account since it was last sent any."""
        if not any(client.owner for client in self._clients):
            return
        now = self._clock_ms()
        self._exchange.advance(now)  # delayed orders whose time came match now, as a look-up would see
        orders = list(self._exchange.orders.values())
        trades = list(self._exchange.trades)
        for client in list(self._clients):
            if client.owner:
                for event in self._changes(client, orders, trades, now):
                    await self._send(client, json.dumps(event, separators=(",", ":")))

    async def drop_connections(self) -> None:
        """Close every user-channel socket from the server side."""
        for client in list(self._clients):
            await client.socket.close(code=WSCloseCode.GOING_AWAY, message=b"server restart")
        self._clients.clear()

    async def _handle(self, request: web.Request) -> web.WebSocketResponse:
        socket = web.WebSocketResponse()
        await socket.prepare(request)
        client = _UserClient(socket)
        self._clients.add(client)
        try:
            async for message in socket:
                if message.type == WSMsgType.TEXT:
                    await self._on_text(client, message.data)
        finally:
            self._clients.discard(client)
        return socket

    async def _on_text(self, client: _UserClient, text: str) -> None:
        if text.strip().upper() == "PING":
            await self._send(client, "PONG")
            return
        if client.owner:
            return  # the venue takes one subscription per socket
        try:
            message = json.loads(text)
            auth, kind = message["auth"], message.get("type")
            key = self._keys.get(str(auth["apiKey"]))
            secret, passphrase = str(auth["secret"]), str(auth["passphrase"])
            markets = message.get("markets") or []
        except (ValueError, TypeError, KeyError):
            key, kind, secret, passphrase, markets = None, None, "", "", []
        if key is None or kind != "user" or (secret, passphrase) != (key.secret, key.passphrase):
            self.refused += 1
            await client.socket.close(code=WSCloseCode.POLICY_VIOLATION, message=AUTH_REFUSED)
            return
        client.markets = frozenset(str(market) for market in markets)
        client.owner = key.key
        # Only what happens from now on is pushed (what already happened is what REST answers): the
        # account's present state is marked sent, with no await before the pusher can see this socket.
        orders, trades = list(self._exchange.orders.values()), list(self._exchange.trades)
        self._changes(client, orders, trades, self._clock_ms())

    def _changes(
        self, client: _UserClient, orders: list[ExchangeOrder], trades: list[ExchangeTrade], now: int
    ) -> list[dict[str, Any]]:
        """The events of `client`'s account it was not sent yet (and marks them sent)."""
        events: list[dict[str, Any]] = []
        for order in orders:
            if not self._follows(client, order):
                continue
            state = (order.status, order.size_matched)
            before = client.orders.get(order.order_id)
            if before == state:
                continue
            client.orders[order.order_id] = state
            if before is None:
                change = "PLACEMENT"
            elif order.status == "CANCELED":
                change = "CANCELLATION"
            else:
                change = "UPDATE"
            events.append(_order_event(order, change, now))
        for trade in trades:
            if not self._follows(client, trade.order):
                continue
            status = trade.status(now, self._exchange.script)
            if client.trades.get(trade.trade_id) == status:
                continue
            client.trades[trade.trade_id] = status
            events.append(trade.to_row(now, self._exchange.script) | _trade_extras(trade, now))
        return events

    def _follows(self, client: _UserClient, order: ExchangeOrder) -> bool:
        return order.owner == client.owner and (not client.markets or order.market in client.markets)

    async def _send(self, client: _UserClient, text: str) -> None:
        try:
            await client.socket.send_str(text)
        except (ConnectionError, RuntimeError):
            self._clients.discard(client)


def _order_event(order: ExchangeOrder, change: str, now: int) -> dict[str, Any]:
    row = order.to_row()
    return row | {
        "event_type": "order",
        "type": change,
        "status": order.status,  # the channel spells it without REST's ORDER_STATUS_ prefix
        "order_owner": order.owner,
        "timestamp": str(now),
    }


def _trade_extras(trade: ExchangeTrade, now: int) -> dict[str, Any]:
    return {
        "event_type": "trade",
        "type": "TRADE",
        "trade_owner": trade.order.owner,
        "matchtime": str(trade.match_time_ms // 1000),
        "timestamp": str(now),
    }

"""The fake CLOB market channel (`/ws/market`): a `book` snapshot per subscribed token, then `price_change`
events diffed against what each socket was sent (reference section 2.2)."""

from __future__ import annotations

import asyncio
import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from aiohttp import WSCloseCode, WSMsgType, web

from polycopy.simulator.books import Levels, format_decimal
from polycopy.simulator.market import MarketSimulator
from polycopy.simulator.stats import SimulatorStats


@dataclass(eq=False)
class _MarketClient:
    socket: web.WebSocketResponse
    # Per subscribed asset: the book revision and the (bids, asks) levels last sent, to diff against.
    sent: dict[str, tuple[int, Levels, Levels]] = field(default_factory=dict)
    # Held while a snapshot or a diff is computed and sent, so a change never overtakes its snapshot.
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)


class MarketChannelService:
    """Serves market-channel sockets on the CLOB port, as the venue does under `/ws/market`."""

    def __init__(
        self, simulator: MarketSimulator, stats: SimulatorStats, clock_ms: Callable[[], int]
    ) -> None:
        self._simulator = simulator
        self._stats = stats
        self._clock_ms = clock_ms
        self._clients: set[_MarketClient] = set()
        self._pushed_revision = -1

    @property
    def subscribed_assets(self) -> set[str]:
        """Tokens some market-channel socket is subscribed to."""
        return {asset for client in self._clients for asset in client.sent}

    def add_routes(self, router: web.UrlDispatcher) -> None:
        """Register `/ws/market`."""
        router.add_get("/ws/market", self._handle)

    async def push_book_changes(self) -> None:
        """Send a `price_change` for every subscribed book that changed since it was last sent."""
        revision = self._simulator.revision
        if revision == self._pushed_revision:
            return
        self._pushed_revision = revision
        for client in list(self._clients):
            async with client.lock:
                for event in self._book_changes(client):
                    await self._send(client, json.dumps(event, separators=(",", ":")))

    async def drop_connections(self) -> None:
        """Close every market-channel socket from the server side."""
        for client in list(self._clients):
            await client.socket.close(code=WSCloseCode.GOING_AWAY, message=b"server restart")
        self._clients.clear()

    async def _handle(self, request: web.Request) -> web.WebSocketResponse:
        socket = web.WebSocketResponse()
        await socket.prepare(request)
        client = _MarketClient(socket)
        self._clients.add(client)
        self._stats.market_connections_total += 1
        try:
            async for message in socket:
                if message.type == WSMsgType.TEXT:
                    await self._on_text(client, message.data)
        finally:
            self._clients.discard(client)
        return socket

    async def _on_text(self, client: _MarketClient, text: str) -> None:
        if text.strip().upper() == "PING":
            await self._send(client, "PONG")
            return
        try:
            message = json.loads(text)
        except ValueError:
            return
        if not isinstance(message, dict) or not isinstance(message.get("assets_ids"), list):
            return
        assets = [str(asset) for asset in message["assets_ids"]]
        # The first frame names the channel (`type`); later ones carry an `operation`.
        initial = str(message.get("type", "")).lower() == "market" and "operation" not in message
        operation = "subscribe" if initial else str(message.get("operation", "")).lower()
        if operation == "unsubscribe":
            for asset in assets:
                client.sent.pop(asset, None)
            return
        if operation != "subscribe":
            return
        async with client.lock:
            snapshots = [event for asset in assets if (event := self._book_snapshot(client, asset))]
            # The venue answers a new socket's subscription with one array of books, later ones book by book.
            frames = [snapshots] if initial and snapshots else snapshots
            for frame in frames:
                await self._send(client, json.dumps(frame, separators=(",", ":")))

    def _book_snapshot(self, client: _MarketClient, asset: str) -> dict[str, Any] | None:
        revision = self._simulator.book_revision(asset)  # read first: a later change is then diffed again
        book = self._simulator.book(asset)
        if revision is None or book is None:
            return None  # the venue sends nothing for a token it does not know
        client.sent[asset] = (revision, _level_map(book["bids"]), _level_map(book["asks"]))
        return book | {"event_type": "book"}

    def _book_changes(self, client: _MarketClient) -> list[dict[str, Any]]:
        """Diff every subscribed book against what the client was last sent; one event per market."""
        by_market: dict[str, list[dict[str, str]]] = {}
        for asset, (sent_revision, sent_bids, sent_asks) in list(client.sent.items()):
            revision = self._simulator.book_revision(asset)
            levels = self._simulator.book_levels(asset)
            market = self._simulator.market_for_token(asset)
            if revision is None or revision == sent_revision or levels is None or market is None:
                continue
            bids, asks = levels
            client.sent[asset] = (revision, bids, asks)
            changes = _diff_levels(sent_bids, bids, "BUY") + _diff_levels(sent_asks, asks, "SELL")
            if not changes:
                continue
            state = f"{asset}|{sorted(bids.items())}|{sorted(asks.items())}"
            digest = hashlib.sha1(state.encode()).hexdigest()
            best_bid = format_decimal(max(bids)) if bids else "0"
            best_ask = format_decimal(min(asks)) if asks else "1"
            by_market.setdefault(market.condition_id, []).extend(
                {
                    "asset_id": asset,
                    "price": format_decimal(price),
                    "size": format_decimal(size),
                    "side": side,
                    "hash": digest,
                    "best_bid": best_bid,
                    "best_ask": best_ask,
                }
                for price, size, side in changes
            )
        timestamp = str(self._clock_ms())
        return [
            {"market": market_id, "price_changes": rows, "timestamp": timestamp, "event_type": "price_change"}
            for market_id, rows in by_market.items()
        ]

    async def _send(self, client: _MarketClient, text: str) -> None:
        try:
            await client.socket.send_str(text)
            self._stats.market_frames_sent += 1
        except (ConnectionError, RuntimeError):
            self._clients.discard(client)


def _level_map(rows: list[dict[str, str]]) -> Levels:
    return {Decimal(row["price"]): Decimal(row["size"]) for row in rows}


def _diff_levels(before: Levels, after: Levels, side: str) -> list[tuple[Decimal, Decimal, str]]:
    """Venue-style level changes from `before` to `after`: the new size, or 0 for a level that is gone."""
    return [
        (price, after.get(price, Decimal(0)), side)
        for price in sorted(before.keys() | after.keys())
        if before.get(price) != after.get(price)
    ]

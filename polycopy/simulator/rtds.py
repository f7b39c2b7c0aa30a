"""The fake RTDS activity socket: subscriptions to `activity` trades / orders_matched, the venue's frame
envelope, PING answered with an empty frame, and silent stalls (reference section 1)."""

from __future__ import annotations

import base64
import json
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from aiohttp import WSCloseCode, WSMsgType, web

from polycopy.simulator.flow import TAKER_FEED_TYPES
from polycopy.simulator.stats import SimulatorStats

_FEED_TYPES = frozenset(TAKER_FEED_TYPES)
# A batch to broadcast: each trade payload with the activity types that carry it.
FeedBatch = list[tuple[dict[str, Any], tuple[str, ...]]]


@dataclass(eq=False)
class _RtdsClient:
    socket: web.WebSocketResponse
    connection_id: str
    feed_types: set[str] = field(default_factory=set)


class RtdsService:
    """Serves RTDS sockets on its own application (the venue's RTDS is a host of its own)."""

    def __init__(self, stats: SimulatorStats, rng: random.Random, clock_ms: Callable[[], int]) -> None:
        self._stats = stats
        self._rng = rng
        self._clock_ms = clock_ms
        self._clients: set[_RtdsClient] = set()
        self._stalled_until = 0.0

    @property
    def subscribed_clients(self) -> int:
        """Open sockets subscribed to every activity type, so they receive each fill on both (a client sends
        one subscription per type: counting a half-subscribed one lets a test publish too early)."""
        return sum(1 for c in self._clients if c.feed_types >= _FEED_TYPES and not c.socket.closed)

    @property
    def connected_clients(self) -> int:
        """Open sockets, subscribed or not."""
        return sum(1 for client in self._clients if not client.socket.closed)

    def build_app(self) -> web.Application:
        """The RTDS application: one WebSocket route at `/`."""
        app = web.Application()
        app.router.add_get("/", self._handle)
        return app

    async def broadcast(self, batch: FeedBatch) -> None:
        """Send each payload, in the venue's envelope, to every socket subscribed to one of its types."""
        subscribed = [client for client in self._clients if client.feed_types]
        if self.is_stalled():
            lost = (client.feed_types.intersection(types) for _, types in batch for client in subscribed)
            self._stats.frames_dropped += sum(map(len, lost))
            return
        timestamp = self._clock_ms()
        for payload, feed_types in batch:
            body = json.dumps(payload, separators=(",", ":"))
            for client in subscribed:
                for feed_type in feed_types:
                    if feed_type in client.feed_types:
                        await self._send(client, _frame(client, feed_type, timestamp, body))

    async def inject_frame(self, text: str) -> None:
        """Push one raw text frame (for example a malformed one) to every connected client."""
        if self.is_stalled():
            self._stats.frames_dropped += len(self._clients)
            return
        for client in list(self._clients):
            await self._send(client, text)

    def stall(self, seconds: float) -> None:
        """Go silent for `seconds` without closing sockets, as the venue does; frames meanwhile are lost."""
        self._stalled_until = time.monotonic() + seconds

    async def drop_connections(self) -> None:
        """Close every socket from the server side."""
        for client in list(self._clients):
            await client.socket.close(code=WSCloseCode.GOING_AWAY, message=b"server restart")
        self._clients.clear()
        self._stats.clients = 0

    def is_stalled(self) -> bool:
        return time.monotonic() < self._stalled_until

    async def _send(self, client: _RtdsClient, text: str) -> None:
        try:
            await client.socket.send_str(text)
            self._stats.frames_sent += 1
        except (ConnectionError, RuntimeError):
            self._clients.discard(client)

    async def _handle(self, request: web.Request) -> web.WebSocketResponse:
        socket = web.WebSocketResponse()
        await socket.prepare(request)
        client = _RtdsClient(socket, base64.b64encode(self._rng.randbytes(10)).decode())
        self._clients.add(client)
        self._stats.connections_total += 1
        self._stats.clients = len(self._clients)
        try:
            async for message in socket:
                if message.type == WSMsgType.TEXT:
                    await self._on_text(client, message.data)
        finally:
            self._clients.discard(client)
            self._stats.clients = len(self._clients)
        return socket

    async def _on_text(self, client: _RtdsClient, text: str) -> None:
        if text.strip().upper() == "PING":
            if not self.is_stalled():
                await self._send(client, "")  # the venue answers PING with an empty text frame
            return
        try:
            message = json.loads(text)
        except ValueError:
            return
        # Without `action` the venue keeps the socket open and delivers nothing.
        if not isinstance(message, dict) or message.get("action") not in ("subscribe", "unsubscribe"):
            return
        types: set[str] = set()
        for subscription in message.get("subscriptions") or []:
            if isinstance(subscription, dict) and subscription.get("topic") == "activity":
                kind = subscription.get("type")
                types |= _FEED_TYPES if kind == "*" else _FEED_TYPES & {kind}
        if message["action"] == "subscribe":
            client.feed_types |= types
        else:
            client.feed_types -= types


def _frame(client: _RtdsClient, feed_type: str, timestamp: int, body: str) -> str:
    return (
        f'{{"connection_id":"{client.connection_id}","topic":"activity","type":"{feed_type}",'
        f'"timestamp":{timestamp},"payload":{body}}}'
    )

"""aiohttp server faking Polymarket's RTDS activity socket, CLOB REST and market channel, Data API
trades/leaderboard, Gamma."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import json
import random
import time
import zlib
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from aiohttp import WSCloseCode, WSMsgType, web

from polycopy.simulator.market import TAKER_FEED_TYPES, MarketSimulator, SimulatedMarket, format_decimal

_NO_BOOK = {"error": "No orderbook exists for the requested token id"}
_FEED_TYPES = frozenset(TAKER_FEED_TYPES)
_MAX_PAGE = 10_000
_MARKET_PUSH_SECS = 0.05  # how often the market channel looks for book changes made outside its own loops


@dataclass
class SimulatorStats:
    """Counters for progress lines and tests."""

    frames_sent: int = 0
    frames_dropped: int = 0
    clients: int = 0
    connections_total: int = 0
    books_served: int = 0
    trades_generated: int = 0
    market_connections_total: int = 0
    market_frames_sent: int = 0


@dataclass(eq=False)
class _RtdsClient:
    socket: web.WebSocketResponse
    connection_id: str
    feed_types: set[str] = field(default_factory=set)


Levels = dict[Decimal, Decimal]


@dataclass(eq=False)
class _MarketClient:
    socket: web.WebSocketResponse
    # Per subscribed asset: the book revision and the (bids, asks) levels last sent, to diff against.
    sent: dict[str, tuple[int, Levels, Levels]] = field(default_factory=dict)
    # Held while a snapshot or a diff is computed and sent, so a change never overtakes its snapshot.
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)


def _json_error(status: int, message: str) -> web.Response:
    return web.json_response({"error": message}, status=status)


def _split_query(request: web.Request, name: str) -> set[str]:
    # Both `?a=1,2` and `?a=1&a=2` occur in clients' requests.
    return {part for value in request.query.getall(name, []) for part in value.split(",") if part}


class SimulatorServer:
    """Serves one MarketSimulator over the venue's wire formats and streams its trades at a Poisson rate."""

    def __init__(
        self,
        simulator: MarketSimulator,
        host: str = "127.0.0.1",
        rtds_port: int = 18765,
        clob_port: int = 18080,
        trades_per_sec: float = 20.0,
        *,
        auto_trades: bool = True,
        history_size: int = 20_000,
        drift_interval_secs: float = 1.0,
        clock_ms: Callable[[], int] = lambda: int(time.time() * 1000),
    ) -> None:
        self.simulator = simulator
        self.host, self.rtds_port, self.clob_port = host, rtds_port, clob_port
        self.trades_per_sec = trades_per_sec
        self.auto_trades = auto_trades
        self.stats = SimulatorStats()
        self._drift_interval_secs = drift_interval_secs
        self._clock_ms = clock_ms
        self._rng = random.Random(f"server-{simulator.seed}")
        self._clients: set[_RtdsClient] = set()
        self._market_clients: set[_MarketClient] = set()
        self._pushed_revision = -1
        self._history: deque[tuple[dict[str, Any], bool]] = deque(maxlen=history_size)
        self._runners: list[web.AppRunner] = []
        self._tasks: list[asyncio.Task[None]] = []
        self._stalled_until = 0.0

    @property
    def subscribed_clients(self) -> int:
        """Sockets that have subscribed to at least one activity type (and so receive frames)."""
        return sum(1 for client in self._clients if client.feed_types)

    @property
    def subscribed_assets(self) -> set[str]:
        """Tokens some market-channel socket is subscribed to."""
        return {asset for client in self._market_clients for asset in client.sent}

    @property
    def rtds_url(self) -> str:
        """WebSocket URL of the fake RTDS."""
        return f"ws://{self.host}:{self.rtds_port}/"

    @property
    def clob_url(self) -> str:
        """Base URL of the fake CLOB, which also answers the Data API and Gamma routes."""
        return f"http://{self.host}:{self.clob_port}"

    @property
    def clob_market_ws_url(self) -> str:
        """WebSocket URL of the fake CLOB market channel (on the CLOB port, as `/ws/market`)."""
        return f"ws://{self.host}:{self.clob_port}/ws/market"

    async def start(self) -> None:
        """Bind both ports (0 picks a free one) and start the trade stream and book drift."""
        rtds_app = web.Application()
        rtds_app.router.add_get("/", self._handle_rtds)
        self.rtds_port = await self._serve(rtds_app, self.rtds_port)
        self.clob_port = await self._serve(self._build_clob_app(), self.clob_port)
        self._tasks.append(asyncio.create_task(self._run_book_drift()))
        self._tasks.append(asyncio.create_task(self._run_market_pusher()))
        if self.auto_trades and self.trades_per_sec > 0:
            self._tasks.append(asyncio.create_task(self._run_trade_stream()))

    async def stop(self) -> None:
        """Stop generating, close every socket and release the ports."""
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks.clear()
        await self.drop_connections()
        await self.drop_market_connections()
        for runner in self._runners:
            await runner.cleanup()
        self._runners.clear()

    async def __aenter__(self) -> SimulatorServer:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.stop()

    async def publish_payloads(
        self, payloads: Iterable[dict[str, Any]], feed_types: tuple[str, ...] = TAKER_FEED_TYPES
    ) -> None:
        """Record trade payloads in the Data API history and push them to subscribers on `feed_types`."""
        is_taker = "orders_matched" in feed_types
        batch = [(payload, feed_types) for payload in payloads]
        self._history.extend((payload, is_taker) for payload, _ in batch)
        await self._broadcast(batch)

    async def inject_frame(self, text: str) -> None:
        """Push one raw text frame (for example a malformed one) to every connected client."""
        if self._is_stalled():
            self.stats.frames_dropped += len(self._clients)
            return
        for client in list(self._clients):
            await self._send(client, text)

    def stall(self, seconds: float) -> None:
        """Go silent for `seconds` without closing sockets, as the venue does; frames meanwhile are lost."""
        self._stalled_until = time.monotonic() + seconds

    async def drop_connections(self) -> None:
        """Close every RTDS socket from the server side."""
        for client in list(self._clients):
            await client.socket.close(code=WSCloseCode.GOING_AWAY, message=b"server restart")
        self._clients.clear()
        self.stats.clients = 0

    async def drop_market_connections(self) -> None:
        """Close every market-channel socket from the server side."""
        for client in list(self._market_clients):
            await client.socket.close(code=WSCloseCode.GOING_AWAY, message=b"server restart")
        self._market_clients.clear()

    async def push_book_changes(self) -> None:
        """Send a `price_change` for every subscribed book that changed since it was last sent.

        Runs after the server's own drift and trades, and every few milliseconds for changes made by others.
        """
        revision = self.simulator.revision
        if revision == self._pushed_revision:
            return
        self._pushed_revision = revision
        for client in list(self._market_clients):
            async with client.lock:
                for event in self._book_changes(client):
                    await self._send_market(client, json.dumps(event, separators=(",", ":")))

    async def _serve(self, app: web.Application, port: int) -> int:
        runner = web.AppRunner(app, access_log=None, shutdown_timeout=1.0)
        await runner.setup()
        await web.TCPSite(runner, self.host, port).start()
        self._runners.append(runner)
        return int(runner.addresses[0][1])

    def _is_stalled(self) -> bool:
        return time.monotonic() < self._stalled_until

    async def _run_trade_stream(self) -> None:
        loop = asyncio.get_running_loop()
        next_at = loop.time() + self._rng.expovariate(self.trades_per_sec)
        while True:
            await asyncio.sleep(max(0.0, next_at - loop.time()))
            # Count every arrival already due, so high rates do not need one sleep per trade.
            due, now = 0, loop.time()
            while next_at <= now and due < _MAX_PAGE:
                due += 1
                next_at += self._rng.expovariate(self.trades_per_sec)
            fills = self.simulator.next_trades(due, self._clock_ms())
            self.stats.trades_generated += len(fills)
            self._history.extend((fill.payload, fill.is_taker) for fill in fills)
            await self._broadcast([(fill.payload, fill.feed_types) for fill in fills])
            await self.push_book_changes()

    async def _run_book_drift(self) -> None:
        while True:
            self.simulator.advance(self._clock_ms())
            await self.push_book_changes()
            await asyncio.sleep(self._drift_interval_secs)

    async def _run_market_pusher(self) -> None:
        while True:
            await asyncio.sleep(_MARKET_PUSH_SECS)
            await self.push_book_changes()

    async def _broadcast(self, batch: list[tuple[dict[str, Any], tuple[str, ...]]]) -> None:
        subscribed = [client for client in self._clients if client.feed_types]
        if self._is_stalled():
            lost = (client.feed_types.intersection(types) for _, types in batch for client in subscribed)
            self.stats.frames_dropped += sum(map(len, lost))
            return
        timestamp = self._clock_ms()
        for payload, feed_types in batch:
            body = json.dumps(payload, separators=(",", ":"))
            for client in subscribed:
                for feed_type in feed_types:
                    if feed_type in client.feed_types:
                        await self._send(client, self._frame(client, feed_type, timestamp, body))

    @staticmethod
    def _frame(client: _RtdsClient, feed_type: str, timestamp: int, body: str) -> str:
        return (
            f'{{"connection_id":"{client.connection_id}","topic":"activity","type":"{feed_type}",'
            f'"timestamp":{timestamp},"payload":{body}}}'
        )

    async def _send(self, client: _RtdsClient, text: str) -> None:
        try:
            await client.socket.send_str(text)
            self.stats.frames_sent += 1
        except (ConnectionError, RuntimeError):
            self._clients.discard(client)

    async def _handle_rtds(self, request: web.Request) -> web.WebSocketResponse:
        socket = web.WebSocketResponse()
        await socket.prepare(request)
        client = _RtdsClient(socket, base64.b64encode(self._rng.randbytes(10)).decode())
        self._clients.add(client)
        self.stats.connections_total += 1
        self.stats.clients = len(self._clients)
        try:
            async for message in socket:
                if message.type == WSMsgType.TEXT:
                    await self._on_client_text(client, message.data)
        finally:
            self._clients.discard(client)
            self.stats.clients = len(self._clients)
        return socket

    async def _on_client_text(self, client: _RtdsClient, text: str) -> None:
        if text.strip().upper() == "PING":
            if not self._is_stalled():
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

    async def _handle_market(self, request: web.Request) -> web.WebSocketResponse:
        socket = web.WebSocketResponse()
        await socket.prepare(request)
        client = _MarketClient(socket)
        self._market_clients.add(client)
        self.stats.market_connections_total += 1
        try:
            async for message in socket:
                if message.type == WSMsgType.TEXT:
                    await self._on_market_text(client, message.data)
        finally:
            self._market_clients.discard(client)
        return socket

    async def _on_market_text(self, client: _MarketClient, text: str) -> None:
        if text.strip().upper() == "PING":
            await self._send_market(client, "PONG")
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
                await self._send_market(client, json.dumps(frame, separators=(",", ":")))

    def _book_snapshot(self, client: _MarketClient, asset: str) -> dict[str, Any] | None:
        revision = self.simulator.book_revision(asset)  # read first: a later change is then diffed again
        book = self.simulator.book(asset)
        if revision is None or book is None:
            return None  # the venue sends nothing for a token it does not know
        client.sent[asset] = (revision, _level_map(book["bids"]), _level_map(book["asks"]))
        return book | {"event_type": "book"}

    def _book_changes(self, client: _MarketClient) -> list[dict[str, Any]]:
        """Diff every subscribed book against what the client was last sent; one event per market."""
        by_market: dict[str, list[dict[str, str]]] = {}
        for asset, (sent_revision, sent_bids, sent_asks) in list(client.sent.items()):
            revision = self.simulator.book_revision(asset)
            levels = self.simulator.book_levels(asset)
            market = self.simulator.market_for_token(asset)
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

    async def _send_market(self, client: _MarketClient, text: str) -> None:
        try:
            await client.socket.send_str(text)
            self.stats.market_frames_sent += 1
        except (ConnectionError, RuntimeError):
            self._market_clients.discard(client)

    def _build_clob_app(self) -> web.Application:
        app = web.Application()
        app.router.add_get("/ws/market", self._handle_market)
        app.router.add_get("/book", self._handle_book)
        app.router.add_post("/books", self._handle_books)
        app.router.add_get(
            "/tick-size", self._token_route(lambda m: {"minimum_tick_size": float(m.tick_size)})
        )
        app.router.add_get("/neg-risk", self._token_route(lambda m: {"neg_risk": m.neg_risk}))
        app.router.add_get("/fee-rate", self._token_route(lambda m: {"base_fee": 0}))
        app.router.add_get("/midpoint", self._handle_midpoint)
        app.router.add_get("/version", self._handle_version)
        app.router.add_get("/time", self._handle_time)
        app.router.add_get("/ok", self._handle_ok)
        app.router.add_get("/markets-by-token/{token_id}", self._handle_market_by_token)
        app.router.add_get("/clob-markets/{condition_id}", self._handle_clob_market)
        app.router.add_get("/trades", self._handle_data_trades)
        app.router.add_get("/markets", self._handle_gamma_markets)
        app.router.add_get("/v1/leaderboard", self._handle_leaderboard)
        return app

    async def _handle_version(self, request: web.Request) -> web.Response:
        return web.json_response({"version": 2})

    async def _handle_time(self, request: web.Request) -> web.Response:
        return web.json_response(self._clock_ms() // 1000)

    async def _handle_ok(self, request: web.Request) -> web.Response:
        return web.Response(text="OK")

    def _find_token(self, request: web.Request) -> tuple[str, SimulatedMarket]:
        token_id = request.query.get("token_id", "")
        if not token_id:
            raise web.HTTPBadRequest(text='{"error": "Invalid token id"}', content_type="application/json")
        market = self.simulator.market_for_token(token_id)
        if market is None:
            raise web.HTTPNotFound(text=json.dumps(_NO_BOOK), content_type="application/json")
        return token_id, market

    def _token_route(self, build: Callable[[SimulatedMarket], dict[str, Any]]) -> Callable[..., Any]:
        async def handle(request: web.Request) -> web.Response:
            return web.json_response(build(self._find_token(request)[1]))

        return handle

    async def _handle_book(self, request: web.Request) -> web.Response:
        token_id, _ = self._find_token(request)
        self.stats.books_served += 1
        return web.json_response(self.simulator.book(token_id))

    async def _handle_books(self, request: web.Request) -> web.Response:
        try:
            params = await request.json()
            token_ids = [str(item["token_id"]) for item in params]
        except (ValueError, TypeError, KeyError):
            return _json_error(400, "Invalid payload")
        books = [book for book in map(self.simulator.book, token_ids) if book is not None]
        self.stats.books_served += len(books)
        return web.json_response(books)

    async def _handle_midpoint(self, request: web.Request) -> web.Response:
        token_id, _ = self._find_token(request)
        return web.json_response({"mid": format_decimal(self.simulator.midpoint(token_id) or Decimal(0))})

    async def _handle_market_by_token(self, request: web.Request) -> web.Response:
        market = self.simulator.market_for_token(request.match_info["token_id"])
        if market is None:
            return _json_error(404, "market not found")
        return web.json_response({"condition_id": market.condition_id})

    async def _handle_clob_market(self, request: web.Request) -> web.Response:
        condition_id = request.match_info["condition_id"]
        market = next((m for m in self.simulator.markets if m.condition_id == condition_id), None)
        if market is None:
            return _json_error(404, "market not found")
        outcomes = zip(market.token_ids, market.outcomes, strict=True)
        tokens = [{"t": token, "o": outcome} for token, outcome in outcomes]
        return web.json_response(
            {
                "t": tokens,
                "mos": float(market.min_order_size),
                "mts": float(market.tick_size),
                "nr": market.neg_risk,
                "fd": {"r": 0, "e": 0, "to": True},
            }
        )

    async def _handle_data_trades(self, request: web.Request) -> web.Response:
        query = request.query
        try:
            limit, offset = int(query.get("limit", 100)), int(query.get("offset", 0))
            start, end = int(query.get("start", 0)), int(query.get("end", 0))  # epoch seconds; 0 = unbounded
        except ValueError:
            return _json_error(400, "limit, offset, start and end must be integers")
        if not (0 <= limit <= _MAX_PAGE and 0 <= offset <= _MAX_PAGE):
            return _json_error(400, f"limit and offset must be between 0 and {_MAX_PAGE}")
        user, side = query.get("user", "").lower(), query.get("side", "").upper()
        markets = _split_query(request, "market")
        taker_only = query.get("takerOnly", "true").lower() != "false"
        rows = [
            payload
            for payload, is_taker in reversed(self._history)
            if (is_taker or not taker_only)
            and (not user or str(payload.get("proxyWallet", "")).lower() == user)
            and (not side or payload.get("side") == side)
            and (not markets or payload.get("conditionId") in markets)
            and (not start or _trade_time(payload) >= start)
            and (not end or _trade_time(payload) <= end)
        ]
        rows.sort(key=_trade_time, reverse=True)
        return web.json_response([_to_data_api_row(payload) for payload in rows[offset : offset + limit]])

    async def _handle_leaderboard(self, request: web.Request) -> web.Response:
        try:
            limit, offset = int(request.query.get("limit", 25)), int(request.query.get("offset", 0))
        except ValueError:
            return _json_error(400, "limit and offset must be integers")
        if not (1 <= limit <= 50 and 0 <= offset <= 1000):  # the venue's bounds
            return _json_error(400, "limit must be between 1 and 50 and offset between 0 and 1000")
        return web.json_response(self.simulator.leaderboard(limit, offset))

    async def _handle_gamma_markets(self, request: web.Request) -> web.Response:
        condition_ids = _split_query(request, "condition_ids")
        token_ids, slugs = _split_query(request, "clob_token_ids"), _split_query(request, "slug")
        if request.query.get("closed", "").lower() == "true":
            return web.json_response([])  # simulated markets never close
        markets = [
            market
            for market in self.simulator.markets
            if (not condition_ids or market.condition_id in condition_ids)
            and (not token_ids or token_ids & set(market.token_ids))
            and (not slugs or market.slug in slugs)
        ]
        try:
            offset, limit = int(request.query.get("offset", 0)), int(request.query.get("limit", 500))
        except ValueError:
            return _json_error(400, "limit and offset must be integers")
        page = markets[offset : offset + limit]
        return web.json_response([self._to_gamma_market(market) for market in page])

    def _to_gamma_market(self, market: SimulatedMarket) -> dict[str, Any]:
        book = self.simulator.book(market.token_ids[0]) or {}
        best_bid = float(book["bids"][-1]["price"]) if book.get("bids") else 0.0
        best_ask = float(book["asks"][-1]["price"]) if book.get("asks") else 1.0
        prices = [format_decimal(self.simulator.midpoint(token) or Decimal(0)) for token in market.token_ids]
        return {
            "id": market.gamma_id,
            "question": market.question,
            "conditionId": market.condition_id,
            "slug": market.slug,
            "description": f"This market resolves to Yes if: {market.question}",
            "category": market.category,
            "icon": market.icon,
            "image": market.icon,
            "active": True,
            "closed": False,
            "archived": False,
            "acceptingOrders": True,
            "enableOrderBook": True,
            "negRisk": market.neg_risk,
            "endDate": market.end_date,
            "outcomes": json.dumps(list(market.outcomes)),
            "outcomePrices": json.dumps(prices),
            "clobTokenIds": json.dumps(list(market.token_ids)),
            "orderMinSize": float(market.min_order_size),
            "orderPriceMinTickSize": float(market.tick_size),
            "bestBid": best_bid,
            "bestAsk": best_ask,
            "spread": round(best_ask - best_bid, 6),
            "lastTradePrice": float(book.get("last_trade_price", 0)),
            "events": [{"id": market.gamma_id, "slug": market.event_slug, "title": market.question}],
            "tags": [_to_gamma_tag(market.category)] if market.category else [],
        }


def _level_map(rows: list[dict[str, str]]) -> Levels:
    return {Decimal(row["price"]): Decimal(row["size"]) for row in rows}


def _diff_levels(before: Levels, after: Levels, side: str) -> list[tuple[Decimal, Decimal, str]]:
    """Venue-style level changes from `before` to `after`: the new size, or 0 for a level that is gone."""
    return [
        (price, after.get(price, Decimal(0)), side)
        for price in sorted(before.keys() | after.keys())
        if before.get(price) != after.get(price)
    ]


def _to_gamma_tag(category: str) -> dict[str, str]:
    return {"id": str(zlib.crc32(category.encode()) % 10_000), "slug": category.lower(), "label": category}


def _trade_time(payload: dict[str, Any]) -> int:
    return int(float(payload.get("timestamp") or 0))


def _to_data_api_row(payload: dict[str, Any]) -> dict[str, Any]:
    # Data API rows carry no `fee` but do carry the optimized profile image.
    row = {key: value for key, value in payload.items() if key != "fee"}
    row.setdefault("profileImageOptimized", row.get("profileImage", ""))
    return row

"""The simulated venue on two ports: the RTDS activity socket on one, and on the other the CLOB (REST, market
and user channels), Data API and Gamma routes, each fake service in its own module; plus the trade stream and
book drift that make it move."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import random
import time
from collections.abc import Callable, Iterable
from typing import Any

from aiohttp import web

from polycopy.simulator.clob import ClobService
from polycopy.simulator.clob_orders import ClobOrderService
from polycopy.simulator.data_api import DataApiService
from polycopy.simulator.gamma import GammaService
from polycopy.simulator.market import TAKER_FEED_TYPES, MarketSimulator
from polycopy.simulator.market_channel import MarketChannelService
from polycopy.simulator.rest import RestService
from polycopy.simulator.rtds import RtdsService
from polycopy.simulator.stats import SimulatorStats
from polycopy.simulator.user_channel import UserChannelService

__all__ = ["SimulatorServer", "SimulatorStats"]

_MARKET_PUSH_SECS = 0.05  # how often the market channel looks for book changes made outside its own loops
_MAX_TRADES_PER_WAKE = 10_000


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
        self._rtds = RtdsService(self.stats, self._rng, clock_ms)
        self._market_channel = MarketChannelService(simulator, self.stats, clock_ms)
        self._data_api = DataApiService(simulator, history_size)
        # The authenticated order API (keys, orders, trades, cancels, scripted faults): tests reach its
        # exchange and faults through this attribute.
        self.clob_orders = ClobOrderService(simulator, clock_ms)
        # The account's order and trade events, for the keys the order API issued.
        self.user_channel = UserChannelService(self.clob_orders.exchange, self.clob_orders.keys, clock_ms)
        # Everything the venue serves from other hosts shares the CLOB port here, one service per fake API.
        self._clob_port_services: tuple[RestService, ...] = (
            self._market_channel,
            self.user_channel,
            ClobService(simulator, self.stats, clock_ms, self.clob_orders.faults),
            self.clob_orders,
            self._data_api,
            GammaService(simulator),
        )
        self._runners: list[web.AppRunner] = []
        self._tasks: list[asyncio.Task[None]] = []

    @property
    def subscribed_clients(self) -> int:
        """Open sockets subscribed to every activity type."""
        return self._rtds.subscribed_clients

    @property
    def subscribed_assets(self) -> set[str]:
        """Tokens some market-channel socket is subscribed to."""
        return self._market_channel.subscribed_assets

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

    @property
    def clob_user_ws_url(self) -> str:
        """WebSocket URL of the fake CLOB user channel (on the CLOB port, as `/ws/user`)."""
        return f"ws://{self.host}:{self.clob_port}/ws/user"

    async def start(self) -> None:
        """Bind both ports (0 picks a free one) and start the trade stream and book drift."""
        self.rtds_port = await self._serve(self._rtds.build_app(), self.rtds_port)
        clob_app = web.Application()
        for service in self._clob_port_services:
            service.add_routes(clob_app.router)
        clob_app.router.add_post("/_sim/rate", self._handle_rate)
        clob_app.router.add_post("/_sim/rtds/stall", self._handle_rtds_stall)
        clob_app.router.add_post("/_sim/rtds/drop", self._handle_rtds_drop)
        clob_app.router.add_post("/_sim/rtds/frames", self._handle_rtds_frames)
        clob_app.router.add_get("/_sim/stats", self._handle_stats)
        self.clob_port = await self._serve(clob_app, self.clob_port)
        self._tasks.append(asyncio.create_task(self._run_book_drift()))
        self._tasks.append(asyncio.create_task(self._run_market_pusher()))
        self._tasks.append(asyncio.create_task(self._run_user_pusher()))
        if self.auto_trades:
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
        await self.user_channel.drop_connections()
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
        self._data_api.record((payload, is_taker) for payload, _ in batch)
        await self._rtds.broadcast(batch)

    async def inject_frame(self, text: str) -> None:
        """Push one raw text frame (for example a malformed one) to every connected RTDS client."""
        await self._rtds.inject_frame(text)

    def stall(self, seconds: float) -> None:
        """Go silent for `seconds` without closing sockets, as the venue does; frames meanwhile are lost."""
        self._rtds.stall(seconds)

    async def drop_connections(self) -> None:
        """Close every RTDS socket from the server side."""
        await self._rtds.drop_connections()

    async def drop_market_connections(self) -> None:
        """Close every market-channel socket from the server side."""
        await self._market_channel.drop_connections()

    async def push_book_changes(self) -> None:
        """Send a `price_change` for every subscribed book that changed since it was last sent.

        Runs after the server's own drift and trades, and every few milliseconds for changes made by others.
        """
        await self._market_channel.push_book_changes()

    async def _serve(self, app: web.Application, port: int) -> int:
        runner = web.AppRunner(app, access_log=None, shutdown_timeout=1.0)
        await runner.setup()
        await web.TCPSite(runner, self.host, port).start()
        self._runners.append(runner)
        return int(runner.addresses[0][1])

    async def _handle_rate(self, request: web.Request) -> web.Response:
        """`POST /_sim/rate {"trades_per_sec": r}`: change the feed rate at once (0 pauses it); the bench's
        rate sweep drives one running venue through its steps this way."""
        body = await request.json()
        rate = float(body.get("trades_per_sec", -1)) if isinstance(body, dict) else -1.0
        if not rate >= 0:
            return web.json_response({"error": "trades_per_sec must be a number >= 0"}, status=400)
        self.trades_per_sec = rate
        return web.json_response({"trades_per_sec": rate, "trades_generated": self.stats.trades_generated})

    async def _handle_rtds_stall(self, request: web.Request) -> web.Response:
        """`POST /_sim/rtds/stall {"secs": s}`: the feed goes silent with its sockets open (chaos runs)."""
        body = await request.json()
        try:
            secs = float(body.get("secs", -1)) if isinstance(body, dict) else -1.0
        except (TypeError, ValueError):
            secs = -1.0
        if not secs >= 0:
            return web.json_response({"error": "secs must be a number >= 0"}, status=400)
        self.stall(secs)
        return web.json_response({"stalled_secs": secs})

    async def _handle_rtds_drop(self, request: web.Request) -> web.Response:
        """`POST /_sim/rtds/drop`: close every RTDS socket from the server side (a venue disconnect)."""
        dropped = self._rtds.connected_clients
        await self.drop_connections()
        return web.json_response({"dropped": dropped})

    async def _handle_rtds_frames(self, request: web.Request) -> web.Response:
        """`POST /_sim/rtds/frames {"frames": [text, ...]}`: push raw (e.g. malformed) text frames to every
        connected RTDS client; answers how many clients each went to (0 while stalled or disconnected)."""
        body = await request.json()
        frames = body.get("frames") if isinstance(body, dict) else None
        if not isinstance(frames, list) or not all(isinstance(frame, str) for frame in frames):
            return web.json_response({"error": "frames must be a list of strings"}, status=400)
        reached = self._rtds.connected_clients if not self._rtds.is_stalled() else 0
        for frame in frames:
            await self.inject_frame(frame)
        return web.json_response({"clients": reached})

    async def _handle_stats(self, request: web.Request) -> web.Response:
        """`GET /_sim/stats`: the simulator's counters and the fake CLOB's order intake."""
        exchange = self.clob_orders.exchange
        return web.json_response(
            dataclasses.asdict(self.stats)
            | {
                "posts_received": exchange.posts_received,
                "clob_faults_injected": self.clob_orders.faults.injected,
            }
        )

    async def _run_trade_stream(self) -> None:
        loop = asyncio.get_running_loop()
        rate = self.trades_per_sec
        next_at = loop.time() + (self._rng.expovariate(rate) if rate > 0 else 0.0)
        while True:
            if self.trades_per_sec <= 0:  # paused (`/_sim/rate`): look again shortly, resume at once
                await asyncio.sleep(0.05)
                next_at = loop.time()
                continue
            await asyncio.sleep(max(0.0, next_at - loop.time()))
            rate = self.trades_per_sec  # read once: `/_sim/rate` may change it during the sleep
            # Count every arrival already due, so high rates do not need one sleep per trade.
            due, now = 0, loop.time()
            while rate > 0 and next_at <= now and due < _MAX_TRADES_PER_WAKE:
                due += 1
                next_at += self._rng.expovariate(rate)
            fills = self.simulator.next_trades(due, self._clock_ms())
            self.stats.trades_generated += len(fills)
            self._data_api.record((fill.payload, fill.is_taker) for fill in fills)
            await self._rtds.broadcast([(fill.payload, fill.feed_types) for fill in fills])
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

    async def _run_user_pusher(self) -> None:
        """The user channel's events, on a task of their own: a fault there never stops the market channel."""
        while True:
            await asyncio.sleep(_MARKET_PUSH_SECS)
            await self.user_channel.push_changes()

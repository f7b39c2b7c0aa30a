"""The RTDS feed: the venue's wallet-tagged trade stream (`activity`), handed frame by frame to a callback
(the producer publishes them to the raw-trades topic; `polycopy capture` writes them to a file).

The feed is undocumented and known to stall silently, so: a text PING every few seconds, a data watchdog that
reconnects when no frame arrives for a while, and jittered exponential backoff between attempts.
"""

from __future__ import annotations

import asyncio
import json
import logging
import random
import time
from collections.abc import Callable
from dataclasses import dataclass

import websockets

from polycopy.metrics import PipelineMetrics

log = logging.getLogger(__name__)

SUBSCRIBE = json.dumps(
    {"action": "subscribe", "subscriptions": [{"topic": "activity", "type": "trades"},
                                              {"topic": "activity", "type": "orders_matched"}]},
    separators=(",", ":"))


@dataclass(frozen=True)
class BackoffPolicy:
    """Jittered exponential backoff: base x 2^attempt, capped, times a random factor in [0.5, 1]."""

    base_secs: float = 0.5
    cap_secs: float = 30.0

    def delay(self, attempt: int, random_fn: Callable[[], float] = random.random) -> float:
        return min(self.cap_secs, self.base_secs * 2 ** min(attempt, 16)) * (0.5 + random_fn() / 2)


FrameHandler = Callable[[str | bytes, int], object]


class RtdsFeed:
    """Connects, subscribes, keeps the socket alive, and hands every data frame to `on_frame(frame, ms)`."""

    def __init__(self, url: str, on_frame: FrameHandler, metrics: PipelineMetrics, *, ping_secs: float = 5.0,
                 watchdog_secs: float = 20.0, backoff: BackoffPolicy = BackoffPolicy(),
                 clock_ms: Callable[[], int] = lambda: time.time_ns() // 1_000_000) -> None:
        self._url, self._on_frame, self._metrics = url, on_frame, metrics
        self._ping_secs, self._watchdog_secs, self._backoff, self._clock_ms = (ping_secs, watchdog_secs, backoff,
                                                                             clock_ms)
        self._stopping = asyncio.Event()
        self._received_data = False
        self.connections = 0

    def stop(self) -> None:
        self._stopping.set()

    async def run(self) -> None:
        """Stay connected until stopped; every frame received before the stop is handed on."""
        attempt = 0
        while not self._stopping.is_set():
            self._received_data = False
            try:
                await self._session()
            except websockets.ConnectionClosed as error:
                self._metrics.reconnects.labels("closed").inc()
                log.warning("RTDS connection closed: %s", error)
            except (OSError, websockets.WebSocketException, TimeoutError) as error:
                self._metrics.reconnects.labels("error").inc()
                log.warning("RTDS connection failed: %s", error)
            # A session that delivered data was healthy: start the backoff over; else back off further.
            attempt = 0 if self._received_data else attempt + 1
            if self._stopping.is_set():
                break
            delay = self._backoff.delay(attempt)
            try:
                await asyncio.wait_for(self._stopping.wait(), timeout=delay)
            except TimeoutError:
                pass

    async def _session(self) -> None:
        async with websockets.connect(self._url, ping_interval=None, max_size=2**22, open_timeout=10) as socket:
            self.connections += 1
            await socket.send(SUBSCRIBE)
            log.info("RTDS connected to %s and subscribed", self._url)
            pinger = asyncio.create_task(self._ping(socket))
            try:
                await self._receive(socket)
            finally:
                pinger.cancel()

    async def _receive(self, socket: websockets.ClientConnection) -> None:
        """Publish frames until stopped, or until no data frame (PING replies do not count) for too long."""
        stop = asyncio.ensure_future(self._stopping.wait())
        last_data = time.monotonic()
        try:
            while True:
                remaining = self._watchdog_secs - (time.monotonic() - last_data)
                receive = asyncio.ensure_future(socket.recv())
                done, _ = await asyncio.wait({receive, stop}, timeout=max(remaining, 0),
                                             return_when=asyncio.FIRST_COMPLETED)
                if stop in done or not done:
                    receive.cancel()
                    if not done:
                        self._metrics.reconnects.labels("watchdog").inc()
                        log.warning("RTDS sent no data for %.0f s; reconnecting", self._watchdog_secs)
                    return
                frame = receive.result()
                if isinstance(frame, str) and frame.strip().upper() in ("", "PONG"):
                    continue
                last_data = time.monotonic()
                self._received_data = True
                self._metrics.frames.labels("rtds").inc()
                self._on_frame(frame, self._clock_ms())
        finally:
            stop.cancel()

    async def _ping(self, socket: websockets.ClientConnection) -> None:
        while True:
            await asyncio.sleep(self._ping_secs)
            await socket.send("PING")

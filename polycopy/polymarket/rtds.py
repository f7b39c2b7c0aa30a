"""The RTDS feed: the venue's wallet-tagged trade stream (`activity`), handed frame by frame to a callback
(the producer publishes them to the raw-trades topic; `polycopy capture` writes them to a file).

The feed is undocumented and known to stall silently, so the socket is a `polycopy.infra.ws.WebSocketSession`:
a text PING every few seconds, a data watchdog that reconnects when no frame arrives for a while (PING replies
do not count), and jittered exponential backoff between attempts.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable

from polycopy.infra.metrics import PipelineMetrics
from polycopy.infra.ws import DEFAULT_BACKOFF, STOPPED, BackoffPolicy, WebSocketSession

__all__ = ["SUBSCRIBE", "BackoffPolicy", "FrameHandler", "RtdsFeed"]

SUBSCRIBE = json.dumps(
    {
        "action": "subscribe",
        "subscriptions": [
            {"topic": "activity", "type": "trades"},
            {"topic": "activity", "type": "orders_matched"},
        ],
    },
    separators=(",", ":"),
)

FrameHandler = Callable[[str | bytes, int], object]


class RtdsFeed:
    """Connects, subscribes, keeps the socket alive, and hands every data frame to `on_frame(frame, ms)`."""

    def __init__(
        self,
        url: str,
        on_frame: FrameHandler,
        metrics: PipelineMetrics,
        *,
        ping_secs: float = 5.0,
        watchdog_secs: float = 20.0,
        backoff: BackoffPolicy = DEFAULT_BACKOFF,
        clock_ms: Callable[[], int] = lambda: time.time_ns() // 1_000_000,
    ) -> None:
        self._on_frame, self._metrics, self._clock_ms = on_frame, metrics, clock_ms
        self._session = WebSocketSession(
            url,
            self._handle_frame,
            subscribe_frames=lambda: (SUBSCRIBE,),
            name="RTDS",
            ping_secs=ping_secs,
            watchdog_secs=watchdog_secs,
            backoff=backoff,
            on_close=self._count_reconnect,
        )

    @property
    def connections(self) -> int:
        """Sockets opened so far (1 + reconnects that got through)."""
        return self._session.connections

    def stop(self) -> None:
        self._session.stop()

    async def run(self) -> None:
        """Stay connected until stopped; every frame received before the stop is handed on."""
        await self._session.run()

    def _handle_frame(self, frame: str | bytes) -> None:
        self._metrics.frames.labels("rtds").inc()
        self._on_frame(frame, self._clock_ms())

    def _count_reconnect(self, reason: str) -> None:
        if reason != STOPPED:
            self._metrics.reconnects.labels(reason).inc()

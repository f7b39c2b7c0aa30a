"""The CLOB user channel followed in a background thread: every order id its events name is handed to
`on_orders` (the executor then looks those orders up at once instead of at its next polling pass).

The channel is optional: while it is unreachable (or refuses the credentials) nothing changes but the delay,
reconciliation polls as before; one warning is logged per outage and `polycopy_user_channel_connected` is 0.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Callable, Iterable

from polycopy.infra.metrics import PipelineMetrics
from polycopy.infra.ws import DEFAULT_BACKOFF, STOPPED, BackoffPolicy, WebSocketSession
from polycopy.polymarket.clob import ApiCredentials
from polycopy.polymarket.user_channel import build_user_subscription, parse_user_message

log = logging.getLogger(__name__)

FEED_NAME = "user-channel"  # metric label and log name


class UserChannelFollower:
    """Keeps one user-channel socket open (whole account) with the deployment's L2 credentials, reconnecting
    with backoff, until `stop()`; `on_orders(order_ids)` runs on the follower's thread."""

    def __init__(
        self,
        url: str,
        credentials: ApiCredentials,
        metrics: PipelineMetrics,
        on_orders: Callable[[Iterable[str]], None],
        *,
        ping_secs: float = 10.0,
        watchdog_secs: float = 30.0,
        backoff: BackoffPolicy = DEFAULT_BACKOFF,
    ) -> None:
        self.url = url
        self._credentials, self._metrics, self._on_orders = credentials, metrics, on_orders
        self._ping_secs, self._watchdog_secs, self._backoff = ping_secs, watchdog_secs, backoff
        self._thread = threading.Thread(target=self._run, name="user-channel", daemon=True)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._session: WebSocketSession | None = None
        self._ready = threading.Event()
        self._outage = False  # warned that the channel is down, and no sign since that it is back
        self._opened_at: float | None = None

    @property
    def connected(self) -> bool:
        return self._session is not None and self._session.connected

    def start(self) -> UserChannelFollower:
        """Start following in the background; returns at once (the channel may be unreachable)."""
        self._metrics.user_channel_connected.set(0)
        self._thread.start()
        self._ready.wait(5)
        return self

    def stop(self) -> None:
        """Close the socket and end the thread."""
        if self._thread.is_alive() and self._loop is not None and self._session is not None:
            self._loop.call_soon_threadsafe(self._session.stop)
        self._thread.join(timeout=10)
        self._metrics.user_channel_connected.set(0)

    def _run(self) -> None:
        asyncio.run(self._main())

    async def _main(self) -> None:
        # The session is made on this thread's loop; quiet channels (no orders) stay up on PONGs alone.
        self._session = WebSocketSession(
            self.url,
            self._handle_frame,
            subscribe_frames=self._subscription_frames,
            name="CLOB user channel",
            ping_secs=self._ping_secs,
            watchdog_secs=self._watchdog_secs,
            watchdog_counts_keepalive=True,
            backoff=self._backoff,
            on_open=self._on_open,
            on_close=self._on_close,
            quiet_retries=True,
        )
        self._loop = asyncio.get_running_loop()
        self._ready.set()
        await self._session.run()

    def _subscription_frames(self) -> tuple[str, ...]:
        creds = self._credentials
        return (build_user_subscription(creds.api_key, creds.api_secret, creds.api_passphrase),)

    def _handle_frame(self, frame: str | bytes) -> None:
        self._metrics.frames.labels(FEED_NAME).inc()
        message = parse_user_message(frame)
        if message.errors:
            self._metrics.parse_errors.labels(FEED_NAME).inc(len(message.errors))
            errors = message.errors
            log.warning("user channel: %d malformed event(s), first: %s", len(errors), errors[0])
        if self._outage:
            self._outage = False
            log.info("CLOB user channel back: live orders are looked up as their events arrive")
        order_ids = message.order_ids
        if order_ids:
            try:
                self._on_orders(order_ids)
            except Exception:  # a hint that cannot be taken must not end the channel
                log.exception("user channel: handing on order ids failed")

    def _on_open(self) -> None:
        self._metrics.user_channel_connected.set(1)
        self._opened_at = time.monotonic()

    def _on_close(self, reason: str) -> None:
        self._metrics.user_channel_connected.set(0)
        lived = time.monotonic() - self._opened_at if self._opened_at is not None else 0.0
        self._opened_at = None
        if reason == STOPPED:
            return
        self._metrics.reconnects.labels(reason).inc()
        # A socket closed at once (credentials refused) is one more failed attempt of the same outage; one
        # that stayed open past a PING was up, quietly (an account with no orders sends nothing).
        if lived >= self._ping_secs:
            self._outage = False
        if not self._outage:
            self._outage = True
            log.warning(
                "CLOB user channel %s unreachable or closed (%s): live orders are reconciled by polling "
                "alone until it is back",
                self.url,
                reason,
            )

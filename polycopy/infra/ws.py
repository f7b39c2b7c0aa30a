"""The one module that imports the websocket library: a client session that stays connected on its own.

Venue sockets stall silently and drop without notice, so a session sends a text PING every few seconds,
reconnects when nothing arrives for a while (a data watchdog), waits a jittered exponential backoff between
attempts, re-sends its subscription frames on every connect, and stops cleanly when asked.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass

import websockets

log = logging.getLogger(__name__)

# Why a session ended; every end but STOPPED is followed by a reconnect.
CLOSED, ERROR, WATCHDOG, STOPPED = "closed", "error", "watchdog", "stopped"


@dataclass(frozen=True)
class BackoffPolicy:
    """Jittered exponential backoff: base x 2^attempt, capped, times a random factor in [0.5, 1]."""

    base_secs: float = 0.5
    cap_secs: float = 30.0

    def delay(self, attempt: int, random_fn: Callable[[], float] = random.random) -> float:
        return min(self.cap_secs, self.base_secs * float(2 ** min(attempt, 16))) * (0.5 + random_fn() / 2)


DEFAULT_BACKOFF = BackoffPolicy()


def is_keepalive(frame: str | bytes) -> bool:
    """A PING reply: venues answer with `PONG` or with an empty text frame."""
    return isinstance(frame, str) and frame.strip().upper() in ("", "PONG")


def _no_frames() -> Iterable[str]:
    return ()


def _ignore(*_: object) -> None:
    return None


class WebSocketSession:
    """One logical connection, kept up across reconnects until `stop()`; data frames go to `on_frame(frame)`.

    `subscribe_frames()` is called on every connect and its frames are sent first, so a reconnect restores
    every subscription. `send()` adds a frame to the live socket (a dynamic subscription). `on_open()` runs
    once connected and subscribed; `on_close(reason)` after every attempt, with CLOSED, ERROR, WATCHDOG or
    STOPPED. With `watchdog_counts_keepalive` a PING reply also proves the socket alive (a quiet channel);
    otherwise only data frames do (a feed that answers PINGs while its data has stalled). With
    `quiet_retries` failed attempts log at debug level: the owner of an optional channel reports an outage
    once itself (`on_close`), where a warning per backoff would flood the log.
    """

    def __init__(
        self,
        url: str,
        on_frame: Callable[[str | bytes], object],
        *,
        subscribe_frames: Callable[[], Iterable[str]] = _no_frames,
        name: str = "websocket",
        ping_secs: float = 5.0,
        watchdog_secs: float = 20.0,
        watchdog_counts_keepalive: bool = False,
        backoff: BackoffPolicy = DEFAULT_BACKOFF,
        on_open: Callable[[], object] = _ignore,
        on_close: Callable[[str], object] = _ignore,
        open_timeout_secs: float = 10.0,
        max_frame_bytes: int = 2**22,
        random_fn: Callable[[], float] = random.random,
        quiet_retries: bool = False,
    ) -> None:
        self.url, self.name = url, name
        self._quiet_retries = quiet_retries
        self._on_frame, self._subscribe_frames = on_frame, subscribe_frames
        self._on_open, self._on_close = on_open, on_close
        self._ping_secs, self._watchdog_secs = ping_secs, watchdog_secs
        self._watchdog_counts_keepalive = watchdog_counts_keepalive
        self._backoff, self._random_fn = backoff, random_fn
        self._open_timeout_secs, self._max_frame_bytes = open_timeout_secs, max_frame_bytes
        self._stopping = asyncio.Event()
        self._outbox: asyncio.Queue[str] | None = None
        self._received_data = False
        self.connections = 0

    @property
    def connected(self) -> bool:
        """True from the subscription frames being sent until the socket ends."""
        return self._outbox is not None

    def stop(self) -> None:
        """Ask `run()` to close the socket and return; frames already received are handed on first."""
        self._stopping.set()

    def send(self, frame: str) -> bool:
        """Queue a frame for the live socket; False when not connected (the next connect's frames do)."""
        if self._outbox is None:
            return False
        self._outbox.put_nowait(frame)
        return True

    async def run(self) -> None:
        """Stay connected until stopped."""
        attempt = 0
        while not self._stopping.is_set():
            self._received_data = False
            reason = STOPPED
            try:
                reason = await self._session()
            except websockets.ConnectionClosed as error:
                reason = CLOSED
                log.log(self._failure_level, "%s connection closed: %s", self.name, error)
            except (OSError, websockets.WebSocketException, TimeoutError) as error:
                reason = ERROR
                log.log(self._failure_level, "%s connection failed: %s", self.name, error)
            finally:
                self._outbox = None
                self._on_close(reason)
            # A session that delivered data was healthy: start the backoff over; else back off further.
            attempt = 0 if self._received_data else attempt + 1
            if self._stopping.is_set():
                break
            delay = self._backoff.delay(attempt, self._random_fn)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stopping.wait(), timeout=delay)

    @property
    def _failure_level(self) -> int:
        return logging.DEBUG if self._quiet_retries else logging.WARNING

    async def _session(self) -> str:
        async with websockets.connect(
            self.url, ping_interval=None, max_size=self._max_frame_bytes, open_timeout=self._open_timeout_secs
        ) as socket:
            self.connections += 1
            # Frames are taken and the outbox opened with no await in between, so a concurrent `send()`
            # lands either in these frames' state or in the outbox, never in neither.
            outbox: asyncio.Queue[str] = asyncio.Queue()
            for frame in self._subscribe_frames():
                outbox.put_nowait(frame)
            self._outbox = outbox
            writer = asyncio.create_task(self._write(socket, outbox))
            log.info("%s connected to %s", self.name, self.url)
            self._on_open()
            try:
                return await self._receive(socket, writer)
            finally:
                writer.cancel()
                await asyncio.gather(writer, return_exceptions=True)

    async def _write(self, socket: websockets.ClientConnection, outbox: asyncio.Queue[str]) -> None:
        """Send queued frames as they come, and a text PING whenever `ping_secs` pass."""
        next_ping = time.monotonic() + self._ping_secs
        while True:
            try:
                frame = await asyncio.wait_for(outbox.get(), timeout=max(next_ping - time.monotonic(), 0))
            except TimeoutError:
                frame, next_ping = "PING", time.monotonic() + self._ping_secs
            await socket.send(frame)

    async def _receive(self, socket: websockets.ClientConnection, writer: asyncio.Task[None]) -> str:
        """Hand frames on until stopped, or until nothing counts as alive for `watchdog_secs`."""
        stop = asyncio.ensure_future(self._stopping.wait())
        last_alive = time.monotonic()
        try:
            while True:
                remaining = self._watchdog_secs - (time.monotonic() - last_alive)
                receive = asyncio.ensure_future(socket.recv())
                done, _ = await asyncio.wait(
                    {receive, stop, writer}, timeout=max(remaining, 0), return_when=asyncio.FIRST_COMPLETED
                )
                if receive not in done:
                    receive.cancel()
                    await asyncio.gather(receive, return_exceptions=True)
                    if stop in done:
                        return STOPPED
                    if writer in done:
                        writer.result()  # a failed send ends the session with its error
                        raise websockets.ConnectionClosedError(None, None)
                    log.warning("%s sent nothing for %.0f s; reconnecting", self.name, self._watchdog_secs)
                    return WATCHDOG
                frame = receive.result()
                if is_keepalive(frame):
                    if self._watchdog_counts_keepalive:
                        last_alive = time.monotonic()
                    continue
                last_alive = time.monotonic()
                self._received_data = True
                self._on_frame(frame)
        finally:
            stop.cancel()

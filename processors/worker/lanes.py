"""Keyed lanes: an agent's events for one key (a wallet) run one after another, in the order they were read;
events for different keys run side by side.

Why (issue 11): an agent that handles one event at a time waits, per event, for the broker to acknowledge
its outputs before it may write its state (ack before state). On this machine that round trip, not the
CPU, bounded the evaluation near 50 decisions/s while the bench offered twice that: the worker's main thread
was idle 40 % of the time and the backlog grew. A wallet's decisions depend only on its own state and the
order of its own events, so a lane per wallet keeps every decision as it was and lets the waits overlap
(and the producer batch what is in flight together)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable

log = logging.getLogger(__name__)

MAX_IN_FLIGHT = 256  # events read and not yet finished, over all lanes: bounds memory and a stop's work


class KeyedLanes:
    """Runs submitted work concurrently across keys and in submission order within a key.

    `submit` returns once the work is queued (it waits only while `max_in_flight` events are unfinished).
    Each work item is a task created by `submit`, so it runs in the submitter's context (Faust's current
    event, which table writes use to pick their changelog partition, and the log context)."""

    def __init__(self, name: str, max_in_flight: int = MAX_IN_FLIGHT) -> None:
        self.name = name
        self._slots = asyncio.Semaphore(max_in_flight)
        self._tails: dict[bytes, asyncio.Task[None]] = {}
        self._in_flight: set[asyncio.Task[None]] = set()

    def __len__(self) -> int:
        return len(self._in_flight)

    async def submit(self, key: bytes, work: Callable[[], Awaitable[None]]) -> None:
        await self._slots.acquire()
        task = asyncio.create_task(self._after(self._tails.get(key), work))
        self._tails[key] = task
        self._in_flight.add(task)
        task.add_done_callback(lambda done: self._finished(key, done))

    @staticmethod
    async def _after(previous: asyncio.Task[None] | None, work: Callable[[], Awaitable[None]]) -> None:
        if previous is not None and not previous.done():
            await asyncio.wait([previous])  # its outcome is its own: work items handle their errors
        await work()

    def _finished(self, key: bytes, task: asyncio.Task[None]) -> None:
        self._slots.release()
        self._in_flight.discard(task)
        if self._tails.get(key) is task:
            del self._tails[key]
        if not task.cancelled() and (error := task.exception()) is not None:
            log.error("%s: an event's work failed outside its handler", self.name, exc_info=error)

    async def drain(self, timeout: float | None = None) -> bool:
        """Wait until every submitted item has finished (True), or `timeout` passed (False)."""
        loop = asyncio.get_running_loop()
        deadline = None if timeout is None else loop.time() + timeout
        while self._in_flight:
            left = None if deadline is None else deadline - loop.time()
            if left is not None and left <= 0:
                return False
            await asyncio.wait(set(self._in_flight), timeout=left)
        return True

    async def stop(self, timeout: float) -> None:
        """Let the items in flight finish for up to `timeout`, then cancel the rest: a cancelled item's event
        stays unacked, so whoever owns its partition next reads it again."""
        if not await self.drain(timeout):
            log.warning("%s: %d events unfinished at stop; they will be read again", self.name, len(self))
            for task in list(self._in_flight):
                task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await asyncio.gather(*self._in_flight, return_exceptions=True)

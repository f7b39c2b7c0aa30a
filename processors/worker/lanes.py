"""Keyed lanes: an agent's events for one key (a wallet) run one after another, in the order they were read;
events for different keys run side by side; what queued up behind a key's running batch runs as its next
batch.

Why (issue 11): an agent that handles one event at a time waits, per event, for the broker to acknowledge
its outputs before it may write its state (ack before state). On this machine that round trip, not the
CPU, bounded the evaluation near 50 decisions/s while the bench offered twice that: the worker's main thread
was idle 40 % of the time and the backlog grew. A wallet's decisions depend only on its own state and the
order of its own events, so a lane per wallet keeps every decision as it was and lets the waits overlap
(and the producer batch what is in flight together).

Batches: once the worker is CPU-bound, a wallet's events queue behind its running one; handling them
together loads and saves the wallet's state, builds its position views and waits for the broker once per
batch instead of once per event. A batch is never waited for: it is what arrived meanwhile, so an idle
pipeline still runs batches of one and a busy one pays less per event the busier it gets."""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import logging
from collections import deque
from collections.abc import Awaitable, Callable
from typing import Generic, TypeVar

log = logging.getLogger(__name__)

MAX_IN_FLIGHT = 256  # events read and not yet finished, over all lanes: bounds memory and a stop's work
T = TypeVar("T")


class KeyedLanes(Generic[T]):
    """Runs `handle` on batches of submitted items: concurrently across keys, in submission order within a
    key, at most `max_batch` items of one key per call.

    `submit` returns once the item is queued (it waits only while `max_in_flight` items are unfinished). A
    batch runs in a task of its own, in the context of its first item's `submit` (Faust's current event,
    which table writes use to pick their changelog partition; the same for every item of a key, whose
    events come from one partition); `handle` deals with its items' errors, and one it lets out is logged."""

    def __init__(
        self,
        name: str,
        handle: Callable[[list[T]], Awaitable[None]],
        *,
        max_in_flight: int = MAX_IN_FLIGHT,
        max_batch: int = 1,
    ) -> None:
        self.name, self._handle, self._max_batch = name, handle, max_batch
        self._slots = asyncio.Semaphore(max_in_flight)
        self._queued: dict[bytes, deque[tuple[T, contextvars.Context]]] = {}
        self._running: dict[bytes, tuple[asyncio.Task[None], int]] = {}  # per key: its batch and its size

    def __len__(self) -> int:
        """Items submitted and not finished: running or queued."""
        return sum(size for _, size in self._running.values()) + sum(map(len, self._queued.values()))

    async def submit(self, key: bytes, item: T) -> None:
        await self._slots.acquire()
        self._queued.setdefault(key, deque()).append((item, contextvars.copy_context()))
        if key not in self._running:
            self._start(key)

    def _start(self, key: bytes) -> None:
        queue = self._queued[key]
        batch = [queue.popleft() for _ in range(min(self._max_batch, len(queue)))]
        if not queue:
            del self._queued[key]
        items = [item for item, _ in batch]
        task = asyncio.create_task(self._handle(items), context=batch[0][1])  # type: ignore[arg-type]
        self._running[key] = (task, len(items))
        task.add_done_callback(lambda done: self._finished(key, done))

    def _finished(self, key: bytes, task: asyncio.Task[None]) -> None:
        _, size = self._running.pop(key)
        for _ in range(size):
            self._slots.release()
        if not task.cancelled() and (error := task.exception()) is not None:
            log.error("%s: a batch's work failed outside its handler", self.name, exc_info=error)
        if key in self._queued:
            self._start(key)

    async def drain(self, timeout: float | None = None) -> bool:
        """Wait until every submitted item has finished (True), or `timeout` passed (False)."""
        loop = asyncio.get_running_loop()
        deadline = None if timeout is None else loop.time() + timeout
        while self._running:
            left = None if deadline is None else deadline - loop.time()
            if left is not None and left <= 0:
                return False
            await asyncio.wait([task for task, _ in self._running.values()], timeout=left)
        return True

    async def stop(self, timeout: float) -> None:
        """Let the items in flight finish for up to `timeout`, then drop the queued ones and cancel the
        running ones: their events stay unacked, so whoever owns their partitions next reads them again."""
        if await self.drain(timeout):
            return
        log.warning("%s: %d events unfinished at stop; they will be read again", self.name, len(self))
        for queue in self._queued.values():
            for _ in queue:
                self._slots.release()
        self._queued.clear()
        running = [task for task, _ in self._running.values()]
        for task in running:
            task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.gather(*running, return_exceptions=True)

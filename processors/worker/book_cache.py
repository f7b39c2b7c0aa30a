"""Order books for the worker: the books topic's current channel states, else `GET /book` through a blocking
fetcher (the CLOB gateway) run in a thread and reused for a maximum age; and the state a trade was pinned to.

The target filter chooses one book per trade (`BookCache.choose`) and pins the trade to it by id; each
follower's evaluation, perhaps in another worker, finds that state again (`BookCache.pinned`).
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from polycopy.infra.metrics import PipelineMetrics
from polycopy.polymarket.books import BookFormatError, parse_book
from processors.core.book_log import RecentBooks
from processors.core.books import stamp_book
from schemas.books import BookSource, OrderBook

BookFetcher = Callable[[str], dict[str, Any] | None]
PIN_POLL_SECS = 0.01
LOAD_WAIT_SECS = 120.0  # how long the first trades wait for the books topic's recent states at start-up


def _now_ms() -> int:
    return time.time_ns() // 1_000_000


class SharedBooks:
    """`RecentBooks` fed from the books topic by a reader thread and read from the worker's event loop."""

    def __init__(self, books: RecentBooks | None = None) -> None:
        self._books = books or RecentBooks()
        self._lock = threading.Lock()

    def apply_record(self, key: bytes | None, value: bytes | None) -> None:
        """One record of the books topic (a null value: the channel's book of that token was lost)."""
        if key is None:
            return
        self.apply(key.decode(), OrderBook.model_validate_json(value) if value is not None else None)

    def apply(self, token_id: str, book: OrderBook | None) -> None:
        with self._lock:
            self._books.apply(token_id, book)

    def fresh_channel_book(self, token_id: str, now_ms: int, max_age_ms: int) -> OrderBook | None:
        with self._lock:
            return self._books.fresh_channel_book(token_id, now_ms, max_age_ms)

    def find(self, token_id: str, book_id: str) -> OrderBook | None:
        with self._lock:
            return self._books.find(token_id, book_id)


@dataclass(frozen=True)
class BookChoice:
    """The book chosen for a trade; `fetched` when it is a REST state fetched just now (to be published)."""

    book: OrderBook | None
    fetched: bool = False


class BookCache:
    """The channel's book when the books topic has a state of it received within `channel_max_age_ms`;
    otherwise fetch it off the event loop, reuse it for `max_age_ms`, and let concurrent misses share one
    request. `polycopy_book_source_total` counts each book chosen by where it came from.
    """

    def __init__(
        self,
        fetch: BookFetcher,
        max_age_ms: int,
        clock: Callable[[], float] = time.monotonic,
        *,
        books: SharedBooks | None = None,
        channel_max_age_ms: int = 30_000,
        metrics: PipelineMetrics | None = None,
        clock_ms: Callable[[], int] = _now_ms,
        loaded: Callable[[], bool] = lambda: True,
        load_wait_secs: float = LOAD_WAIT_SECS,
    ) -> None:
        self._fetch, self._max_age, self._clock, self._clock_ms = fetch, max_age_ms / 1000, clock, clock_ms
        self.books = books or SharedBooks()
        self._loaded, self._load_deadline = loaded, time.monotonic() + load_wait_secs
        self._channel_max_age_ms, self._metrics = channel_max_age_ms, metrics
        self._fetched: dict[str, tuple[float, OrderBook | None]] = {}
        self._pending: dict[str, asyncio.Future[OrderBook | None]] = {}

    async def choose(self, token_id: str) -> BookChoice:
        """The book a trade on this token is pinned to (None when the venue has none). Raises on
        transport/format errors of the REST fallback."""
        await self._until_loaded()
        streamed = self.books.fresh_channel_book(token_id, self._clock_ms(), self._channel_max_age_ms)
        if streamed is not None:
            self._count("channel")
            return BookChoice(streamed)
        cached = self._fetched.get(token_id)
        if cached is not None and self._clock() - cached[0] <= self._max_age:
            self._count("rest")
            return BookChoice(cached[1])
        book, fetched = await self._fetch_shared(token_id)
        self._count("rest")
        return BookChoice(book, fetched)

    async def pinned(self, token_id: str, book_id: str, wait_secs: float) -> OrderBook | None:
        """The state a trade was pinned to, waiting up to `wait_secs` for it to arrive from the books topic
        (another worker fetched it); None if it does not come."""
        await self._until_loaded()  # the wait for the pin starts once the recent states are in
        deadline = time.monotonic() + wait_secs
        while (book := self.books.find(token_id, book_id)) is None and time.monotonic() < deadline:
            await asyncio.sleep(PIN_POLL_SECS)
        return book

    async def _until_loaded(self) -> None:
        # A starting worker runs Faust (its changelog restore) while the books topic's recent states load:
        # the first trades wait for them here, so they are decided on the books a worker already running
        # would have had. A load that never ends (logged by its follower) leaves the REST fallback.
        while not self._loaded() and time.monotonic() < self._load_deadline:
            await asyncio.sleep(PIN_POLL_SECS)

    def _count(self, source: str) -> None:
        if self._metrics is not None:
            self._metrics.book_source.labels(source).inc()

    async def _fetch_shared(self, token_id: str) -> tuple[OrderBook | None, bool]:
        if token_id in self._pending:
            return await asyncio.shield(self._pending[token_id]), False
        future: asyncio.Future[OrderBook | None] = asyncio.get_running_loop().create_future()
        self._pending[token_id] = future
        try:
            payload = await asyncio.to_thread(self._fetch, token_id)
            book = None
            if payload is not None:
                book = stamp_book(parse_book(payload), BookSource.REST, self._clock_ms())
                self.books.apply(token_id, book)  # so this worker's evaluations find it by id at once
            self._fetched[token_id] = (self._clock(), book)
            future.set_result(book)
            return book, True
        except (Exception, BookFormatError) as error:
            future.set_exception(error)
            future.exception()  # mark retrieved: waiters re-raise it themselves
            raise
        finally:
            del self._pending[token_id]

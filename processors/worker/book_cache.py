"""Order books for the worker: the market channel's book when it is current, else `GET /book` through a
blocking fetcher (the CLOB gateway) run in a thread, reused for a maximum age."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any, Protocol

from polycopy.infra.metrics import PipelineMetrics
from polycopy.polymarket.books import BookFormatError, parse_book
from schemas.books import OrderBook

BookFetcher = Callable[[str], dict[str, Any] | None]


class BookChannel(Protocol):
    """A streamed source of books (the CLOB market channel), followed token by token."""

    def watch(self, token_id: str) -> None: ...

    def fresh_book(self, token_id: str, max_age_ms: int) -> OrderBook | None: ...


class BookCache:
    """The channel's book when it changed within `channel_max_age_ms` on the live connection; otherwise fetch
    it off the event loop, reuse it for `max_age_ms`, and let concurrent misses share one request.

    Every token asked for is watched on the channel, so later trades on it find the streamed book.
    `polycopy_book_source_total` counts each book served by where it came from.
    """

    def __init__(
        self,
        fetch: BookFetcher,
        max_age_ms: int,
        clock: Callable[[], float] = time.monotonic,
        *,
        channel: BookChannel | None = None,
        channel_max_age_ms: int = 30_000,
        metrics: PipelineMetrics | None = None,
    ) -> None:
        self._fetch, self._max_age, self._clock = fetch, max_age_ms / 1000, clock
        self._channel, self._channel_max_age_ms, self._metrics = channel, channel_max_age_ms, metrics
        self._books: dict[str, tuple[float, OrderBook | None]] = {}
        self._pending: dict[str, asyncio.Future[OrderBook | None]] = {}

    async def get(self, token_id: str) -> OrderBook | None:
        """The book for a token, or None when the venue has none. Raises on transport/format errors."""
        if self._channel is not None:
            self._channel.watch(token_id)
            streamed = self._channel.fresh_book(token_id, self._channel_max_age_ms)
            if streamed is not None:
                self._count("channel")
                return streamed
        book = await self._get_fetched(token_id)
        self._count("rest")
        return book

    def _count(self, source: str) -> None:
        if self._metrics is not None:
            self._metrics.book_source.labels(source).inc()

    async def _get_fetched(self, token_id: str) -> OrderBook | None:
        cached = self._books.get(token_id)
        if cached is not None and self._clock() - cached[0] <= self._max_age:
            return cached[1]
        if token_id in self._pending:
            return await asyncio.shield(self._pending[token_id])
        future: asyncio.Future[OrderBook | None] = asyncio.get_running_loop().create_future()
        self._pending[token_id] = future
        try:
            payload = await asyncio.to_thread(self._fetch, token_id)
            book = parse_book(payload) if payload is not None else None
            self._books[token_id] = (self._clock(), book)
            future.set_result(book)
            return book
        except (Exception, BookFormatError) as error:
            future.set_exception(error)
            future.exception()  # mark retrieved: waiters re-raise it themselves
            raise
        finally:
            del self._pending[token_id]

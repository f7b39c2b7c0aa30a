"""Async order-book cache in front of a blocking fetcher (the CLOB gateway), with a maximum age."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any

from processors.core.books import BookFormatError, OrderBook, parse_book

BookFetcher = Callable[[str], dict[str, Any] | None]


class BookCache:
    """Fetch books off the event loop; reuse one for `max_age_ms`; concurrent misses share one request."""

    def __init__(self, fetch: BookFetcher, max_age_ms: int, clock: Callable[[], float] = time.monotonic) -> None:
        self._fetch, self._max_age, self._clock = fetch, max_age_ms / 1000, clock
        self._books: dict[str, tuple[float, OrderBook | None]] = {}
        self._pending: dict[str, asyncio.Future[OrderBook | None]] = {}

    async def get(self, token_id: str) -> OrderBook | None:
        """The book for a token, or None when the venue has none. Raises on transport/format errors."""
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

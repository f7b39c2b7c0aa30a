"""The CLOB market channel as book state: the latest book of every token followed, and every change to it.

The state is in memory only: on every (re)connect it is dropped and rebuilt from the `book` snapshots the
venue sends on subscription, then kept current by `price_change` events. A book is served only while its
connection lives, so a book from a dead socket is never mistaken for a current one; whoever listens
(`on_book`, `on_books_lost`) hears of every new state and of every book that stopped being current.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections import OrderedDict
from collections.abc import Callable, Container, Iterable

from polycopy.infra.metrics import PipelineMetrics
from polycopy.infra.ws import DEFAULT_BACKOFF, STOPPED, BackoffPolicy, WebSocketSession
from polycopy.polymarket.books import (
    BookSnapshot,
    MarketEvent,
    MarketResolved,
    PriceChanges,
    TickSizeChange,
    apply_price_changes,
    apply_tick_size_change,
    parse_market_message,
)
from schemas.books import OrderBook

log = logging.getLogger(__name__)

FEED_NAME = "market-channel"  # metric label and log name


def build_initial_subscription(token_ids: Iterable[str], custom_features: bool = False) -> str:
    """The first frame on a market-channel socket: every token to follow. `custom_features` asks for the
    `best_bid_ask`, `new_market` and `market_resolved` events too."""
    return json.dumps(
        {"type": "market", "assets_ids": list(token_ids), "custom_feature_enabled": custom_features},
        separators=(",", ":"),
    )


def build_subscription_change(operation: str, token_ids: Iterable[str], custom_features: bool = False) -> str:
    """A later `subscribe`/`unsubscribe` frame on the live socket."""
    frame = {"operation": operation, "assets_ids": list(token_ids), "custom_feature_enabled": custom_features}
    return json.dumps(frame, separators=(",", ":"))


class ChannelBooks:
    """Books applied from market-channel events, with the time each one last changed (`clock`, seconds)."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._books: dict[str, tuple[float, OrderBook]] = {}
        # Kept across connections: snapshots may come without tick size and minimum order size.
        self._parameters: dict[str, OrderBook] = {}

    def __len__(self) -> int:
        return len(self._books)

    def clear(self) -> tuple[str, ...]:
        """Forget every book (the connection ended or a new one began); returns the tokens that had one."""
        tokens = tuple(self._books)
        self._books.clear()
        return tokens

    def forget(self, token_id: str) -> bool:
        """Drop one token's book and parameters (no longer followed); True when it had a book."""
        self._parameters.pop(token_id, None)
        return self._books.pop(token_id, None) is not None

    def apply(self, event: MarketEvent, tokens: Container[str] | None = None) -> list[OrderBook]:
        """Apply one event and return the books it changed (new states, in order); snapshots of tokens
        outside `tokens` (when given) are ignored."""
        now = self._clock()
        changed: list[OrderBook] = []
        if isinstance(event, BookSnapshot):
            book = event.book
            if tokens is not None and book.asset not in tokens:
                return changed
            known = self._parameters.get(book.asset)
            if not event.has_trading_parameters and known is not None:
                book = book.model_copy(
                    update={
                        "tick_size": known.tick_size,
                        "min_order_size": known.min_order_size,
                        "neg_risk": known.neg_risk,
                    }
                )
            self._parameters[book.asset] = book
            self._books[book.asset] = (now, book)
            changed.append(book)
        elif isinstance(event, PriceChanges):
            for asset in dict.fromkeys(change.asset for change in event.changes):
                # A change with no snapshot on this connection has nothing to apply to; its snapshot follows.
                if (entry := self._books.get(asset)) is not None:
                    book = apply_price_changes(entry[1], event.changes, event.timestamp_ms)
                    self._books[asset] = (now, book)
                    changed.append(book)
        elif isinstance(event, TickSizeChange):
            if (entry := self._books.get(event.asset)) is not None:
                book = apply_tick_size_change(entry[1], event)
                self._books[event.asset] = (now, book)
                changed.append(book)
            if (known := self._parameters.get(event.asset)) is not None:
                self._parameters[event.asset] = apply_tick_size_change(known, event)
        return changed

    def book(self, token_id: str) -> OrderBook | None:
        """The token's current book, however old."""
        entry = self._books.get(token_id)
        return entry[1] if entry else None

    def age_ms(self, token_id: str) -> float | None:
        """Milliseconds since the token's book last changed, or None when there is no book."""
        entry = self._books.get(token_id)
        return (self._clock() - entry[0]) * 1000 if entry else None

    def fresh_book(self, token_id: str, max_age_ms: int) -> OrderBook | None:
        """The token's book if it changed within `max_age_ms`, else None."""
        entry = self._books.get(token_id)
        if entry is None or (self._clock() - entry[0]) * 1000 > max_age_ms:
            return None
        return entry[1]


class MarketBookFeed:
    """Follows tokens on the CLOB market channel and keeps their books (`ChannelBooks`) for the worker.

    `watch(token)` subscribes on the live socket (or with the next connect); the least recently watched token
    is unsubscribed once more than `max_tokens` are followed. `run()` connects at the first `watch`.
    `on_book` hears every new book state; `on_books_lost` the tokens whose book stopped being current (the
    socket closed, or the token was unsubscribed). With `on_resolved` the subscription asks for the channel's
    custom features and `on_resolved` hears every `market_resolved` event. All run on the feed's event loop.
    """

    def __init__(
        self,
        url: str,
        metrics: PipelineMetrics,
        *,
        max_tokens: int = 2000,
        ping_secs: float = 10.0,
        watchdog_secs: float = 30.0,
        backoff: BackoffPolicy = DEFAULT_BACKOFF,
        clock: Callable[[], float] = time.monotonic,
        on_book: Callable[[OrderBook], None] | None = None,
        on_books_lost: Callable[[tuple[str, ...]], None] | None = None,
        on_resolved: Callable[[MarketResolved], None] | None = None,
    ) -> None:
        self._metrics, self._max_tokens = metrics, max_tokens
        self._on_book, self._on_books_lost, self._on_resolved = on_book, on_books_lost, on_resolved
        self._custom = on_resolved is not None
        self._tokens: OrderedDict[str, None] = OrderedDict()
        self.books = ChannelBooks(clock)
        self._wanted = asyncio.Event()
        self._stopping = asyncio.Event()
        # PONGs count as signs of life: a quiet market sends no data for minutes and is still current.
        self._session = WebSocketSession(
            url,
            self._handle_frame,
            subscribe_frames=self._subscription_frames,
            name="CLOB market channel",
            ping_secs=ping_secs,
            watchdog_secs=watchdog_secs,
            watchdog_counts_keepalive=True,
            backoff=backoff,
            on_open=self._drop_books,
            on_close=self._on_close,
        )

    @property
    def connected(self) -> bool:
        """True while a socket is open and subscribed."""
        return self._session.connected

    @property
    def connections(self) -> int:
        """Sockets opened so far."""
        return self._session.connections

    @property
    def tokens(self) -> tuple[str, ...]:
        """Followed tokens, least recently watched first."""
        return tuple(self._tokens)

    def watch(self, token_id: str) -> None:
        """Follow a token's book from now on (a no-op, bar recency, when already followed)."""
        if token_id in self._tokens:
            self._tokens.move_to_end(token_id)
            return
        self._tokens[token_id] = None
        if len(self._tokens) > self._max_tokens:
            dropped, _ = self._tokens.popitem(last=False)
            if self.books.forget(dropped) and self._on_books_lost is not None:
                self._on_books_lost((dropped,))
            self._session.send(build_subscription_change("unsubscribe", [dropped], self._custom))
        self._session.send(build_subscription_change("subscribe", [token_id], self._custom))
        self._wanted.set()

    def fresh_book(self, token_id: str, max_age_ms: int) -> OrderBook | None:
        """The token's book from the live connection if it changed within `max_age_ms`, else None."""
        if not self._session.connected:
            return None
        return self.books.fresh_book(token_id, max_age_ms)

    def stop(self) -> None:
        """Close the socket; `run()` returns."""
        self._stopping.set()
        self._session.stop()

    async def run(self) -> None:
        """Wait for the first token, then stay connected until stopped."""
        wanted = asyncio.ensure_future(self._wanted.wait())
        stopping = asyncio.ensure_future(self._stopping.wait())
        try:
            await asyncio.wait({wanted, stopping}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            wanted.cancel()
            stopping.cancel()
        if not self._stopping.is_set():
            await self._session.run()

    def _subscription_frames(self) -> tuple[str, ...]:
        return (build_initial_subscription(self._tokens, self._custom),) if self._tokens else ()

    def _handle_frame(self, frame: str | bytes) -> None:
        self._metrics.frames.labels(FEED_NAME).inc()
        message = parse_market_message(frame)
        for event in message.events:
            if isinstance(event, MarketResolved):
                if self._on_resolved is not None:
                    self._on_resolved(event)
                continue
            for book in self.books.apply(event, self._tokens):
                if self._on_book is not None:
                    self._on_book(book)
        if message.errors:
            self._metrics.parse_errors.labels(FEED_NAME).inc(len(message.errors))
            log.warning(
                "market channel: %d malformed event(s), first: %s", len(message.errors), message.errors[0]
            )

    def _drop_books(self) -> None:
        lost = self.books.clear()
        if lost and self._on_books_lost is not None:
            self._on_books_lost(lost)

    def _on_close(self, reason: str) -> None:
        self._drop_books()
        if reason != STOPPED:
            self._metrics.reconnects.labels(reason).inc()

"""The books producer (`polycopy books`): the deployment's one CLOB market-channel connection.

It follows the raw-trades topic and the wallet and trader topics, watches the token of every trade whose
trader some wallet follows (the engine's follows rule; least recently traded tokens are dropped beyond a
maximum), and publishes every book state the channel gives to the books topic: the full book after each
change, stamped with its receive time and id, and a null record when a token's book stops being current.
Workers keep their books from that topic, and replays rebuild from it the books the live gate saw. With
`POLYCOPY_MARKET_RESOLVED_EVENTS` it also asks the channel for its `market_resolved` events and publishes each
to the resolutions topic, keyed by condition id.
"""

from __future__ import annotations

import asyncio
import logging
import signal
from collections.abc import Callable, Mapping
from typing import Protocol

from pydantic import ValidationError

from polycopy.infra.kafka import CompactedTopicReader, MessagePublisher, TopicFollower, now_ms
from polycopy.infra.metrics import PipelineMetrics
from polycopy.infra.settings import PolycopySettings
from polycopy.polymarket.books import MarketResolved
from polycopy.polymarket.market_channel import MarketBookFeed
from processors.core.books import stamp_book
from processors.core.targeting import select_followers
from schemas.base import Message
from schemas.books import BookSource, OrderBook
from schemas.reference import TraderReference
from schemas.topics import BOOKS, RAW_TRADES, RESOLUTIONS, TRADERS, WALLET_CONFIG, TopicSpec
from schemas.trades import RawTrade
from schemas.wallets import WalletConfig

log = logging.getLogger(__name__)

STAGE = "books"
WATCH_LOOKBACK_MS = 30 * 60 * 1000  # at start-up, watch again the tokens traded in the last half hour
MAX_TOKENS = 2000  # tokens followed on the channel at most; the least recently traded is dropped


class Followed(Protocol):
    """Who is followed: the wallet configs and the synced traders."""

    def wallets(self) -> Mapping[str, WalletConfig]: ...
    def followed_traders(self) -> frozenset[str]: ...


class BookSink(Protocol):
    """Where book states go (the Kafka publisher)."""

    def publish(
        self, spec: TopicSpec, key: str | None, message: Message | None, *, timestamp_ms: int = 0
    ) -> None: ...


class BooksProducer:
    """Decides which tokens to watch from the trades, and turns channel books into books-topic records."""

    def __init__(
        self,
        followed: Followed,
        sink: BookSink,
        metrics: PipelineMetrics,
        clock_ms: Callable[[], int] = now_ms,
    ) -> None:
        self._followed, self._sink = followed, sink
        self._metrics, self._clock_ms = metrics, clock_ms
        self.published = 0

    def token_to_watch(self, value: bytes | None) -> str | None:
        """A raw-trades record's token, when some wallet follows its trader (else None)."""
        if value is None:
            return None
        try:
            trade = RawTrade.model_validate_json(value)
        except ValidationError:
            self._metrics.parse_errors.labels(STAGE).inc()  # the target filter dead-letters it
            return None
        wallets, synced = self._followed.wallets().values(), self._followed.followed_traders()
        return trade.asset if select_followers(trade, wallets, synced) else None

    def on_book(self, book: OrderBook) -> None:
        """A new channel state: publish it, keyed by token, stamped with its receive time and id."""
        state = stamp_book(book, BookSource.CHANNEL, self._clock_ms())
        self._sink.publish(BOOKS, state.asset, state, timestamp_ms=state.received_at_ms)
        self._metrics.books_published.labels(BookSource.CHANNEL.value).inc()
        self.published += 1

    def on_resolved(self, event: MarketResolved) -> None:
        """A `market_resolved` event: the market's resolution, on the resolutions topic."""
        resolution = event.to_resolution(self._clock_ms())
        self._sink.publish(RESOLUTIONS, resolution.condition_id, resolution)
        log.info("market %s resolved: %s won", resolution.condition_id, resolution.winning_token_id)

    def on_books_lost(self, tokens: tuple[str, ...]) -> None:
        """Books that stopped being current (socket closed, token dropped): a null record for each."""
        lost_at = self._clock_ms()
        for token in tokens:
            self._sink.publish(BOOKS, token, None, timestamp_ms=lost_at)
        self._metrics.books_published.labels("lost").inc(len(tokens))


class FollowedFromTopics:
    """The wallet and trader topics, followed in background readers."""

    def __init__(self, settings: PolycopySettings) -> None:
        self._wallets = CompactedTopicReader(settings, WALLET_CONFIG, WalletConfig.model_validate_json)
        self._traders = CompactedTopicReader(settings, TRADERS, TraderReference.model_validate_json)

    def start(self) -> FollowedFromTopics:
        self._wallets.start()
        self._traders.start()
        return self

    def stop(self) -> None:
        self._wallets.stop()
        self._traders.stop()

    def wallets(self) -> Mapping[str, WalletConfig]:
        return self._wallets.snapshot()

    def followed_traders(self) -> frozenset[str]:
        return frozenset(self._traders.snapshot())


def run_books_producer(
    settings: PolycopySettings, publisher: MessagePublisher, metrics: PipelineMetrics
) -> None:
    """Run until SIGTERM/SIGINT: the market channel on this thread's event loop, the topic readers in
    background threads (their trades are handed to the loop)."""
    followed = FollowedFromTopics(settings).start()

    async def main() -> None:
        loop = asyncio.get_running_loop()
        producer = BooksProducer(followed, publisher, metrics)
        feed = MarketBookFeed(
            settings.clob_market_ws_url,
            metrics,
            max_tokens=MAX_TOKENS,
            on_book=producer.on_book,
            on_books_lost=producer.on_books_lost,
            on_resolved=producer.on_resolved if settings.market_resolved_events else None,
        )

        def watch_if_followed(value: bytes | None) -> None:  # on the loop: the feed is not thread-safe
            token = producer.token_to_watch(value)
            if token is not None:
                feed.watch(token)

        metrics.books_watched.set_function(lambda: len(feed.tokens))
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, feed.stop)
        trades = TopicFollower(
            settings,
            RAW_TRADES,
            lambda record: loop.call_soon_threadsafe(watch_if_followed, record.value),
            since_ms=now_ms() - WATCH_LOOKBACK_MS,
        )
        await asyncio.to_thread(trades.start, 120)
        log.info("books producer: following %d tokens on %s", len(feed.tokens), settings.clob_market_ws_url)
        flusher = asyncio.ensure_future(_serve_deliveries(publisher))
        try:
            await feed.run()
        finally:
            flusher.cancel()
            trades.stop()

    try:
        asyncio.run(main())
    finally:
        followed.stop()
        undelivered = publisher.flush(30)
        log.info("books producer stopped" + (f"; {undelivered} states NOT delivered" if undelivered else ""))


async def _serve_deliveries(publisher: MessagePublisher) -> None:
    # Delivery reports (and their error logs) are served when the producer is polled; a quiet channel would
    # leave them waiting otherwise.
    while True:
        publisher.poll(0)
        await asyncio.sleep(1.0)

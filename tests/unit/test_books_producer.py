"""The books producer's decisions: which traded tokens to watch (the follows rule), and what a channel book
and a lost book become on the books topic."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from polycopy.infra.metrics import PipelineMetrics
from processors.core.books import stamp_book
from producers.books import BooksProducer
from schemas.base import Message
from schemas.books import BookSource, OrderBook
from schemas.topics import BOOKS, TopicSpec
from schemas.wallets import WalletConfig
from tests.builders import ASSET, OTHER_ASSET, OTHER_TRADER, TRADER, build_book, build_trade, build_wallet

NOW_MS = 1_790_000_000_000


@dataclass
class Followed:
    configs: list[WalletConfig]
    synced: frozenset[str] = frozenset()

    def wallets(self) -> Mapping[str, WalletConfig]:
        return {wallet.id: wallet for wallet in self.configs}

    def followed_traders(self) -> frozenset[str]:
        return self.synced


@dataclass
class RecordingSink:
    published: list[tuple[str, str | None, Message | None, int]] = field(default_factory=list)

    def publish(
        self, spec: TopicSpec, key: str | None, message: Message | None, *, timestamp_ms: int = 0
    ) -> None:
        self.published.append((spec.name, key, message, timestamp_ms))


def producer(*wallets: WalletConfig, synced: frozenset[str] = frozenset()) -> tuple[BooksProducer, Any]:
    sink = RecordingSink()
    metrics = PipelineMetrics()
    return BooksProducer(Followed(list(wallets), synced), sink, metrics, clock_ms=lambda: NOW_MS), sink


def test_the_token_of_a_followed_traders_trade_is_watched_and_others_are_not() -> None:
    books, _ = producer(build_wallet(targets=(TRADER,)))
    assert books.token_to_watch(build_trade(asset=ASSET).to_bytes()) == ASSET
    assert books.token_to_watch(build_trade(proxy_wallet=OTHER_TRADER, asset=OTHER_ASSET).to_bytes()) is None


def test_a_synced_traders_trade_is_watched_for_a_wallet_without_targets() -> None:
    books, _ = producer(build_wallet(targets=()), synced=frozenset({OTHER_TRADER}))
    assert books.token_to_watch(build_trade(proxy_wallet=OTHER_TRADER).to_bytes()) == ASSET
    assert books.token_to_watch(build_trade().to_bytes()) is None


def test_a_malformed_trade_is_counted_and_watches_nothing() -> None:
    books, _ = producer(build_wallet())
    assert books.token_to_watch(b'{"price": "x"}') is None and books.token_to_watch(None) is None
    assert books._metrics.parse_errors.labels("books")._value.get() == 1


def test_a_channel_book_is_published_whole_keyed_by_token_and_stamped() -> None:
    books, sink = producer(build_wallet())
    book = build_book()
    books.on_book(book)
    [(topic, key, message, timestamp_ms)] = sink.published
    assert (topic, key, timestamp_ms) == (BOOKS.name, ASSET, NOW_MS)
    assert message == stamp_book(book, BookSource.CHANNEL, NOW_MS)
    assert isinstance(message, OrderBook) and message.book_id is not None


def test_lost_books_become_null_records_of_their_tokens() -> None:
    books, sink = producer(build_wallet())
    books.on_books_lost((ASSET, OTHER_ASSET))
    assert sink.published == [(BOOKS.name, ASSET, None, NOW_MS), (BOOKS.name, OTHER_ASSET, None, NOW_MS)]

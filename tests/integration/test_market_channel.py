"""Books from the CLOB market channel against the simulated venue: the streamed books equal `GET /book`
through drift and trades; the books producer streams followed tokens to the books topic (and says when a
book is lost), the worker's cache prefers those states and falls back to REST; the worker decides copies on
them."""

from __future__ import annotations

import asyncio
import time
import urllib.request
from collections.abc import AsyncIterator, Callable
from decimal import Decimal
from pathlib import Path

import pytest

from polycopy.infra.kafka import TopicFollower, read_topic
from polycopy.infra.metrics import PipelineMetrics
from polycopy.infra.ws import BackoffPolicy
from polycopy.polymarket.books import parse_book
from polycopy.polymarket.http import ClobBookReader
from polycopy.polymarket.market_channel import MarketBookFeed
from polycopy.tools.chaos_servers import free_port
from polycopy.tools.demo import Processes
from processors.worker.book_cache import BookCache, SharedBooks
from schemas.books import BookSource, OrderBook
from schemas.decisions import Decision
from schemas.topics import BOOKS, DECISIONS, RAW_TRADES, WALLET_CONFIG
from tests.builders import build_trade
from tests.integration.helpers import WorkerProcess, build_buying_wallet, publish, read_all, wait_until

pytestmark = pytest.mark.integration

LEADER = "0x" + "4d" * 20
FAST = BackoffPolicy(base_secs=0.05, cap_secs=0.2)


async def wait_for(condition: Callable[[], bool], timeout_secs: float = 15) -> None:
    for _ in range(int(timeout_secs * 20)):
        if condition():
            return
        await asyncio.sleep(0.05)
    raise AssertionError("timed out")


def levels(book: OrderBook | None) -> object:
    return None if book is None else (book.bids, book.asks)


def served(metrics: PipelineMetrics, source: str) -> float:
    return metrics.book_source.labels(source)._value.get()


@pytest.fixture
async def channel(simulator_factory, request) -> AsyncIterator[tuple[object, MarketBookFeed, ClobBookReader]]:  # type: ignore[no-untyped-def]
    """A quiet venue (no background drift or trades) and a running feed; a test may set its backoff."""
    venue = simulator_factory(seed=31, auto_trades=False, drift_interval_secs=3600.0)
    backoff = getattr(request, "param", FAST)
    feed = MarketBookFeed(
        venue.server.clob_market_ws_url, PipelineMetrics(), ping_secs=0.5, watchdog_secs=5, backoff=backoff
    )
    task = asyncio.get_running_loop().create_task(feed.run())
    yield venue, feed, ClobBookReader(venue.server.clob_url)
    feed.stop()
    await asyncio.wait_for(task, timeout=10)


async def test_streamed_books_equal_the_rest_books_through_drift_and_trades(channel) -> None:  # type: ignore[no-untyped-def]
    venue, feed, gateway = channel
    tokens = [token for market in venue.simulator.markets[:8] for token in market.token_ids]

    def rest_book(token: str) -> OrderBook:
        return parse_book(gateway.fetch_book(token))

    def all_match() -> bool:
        return all(levels(feed.fresh_book(token, 60_000)) == levels(rest_book(token)) for token in tokens)

    for token in tokens:
        feed.watch(token)
    await wait_for(lambda: all(feed.fresh_book(token, 60_000) for token in tokens))
    assert all_match()  # the snapshots

    async def change_books(step: int) -> None:
        now_ms = int(time.time() * 1000)
        venue.simulator.advance(now_ms + step * 5_000)
        venue.simulator.next_trades(30, now_ms)
        await venue.server.push_book_changes()

    for step in range(1, 6):
        before = {token: levels(feed.books.book(token)) for token in tokens}
        venue.call(change_books(step))
        await wait_for(all_match)
        assert any(levels(feed.books.book(token)) != before[token] for token in tokens)


@pytest.fixture
def books_producer(settings_factory, simulator_factory, tmp_path: Path):  # type: ignore[no-untyped-def]
    """A quiet venue, a wallet following LEADER, and `polycopy books` on the venue's market channel."""
    venue = simulator_factory(seed=33, auto_trades=False, drift_interval_secs=3600.0)
    settings = settings_factory(
        clob_url=venue.server.clob_url, clob_market_ws_url=venue.server.clob_market_ws_url
    )
    wallet = build_buying_wallet(LEADER)
    publish(settings, WALLET_CONFIG, [(wallet.id, wallet)])
    processes = Processes(tmp_path / "logs")
    processes.start("books", "-m", "polycopy.cli", "books", env=settings.to_env())
    yield venue, settings
    processes.check()
    processes.stop_all()


async def test_the_books_producer_streams_followed_tokens_and_the_worker_cache_prefers_them(
    books_producer,
) -> None:  # type: ignore[no-untyped-def]
    venue, settings = books_producer
    market = venue.simulator.markets[0]
    token, unfollowed = market.token_ids
    shared, metrics = SharedBooks(), PipelineMetrics()
    reader = TopicFollower(
        settings, BOOKS, lambda record: shared.apply_record(record.key, record.value), since_ms=0
    ).start()
    gateway = ClobBookReader(venue.server.clob_url)
    books = BookCache(gateway.fetch_book, 0, books=shared, channel_max_age_ms=1_500, metrics=metrics)
    try:
        first = await books.choose(token)  # nothing streamed yet: REST
        assert levels(first.book) == levels(parse_book(venue.simulator.book(token)))
        assert (served(metrics, "channel"), served(metrics, "rest")) == (0, 1)

        # A trade of a followed trader makes the producer watch the token; its states reach the topic.
        publish(settings, RAW_TRADES, [(LEADER, build_trade(proxy_wallet=LEADER, asset=token))])
        stranger = build_trade(
            proxy_wallet="0x" + "5e" * 20, asset=unfollowed, transaction_hash="0x" + "5e" * 32
        )
        publish(settings, RAW_TRADES, [(stranger.proxy_wallet, stranger)])
        await wait_for(lambda: shared.fresh_channel_book(token, now(), 1_500) is not None, timeout_secs=60)
        streamed = await books.choose(token)
        assert streamed.book is not None and streamed.book.source is BookSource.CHANNEL
        assert levels(streamed.book) == levels(first.book) and not streamed.fetched
        assert served(metrics, "channel") == 1
        assert venue.server.subscribed_assets == {token}  # the stranger's token is not followed

        await asyncio.sleep(1.6)  # no change for longer than the maximum age: REST again
        assert (await books.choose(token)).book.source is BookSource.REST  # type: ignore[union-attr]

        async def drift(step: int) -> None:  # on the venue's loop, as its own drift runs
            venue.simulator.advance(now() + step * 10_000)
            await venue.server.push_book_changes()

        def streamed_equals_venue() -> bool:
            book = shared.fresh_channel_book(token, now(), 1_500)
            return book is not None and levels(book) == levels(parse_book(venue.simulator.book(token)))

        for step in range(1, 4):
            venue.call(drift(step))
        await wait_for(streamed_equals_venue)
        changed = await books.choose(token)
        assert changed.book.source is BookSource.CHANNEL and levels(changed.book) != levels(first.book)  # type: ignore[union-attr]

        venue.call(venue.server.drop_market_connections())
        # The producer says the channel's book is lost (a null record) before the new socket's snapshot.
        await wait_for(lambda: shared.fresh_channel_book(token, now(), 1_500) is None)
        await wait_for(lambda: shared.fresh_channel_book(token, now(), 1_500) is not None, timeout_secs=60)
        assert (await books.choose(token)).book.source is BookSource.CHANNEL  # type: ignore[union-attr]
    finally:
        reader.stop()
    values = [record.value for record in read_topic(settings, BOOKS) if record.key == token.encode()]
    assert None in values and len(values) >= 4  # snapshot, change, lost, snapshot again


def now() -> int:
    return time.time_ns() // 1_000_000


def scrape_book_sources(port: int) -> dict[str, float]:
    text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read().decode()
    counts = {}
    for line in text.splitlines():
        if line.startswith("polycopy_book_source_total{"):
            labels, value = line.rsplit(" ", 1)
            counts[labels.split('source="')[1].split('"')[0]] = float(value)
    return counts


def test_the_worker_decides_copies_on_books_the_books_producer_streamed(
    settings_factory, simulator_factory, tmp_path: Path
) -> None:  # type: ignore[no-untyped-def]
    venue = simulator_factory(seed=32, auto_trades=False)
    port = free_port()
    settings = settings_factory(
        clob_url=venue.server.clob_url,
        clob_market_ws_url=venue.server.clob_market_ws_url,
        metrics_enabled=True,
        metrics_port=port,
    )
    wallet = build_buying_wallet(LEADER)
    publish(settings, WALLET_CONFIG, [(wallet.id, wallet)])
    market = venue.simulator.markets[0]
    token = market.token_ids[0]
    numbers = iter(range(1, 1000))

    def trade():  # type: ignore[no-untyped-def]
        mid = venue.simulator.midpoint(token)
        return build_trade(
            proxy_wallet=LEADER,
            asset=token,
            condition_id=market.condition_id,
            price=mid.quantize(Decimal("0.01")),
            size=Decimal("40"),
            transaction_hash="0x" + f"{next(numbers):064x}",
            # matched and received now: the worker judges a signal's age at its decision time
            timestamp=int(time.time()),
            received_at_ms=int(time.time() * 1000),
        )

    def copies() -> list[Decision]:
        return [d for d in read_all(settings, DECISIONS, Decision) if d.reason == "copy"]

    processes = Processes(tmp_path / "logs")
    quiet = settings.model_copy(update={"metrics_enabled": False})  # the worker serves the metrics port
    log_path = tmp_path / "worker.log"
    try:
        with WorkerProcess(settings, log_path):
            # Before the books producer runs, a book can only come from REST; started after, it watches the
            # token again from the raw trades of the last half hour.
            first = trade()
            publish(settings, RAW_TRADES, [(first.proxy_wallet, first)])
            wait_until(lambda: len(copies()) >= 1, what="the first copy decision")
            assert scrape_book_sources(port) == {"channel": 0, "rest": 1}
            processes.start("books", "-m", "polycopy.cli", "books", env=quiet.to_env())
            wait_until(
                lambda: token in venue.server.subscribed_assets, what="the books producer's subscription"
            )

            def a_later_trade_is_decided_on_the_streamed_book() -> bool:
                later = trade()
                publish(settings, RAW_TRADES, [(later.proxy_wallet, later)])
                return scrape_book_sources(port).get("channel", 0) >= 1

            wait_until(
                a_later_trade_is_decided_on_the_streamed_book, timeout_secs=60, what="a book from the channel"
            )
            wait_until(lambda: len(copies()) >= 2, what="copy decisions on streamed books")
        processes.check()
    finally:
        processes.stop_all()
    states = {
        book.book_id: book.source
        for book in (OrderBook.model_validate_json(r.value) for r in read_topic(settings, BOOKS) if r.value)
    }
    # Every decision's book is in the log: the first fetched by the worker, later ones streamed.
    assert {states[d.book_id] for d in copies()} == {BookSource.REST, BookSource.CHANNEL}
    log = log_path.read_text()
    assert "Traceback" not in log

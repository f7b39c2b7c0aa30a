"""Book state from the market channel (ChannelBooks, MarketBookFeed against the in-process simulator, with
what it tells its listener) and the worker's book cache choosing between the books topic and REST."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator, Callable
from decimal import Decimal
from typing import Any

import pytest

from polycopy.infra.metrics import PipelineMetrics
from polycopy.infra.ws import BackoffPolicy
from polycopy.polymarket.books import BookSnapshot, PriceChange, PriceChanges, TickSizeChange, parse_book
from polycopy.polymarket.market_channel import ChannelBooks, MarketBookFeed
from polycopy.simulator import MarketSimulator, SimulatorServer
from processors.core.books import stamp_book
from processors.worker.book_cache import BookCache, BookChoice, SharedBooks
from schemas.base import Side
from schemas.books import BookSource, OrderBook
from tests.builders import ASSET, CONDITION_ID, OTHER_ASSET, build_book, build_book_payload

D = Decimal
FAST = BackoffPolicy(base_secs=0.01, cap_secs=0.05)


class FakeClock:
    """Seconds, moved by hand."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def snapshot(book: OrderBook | None = None, *, has_trading_parameters: bool = True) -> BookSnapshot:
    return BookSnapshot(book or build_book(), has_trading_parameters)


def ask_change(price: str, size: str, asset: str = ASSET) -> PriceChanges:
    return PriceChanges(CONDITION_ID, 7, (PriceChange(asset, Side.SELL, D(price), D(size)),))


# --- ChannelBooks -------------------------------------------------------------------------------------------
def test_a_snapshot_then_changes_give_the_current_book_and_each_change_renews_its_age() -> None:
    clock = FakeClock()
    books = ChannelBooks(clock)
    books.apply(snapshot())
    clock.now += 20
    assert books.age_ms(ASSET) == pytest.approx(20_000)
    books.apply(ask_change("0.50", "0"))
    assert books.age_ms(ASSET) == 0
    assert [level.price for level in books.book(ASSET).asks] == [D("0.51"), D("0.52")]  # type: ignore[union-attr]


def test_a_book_older_than_the_maximum_age_is_not_fresh() -> None:
    clock = FakeClock()
    books = ChannelBooks(clock)
    books.apply(snapshot())
    clock.now += 0.5
    assert books.fresh_book(ASSET, max_age_ms=500) is not None
    clock.now += 0.001
    assert books.fresh_book(ASSET, max_age_ms=500) is None
    assert books.fresh_book(OTHER_ASSET, max_age_ms=500) is None and books.age_ms(OTHER_ASSET) is None


def test_changes_before_a_snapshot_have_nothing_to_apply_to_and_are_dropped() -> None:
    books = ChannelBooks(FakeClock())
    books.apply(ask_change("0.50", "0"))
    assert books.book(ASSET) is None and len(books) == 0


def test_snapshots_of_tokens_not_followed_are_ignored() -> None:
    books = ChannelBooks(FakeClock())
    books.apply(snapshot(build_book(asset=OTHER_ASSET)), tokens={ASSET})
    assert books.book(OTHER_ASSET) is None


def test_a_snapshot_without_parameters_keeps_the_known_tick_size_and_minimum() -> None:
    books = ChannelBooks(FakeClock())
    books.apply(snapshot(build_book(tick="0.001", min_size="15")))
    books.clear()  # a reconnect: books go, parameters stay
    books.apply(snapshot(build_book(), has_trading_parameters=False))
    book = books.book(ASSET)
    assert book is not None and (book.tick_size, book.min_order_size) == (D("0.001"), D("15"))


def test_a_tick_size_change_reaches_the_book_and_the_next_snapshot() -> None:
    books = ChannelBooks(FakeClock())
    books.apply(snapshot())
    books.apply(TickSizeChange(ASSET, CONDITION_ID, D("0.001"), 9))
    assert books.book(ASSET).tick_size == D("0.001")  # type: ignore[union-attr]
    books.apply(snapshot(has_trading_parameters=False))
    assert books.book(ASSET).tick_size == D("0.001")  # type: ignore[union-attr]


# --- MarketBookFeed against the simulator -----------------------------------------------------------------
@pytest.fixture
async def venue() -> AsyncIterator[SimulatorServer]:
    server = SimulatorServer(
        MarketSimulator(13, market_count=6, wallet_count=30),
        rtds_port=0,
        clob_port=0,
        auto_trades=False,
        drift_interval_secs=3600.0,
    )
    await server.start()
    yield server
    await server.stop()


@pytest.fixture
async def start_feed(venue: SimulatorServer) -> AsyncIterator[Callable[..., MarketBookFeed]]:
    running: list[tuple[MarketBookFeed, asyncio.Task[None]]] = []

    def start(**options: Any) -> MarketBookFeed:
        values = {"ping_secs": 0.2, "watchdog_secs": 2.0, "backoff": FAST} | options
        feed = MarketBookFeed(venue.clob_market_ws_url, PipelineMetrics(), **values)
        running.append((feed, asyncio.get_running_loop().create_task(feed.run())))
        return feed

    yield start
    for feed, task in running:
        feed.stop()
        await asyncio.wait_for(task, timeout=5)


async def eventually(condition: Callable[[], bool], timeout_secs: float = 5.0) -> None:
    for _ in range(int(timeout_secs / 0.01)):
        if condition():
            return
        await asyncio.sleep(0.01)
    raise AssertionError("condition not met in time")


def matches_venue(feed: MarketBookFeed, venue: SimulatorServer, token: str) -> bool:
    book, payload = feed.fresh_book(token, 60_000), venue.simulator.book(token)
    return (
        book is not None
        and payload is not None
        and (book.bids, book.asks) == ((reference := parse_book(payload)).bids, reference.asks)
    )


def tokens_of(venue: SimulatorServer) -> list[str]:
    return [token for market in venue.simulator.markets for token in market.token_ids]


async def test_the_feed_connects_only_once_a_token_is_watched(
    venue: SimulatorServer, start_feed: Callable[..., MarketBookFeed]
) -> None:
    feed = start_feed()
    await asyncio.sleep(0.2)
    assert feed.connections == 0 and venue.stats.market_connections_total == 0
    token = tokens_of(venue)[0]
    feed.watch(token)
    await eventually(lambda: matches_venue(feed, venue, token))
    assert venue.subscribed_assets == {token}


async def test_tokens_watched_while_connected_are_subscribed_on_the_live_socket(
    venue: SimulatorServer, start_feed: Callable[..., MarketBookFeed]
) -> None:
    tokens = tokens_of(venue)[:4]
    feed = start_feed()
    feed.watch(tokens[0])
    await eventually(lambda: feed.connected)
    for token in tokens[1:]:
        feed.watch(token)
    await eventually(lambda: all(matches_venue(feed, venue, token) for token in tokens))
    assert feed.connections == 1 and venue.subscribed_assets == set(tokens)


async def test_books_follow_the_venue_through_drift_and_trades(
    venue: SimulatorServer, start_feed: Callable[..., MarketBookFeed]
) -> None:
    tokens = tokens_of(venue)
    feed = start_feed()
    for token in tokens:
        feed.watch(token)
    await eventually(lambda: all(matches_venue(feed, venue, token) for token in tokens))
    start_ms = venue.simulator.book(tokens[0])["timestamp"]  # type: ignore[index]
    for step in range(1, 5):
        venue.simulator.advance(int(start_ms) + step * 10_000)
        venue.simulator.next_trades(20, int(start_ms))
        await venue.push_book_changes()
        await eventually(lambda: all(matches_venue(feed, venue, token) for token in tokens))


async def test_a_dropped_connection_serves_nothing_until_the_books_are_resent(
    venue: SimulatorServer, start_feed: Callable[..., MarketBookFeed]
) -> None:
    token = tokens_of(venue)[0]
    feed = start_feed(backoff=BackoffPolicy(base_secs=0.5, cap_secs=0.5))
    feed.watch(token)
    await eventually(lambda: matches_venue(feed, venue, token))
    await venue.drop_market_connections()
    await eventually(lambda: not feed.connected)
    assert feed.fresh_book(token, 60_000) is None and len(feed.books) == 0
    await eventually(lambda: feed.connections == 2 and matches_venue(feed, venue, token))


async def test_the_least_recently_watched_token_is_unsubscribed_beyond_the_limit(
    venue: SimulatorServer, start_feed: Callable[..., MarketBookFeed]
) -> None:
    first, second, third = tokens_of(venue)[:3]
    feed = start_feed(max_tokens=2)
    feed.watch(first)
    feed.watch(second)
    await eventually(lambda: venue.subscribed_assets == {first, second})
    feed.watch(first)  # recently used again: `second` is now the oldest
    feed.watch(third)
    await eventually(lambda: venue.subscribed_assets == {first, third})
    assert feed.tokens == (first, third) and feed.books.book(second) is None


async def test_stop_before_any_token_returns_without_connecting() -> None:
    feed = MarketBookFeed("ws://127.0.0.1:9/ws/market", PipelineMetrics())
    task = asyncio.get_running_loop().create_task(feed.run())
    await asyncio.sleep(0.05)
    feed.stop()
    await asyncio.wait_for(task, timeout=1)
    assert feed.connections == 0


async def test_every_new_book_state_and_every_lost_book_is_heard(
    venue: SimulatorServer, start_feed: Callable[..., MarketBookFeed]
) -> None:
    heard: list[OrderBook] = []
    lost: list[tuple[str, ...]] = []
    first, second = tokens_of(venue)[:2]
    feed = start_feed(
        backoff=BackoffPolicy(base_secs=0.3, cap_secs=0.3),
        max_tokens=1,
        on_book=heard.append,
        on_books_lost=lost.append,
    )
    feed.watch(first)
    await eventually(lambda: matches_venue(feed, venue, first))
    assert [book.asset for book in heard] == [first] and heard[-1] == feed.books.book(first)

    start_ms = int(venue.simulator.book(first)["timestamp"])  # type: ignore[index]
    venue.simulator.advance(start_ms + 10_000)
    await venue.push_book_changes()
    await eventually(lambda: len(heard) == 2)
    assert heard[-1] == feed.books.book(first) and heard[-1] != heard[0]

    await venue.drop_market_connections()
    await eventually(lambda: lost == [(first,)])
    await eventually(lambda: feed.connections == 2 and len(heard) == 3)  # the new socket's snapshot
    feed.watch(second)  # beyond the maximum: the first token is dropped, and its book with it
    await eventually(lambda: lost == [(first,), (first,)] and heard[-1].asset == second)


# --- BookCache: the books topic's channel state first, REST otherwise; pins found by id --------------------
class FakeFetcher:
    """A blocking GET /book stand-in that counts calls and can hold them until released."""

    def __init__(self, payload: dict[str, Any] | None) -> None:
        self.payload, self.calls = payload, 0
        self.release = threading.Event()
        self.release.set()

    def __call__(self, token_id: str) -> dict[str, Any] | None:
        self.calls += 1
        self.release.wait(5)
        return self.payload


NOW_MS = 1_790_000_000_000


def served(metrics: PipelineMetrics, source: str) -> float:
    return metrics.book_source.labels(source)._value.get()


def channel_state(received_at_ms: int = NOW_MS, **levels: Any) -> OrderBook:
    return stamp_book(build_book(**levels), BookSource.CHANNEL, received_at_ms)


def cache_with(*states: OrderBook, fetch: FakeFetcher | None = None, **options: Any) -> BookCache:
    shared = SharedBooks()
    for state in states:
        shared.apply(state.asset, state)
    values: dict[str, Any] = {"channel_max_age_ms": 1_000, "clock_ms": lambda: NOW_MS} | options
    return BookCache(fetch or FakeFetcher(build_book_payload()), 500, books=shared, **values)


async def test_a_fresh_channel_state_is_chosen_without_a_request() -> None:
    streamed = channel_state(NOW_MS - 1_000, asks=[("0.40", "10")])
    fetch, metrics = FakeFetcher(build_book_payload()), PipelineMetrics()
    cache = cache_with(streamed, fetch=fetch, metrics=metrics)

    assert await cache.choose(ASSET) == BookChoice(streamed, fetched=False)
    assert fetch.calls == 0
    assert (served(metrics, "channel"), served(metrics, "rest")) == (1, 0)


@pytest.mark.parametrize("received_ago_ms", [1_001, None], ids=["stale", "missing"])
async def test_a_stale_or_missing_channel_state_falls_back_to_rest_stamped_and_findable_by_id(
    received_ago_ms: int | None,
) -> None:
    states = () if received_ago_ms is None else (channel_state(NOW_MS - received_ago_ms),)
    fetch, metrics = FakeFetcher(build_book_payload()), PipelineMetrics()
    cache = cache_with(*states, fetch=fetch, metrics=metrics)

    choice = await cache.choose(ASSET)

    assert choice.fetched and fetch.calls == 1
    assert choice.book == stamp_book(parse_book(build_book_payload()), BookSource.REST, NOW_MS)
    assert choice.book.book_id is not None
    assert await cache.pinned(ASSET, choice.book.book_id, wait_secs=0) is choice.book
    assert (served(metrics, "channel"), served(metrics, "rest")) == (0, 1)


async def test_a_lost_channel_book_is_not_chosen_even_when_recent() -> None:
    cache = cache_with(channel_state(NOW_MS))
    cache.books.apply(ASSET, None)  # the books producer's socket closed

    assert (await cache.choose(ASSET)).book.source is BookSource.REST  # type: ignore[union-attr]


async def test_rest_books_are_reused_for_their_maximum_age_and_misses_share_one_request() -> None:
    clock = FakeClock()
    fetch = FakeFetcher(build_book_payload())
    cache = cache_with(fetch=fetch, clock=clock)
    fetch.release.clear()
    first, second = asyncio.ensure_future(cache.choose(ASSET)), asyncio.ensure_future(cache.choose(ASSET))
    await asyncio.sleep(0.05)
    fetch.release.set()
    one, other = await first, await second
    assert one.book == other.book and fetch.calls == 1
    assert sorted([one.fetched, other.fetched]) == [False, True]  # published once
    assert (await cache.choose(ASSET)) == BookChoice(one.book, fetched=False)
    clock.now += 0.501
    assert (await cache.choose(ASSET)).fetched and fetch.calls == 2


async def test_a_token_without_a_book_is_none_from_rest() -> None:
    assert await cache_with(fetch=FakeFetcher(None)).choose(ASSET) == BookChoice(None, fetched=True)


async def test_a_pinned_state_that_arrives_from_the_topic_later_is_waited_for() -> None:
    cache = cache_with()
    state = channel_state(NOW_MS)
    assert state.book_id is not None
    asyncio.get_running_loop().call_later(0.05, cache.books.apply, ASSET, state)

    assert await cache.pinned(ASSET, state.book_id, wait_secs=5) == state
    assert await cache.pinned(ASSET, "no-such-state", wait_secs=0.05) is None


async def test_while_the_recent_books_load_a_trade_waits_for_them_instead_of_fetching_rest() -> None:
    """A starting worker runs Faust while the books topic's recent states load (they were 2-4 s of a
    restart): its first trades must see the books a running worker would have seen."""
    loaded = asyncio.Event()
    fetch = FakeFetcher(build_book_payload())
    cache = cache_with(fetch=fetch, loaded=loaded.is_set)
    streamed = channel_state(NOW_MS, asks=[("0.40", "10")])
    pinned = channel_state(NOW_MS - 5_000, asks=[("0.45", "10")])

    def load() -> None:
        cache.books.apply(ASSET, pinned)
        cache.books.apply(ASSET, streamed)
        loaded.set()

    asyncio.get_running_loop().call_later(0.1, load)
    # Asked before the load ends, with no time to wait for the pin: found all the same.
    assert pinned.book_id is not None
    assert await cache.pinned(ASSET, pinned.book_id, wait_secs=0) == pinned
    assert await cache.choose(ASSET) == BookChoice(streamed, fetched=False)
    assert fetch.calls == 0


async def test_a_load_that_never_ends_leaves_the_rest_fallback_after_its_wait() -> None:
    fetch = FakeFetcher(build_book_payload())
    cache = cache_with(fetch=fetch, loaded=lambda: False, load_wait_secs=0.05)

    assert (await cache.choose(ASSET)).fetched and fetch.calls == 1

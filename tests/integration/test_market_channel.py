"""Books from the CLOB market channel against the simulated venue: the streamed books equal `GET /book`
through drift and trades, a missing or stale book falls back to REST, and the worker decides copies with the
channel on."""

from __future__ import annotations

import asyncio
import socket
import time
import urllib.request
from collections.abc import AsyncIterator, Callable
from decimal import Decimal
from pathlib import Path

import pytest

from polycopy.infra.metrics import PipelineMetrics
from polycopy.infra.ws import BackoffPolicy
from polycopy.polymarket.books import parse_book
from polycopy.polymarket.clob import ClobGateway
from polycopy.polymarket.market_channel import MarketBookFeed
from processors.worker.book_cache import BookCache
from schemas.books import OrderBook
from schemas.decisions import Decision
from schemas.topics import DECISIONS, RAW_TRADES, WALLET_CONFIG
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
async def channel(simulator_factory, request) -> AsyncIterator[tuple[object, MarketBookFeed, ClobGateway]]:  # type: ignore[no-untyped-def]
    """A quiet venue (no background drift or trades) and a running feed; a test may set its backoff."""
    venue = simulator_factory(seed=31, auto_trades=False, drift_interval_secs=3600.0)
    backoff = getattr(request, "param", FAST)
    feed = MarketBookFeed(
        venue.server.clob_market_ws_url, PipelineMetrics(), ping_secs=0.5, watchdog_secs=5, backoff=backoff
    )
    task = asyncio.get_running_loop().create_task(feed.run())
    yield venue, feed, ClobGateway(venue.server.clob_url)
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


# A slow reconnect, so the test sees the gap between the dropped socket and the next one.
@pytest.mark.parametrize("channel", [BackoffPolicy(base_secs=2.0, cap_secs=2.0)], indirect=True)
async def test_a_missing_or_stale_book_comes_from_rest_and_a_fresh_one_from_the_channel(channel) -> None:  # type: ignore[no-untyped-def]
    venue, feed, gateway = channel
    token = venue.simulator.markets[0].token_ids[1]
    metrics = PipelineMetrics()
    books = BookCache(gateway.fetch_book, 0, channel=feed, channel_max_age_ms=1_000, metrics=metrics)

    first = await books.get(token)  # nothing streamed yet: REST, and the token is now followed
    assert levels(first) == levels(parse_book(venue.simulator.book(token)))
    assert (served(metrics, "channel"), served(metrics, "rest")) == (0, 1)
    await wait_for(lambda: feed.fresh_book(token, 1_000) is not None)
    assert levels(await books.get(token)) == levels(first)
    assert served(metrics, "channel") == 1

    await asyncio.sleep(1.2)  # no change for longer than the maximum age: REST again
    await books.get(token)
    assert (served(metrics, "channel"), served(metrics, "rest")) == (1, 2)

    venue.call(venue.server.drop_market_connections())
    await wait_for(lambda: not feed.connected, timeout_secs=5)
    await books.get(token)  # a book from a dead socket is never served
    assert served(metrics, "rest") == 3
    await wait_for(lambda: feed.fresh_book(token, 1_000) is not None)  # resubscribed, snapshot received
    await books.get(token)
    assert served(metrics, "channel") == 2 and feed.connections == 2


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def scrape_book_sources(port: int) -> dict[str, float]:
    text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read().decode()
    counts = {}
    for line in text.splitlines():
        if line.startswith("polycopy_book_source_total{"):
            labels, value = line.rsplit(" ", 1)
            counts[labels.split('source="')[1].split('"')[0]] = float(value)
    return counts


def test_the_worker_decides_copies_with_books_from_the_market_channel(
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
        )

    def copies() -> int:
        return sum(d.reason == "copy" for d in read_all(settings, DECISIONS, Decision))

    log_path = tmp_path / "worker.log"
    with WorkerProcess(settings, log_path):
        first = trade()
        publish(settings, RAW_TRADES, [(first.proxy_wallet, first)])
        wait_until(lambda: copies() >= 1, what="the first copy decision")
        wait_until(lambda: token in venue.server.subscribed_assets, what="the worker's subscription")

        def a_later_trade_is_decided_on_the_streamed_book() -> bool:
            later = trade()
            publish(settings, RAW_TRADES, [(later.proxy_wallet, later)])
            return scrape_book_sources(port).get("channel", 0) >= 1

        wait_until(
            a_later_trade_is_decided_on_the_streamed_book, timeout_secs=30, what="a book from the channel"
        )
        wait_until(lambda: copies() >= 2, what="copy decisions on streamed books")
        assert scrape_book_sources(port).get("rest", 0) >= 1  # the first trade's book came from REST
    log = log_path.read_text()
    assert "market channel did not stop cleanly" not in log and "Traceback" not in log

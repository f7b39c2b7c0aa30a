"""The RTDS producer against the simulated venue socket and the real broker: duplicates across subscription
types, reconnects and two producers are stored once; a silent socket is detected; bad frames are
dead-lettered."""

from __future__ import annotations

import asyncio
from decimal import Decimal

import pytest

from polycopy.infra.kafka import MessagePublisher
from polycopy.infra.metrics import PipelineMetrics
from polycopy.infra.settings import PolycopySettings
from polycopy.polymarket.rtds import BackoffPolicy, RtdsFeed
from polycopy.wiring import build_postgres_sink
from producers.parsing import build_raw_trade
from producers.publisher import TradePublisher
from schemas.deadletter import DeadLetter
from schemas.topics import DEAD_LETTERS, RAW_TRADES
from schemas.trades import RawTrade, TradeSource
from tests.builders import rtds_frame
from tests.integration.helpers import count_rows, read_all

pytestmark = pytest.mark.integration
FAST_RETRY = BackoffPolicy(base_secs=0.05, cap_secs=0.2)


def start_feed(settings: PolycopySettings, url: str, metrics: PipelineMetrics, **options: float):  # type: ignore[no-untyped-def]
    publisher = TradePublisher(MessagePublisher(settings), metrics)
    feed = RtdsFeed(
        url,
        lambda frame, ms: publisher.publish_frame(frame, ms, TradeSource.RTDS),
        metrics,
        backoff=FAST_RETRY,
        **options,
    )
    return feed, publisher, asyncio.get_running_loop().create_task(feed.run())


async def wait_for(condition, timeout_secs: float = 20) -> None:  # type: ignore[no-untyped-def]
    for _ in range(int(timeout_secs * 20)):
        if condition():
            return
        await asyncio.sleep(0.05)
    raise AssertionError("timed out")


async def stop(*feeds) -> None:  # type: ignore[no-untyped-def]
    for feed, publisher, task in feeds:
        feed.stop()
        await task
        assert publisher.flush(30) == 0


def venue_payloads(venue, count: int) -> list[dict]:  # type: ignore[no-untyped-def]
    return [fill.payload for fill in venue.simulator.next_trades(count, 1_790_000_000_000) if fill.is_taker]


async def test_the_same_fills_from_two_producers_both_types_and_a_reconnect_are_stored_once(
    settings, simulator_factory
) -> None:  # type: ignore[no-untyped-def]
    venue = simulator_factory(seed=21, auto_trades=False)
    metrics = PipelineMetrics()
    first = start_feed(settings, venue.server.rtds_url, metrics)
    second = start_feed(settings, venue.server.rtds_url, metrics)
    await wait_for(lambda: venue.server.subscribed_clients == 2)
    payloads = venue_payloads(venue, 30)
    await asyncio.wrap_future(
        asyncio.run_coroutine_threadsafe(venue.server.publish_payloads(payloads), venue.loop)
    )
    await wait_for(lambda: first[1].trades == second[1].trades == 2 * len(payloads))
    await asyncio.wrap_future(asyncio.run_coroutine_threadsafe(venue.server.drop_connections(), venue.loop))
    await wait_for(lambda: first[0].connections == second[0].connections == 2)
    await wait_for(lambda: venue.server.subscribed_clients == 2)
    await asyncio.wrap_future(
        asyncio.run_coroutine_threadsafe(venue.server.publish_payloads(payloads), venue.loop)
    )
    await wait_for(lambda: first[1].trades == second[1].trades == 4 * len(payloads))
    await stop(first, second)

    raw = read_all(settings, RAW_TRADES, RawTrade)
    assert len(raw) == 8 * len(payloads)  # 2 producers x 2 subscription types x 2 deliveries
    assert len({trade.dedup_key for trade in raw}) == len(payloads)
    build_postgres_sink(settings, PipelineMetrics()).run(max_idle_secs=3)
    assert count_rows(settings, "trades") == len(payloads)
    assert metrics.reconnects.labels("closed")._value.get() == 2  # one per producer


async def test_a_silent_socket_is_detected_and_the_feed_recovers(settings, simulator_factory) -> None:  # type: ignore[no-untyped-def]
    venue = simulator_factory(seed=22, auto_trades=True, trades_per_sec=20.0)
    metrics = PipelineMetrics()
    feed = start_feed(settings, venue.server.rtds_url, metrics, watchdog_secs=1.0, ping_secs=0.2)
    await wait_for(lambda: feed[1].trades > 0)
    venue.server.stall(3.0)  # silent, socket open: only the data watchdog can notice
    await wait_for(lambda: metrics.reconnects.labels("watchdog")._value.get() >= 1, timeout_secs=10)
    before = feed[1].trades
    await wait_for(lambda: feed[1].trades > before, timeout_secs=15)
    await stop(feed)
    assert feed[0].connections >= 2


async def test_malformed_frames_are_dead_lettered_and_the_feed_goes_on(settings, simulator_factory) -> None:  # type: ignore[no-untyped-def]
    venue = simulator_factory(seed=23, auto_trades=False)
    metrics = PipelineMetrics()
    feed = start_feed(settings, venue.server.rtds_url, metrics)
    await wait_for(lambda: venue.server.subscribed_clients == 1)
    bad = [
        '{"topic":"activity","type":"trades","payload":{"proxyWallet":"0x1","transactionHash":"0x2"}}',
        "not json at all",
    ]
    for frame in bad:
        await asyncio.wrap_future(
            asyncio.run_coroutine_threadsafe(venue.server.inject_frame(frame), venue.loop)
        )
    payloads = venue_payloads(venue, 4)
    await asyncio.wrap_future(
        asyncio.run_coroutine_threadsafe(
            venue.server.publish_payloads(payloads, feed_types=("trades",)), venue.loop
        )
    )
    await wait_for(lambda: feed[1].trades == len(payloads))
    await stop(feed)
    letters = read_all(settings, DEAD_LETTERS, DeadLetter)
    assert [letter.payload for letter in letters] == bad
    assert "lacks field" in letters[0].reason and "invalid JSON" in letters[1].reason
    assert all(Decimal(0) < t.price < 1 for t in read_all(settings, RAW_TRADES, RawTrade))


async def test_fills_lost_while_the_socket_was_down_are_recovered_by_the_poller(
    settings_factory, simulator_factory
) -> None:  # type: ignore[no-untyped-def]
    from polycopy.polymarket.http import VenueHttpClient
    from polycopy.wiring import build_poller
    from schemas.topics import WALLET_CONFIG
    from schemas.wallets import WalletConfig
    from tests.integration.helpers import publish

    venue = simulator_factory(seed=24, auto_trades=False)
    settings = settings_factory(data_api_url=venue.server.clob_url)
    metrics = PipelineMetrics()
    feed = start_feed(settings, venue.server.rtds_url, metrics, watchdog_secs=60)
    await wait_for(lambda: venue.server.subscribed_clients == 1)
    before, during = venue_payloads(venue, 20), venue_payloads(venue, 20)
    leaders = sorted({p["proxyWallet"].lower() for p in before + during})
    publish(
        settings,
        WALLET_CONFIG,
        [("copier", WalletConfig(id="copier", capital_usdc=Decimal("100"), targets=tuple(leaders)))],
    )

    def send(payloads: list[dict], **options: object) -> None:  # type: ignore[type-arg]
        asyncio.run_coroutine_threadsafe(
            venue.server.publish_payloads(payloads, **options), venue.loop
        ).result()

    send(before)
    await wait_for(lambda: feed[1].trades == 2 * len(before))
    venue.server.stall(2.0)  # the venue goes silent and loses frames; the Data API still records the fills
    send(during)
    await stop(feed)
    assert feed[1].trades == 2 * len(before)  # nothing of `during` reached the socket

    poller = build_poller(
        settings,
        PipelineMetrics(),
        VenueHttpClient(settings.data_api_url, settings.gamma_url, requests_per_sec=50),
        clock_ms=lambda: 1_790_000_060_000,
    ).start()
    try:
        await asyncio.to_thread(poller.run_once)
    finally:
        poller.stop()
    build_postgres_sink(settings, PipelineMetrics()).run(max_idle_secs=3)

    def keys(payloads: list[dict]) -> set[str]:  # type: ignore[type-arg]
        return {build_raw_trade(p, source=TradeSource.RTDS, received_at_ms=1).dedup_key for p in payloads}

    raw = read_all(settings, RAW_TRADES, RawTrade)
    assert {t.dedup_key for t in raw if t.source is TradeSource.RTDS} == keys(before)
    assert {t.dedup_key for t in raw if t.source is TradeSource.POLL} >= keys(during)  # the missed ones
    assert count_rows(settings, "trades") == len(keys(before) | keys(during))  # and each stored once


async def test_a_display_name_cut_in_half_an_emoji_is_published_and_the_feed_goes_on(
    settings, simulator_factory
) -> None:  # type: ignore[no-untyped-def]
    # Issue 8: a lone UTF-16 surrogate (what JavaScript leaves when it cuts a string) parsed, then failed to
    # serialise, and nothing caught it: `polycopy rtds` exited 1 and the trades after it were never published.
    venue = simulator_factory(seed=24, auto_trades=False)
    metrics = PipelineMetrics()
    feed = start_feed(settings, venue.server.rtds_url, metrics)
    await wait_for(lambda: venue.server.subscribed_clients == 1)
    first, *rest = venue_payloads(venue, 6)
    cut = rtds_frame(first | {"name": "Trader \ud83d"})
    await asyncio.wrap_future(asyncio.run_coroutine_threadsafe(venue.server.inject_frame(cut), venue.loop))
    await asyncio.wrap_future(
        asyncio.run_coroutine_threadsafe(
            venue.server.publish_payloads(rest, feed_types=("trades",)), venue.loop
        )
    )
    await wait_for(lambda: feed[1].trades == 1 + len(rest))
    assert not feed[2].done()  # the feed is still running
    await stop(feed)
    raw = read_all(settings, RAW_TRADES, RawTrade)
    assert [trade.name for trade in raw][0] == "Trader \ufffd"
    assert len(raw) == 1 + len(rest) and read_all(settings, DEAD_LETTERS, DeadLetter) == []

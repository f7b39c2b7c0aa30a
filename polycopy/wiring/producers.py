"""The RTDS producer, capture and replay, the safety-net poller, reference syncs and plain publishes."""

from __future__ import annotations

import asyncio
import logging
import signal
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

from polycopy.infra.kafka import (
    CompactedTopicReader,
    MessagePublisher,
    now_ms,
)
from polycopy.infra.metrics import PipelineMetrics
from polycopy.infra.settings import PolycopySettings
from polycopy.polymarket.http import VenueHttpClient
from polycopy.polymarket.rtds import FrameHandler, RtdsFeed
from polycopy.wiring.common import build_metrics, build_publisher, deliver, stop_on_signals
from producers.poller import PollerTables, PollSummary, SafetyNetPoller
from producers.publisher import TradePublisher
from producers.reference import SyncSummary
from schemas.portfolio import MarketResolution, WalletSnapshot
from schemas.reference import PollerWatermark, TraderReference
from schemas.topics import POLLER_WATERMARKS, RESOLUTIONS, TRADERS, WALLET_CONFIG, WALLET_SNAPSHOTS
from schemas.trades import TradeSource
from schemas.wallets import WalletConfig

log = logging.getLogger(__name__)

R = TypeVar("R")


@dataclass(frozen=True)
class ProducerRun:
    """What a producer run published; `undelivered` > 0 means Kafka did not confirm everything."""

    frames: int
    trades: int
    dead_letters: int
    undelivered: int


def build_trade_publisher(
    settings: PolycopySettings, metrics: PipelineMetrics, client_id: str
) -> TradePublisher:
    """Frames -> raw-trades topic (malformed frames to the dead-letter topic)."""
    return TradePublisher(build_publisher(settings, client_id), metrics)


def build_rtds_feed(
    settings: PolycopySettings, on_frame: FrameHandler, metrics: PipelineMetrics, url: str | None = None
) -> RtdsFeed:
    """The resilient RTDS socket (`url`, else `POLYCOPY_RTDS_URL`), handing each frame to `on_frame`."""
    return RtdsFeed(
        url or settings.rtds_url,
        on_frame,
        metrics,
        ping_secs=settings.rtds_ping_secs,
        watchdog_secs=settings.rtds_watchdog_secs,
    )


def run_feed(
    feed: RtdsFeed,
    duration_secs: float | None = None,
    *,
    every_sec: Callable[[], None] | None = None,
) -> None:
    """Run the feed until SIGTERM/SIGINT (or `duration_secs`); `every_sec` runs once a second beside it."""

    async def tick() -> None:
        while every_sec is not None:
            await asyncio.sleep(1.0)
            every_sec()

    async def main() -> None:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, feed.stop)
        if duration_secs is not None:
            loop.call_later(duration_secs, feed.stop)
        ticker = asyncio.create_task(tick())
        try:
            await feed.run()
        finally:
            ticker.cancel()

    asyncio.run(main())


def run_rtds(settings: PolycopySettings, url: str | None = None) -> ProducerRun:
    """`polycopy rtds`: the venue's trade stream onto the raw-trades topic, until SIGTERM/SIGINT; a feed
    silent for `POLYCOPY_FEED_SILENT_SECS` publishes one `feed_silent` alert."""
    from processors.core.alerts import SilenceWatch

    metrics = build_metrics(settings, "producer")
    silence = SilenceWatch("rtds", settings.feed_silent_secs, now_ms())
    publisher = TradePublisher(build_publisher(settings, "polycopy-rtds"), metrics, silence=silence)
    run_feed(
        build_rtds_feed(
            settings,
            lambda frame, received_at_ms: publisher.publish_frame(frame, received_at_ms, TradeSource.RTDS),
            metrics,
            url,
        ),
        every_sec=lambda: publisher.check_silence(now_ms()),
    )
    undelivered = publisher.flush(30)
    return ProducerRun(0, publisher.trades, publisher.dead_letters, undelivered)


def run_capture(
    settings: PolycopySettings, out: Path, url: str | None = None, duration_secs: float | None = None
) -> int:
    """`polycopy capture`: raw RTDS frames with their receive times to `out`; returns the frames written."""
    from producers.replay import CaptureWriter

    with CaptureWriter(out) as writer:
        run_feed(build_rtds_feed(settings, writer.write, PipelineMetrics(), url), duration_secs)
    return writer.count


def run_replay(
    settings: PolycopySettings,
    path: Path,
    *,
    speed: float | None = None,
    on_progress: Callable[[int, int], None] | None = None,
) -> ProducerRun:
    """`polycopy replay`: a capture file onto the raw-trades topic (`speed` None = as fast as possible)."""
    from producers.replay import read_capture, replay_capture

    publisher = build_trade_publisher(settings, build_metrics(settings, "producer"), "polycopy-replay")
    frames, trades = replay_capture(read_capture(path), publisher, speed=speed, on_progress=on_progress)
    undelivered = publisher.flush(60)
    return ProducerRun(frames, trades, publisher.dead_letters, undelivered)


# --- the safety-net poller and the reference syncs ----------------------------------------------------------
def build_venue_client(settings: PolycopySettings, metrics: PipelineMetrics | None = None) -> VenueHttpClient:
    """The Data API / Gamma REST client; with `metrics`, each HTTP outcome counts in the poller's metric."""
    on_response = (lambda status: metrics.poller_requests.labels(status).inc()) if metrics else None
    return VenueHttpClient(
        settings.data_api_url, settings.gamma_url, settings.poll_requests_per_sec, on_response=on_response
    )


def build_poller(
    settings: PolycopySettings,
    metrics: PipelineMetrics,
    client: VenueHttpClient,
    *,
    clock_ms: Callable[[], int] = now_ms,
) -> SafetyNetPoller:
    """The safety-net poller over `client`, reading wallets, traders and its watermarks from their topics."""
    tables = PollerTables(
        wallets=CompactedTopicReader(settings, WALLET_CONFIG, WalletConfig.model_validate_json),
        traders=CompactedTopicReader(settings, TRADERS, TraderReference.model_validate_json),
        watermarks=CompactedTopicReader(settings, POLLER_WATERMARKS, PollerWatermark.model_validate_json),
    )
    publisher = build_publisher(settings, "polycopy-poller")
    return SafetyNetPoller(settings, client, publisher, metrics, tables, clock_ms=clock_ms)


def run_poller_once(settings: PolycopySettings) -> PollSummary:
    """`polycopy poll`: one run (a CronJob lives too briefly to be scraped, so /metrics is not served)."""
    metrics = PipelineMetrics()
    with build_venue_client(settings, metrics) as client:
        poller = build_poller(settings, metrics, client).start()
        try:
            return poller.run_once()
        finally:
            poller.stop()


def run_poller_loop(settings: PolycopySettings, interval_secs: float | None = None) -> int:
    """`polycopy poll --loop`: a run every `interval_secs` until SIGTERM/SIGINT; returns how many runs."""
    metrics = build_metrics(settings, "poller")
    with build_venue_client(settings, metrics) as client:
        poller = build_poller(settings, metrics, client).start()
        try:
            stop = threading.Event()
            stop_on_signals(stop.set)
            return poller.run_forever(interval_secs or settings.poll_interval_secs, stop)
        finally:
            poller.stop()


def run_publish(
    settings: PolycopySettings, client_id: str, what: str, publish: Callable[[MessagePublisher], R]
) -> R:
    """Run `publish` with a fresh publisher, then make sure Kafka has everything it published."""
    publisher = build_publisher(settings, client_id)
    result = publish(publisher)
    deliver(publisher, what)
    return result


def run_reference_sync(
    settings: PolycopySettings, what: str, sync: Callable[[VenueHttpClient, MessagePublisher], SyncSummary]
) -> SyncSummary:
    """One reference-data sync against the venue (Data API, Gamma) onto its compacted topic."""
    with build_venue_client(settings) as client:
        return run_publish(settings, "polycopy-reference", what, lambda publisher: sync(client, publisher))


@dataclass(frozen=True)
class MarketsSyncOptions:
    """What `polycopy markets sync` asks Gamma for."""

    condition_ids: tuple[str, ...] = ()
    page_size: int = 500
    max_pages: int = 20


def read_held_markets(settings: PolycopySettings) -> set[str]:
    """The markets the copy wallets hold positions or open orders in, from their latest snapshots."""
    from polycopy.wiring.common import read_table

    snapshots = read_table(settings, WALLET_SNAPSHOTS, WalletSnapshot.model_validate_json)
    return {
        item.condition_id
        for snapshot in snapshots.values()
        for item in (*snapshot.open_positions, *snapshot.open_orders)
    }


def run_markets_sync(settings: PolycopySettings, options: MarketsSyncOptions) -> SyncSummary:
    """One markets sync: the given or active Gamma markets, and the held markets that closed, with their new
    resolutions (the resolutions topic is read first, so an unchanged one is not published again)."""
    from polycopy.wiring.common import read_table
    from producers.reference import sync_markets

    held = read_held_markets(settings)
    known = read_table(settings, RESOLUTIONS, MarketResolution.model_validate_json)
    return run_reference_sync(
        settings,
        "markets",
        lambda client, publisher: sync_markets(
            client,
            publisher,
            condition_ids=options.condition_ids,
            held=held,
            known=known,
            page_size=options.page_size,
            max_pages=options.max_pages,
        ),
    )


def run_markets_sync_loop(
    settings: PolycopySettings,
    options: MarketsSyncOptions,
    interval_secs: float,
    on_run: Callable[[SyncSummary], None] = lambda _: None,
) -> int:
    """`polycopy markets sync --loop`: a sync every `interval_secs` until SIGTERM/SIGINT; returns how many
    ran. A failed run (venue or broker) is logged and the next one tried."""
    stop = threading.Event()
    stop_on_signals(stop.set)
    runs = 0
    while not stop.is_set():
        try:
            on_run(run_markets_sync(settings, options))
        except Exception:  # noqa: BLE001 - a loop outlives a venue or broker hiccup; the next run retries
            log.exception("markets sync failed")
        runs += 1
        stop.wait(interval_secs)
    return runs

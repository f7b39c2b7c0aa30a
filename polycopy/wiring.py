"""The composition root: every deployable component built from settings, with its clients, in one place.

The CLI parses arguments and calls these; tests and tools call them too. Components receive what they use
(consumers, publishers, journals, venue clients, metrics) instead of building it, so each is testable with
fakes. `build_*` functions build without connecting or starting anything; `run_*` functions build, start and
run a component until it ends (SIGTERM/SIGINT for the long-running ones) and return what the CLI reports.
"""

from __future__ import annotations

import asyncio
import logging
import signal
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from polycopy.infra.kafka import (
    CompactedTopicReader,
    MessagePublisher,
    RecordConsumer,
    TopicFollower,
    create_named_topics,
    now_ms,
)
from polycopy.infra.metrics import PipelineMetrics, component_port, serve_metrics
from polycopy.infra.postgres import BatchWriter, ExecutionJournal
from polycopy.infra.settings import PolycopySettings
from polycopy.polymarket.http import VenueHttpClient
from polycopy.polymarket.rtds import FrameHandler, RtdsFeed
from producers.poller import PollerTables, PollSummary, SafetyNetPoller
from producers.publisher import TradePublisher
from producers.reference import SyncSummary
from schemas.reference import PollerWatermark, TraderReference
from schemas.topics import BOOKS, POLLER_WATERMARKS, TRADERS, WALLET_CONFIG, TopicSpec
from schemas.trades import TradeSource
from schemas.wallets import WalletConfig
from sinks.base import ConsumeLoop, LoopPolicy
from sinks.executor import Executor
from sinks.postgres_sink import PostgresSink

log = logging.getLogger(__name__)

R = TypeVar("R")

# The executor commits after every polled batch: its reports are delivered at once, never held for a timer.
EXECUTOR_POLICY = LoopPolicy(batch_size=100, flush_secs=0.0)


class NotDeliveredError(RuntimeError):
    """Messages a command published did not reach Kafka."""


def build_metrics(settings: PolycopySettings, component: str, *, serve: bool = True) -> PipelineMetrics:
    """A component's metrics with /healthz and /readyz, served on its port (`POLYCOPY_METRICS_PORT`, else the
    component default moved by `POLYCOPY_METRICS_BASE_PORT`). A component that knows when it is ready says so
    with `metrics.set_readiness(check)`; until then /readyz answers ready while the process serves."""
    metrics = PipelineMetrics(component=component)
    if serve and settings.metrics_enabled:
        serve_metrics(metrics, settings.metrics_port or component_port(component, settings.metrics_base_port))
    return metrics


def build_publisher(settings: PolycopySettings, client_id: str) -> MessagePublisher:
    """A Kafka publisher named after the component that uses it."""
    return MessagePublisher(settings, client_id=client_id)


def deliver(publisher: MessagePublisher, what: str, timeout_secs: float = 30.0) -> None:
    """Wait until everything `publisher` queued is delivered, else raise `NotDeliveredError` naming `what`."""
    if publisher.flush(timeout_secs) or publisher.delivery_failures:
        raise NotDeliveredError(f"{what} not delivered to Kafka")


def _stop_on_signals(stop: Callable[[], object]) -> None:
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop())


# --- the Faust worker and the books producer ----------------------------------------------------------------
@dataclass(frozen=True)
class WorkerParts:
    """The Faust worker as built: the app, the reference data it reads and the follower of the books topic
    that keeps its book cache current (both started by `run_worker`)."""

    app: Any  # a faust.App: only the worker package imports faust
    reference: Any  # processors.worker.reference.LiveReferenceData
    books: TopicFollower


def build_worker(settings: PolycopySettings, metrics: PipelineMetrics) -> WorkerParts:
    """The Faust app with live reference data, books from the books topic (kept current by `polycopy books`)
    and a REST book fallback whose books it publishes there too; nothing started."""
    from polycopy.polymarket.clob import ClobGateway
    from processors.core.book_log import PINNED_KEEP_MS
    from processors.worker.app import create_app
    from processors.worker.book_cache import BookCache, SharedBooks
    from processors.worker.reference import LiveReferenceData

    reference = LiveReferenceData(
        settings,
        on_wallet_change=lambda key, value: logging.getLogger("polycopy.wallets").info(
            "wallet %s %s", key, "removed" if value is None else "updated"
        ),
    )
    metrics.wallets.set_function(lambda: len(reference.wallets()))
    shared = SharedBooks()
    # Far enough back for every state still fresh, and for the pins of trades still waiting for evaluation.
    lookback_ms = max(settings.market_book_max_age_ms, PINNED_KEEP_MS)
    reader = TopicFollower(
        settings,
        BOOKS,
        lambda record: shared.apply_record(record.key, record.value),
        since_ms=now_ms() - lookback_ms,
    )
    books = BookCache(
        ClobGateway(settings.clob_url, settings.chain_id).fetch_book,
        settings.book_max_age_ms,
        books=shared,
        channel_max_age_ms=settings.market_book_max_age_ms,
        metrics=metrics,
    )
    app = create_app(settings, reference=reference, books=books, metrics=metrics)
    return WorkerParts(app, reference, reader)


def run_worker(settings: PolycopySettings) -> None:
    """`polycopy worker`: load the reference data and recent books, then run the Faust app until SIGTERM."""
    from processors.worker.app import changelog_topics, run_app

    worker = build_worker(settings, build_metrics(settings, "worker"))
    create_named_topics(settings, changelog_topics(worker.app), wait=True)
    worker.reference.start()
    worker.books.start(wait_secs=120)
    run_app(worker.app, settings.log_level, on_stop=worker.books.stop)


def run_books(settings: PolycopySettings) -> None:
    """`polycopy books`: the deployment's one market-channel connection, publishing every book state of the
    tokens that followed traders trade to the books topic, until SIGTERM/SIGINT."""
    from producers.books import run_books_producer

    publisher = MessagePublisher(settings, client_id="polycopy-books", **{"linger.ms": 0})
    run_books_producer(settings, publisher, build_metrics(settings, "books"))


# --- the sinks ----------------------------------------------------------------------------------------------
def build_consume_loop(
    settings: PolycopySettings,
    component: str,
    publisher: MessagePublisher,
    metrics: PipelineMetrics,
    policy: LoopPolicy,
) -> ConsumeLoop:
    """The at-least-once loop of a sink, consuming in the component's own consumer group."""
    consumer = RecordConsumer(settings, settings.consumer_group(component))
    return ConsumeLoop(consumer, publisher, metrics, policy)


def build_executor(settings: PolycopySettings, metrics: PipelineMetrics) -> Executor:
    """The executor: intents -> journal claim -> paper fill on the intent's book levels -> reports."""
    publisher = build_publisher(settings, "polycopy-executor")
    return Executor(
        settings,
        loop=build_consume_loop(settings, "executor", publisher, metrics, EXECUTOR_POLICY),
        publisher=publisher,
        journal=ExecutionJournal(settings.database_url),
        metrics=metrics,
    )


def run_executor(settings: PolycopySettings) -> None:
    """`polycopy executor`: run until SIGTERM/SIGINT, then deliver and commit the last batch."""
    executor = build_executor(settings, build_metrics(settings, "executor"))
    _stop_on_signals(executor.stop)
    log.info("executor running in %s mode", settings.execution_mode.value)
    executor.run()


def build_postgres_sink(settings: PolycopySettings, metrics: PipelineMetrics) -> PostgresSink:
    """The PostgreSQL sink, batching `POLYCOPY_SINK_BATCH_SIZE` rows or `POLYCOPY_SINK_FLUSH_SECS`."""
    policy = LoopPolicy(batch_size=settings.sink_batch_size, flush_secs=settings.sink_flush_secs)
    publisher = build_publisher(settings, "polycopy-postgres-sink")
    return PostgresSink(
        settings,
        loop=build_consume_loop(settings, "postgres-sink", publisher, metrics, policy),
        writer=BatchWriter(settings.database_url),
        metrics=metrics,
    )


def run_sink(settings: PolycopySettings) -> None:
    """`polycopy sink`: run until SIGTERM/SIGINT, then write and commit the last batch."""
    sink = build_postgres_sink(settings, build_metrics(settings, "sink"))
    _stop_on_signals(sink.stop)
    sink.run()


# --- the trade producers: RTDS, capture, replay -------------------------------------------------------------
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


def run_feed(feed: RtdsFeed, duration_secs: float | None = None) -> None:
    """Run the feed until SIGTERM/SIGINT (or `duration_secs`)."""

    async def main() -> None:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, feed.stop)
        if duration_secs is not None:
            loop.call_later(duration_secs, feed.stop)
        await feed.run()

    asyncio.run(main())


def run_rtds(settings: PolycopySettings, url: str | None = None) -> ProducerRun:
    """`polycopy rtds`: the venue's trade stream onto the raw-trades topic, until SIGTERM/SIGINT."""
    metrics = build_metrics(settings, "producer")
    publisher = build_trade_publisher(settings, metrics, "polycopy-rtds")
    run_feed(
        build_rtds_feed(
            settings,
            lambda frame, received_at_ms: publisher.publish_frame(frame, received_at_ms, TradeSource.RTDS),
            metrics,
            url,
        )
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
            _stop_on_signals(stop.set)
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


def read_table(settings: PolycopySettings, spec: TopicSpec, decode: Callable[[bytes], Any]) -> dict[str, Any]:
    """The current content (latest value per key) of a compacted topic."""
    reader = CompactedTopicReader(settings, spec, decode).start()
    try:
        return reader.snapshot()
    finally:
        reader.stop()

"""The composition root: every deployable component built from settings, with its clients, in one place.

The CLI parses arguments and calls these; tests and tools call them too. Components receive what they use
(consumers, publishers, journals, venue clients, metrics) instead of building it, so each is testable with
fakes. `build_*` functions build without connecting or starting anything; `run_*` functions build, start and
run a component until it ends.
"""

from __future__ import annotations

import logging
import signal
from collections.abc import Callable

from polycopy.infra.kafka import MessagePublisher, RecordConsumer
from polycopy.infra.metrics import DEFAULT_PORTS, PipelineMetrics, serve_metrics
from polycopy.infra.postgres import BatchWriter, ExecutionJournal
from polycopy.infra.settings import PolycopySettings
from sinks.base import ConsumeLoop, LoopPolicy
from sinks.executor import Executor
from sinks.postgres_sink import PostgresSink

log = logging.getLogger(__name__)

# The executor commits after every polled batch: its reports are delivered at once, never held for a timer.
EXECUTOR_POLICY = LoopPolicy(batch_size=100, flush_secs=0.0)


def build_metrics(settings: PolycopySettings, component: str, *, serve: bool = True) -> PipelineMetrics:
    """A component's metrics, served on its port (`POLYCOPY_METRICS_PORT`, else the component default)."""
    metrics = PipelineMetrics()
    if serve and settings.metrics_enabled:
        serve_metrics(metrics, settings.metrics_port or DEFAULT_PORTS[component])
    return metrics


def build_publisher(settings: PolycopySettings, client_id: str) -> MessagePublisher:
    """A Kafka publisher named after the component that uses it."""
    return MessagePublisher(settings, client_id=client_id)


def _stop_on_signals(stop: Callable[[], object]) -> None:
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop())


def run_worker(settings: PolycopySettings) -> None:
    """`polycopy worker`: the Faust app with live reference data, streamed books and a REST book fallback."""
    from polycopy.polymarket.clob import ClobGateway
    from polycopy.polymarket.market_channel import MarketBookFeed
    from processors.worker.app import create_app, run_app
    from processors.worker.book_cache import BookCache
    from processors.worker.reference import LiveReferenceData

    metrics = build_metrics(settings, "worker")
    reference = LiveReferenceData(
        settings,
        on_wallet_change=lambda key, value: logging.getLogger("polycopy.wallets").info(
            "wallet %s %s", key, "removed" if value is None else "updated"
        ),
    ).start()
    metrics.wallets.set_function(lambda: len(reference.wallets()))
    # Books stream from the market channel (run by the Faust app on its loop); GET /book fills the gaps.
    feed = MarketBookFeed(settings.clob_market_ws_url, metrics) if settings.clob_market_ws_url else None
    books = BookCache(
        ClobGateway(settings.clob_url, settings.chain_id).fetch_book,
        settings.book_max_age_ms,
        channel=feed,
        channel_max_age_ms=settings.market_book_max_age_ms,
        metrics=metrics,
    )
    app = create_app(settings, reference=reference, books=books, metrics=metrics, book_feed=feed)
    run_app(app, settings.log_level)


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
    """The executor: intents -> journal claim -> paper book (GET /book on the CLOB) -> reports."""
    from polycopy.polymarket.clob import ClobGateway

    publisher = build_publisher(settings, "polycopy-executor")
    return Executor(
        settings,
        loop=build_consume_loop(settings, "executor", publisher, metrics, EXECUTOR_POLICY),
        publisher=publisher,
        journal=ExecutionJournal(settings.database_url),
        books=ClobGateway(settings.clob_url, settings.chain_id),
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

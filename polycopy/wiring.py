"""The composition root: every deployable component built from settings, with its clients, in one place.

The CLI parses arguments and calls these; tests and tools call them too. Components receive what they use
(publishers, consumers, venue clients, metrics) instead of building it, so each is testable with fakes.
"""

from __future__ import annotations

import logging

from polycopy.infra.metrics import DEFAULT_PORTS, PipelineMetrics, serve_metrics
from polycopy.infra.settings import PolycopySettings

log = logging.getLogger(__name__)


def build_metrics(settings: PolycopySettings, component: str, *, serve: bool = True) -> PipelineMetrics:
    """A component's metrics, served on its port (`POLYCOPY_METRICS_PORT`, else the component default)."""
    metrics = PipelineMetrics()
    if serve and settings.metrics_enabled:
        serve_metrics(metrics, settings.metrics_port or DEFAULT_PORTS[component])
    return metrics


def run_worker(settings: PolycopySettings) -> None:
    """`polycopy worker`: the Faust app with live reference data, books from the books topic (kept current by
    `polycopy books`) and a REST book fallback whose books it publishes there too."""
    from polycopy.infra.kafka import TopicFollower, now_ms
    from polycopy.polymarket.clob import ClobGateway
    from processors.core.book_log import PINNED_KEEP_MS
    from processors.worker.app import create_app, run_app
    from processors.worker.book_cache import BookCache, SharedBooks
    from processors.worker.reference import LiveReferenceData
    from schemas.topics import BOOKS

    metrics = build_metrics(settings, "worker")
    reference = LiveReferenceData(
        settings,
        on_wallet_change=lambda key, value: logging.getLogger("polycopy.wallets").info(
            "wallet %s %s", key, "removed" if value is None else "updated"
        ),
    ).start()
    metrics.wallets.set_function(lambda: len(reference.wallets()))
    shared = SharedBooks()
    # Far enough back for every state still fresh, and for the pins of trades still waiting for evaluation.
    lookback_ms = max(settings.market_book_max_age_ms, PINNED_KEEP_MS)
    reader = TopicFollower(
        settings,
        BOOKS,
        lambda record: shared.apply_record(record.key, record.value),
        since_ms=now_ms() - lookback_ms,
    ).start(wait_secs=120)
    books = BookCache(
        ClobGateway(settings.clob_url, settings.chain_id).fetch_book,
        settings.book_max_age_ms,
        books=shared,
        channel_max_age_ms=settings.market_book_max_age_ms,
        metrics=metrics,
    )
    app = create_app(settings, reference=reference, books=books, metrics=metrics)
    run_app(app, settings.log_level, on_stop=reader.stop)


def run_books(settings: PolycopySettings) -> None:
    """`polycopy books`: the deployment's one market-channel connection, publishing every book state of the
    tokens that followed traders trade to the books topic, until SIGTERM."""
    from polycopy.infra.kafka import MessagePublisher
    from producers.books import run_books_producer

    run_books_producer(
        settings,
        MessagePublisher(settings, client_id="polycopy-books", **{"linger.ms": 0}),
        build_metrics(settings, "books"),
    )


def run_executor(settings: PolycopySettings) -> None:
    """`polycopy executor`: intents -> paper book (or venue) -> reports, until SIGTERM."""
    from sinks.executor import run_executor as run

    run(settings, build_metrics(settings, "executor"))


def run_sink(settings: PolycopySettings) -> None:
    """`polycopy sink`: the pipeline's topics -> PostgreSQL, until SIGTERM."""
    from sinks.postgres_sink import run_postgres_sink

    run_postgres_sink(settings, build_metrics(settings, "sink"))

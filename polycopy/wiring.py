"""The composition root: every deployable component built from settings, with its clients, in one place.

The CLI parses arguments and calls these; tests and tools call them too. Components receive what they use
(publishers, consumers, venue clients, metrics) instead of building it, so each is testable with fakes.
"""

from __future__ import annotations

import logging

from polycopy.infra.metrics import PipelineMetrics, component_port, serve_metrics
from polycopy.infra.settings import PolycopySettings

log = logging.getLogger(__name__)


def build_metrics(settings: PolycopySettings, component: str, *, serve: bool = True) -> PipelineMetrics:
    """A component's metrics with /healthz and /readyz, served on its port (`POLYCOPY_METRICS_PORT`, else the
    component default moved by `POLYCOPY_METRICS_BASE_PORT`). A component that knows when it is ready says so
    with `metrics.set_readiness(check)`; until then /readyz answers ready while the process serves."""
    metrics = PipelineMetrics(component=component)
    if serve and settings.metrics_enabled:
        serve_metrics(metrics, settings.metrics_port or component_port(component, settings.metrics_base_port))
    return metrics


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


def run_executor(settings: PolycopySettings) -> None:
    """`polycopy executor`: intents -> paper book (or venue) -> reports, until SIGTERM."""
    from sinks.executor import run_executor as run

    run(settings, build_metrics(settings, "executor"))


def run_sink(settings: PolycopySettings) -> None:
    """`polycopy sink`: the pipeline's topics -> PostgreSQL, until SIGTERM."""
    from sinks.postgres_sink import run_postgres_sink

    run_postgres_sink(settings, build_metrics(settings, "sink"))

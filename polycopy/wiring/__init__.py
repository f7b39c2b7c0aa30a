"""The composition root: every deployable component built from settings, with its clients, in one place.

The CLI parses arguments and calls these; tests and tools call them too. Components receive what they use
(consumers, publishers, journals, venue clients, metrics) instead of building it, so each is testable with
fakes. `build_*` functions build without connecting or starting anything; `run_*` functions build, start and
run a component until it ends (SIGTERM/SIGINT for the long-running ones) and return what the CLI reports.
"""

from __future__ import annotations

from polycopy.wiring.common import (
    NotDeliveredError,
    build_consume_loop,
    build_metrics,
    build_publisher,
    deliver,
    read_table,
)
from polycopy.wiring.live import build_alerts_sink, build_live_gateway, run_alerts
from polycopy.wiring.pipeline import (
    EXECUTOR_POLICY,
    WorkerParts,
    build_executor,
    build_postgres_sink,
    build_worker,
    run_books,
    run_executor,
    run_sink,
    run_worker,
)
from polycopy.wiring.producers import (
    MarketsSyncOptions,
    ProducerRun,
    build_poller,
    build_rtds_feed,
    build_trade_publisher,
    build_venue_client,
    run_capture,
    run_feed,
    run_markets_sync,
    run_markets_sync_loop,
    run_poller_loop,
    run_poller_once,
    run_publish,
    run_reference_sync,
    run_replay,
    run_rtds,
)

__all__ = [
    "EXECUTOR_POLICY",
    "MarketsSyncOptions",
    "NotDeliveredError",
    "ProducerRun",
    "WorkerParts",
    "build_alerts_sink",
    "build_consume_loop",
    "build_executor",
    "build_live_gateway",
    "build_metrics",
    "build_poller",
    "build_postgres_sink",
    "build_publisher",
    "build_rtds_feed",
    "build_trade_publisher",
    "build_venue_client",
    "build_worker",
    "deliver",
    "read_table",
    "run_alerts",
    "run_books",
    "run_capture",
    "run_executor",
    "run_feed",
    "run_markets_sync",
    "run_markets_sync_loop",
    "run_poller_loop",
    "run_poller_once",
    "run_publish",
    "run_reference_sync",
    "run_replay",
    "run_rtds",
    "run_sink",
    "run_worker",
]

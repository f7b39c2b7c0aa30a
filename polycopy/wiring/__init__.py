"""The composition root: every deployable component built from settings, with its clients, in one place.

The CLI parses arguments and calls these; tests and tools call them too. Components receive what they use
(consumers, publishers, journals, venue clients, metrics) instead of building it, so each is testable with
fakes. `build_*` functions build without connecting or starting anything; `run_*` functions build, start and
run a component until it ends (SIGTERM/SIGINT for the long-running ones) and return what the CLI reports.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
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

# Loaded on first use: `polycopy worker` imports neither psycopg nor the sinks, and a restarted worker is
# back sooner (issue 8).
_HOMES = {
    "EXECUTOR_POLICY": "polycopy.wiring.pipeline",
    "MarketsSyncOptions": "polycopy.wiring.producers",
    "NotDeliveredError": "polycopy.wiring.common",
    "ProducerRun": "polycopy.wiring.producers",
    "WorkerParts": "polycopy.wiring.pipeline",
    "build_alerts_sink": "polycopy.wiring.live",
    "build_consume_loop": "polycopy.wiring.common",
    "build_executor": "polycopy.wiring.pipeline",
    "build_live_gateway": "polycopy.wiring.live",
    "build_metrics": "polycopy.wiring.common",
    "build_poller": "polycopy.wiring.producers",
    "build_postgres_sink": "polycopy.wiring.pipeline",
    "build_publisher": "polycopy.wiring.common",
    "build_rtds_feed": "polycopy.wiring.producers",
    "build_trade_publisher": "polycopy.wiring.producers",
    "build_venue_client": "polycopy.wiring.producers",
    "build_worker": "polycopy.wiring.pipeline",
    "deliver": "polycopy.wiring.common",
    "read_table": "polycopy.wiring.common",
    "run_alerts": "polycopy.wiring.live",
    "run_books": "polycopy.wiring.pipeline",
    "run_capture": "polycopy.wiring.producers",
    "run_executor": "polycopy.wiring.pipeline",
    "run_feed": "polycopy.wiring.producers",
    "run_markets_sync": "polycopy.wiring.producers",
    "run_markets_sync_loop": "polycopy.wiring.producers",
    "run_poller_loop": "polycopy.wiring.producers",
    "run_poller_once": "polycopy.wiring.producers",
    "run_publish": "polycopy.wiring.producers",
    "run_reference_sync": "polycopy.wiring.producers",
    "run_replay": "polycopy.wiring.producers",
    "run_rtds": "polycopy.wiring.producers",
    "run_sink": "polycopy.wiring.pipeline",
    "run_worker": "polycopy.wiring.pipeline",
}


def __getattr__(name: str) -> Any:
    home = _HOMES.get(name)
    if home is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(home), name)


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

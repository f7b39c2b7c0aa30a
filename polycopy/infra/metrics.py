"""Prometheus metrics as one typed bundle with an injected registry; labels are bounded (never ids)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, start_http_server

LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)

# Default /metrics ports, one per deployable, so that they can share a host.
DEFAULT_PORTS = {
    "worker": 9108,
    "executor": 9109,
    "producer": 9110,
    "sink": 9111,
    "poller": 9112,
    "alerts": 9113,
}


class PipelineMetrics:
    """Every metric of every component; a component uses the ones it needs."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        r = self.registry
        self.frames = Counter(
            "polycopy_feed_frames_total", "Frames received from the trade feed", ["source"], registry=r
        )
        self.trades_published = Counter(
            "polycopy_trades_published_total", "Trades published to the raw topic", ["source"], registry=r
        )
        self.parse_errors = Counter(
            "polycopy_parse_errors_total", "Inputs that could not be parsed", ["stage"], registry=r
        )
        self.dead_letters = Counter(
            "polycopy_dead_letters_total", "Messages sent to the dead-letter topic", ["stage"], registry=r
        )
        self.reconnects = Counter("polycopy_feed_reconnects_total", "Feed reconnects", ["reason"], registry=r)
        self.feed_lag = Histogram(
            "polycopy_feed_lag_seconds",
            "Receive time minus venue trade time",
            buckets=(0.5, 1, 2, 3, 5, 10, 30, 60, 300),
            registry=r,
        )
        self.duplicates_dropped = Counter(
            "polycopy_duplicate_trades_total", "Fills dropped as already seen", ["source"], registry=r
        )
        self.first_seen = Counter(
            "polycopy_trades_first_seen_total",
            "Fills by the source that delivered them first; source=poll: the feed missed them",
            ["source"],
            registry=r,
        )
        self.targeted = Counter(
            "polycopy_targeted_trades_total", "(trade, copy wallet) pairs fanned out", registry=r
        )
        self.decisions = Counter(
            "polycopy_decisions_total", "Evaluation outcomes", ["action", "reason"], registry=r
        )
        self.book_fetch = Histogram(
            "polycopy_book_fetch_seconds", "Order book fetch time", buckets=LATENCY_BUCKETS, registry=r
        )
        self.book_errors = Counter("polycopy_book_errors_total", "Failed order book fetches", registry=r)
        self.book_source = Counter(
            "polycopy_book_source_total",
            "Order books served, by source: the market channel or REST GET /book",
            ["source"],
            registry=r,
        )
        self.intents = Counter("polycopy_order_intents_total", "Order intents emitted", ["side"], registry=r)
        self.reports = Counter("polycopy_execution_reports_total", "Executor reports", ["kind"], registry=r)
        self.duplicate_intents = Counter(
            "polycopy_duplicate_intents_total", "Intents the executor had already handled", registry=r
        )
        self.signal_to_order = Histogram(
            "polycopy_signal_to_order_seconds",
            "Trade received -> order sent (or simulated)",
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.order_events = Counter(
            "polycopy_order_events_total", "Order lifecycle events", ["event"], registry=r
        )
        self.rows_written = Counter(
            "polycopy_sink_rows_total", "Rows written to PostgreSQL", ["table"], registry=r
        )
        self.sink_flush = Histogram(
            "polycopy_sink_flush_seconds", "PostgreSQL flush time", buckets=LATENCY_BUCKETS, registry=r
        )
        self.wallets = Gauge("polycopy_copy_wallets", "Copy wallets configured", registry=r)
        self.poller_runs = Counter(
            "polycopy_poller_runs_total", "Safety-net poller runs completed", registry=r
        )
        self.poller_trades_fetched = Counter(
            "polycopy_poller_trades_fetched_total",
            "Trades the safety-net poller read inside its windows",
            registry=r,
        )
        self.poller_requests = Counter(
            "polycopy_poller_requests_total",
            "Safety-net poller HTTP requests by outcome",
            ["status"],
            registry=r,
        )
        self.circuit_breaker_open = Gauge(
            "polycopy_circuit_breaker_open",
            "1 while a venue endpoint group's breaker stops calls (open, probing or paused), else 0",
            ["endpoint"],
            registry=r,
        )
        self.circuit_breaker_changes = Counter(
            "polycopy_circuit_breaker_changes_total",
            "Breaker state changes by endpoint group and new state",
            ["endpoint", "state"],
            registry=r,
        )
        self.alerts = Counter(
            "polycopy_alerts_total",
            "Alerts by kind and outcome (sent, duplicate, failed)",
            ["kind", "outcome"],
            registry=r,
        )


def serve_metrics(metrics: PipelineMetrics, port: int) -> None:
    """Expose /metrics on `port` (0 = do not serve)."""
    if port:
        start_http_server(port, addr="0.0.0.0", registry=metrics.registry)

"""Prometheus metrics as one typed bundle with an injected registry; labels are bounded (never ids).

Also each component's HTTP endpoint: `/metrics`, `/healthz` (liveness: the process serves) and `/readyz`
(readiness: a check the component passes, 503 until it says ready), so probes hit what the process does.
"""

from __future__ import annotations

import logging
import platform
import threading
from collections.abc import Callable, Iterable, Mapping
from importlib import metadata
from socketserver import ThreadingMixIn
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    make_wsgi_app,
)
from prometheus_client.gc_collector import GCCollector
from prometheus_client.platform_collector import PlatformCollector
from prometheus_client.process_collector import ProcessCollector

from schemas.orders import OrderEventType
from schemas.portfolio import ResolutionSource
from schemas.trades import TradeSource

log = logging.getLogger(__name__)

LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
# One bucket set for every stage: milliseconds for the decision and the order, seconds for the venue's feed.
STAGE_BUCKETS = (*LATENCY_BUCKETS[:-3], 2.0, 3.0, 5.0, 10.0, 30.0, 60.0, 300.0)
# The stages of `polycopy_stage_latency_seconds`: feed (venue trade time -> our receive), decision (receive ->
# decision), order (decision -> order sent), ack (sent -> acknowledged or reported), signal (receive -> sent).
LATENCY_STAGES = ("feed", "decision", "order", "ack", "signal")
# The consume loops' stages, each a `polycopy_sink_failures_total` series from the start.
SINK_STAGES = ("executor", "postgres-sink", "alerts")

# Default /metrics ports, one per deployable, so that they can share a host. `alerts` (the alerts sink) is
# reserved for a component that a later issue adds.
BASE_PORT = 9108
DEFAULT_PORTS = {
    "worker": 9108,
    "executor": 9109,
    "producer": 9110,
    "sink": 9111,
    "poller": 9112,
    "books": 9113,
    "alerts": 9114,
}

# Label values known in advance are exported at 0 from the start, so that dashboards and alert rules see a
# zero rather than no series at all (an `increase() > 0` rule cannot fire on a series that does not exist, and
# a panel over it reads "No data" on a healthy day). A stage missing here still counts when it happens.
DEAD_LETTER_STAGES = (
    "rtds-parse",
    "poll-parse",
    "target-filter",
    "evaluate",
    "order-lifecycle",
    "resolution-fanout",
    "settlement",
    "executor",
    "postgres-sink",
    "alerts",
)
# A bad market-channel frame is counted, not lettered; so is a raw trade the books producer cannot read (the
# target filter letters it).
PARSE_STAGES = (*DEAD_LETTER_STAGES, "market-channel", "books", "user-channel")
RECONNECT_REASONS = ("closed", "error", "watchdog")
# The live gateway's venue endpoint groups (sinks.gateway.ENDPOINT_GROUPS), each with its own breaker.
BREAKER_ENDPOINTS = ("orders.place", "orders.read", "orders.cancel")
LIVE_ORDER_STATES = ("open", "lost", "deferred")

Readiness = Callable[[], bool]


def component_port(component: str, base_port: int = BASE_PORT) -> int:
    """A component's /metrics port: its default (`DEFAULT_PORTS`) moved by `base_port - 9108`.

    The base port lets several copies of the pipeline share a host (tests, a demo beside a running pipeline)
    while every component keeps its own port.
    """
    return DEFAULT_PORTS[component] - BASE_PORT + base_port


def package_version() -> str:
    """The installed version of polycopy-stream ("unknown" from a source tree that is not installed)."""
    try:
        return metadata.version("polycopy-stream")
    except metadata.PackageNotFoundError:
        return "unknown"


class PipelineMetrics:
    """Every metric of every component; a component uses the ones it needs."""

    def __init__(
        self, registry: CollectorRegistry | None = None, *, component: str = "", runtime: bool = True
    ) -> None:
        """`component` labels `polycopy_build_info`; `runtime=False` leaves out the process, platform and GC
        collectors (for a registry that already has them)."""
        self.registry = registry or CollectorRegistry()
        self._ready: Readiness | None = None
        r = self.registry
        if runtime:
            ProcessCollector(registry=r)
            PlatformCollector(registry=r)
            GCCollector(registry=r)
        self.build_info = Gauge(
            "polycopy_build_info",
            "Always 1; the labels say which build and which component serve these metrics",
            ["version", "python", "component"],
            registry=r,
        )
        self.build_info.labels(package_version(), platform.python_version(), component).set(1)
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
        self.redelivered = Counter(
            "polycopy_redelivered_events_total",
            "Events read again after their outputs were in the log and their state saved: nothing sent again",
            ["stage"],
            registry=r,
        )
        self.send_retries = Counter(
            "polycopy_worker_send_retries_total",
            "Worker sends the broker did not acknowledge (an outage) and that were sent again",
            registry=r,
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
        self.pinned_book_waits = Counter(
            "polycopy_pinned_book_waits_total",
            "Evaluations that waited for the book their trade was pinned to, by outcome: found or missing",
            ["outcome"],
            registry=r,
        )
        self.books_published = Counter(
            "polycopy_books_published_total",
            "Book states put on the books topic, by source (channel, rest) or lost (the channel's book of a "
            "token stopped being current)",
            ["source"],
            registry=r,
        )
        self.books_watched = Gauge(
            "polycopy_books_watched_tokens",
            "Tokens the books producer follows on the market channel",
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
        # Per copy wallet: the label is an operator-configured wallet id, so its values are bounded.
        self.wallet_decisions = Counter(
            "polycopy_wallet_decisions_total",
            "Decisions by copy wallet and action",
            ["wallet", "action"],
            registry=r,
        )
        self.wallet_capital = Gauge(
            "polycopy_wallet_capital_usdc", "A copy wallet's configured capital", ["wallet"], registry=r
        )
        self.wallet_available = Gauge(
            "polycopy_wallet_available_usdc",
            "Capital a copy wallet can still copy with",
            ["wallet"],
            registry=r,
        )
        self.wallet_reserved = Gauge(
            "polycopy_wallet_reserved_usdc",
            "Capital held for a copy wallet's open orders",
            ["wallet"],
            registry=r,
        )
        self.wallet_deployed = Gauge(
            "polycopy_wallet_deployed_usdc",
            "What a copy wallet's open positions cost (positions in resolved markets until paid out)",
            ["wallet"],
            registry=r,
        )
        self.wallet_pnl = Gauge(
            "polycopy_wallet_pnl_usdc",
            "A copy wallet's PnL by kind: realised (sales, payouts, fees) or unrealised (open positions)",
            ["wallet", "kind"],
            registry=r,
        )
        self.resolutions = Counter(
            "polycopy_market_resolutions_total",
            "Market resolutions the worker applied to the copy wallets, by where they were learnt",
            ["source"],
            registry=r,
        )
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
            "1 while a venue endpoint group's breaker stops calls after failures (open or probing), else 0",
            ["endpoint"],
            registry=r,
        )
        # Apart from the breaker: the venue pausing us (a matching-engine restart answers 425 for ~90 s every
        # week) is expected, and must not page anyone the way repeated failures do.
        self.venue_paused = Gauge(
            "polycopy_venue_paused",
            "1 while the venue asks us to hold an endpoint group (425 restart, 429, 503 cancel-only)",
            ["endpoint"],
            registry=r,
        )
        self.circuit_breaker_changes = Counter(
            "polycopy_circuit_breaker_changes_total",
            "Breaker state changes by endpoint group and new state",
            ["endpoint", "state"],
            registry=r,
        )
        self.live_orders = Gauge(
            "polycopy_live_orders",
            "Live orders the executor watches: open (at the venue, not final), lost (marked LOST, still "
            "watched for a late fill), deferred (not sent yet: a breaker or the venue holds placement)",
            ["state"],
            registry=r,
        )
        self.user_channel_connected = Gauge(
            "polycopy_user_channel_connected",
            "1 while the executor's authenticated user channel is connected (its events hurry reconciliation "
            "along), 0 while live orders are reconciled by polling alone",
            registry=r,
        )
        self.alerts = Counter(
            "polycopy_alerts_total",
            "Alerts by kind and outcome (sent, duplicate, failed)",
            ["kind", "outcome"],
            registry=r,
        )
        self.stage_latency = Histogram(
            "polycopy_stage_latency_seconds",
            "Time spent per stage: feed, decision, order, ack, signal (end to end)",
            ["stage"],
            buckets=STAGE_BUCKETS,
            registry=r,
        )
        self.consumer_lag = Gauge(
            "polycopy_consumer_lag",
            "Records a consumer group has still to read, per topic and partition (high watermark - position)",
            ["group", "topic", "partition"],
            registry=r,
        )
        self._lag_series: dict[str, set[tuple[str, int]]] = {}
        self.sink_failures = Counter(
            "polycopy_sink_failures_total",
            "Batches a sink could not make durable (nothing committed: they are read again)",
            ["stage"],
            registry=r,
        )
        _export_known_label_values(self)

    def observe_stage(self, stage: str, started_ms: int, ended_ms: int) -> None:
        """One stage's latency, from two epoch-millisecond times (a clock step back counts as 0)."""
        self.stage_latency.labels(stage).observe(max(ended_ms - started_ms, 0) / 1000)

    def observe_order_sent(self, received_at_ms: int, decided_at_ms: int, sent_at_ms: int) -> None:
        """An order left: the stages order (decision -> sent) and signal (receive -> sent, end to end)."""
        self.signal_to_order.observe(max(sent_at_ms - received_at_ms, 0) / 1000)
        self.observe_stage("order", decided_at_ms, sent_at_ms)
        self.observe_stage("signal", received_at_ms, sent_at_ms)

    def set_consumer_lag(self, group: str, lags: Mapping[tuple[str, int], int]) -> None:
        """The group's lag per (topic, partition) now; partitions no longer assigned drop their series."""
        for topic, partition in self._lag_series.get(group, set()) - set(lags):
            self.consumer_lag.remove(group, topic, str(partition))
        for (topic, partition), lag in lags.items():
            self.consumer_lag.labels(group, topic, str(partition)).set(lag)
        self._lag_series[group] = set(lags)

    def set_readiness(self, ready: Readiness | None) -> None:
        """Answer `/readyz` from this check from now on (None: ready whenever the process serves)."""
        self._ready = ready

    def is_ready(self) -> bool:
        """What `/readyz` answers now: the readiness check's verdict; a check that raises means not ready."""
        if self._ready is None:
            return True
        try:
            return bool(self._ready())
        except Exception:  # noqa: BLE001 - a failing check means not ready; the probe must still get an answer
            log.exception("readiness check failed")
            return False


def _export_known_label_values(metrics: PipelineMetrics) -> None:
    for stage in DEAD_LETTER_STAGES:
        metrics.dead_letters.labels(stage)
    for stage in PARSE_STAGES:
        metrics.parse_errors.labels(stage)
    for reason in RECONNECT_REASONS:
        metrics.reconnects.labels(reason)
    for event in OrderEventType:
        metrics.order_events.labels(event.value)
    for source in TradeSource:
        metrics.first_seen.labels(source.value)
        metrics.duplicates_dropped.labels(source.value)
    for book_source in ("channel", "rest"):
        metrics.book_source.labels(book_source)
    for outcome in ("found", "missing"):
        metrics.pinned_book_waits.labels(outcome)
    for published in ("channel", "rest", "lost"):
        metrics.books_published.labels(published)
    for endpoint in BREAKER_ENDPOINTS:
        metrics.circuit_breaker_open.labels(endpoint).set(0)
        metrics.venue_paused.labels(endpoint).set(0)
    for state in LIVE_ORDER_STATES:
        metrics.live_orders.labels(state).set(0)
    for stage in LATENCY_STAGES:
        metrics.stage_latency.labels(stage)
    for stage in SINK_STAGES:
        metrics.sink_failures.labels(stage)
    for resolution_source in ResolutionSource:
        metrics.resolutions.labels(resolution_source.value)


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - the base class names it so
        """Probes and scrapes every few seconds would flood the log."""


class _ThreadingWSGIServer(ThreadingMixIn, WSGIServer):
    daemon_threads = True  # a slow client never holds the process at exit


class MetricsServer:
    """`/metrics`, `/healthz` and `/readyz` on one port, served from a daemon thread.

    `/healthz` answers 200 while the process serves (liveness). `/readyz` answers 200 when `ready()` is true
    and 503 otherwise (Kubernetes then keeps the pod out of service until the component says it is ready).
    """

    def __init__(
        self, registry: CollectorRegistry, port: int, *, ready: Readiness, addr: str = "0.0.0.0"
    ) -> None:
        self._metrics_app = make_wsgi_app(registry)
        self._ready = ready
        self._server = make_server(addr, port, self._app, _ThreadingWSGIServer, handler_class=_QuietHandler)
        self._thread = threading.Thread(target=self._server.serve_forever, name="metrics-http", daemon=True)

    @property
    def port(self) -> int:
        """The bound port (the one asked for, or the one picked when asked for 0)."""
        return int(self._server.server_address[1])

    def start(self) -> MetricsServer:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)

    def _app(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        path = environ.get("PATH_INFO", "/")
        if path == "/healthz":
            return _text(start_response, "200 OK", "ok\n")
        if path == "/readyz":
            if self._ready():
                return _text(start_response, "200 OK", "ready\n")
            return _text(start_response, "503 Service Unavailable", "not ready\n")
        return self._metrics_app(environ, start_response)


def _text(start_response: Callable[..., Any], status: str, body: str) -> list[bytes]:
    data = body.encode()
    start_response(
        status, [("Content-Type", "text/plain; charset=utf-8"), ("Content-Length", str(len(data)))]
    )
    return [data]


def serve_metrics(
    metrics: PipelineMetrics, port: int, *, ready: Readiness | None = None, addr: str = "0.0.0.0"
) -> MetricsServer | None:
    """Serve `/metrics`, `/healthz` and `/readyz` on `port` (0 = do not serve).

    `/readyz` follows `metrics.is_ready()`: the check passed here, or one set later with `set_readiness`.
    """
    if ready is not None:
        metrics.set_readiness(ready)
    if not port:
        return None
    return MetricsServer(metrics.registry, port, addr=addr, ready=metrics.is_ready).start()

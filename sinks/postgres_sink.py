"""The PostgreSQL sink: trades, decisions, intents, orders and order events, written idempotently.

Shape after quixstreams' sinks: batch what arrives, write the batch in one transaction (conflicts change
nothing), and only then commit the offsets, so a crash re-delivers and re-delivery is harmless.
"""

from __future__ import annotations

import json
import logging
import signal
import threading
import time
from datetime import UTC, datetime
from typing import Any

from pydantic import BaseModel, ValidationError

from polycopy.infra.kafka import MessagePublisher, build_consumer, consume_batch, now_ms
from polycopy.infra.metrics import PipelineMetrics
from polycopy.infra.postgres import BatchWriter
from polycopy.infra.settings import PolycopySettings
from schemas.deadletter import build_dead_letter
from schemas.decisions import Decision
from schemas.orders import OrderEvent, OrderIntent
from schemas.reference import TraderReference
from schemas.topics import DECISIONS, ORDER_EVENTS, ORDER_INTENTS, RAW_TRADES, TRADERS, TopicSpec
from schemas.trades import RawTrade

log = logging.getLogger(__name__)


def trade_row(trade: RawTrade) -> dict[str, Any]:
    row = trade.model_dump(exclude={"schema_version", "timestamp"})
    row["trade_time"] = datetime.fromtimestamp(trade.timestamp, UTC)
    return row


def decision_row(decision: Decision) -> dict[str, Any]:
    return decision.model_dump(exclude={"schema_version"})


def intent_row(intent: OrderIntent) -> dict[str, Any]:
    row = intent.model_dump(exclude={"schema_version", "book_levels"})
    # JSON text for the jsonb column: [{"price": "0.5", "size": "100"}, ...], best first (None: no book).
    levels = intent.model_dump(mode="json", include={"book_levels"})["book_levels"]
    row["book_levels"] = json.dumps(levels) if levels is not None else None
    return row


def event_row(event: OrderEvent) -> dict[str, Any]:
    return event.model_dump(exclude={"schema_version", "mode", "side", "asset", "size", "limit_price"})


def order_row(event: OrderEvent) -> dict[str, Any]:
    """The order's latest state, as carried by its newest event."""
    return {
        "order_id": event.order_id,
        "intent_id": event.intent_id,
        "wallet_id": event.wallet_id,
        "mode": event.mode,
        "status": event.status,
        "side": event.side,
        "asset": event.asset,
        "size": event.size,
        "limit_price": event.limit_price,
        "matched_size": event.matched_size,
        "average_price": event.average_price,
        "sequence": event.sequence,
        "received_at_ms": event.received_at_ms,
        "sent_at_ms": event.sent_at_ms,
        "updated_at_ms": event.occurred_at_ms,
    }


def trader_row(trader: TraderReference) -> dict[str, Any]:
    return trader.model_dump(exclude={"schema_version"})


# topic -> (model, table, row builder); append-only tables, first write wins
ROUTES: dict[TopicSpec, tuple[type[BaseModel], str, Any]] = {
    RAW_TRADES: (RawTrade, "trades", trade_row),
    DECISIONS: (Decision, "decisions", decision_row),
    ORDER_INTENTS: (OrderIntent, "order_intents", intent_row),
    ORDER_EVENTS: (OrderEvent, "order_events", event_row),
    TRADERS: (TraderReference, "traders", trader_row),
}
# tables whose rows are replaced by newer versions: table -> (key column, version column)
LATEST_WINS = {"orders": ("order_id", "sequence"), "traders": ("wallet", "updated_at_ms")}


class PostgresSink:
    """Consumes the pipeline's topics and writes them to PostgreSQL in batches."""

    def __init__(self, settings: PolycopySettings, metrics: PipelineMetrics) -> None:
        self._settings, self._metrics = settings, metrics
        self._writer = BatchWriter(settings.database_url)
        self._consumer = build_consumer(settings, settings.consumer_group("postgres-sink"))
        self._publisher = MessagePublisher(settings, client_id="polycopy-postgres-sink")
        self._stop = threading.Event()
        self._routes = {settings.topic_name(spec): route for spec, route in ROUTES.items()}
        self.rows_written = 0

    def stop(self, *_: object) -> None:
        self._stop.set()

    def run(self, max_idle_secs: float | None = None) -> None:
        """Run until stopped (or idle for `max_idle_secs` with nothing pending)."""
        self._consumer.subscribe(list(self._routes))
        pending: dict[str, list[dict[str, Any]]] = {table: [] for _, table, _ in ROUTES.values()}
        latest: dict[str, dict[str, dict[str, Any]]] = {table: {} for table in LATEST_WINS}
        count, last_flush, idle_since = 0, time.monotonic(), time.monotonic()
        try:
            while not self._stop.is_set():
                for message in consume_batch(self._consumer, self._settings.sink_batch_size, timeout=0.1):
                    if message.error():
                        continue
                    idle_since = time.monotonic()
                    count += self._route(message, pending, latest)
                due = time.monotonic() - last_flush >= self._settings.sink_flush_secs
                if count and (due or count >= self._settings.sink_batch_size):
                    self._flush(pending, latest)
                    count, last_flush = 0, time.monotonic()
                if max_idle_secs is not None and not count and time.monotonic() - idle_since > max_idle_secs:
                    return
        finally:
            if count:
                self._flush(pending, latest)
            self._publisher.flush(10)
            self._consumer.close()
            self._writer.close()

    def _route(
        self,
        message: Any,
        pending: dict[str, list[dict[str, Any]]],
        latest: dict[str, dict[str, dict[str, Any]]],
    ) -> int:
        model, table, build_row = self._routes[message.topic()]
        if message.value() is None:
            return 1  # a tombstone on a compacted topic: the row stays as the last record of it
        try:
            value = model.model_validate_json(message.value() or b"")
        except ValidationError as error:
            self._metrics.dead_letters.labels("postgres-sink").inc()
            self._publisher.publish_dead_letter(
                build_dead_letter(
                    "postgres-sink",
                    str(error),
                    message.value(),
                    occurred_at_ms=now_ms(),
                    topic=message.topic(),
                    partition=message.partition(),
                    offset=message.offset(),
                )
            )
            return 1  # counts toward a flush so its offset gets committed
        row = build_row(value)
        if isinstance(value, OrderEvent):
            pending[table].append(row)
            table, row = "orders", order_row(value)
        if table in LATEST_WINS:
            key, version = LATEST_WINS[table]
            newest = latest[table].get(row[key])
            if newest is None or newest[version] < row[version]:
                latest[table][row[key]] = row
        else:
            pending[table].append(row)
        return 1

    def _flush(
        self, pending: dict[str, list[dict[str, Any]]], latest: dict[str, dict[str, dict[str, Any]]]
    ) -> None:
        started = time.perf_counter()
        self._writer.write(
            pending, {table: (*LATEST_WINS[table], list(rows.values())) for table, rows in latest.items()}
        )
        for table, rows in [*pending.items(), *latest.items()]:
            self._metrics.rows_written.labels(table).inc(len(rows))
            self.rows_written += len(rows)
            rows.clear()
        self._consumer.commit(asynchronous=False)
        self._metrics.sink_flush.observe(time.perf_counter() - started)


def run_postgres_sink(settings: PolycopySettings, metrics: PipelineMetrics) -> None:
    """Entry point of `polycopy sink`: stops cleanly on SIGTERM/SIGINT after a last flush."""
    sink = PostgresSink(settings, metrics)
    signal.signal(signal.SIGTERM, sink.stop)
    signal.signal(signal.SIGINT, sink.stop)
    sink.run()

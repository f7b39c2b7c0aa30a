"""The PostgreSQL sink: trades, decisions, intents, orders and order events, wallet snapshots, positions and
market resolutions, written idempotently.

Shape after quixstreams' sinks (the loop is `sinks.base.ConsumeLoop`): batch what arrives, write the batch
(in chunks, each one transaction of `COPY` and `INSERT ... SELECT`; conflicts change nothing), and only then
commit the offsets, so a crash re-delivers and re-delivery is harmless.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from datetime import UTC, datetime
from typing import Any, NamedTuple, Protocol

from pydantic import BaseModel

from polycopy.infra.kafka import Record
from polycopy.infra.metrics import PipelineMetrics
from polycopy.infra.postgres import RowsRejected
from polycopy.infra.settings import PolycopySettings
from schemas.decisions import Decision
from schemas.orders import OrderEvent, OrderIntent
from schemas.portfolio import MarketResolution, PositionView, WalletSnapshot
from schemas.reference import TraderReference
from schemas.topics import (
    DECISIONS,
    ORDER_EVENTS,
    ORDER_INTENTS,
    POSITIONS,
    RAW_TRADES,
    RESOLUTIONS,
    TRADERS,
    WALLET_SNAPSHOTS,
    TopicSpec,
)
from schemas.trades import RawTrade
from sinks.base import ConsumeLoop, RecordRejected, Rejection

log = logging.getLogger(__name__)

CHUNK_ROWS = 1000  # records of a batch handed to the writer thread while the loop reads on


def fields_row(message: BaseModel, *excluded: str) -> dict[str, Any]:
    """A message's fields as a row, less `schema_version` and `excluded`: its attribute dict, which holds
    what `model_dump()` returns for scalar fields (enums, decimals and all) at a fraction of the cost. A
    nested model field must be excluded here and turned into a column by its row builder."""
    row = dict(message.__dict__)
    for name in ("schema_version", *excluded):
        del row[name]
    return row


def trade_row(trade: RawTrade) -> dict[str, Any]:
    row = fields_row(trade, "timestamp")
    row["trade_time"] = datetime.fromtimestamp(trade.timestamp, UTC)
    return row


def decision_row(decision: Decision) -> dict[str, Any]:
    return fields_row(decision)


def intent_row(intent: OrderIntent) -> dict[str, Any]:
    row = fields_row(intent, "book_levels")
    # JSON text for the jsonb column: [{"price": "0.5", "size": "100"}, ...], best first (None: no book).
    levels = intent.model_dump(mode="json", include={"book_levels"})["book_levels"]
    row["book_levels"] = json.dumps(levels) if levels is not None else None
    return row


def event_row(event: OrderEvent) -> dict[str, Any]:
    return fields_row(event, "mode", "side", "asset", "size", "limit_price")


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
    return fields_row(trader)


def position_row(position: PositionView) -> dict[str, Any]:
    return fields_row(position)


def snapshot_row(snapshot: WalletSnapshot) -> dict[str, Any]:
    """The wallet's figures; its open positions go to `positions` (`snapshot_position_rows`)."""
    row = fields_row(snapshot, "open_positions", "open_orders")
    row["open_positions"] = len(snapshot.open_positions)
    row["open_orders"] = len(snapshot.open_orders)
    row["orders"] = json.dumps(snapshot.model_dump(mode="json", include={"open_orders"})["open_orders"])
    return row


def resolution_row(resolution: MarketResolution) -> dict[str, Any]:
    row = fields_row(resolution, "payouts")
    row["payouts"] = json.dumps(resolution.model_dump(mode="json", include={"payouts"})["payouts"])
    return row


# topic -> (model, table, row builder); append-only tables, first write wins
ROUTES: dict[TopicSpec, tuple[type[BaseModel], str, Any]] = {
    RAW_TRADES: (RawTrade, "trades", trade_row),
    DECISIONS: (Decision, "decisions", decision_row),
    ORDER_INTENTS: (OrderIntent, "order_intents", intent_row),
    ORDER_EVENTS: (OrderEvent, "order_events", event_row),
    TRADERS: (TraderReference, "traders", trader_row),
    WALLET_SNAPSHOTS: (WalletSnapshot, "wallet_snapshots", snapshot_row),
    POSITIONS: (PositionView, "positions", position_row),
    RESOLUTIONS: (MarketResolution, "market_resolutions", resolution_row),
}
# tables whose rows are replaced by newer versions: table -> (key columns, comma-separated; version column)
LATEST_WINS = {
    "orders": ("order_id", "sequence"),
    "traders": ("wallet", "updated_at_ms"),
    "wallet_snapshots": ("wallet_id", "version"),
    "positions": ("wallet_id,asset", "version"),
    "market_resolutions": ("condition_id", "resolved_at_ms"),
}


class RowWriter(Protocol):
    """Idempotent batch writes (`polycopy.infra.postgres.BatchWriter`, or a fake in tests). `write` raises
    `RowsRejected` when the data was refused; a lost connection it retries itself."""

    def connect(self) -> None: ...

    def write(
        self,
        inserts: Mapping[str, Sequence[dict[str, Any]]],
        upserts: Mapping[str, tuple[str, str, Sequence[dict[str, Any]]]] | None = None,
    ) -> None: ...

    def close(self) -> None: ...


class PendingRow(NamedTuple):
    """One record's rows: its table row, and the rows it carries for other tables (an order event: the
    order's latest state; a wallet snapshot: its open positions). A named tuple: one is made per record,
    and a frozen dataclass costs several times as much to build."""

    record: Record
    table: str
    row: dict[str, Any]
    # (table, row) more: the order's state for an order event, its open positions for a wallet snapshot
    extra: tuple[tuple[str, dict[str, Any]], ...] = ()


class PostgresSink:
    """Consumes the pipeline's topics and writes them to PostgreSQL in batches; a `BatchSink` of the loop.

    A record it cannot turn into a row, or whose row PostgreSQL refuses (a value out of range, a NUL in a
    text), is dead-lettered with the reason and the rest is written: a refused batch is split in halves
    until the refused rows are alone. A lost connection is retried by the writer, never dead-lettered.

    Every `chunk_rows` records of a batch go to PostgreSQL on a writer thread while the loop reads and
    decodes the rest (decoding is the sink's own CPU; writing is mostly the server's), each chunk in a
    transaction of its own; `flush` waits for every chunk, so the offsets still commit only after the whole
    batch is durable.
    """

    stage = "postgres-sink"

    def __init__(
        self,
        settings: PolycopySettings,
        *,
        loop: ConsumeLoop,
        writer: RowWriter,
        metrics: PipelineMetrics,
        chunk_rows: int = CHUNK_ROWS,
    ) -> None:
        self._loop, self._writer, self._metrics = loop, writer, metrics
        self._routes = {settings.topic_name(spec): route for spec, route in ROUTES.items()}
        self._chunk_rows = chunk_rows
        self._pending: list[PendingRow] = []
        self._writes = ThreadPoolExecutor(max_workers=1)  # made again by each `run`
        self._in_flight: list[Future[list[Rejection]]] = []
        self.rows_written = 0

    def stop(self, *_: object) -> None:
        """End after a last flush (usable as a signal handler)."""
        self._loop.stop()

    def run(self, max_idle_secs: float | None = None) -> None:
        """Run until stopped (or idle for `max_idle_secs` with nothing pending)."""
        self._writer.connect()
        self._writes = ThreadPoolExecutor(max_workers=1, thread_name_prefix="postgres-sink-writer")
        try:
            self._loop.run(self, max_idle_secs)
        finally:
            # After a failed batch its chunks still queued are dropped: the batch is read again anyway.
            self._writes.shutdown(wait=True, cancel_futures=True)
            self._writer.close()

    # --- the consume loop's hooks ---------------------------------------------------------------------------
    def topics(self) -> Sequence[str]:
        return list(self._routes)

    def decode(self, record: Record) -> BaseModel | None:
        if record.value is None:
            return None  # a tombstone on a compacted topic: the row stays as the last record of it
        model, _, _ = self._routes[record.topic]
        return model.model_validate_json(record.value)

    def write(self, value: BaseModel, record: Record) -> None:
        """Add the record's row to the batch; a record that cannot become a row is rejected (dead letter)."""
        _, table, build_row = self._routes[record.topic]
        try:
            row = build_row(value)
            extra: list[tuple[str, dict[str, Any]]] = []
            if isinstance(value, OrderEvent):
                extra.append(("orders", order_row(value)))
            if isinstance(value, WalletSnapshot):  # its open positions' marks, at the snapshot's version
                extra += [("positions", position_row(position)) for position in value.open_positions]
        except Exception as error:  # noqa: BLE001 - any record that cannot become a row is dead-lettered
            raise RecordRejected(f"cannot be written to {table}: {type(error).__name__}: {error}") from error
        self._pending.append(PendingRow(record, table, row, tuple(extra)))
        if len(self._pending) >= self._chunk_rows:
            self._write_behind()

    def flush(self) -> Sequence[Rejection]:
        """Write the rest of the batch and wait for every chunk: all rows written, or, when PostgreSQL
        refuses some rows, every row it accepts and the refused ones as rejections (dead-lettered before the
        offsets commit). Raises when a chunk could not be written: nothing commits."""
        started = time.perf_counter()
        self._write_behind()
        in_flight, self._in_flight = self._in_flight, []
        rejections: list[Rejection] = []
        failure: BaseException | None = None
        for chunk in in_flight:  # every chunk ends before the flush does, failed or not
            try:
                rejections += chunk.result()
            except Exception as error:  # noqa: BLE001 - the first failure is raised below
                failure = failure or error
        if failure is not None:
            raise failure
        self._metrics.sink_flush.observe(time.perf_counter() - started)
        return rejections

    def _write_behind(self) -> None:
        # The chunk leaves memory before the write: if the write fails, its records are read again anyway.
        pending, self._pending = self._pending, []
        if pending:
            self._in_flight.append(self._writes.submit(self._write, pending))

    def _write(self, rows: list[PendingRow]) -> list[Rejection]:
        if not rows:
            return []
        inserts, upserts = _batch(rows)
        try:
            self._writer.write(inserts, upserts)
        except RowsRejected as error:
            if len(rows) == 1:
                return [Rejection(rows[0].record, f"PostgreSQL refused the row: {error}", "RowsRejected")]
            middle = len(rows) // 2
            return self._write(rows[:middle]) + self._write(rows[middle:])
        for table, table_rows in [*inserts.items(), *((t, u[2]) for t, u in upserts.items())]:
            self._metrics.rows_written.labels(table).inc(len(table_rows))
            self.rows_written += len(table_rows)
        return []


def _batch(
    rows: Sequence[PendingRow],
) -> tuple[dict[str, list[dict[str, Any]]], dict[str, tuple[str, str, list[dict[str, Any]]]]]:
    """Rows per append-only table, and the newest version per key of the latest-wins tables."""
    inserts: dict[str, list[dict[str, Any]]] = {}
    latest: dict[str, dict[tuple[Any, ...], dict[str, Any]]] = {}
    for pending in rows:
        for table, row in [(pending.table, pending.row), *pending.extra]:
            if table not in LATEST_WINS:
                inserts.setdefault(table, []).append(row)
                continue
            keys, version = LATEST_WINS[table]
            key = tuple(row[column] for column in keys.split(","))
            newest = latest.setdefault(table, {}).get(key)
            if newest is None or newest[version] < row[version]:
                latest[table][key] = row
    upserts = {table: (*LATEST_WINS[table], list(by_key.values())) for table, by_key in latest.items()}
    return inserts, upserts

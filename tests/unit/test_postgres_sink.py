"""The PostgreSQL sink with fakes (consumer, writer, publisher): rows per table, latest-wins tables keep the
newest version, a batch is written before its offsets commit, a failed write commits nothing."""

from __future__ import annotations

import json
import time
from decimal import Decimal

import pytest

from polycopy.infra.metrics import PipelineMetrics
from polycopy.infra.postgres import DatabaseError
from polycopy.infra.settings import PolycopySettings
from schemas.base import Message
from schemas.orders import OrderStatus
from schemas.portfolio import PositionStatus
from schemas.reference import TraderReference
from schemas.topics import (
    DEAD_LETTERS,
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
from sinks.base import ConsumeLoop, LoopPolicy, SinkFlushError
from sinks.postgres_sink import PostgresSink
from tests.builders import (
    ASSET,
    OTHER_ASSET,
    TRADER,
    build_decision,
    build_intent,
    build_order_event,
    build_position_view,
    build_resolution,
    build_trade,
    build_wallet_snapshot,
)
from tests.fakes import FakeBroker, FakePublisher, FakeWriter

PREFIX = "unit."


def topic(spec: TopicSpec) -> str:
    return PREFIX + spec.name


class Harness:
    """A PostgreSQL sink wired to fakes over one fake broker."""

    def __init__(self, batch_size: int = 500, chunk_rows: int = 1000) -> None:
        self.settings = PolycopySettings(topic_prefix=PREFIX, metrics_enabled=False)
        self.broker, self.publisher, self.writer = FakeBroker(), FakePublisher(), FakeWriter()
        self.metrics = PipelineMetrics()
        self.batch_size, self.chunk_rows = batch_size, chunk_rows
        self.events: list[str] = []  # chunk writes and offset commits, in order

    def send(self, spec: TopicSpec, *messages: Message) -> None:
        for message in messages:
            self.broker.append_message(topic(spec), message)

    def run(self) -> PostgresSink:
        self.consumer = self.broker.consumer("postgres-sink")
        loop = ConsumeLoop(
            self.consumer,
            self.publisher,
            self.metrics,
            LoopPolicy(batch_size=self.batch_size, flush_secs=1e9),
        )
        commit, write = self.consumer.commit, self.writer.write

        def logged_commit(offsets):  # type: ignore[no-untyped-def]
            self.events.append("commit")
            return commit(offsets)

        def logged_write(inserts, upserts=None):  # type: ignore[no-untyped-def]
            time.sleep(0.05)  # a write takes a while: the loop reads on meanwhile
            write(inserts, upserts)
            self.events.append(f"write {sum(len(rows) for rows in inserts.values())}")

        self.consumer.commit, self.writer.write = logged_commit, logged_write  # type: ignore[method-assign]
        sink = PostgresSink(
            self.settings, loop=loop, writer=self.writer, metrics=self.metrics, chunk_rows=self.chunk_rows
        )
        sink.run(max_idle_secs=0)
        return sink


def test_every_message_becomes_a_row_of_its_table() -> None:
    harness = Harness()
    trades = [build_trade(transaction_hash="0x" + f"{n:064x}") for n in range(3)]
    harness.send(RAW_TRADES, *trades)
    harness.send(DECISIONS, build_decision())
    harness.send(ORDER_INTENTS, build_intent())

    sink = harness.run()

    assert [row["transaction_hash"] for row in harness.writer.rows("trades")] == [
        t.transaction_hash for t in trades
    ]
    assert harness.writer.rows("trades")[0]["trade_time"].timestamp() == trades[0].timestamp
    assert len(harness.writer.rows("decisions")) == 1 and len(harness.writer.rows("order_intents")) == 1
    assert sink.rows_written == 5 and harness.metrics.rows_written.labels("trades")._value.get() == 3
    assert len(harness.writer.batches) == 1


def test_order_events_are_all_kept_and_the_orders_table_gets_the_newest_state_only() -> None:
    harness = Harness()
    harness.send(
        ORDER_EVENTS,
        build_order_event(OrderStatus.PLACED, sequence=1),
        build_order_event(OrderStatus.FILLED, sequence=2, matched_size=Decimal("20")),
        build_order_event(OrderStatus.PLACED, sequence=1),  # an old event delivered again, last
    )

    harness.run()

    assert [row["sequence"] for row in harness.writer.rows("order_events")] == [1, 2, 1]
    [order] = harness.writer.rows("orders")
    assert (order["status"], order["matched_size"], order["sequence"]) == (
        OrderStatus.FILLED,
        Decimal("20"),
        2,
    )
    [(_, upserts)] = harness.writer.batches
    assert upserts["orders"][:2] == ("order_id", "sequence")  # the database keeps the newest across batches


def test_a_newer_trader_row_replaces_an_older_one_and_a_tombstone_writes_nothing() -> None:
    harness = Harness()
    harness.send(
        TRADERS,
        TraderReference(wallet=TRADER, name="old", updated_at_ms=2),
        TraderReference(wallet=TRADER, name="new", updated_at_ms=3),
        TraderReference(wallet=TRADER, name="stale", updated_at_ms=1),
    )
    harness.broker.append(topic(TRADERS), None, key=TRADER.encode())

    harness.run()

    assert [row["name"] for row in harness.writer.rows("traders")] == ["new"]
    assert harness.broker.committed["postgres-sink"] == {(topic(TRADERS), 0): 4}
    assert harness.publisher.on(DEAD_LETTERS) == []


def test_a_malformed_message_is_dead_lettered_and_the_rest_is_written() -> None:
    harness = Harness()
    harness.broker.append(topic(DECISIONS), b'{"not": "a decision"}')
    harness.send(DECISIONS, build_decision())

    harness.run()

    [letter] = harness.publisher.on(DEAD_LETTERS)
    assert (letter.stage, letter.source_topic, letter.source_offset) == ("postgres-sink", topic(DECISIONS), 0)
    assert len(harness.writer.rows("decisions")) == 1
    assert harness.broker.committed["postgres-sink"] == {(topic(DECISIONS), 0): 2}


def test_a_failed_write_commits_nothing_and_counts_no_rows() -> None:
    harness = Harness()
    harness.writer.fail_with = DatabaseError("batch write failed: connection lost")
    harness.send(DECISIONS, build_decision())

    with pytest.raises(SinkFlushError, match="connection lost"):
        harness.run()

    assert "postgres-sink" not in harness.broker.committed
    assert harness.metrics.rows_written.labels("decisions")._value.get() == 0
    assert harness.writer.closed


def test_the_batch_size_bounds_each_write() -> None:
    harness = Harness(batch_size=2)
    harness.send(RAW_TRADES, *[build_trade(transaction_hash="0x" + f"{n:064x}") for n in range(5)])

    harness.run()

    assert [len(inserts["trades"]) for inserts, _ in harness.writer.batches] == [2, 2, 1]
    assert [commit[(topic(RAW_TRADES), 0)] for commit in harness.consumer.commits] == [2, 4, 5]


def test_the_sink_consumes_every_routed_topic_and_connects_before_reading() -> None:
    harness = Harness()
    sink = harness.run()

    assert set(sink.topics()) == {
        topic(s)
        for s in (
            RAW_TRADES,
            DECISIONS,
            ORDER_INTENTS,
            ORDER_EVENTS,
            TRADERS,
            WALLET_SNAPSHOTS,
            POSITIONS,
            RESOLUTIONS,
        )
    }
    assert harness.writer.connected and harness.writer.closed


# --- records that cannot be written (issue 8, defect 3) ---------------------------------------------------
def test_a_record_that_cannot_become_a_row_is_dead_lettered_with_the_reason_and_the_rest_is_written() -> None:
    # A venue time in microseconds passes the model but no datetime holds it: before the fix the error
    # escaped the sink, which stopped on the same record at every restart.
    harness = Harness()
    micro = build_trade(timestamp=1_760_000_000_000_000, transaction_hash="0x" + "01" * 32)
    good = build_trade(transaction_hash="0x" + "02" * 32)
    harness.send(RAW_TRADES, micro, good)

    harness.run()

    [letter] = harness.publisher.on(DEAD_LETTERS)
    assert (letter.stage, letter.source_offset, letter.error_type) == ("postgres-sink", 0, "RecordRejected")
    assert letter.reason.startswith("cannot be written to trades: ValueError: year")
    assert [row["transaction_hash"] for row in harness.writer.rows("trades")] == [good.transaction_hash]
    assert harness.broker.committed["postgres-sink"] == {(topic(RAW_TRADES), 0): 2}


@pytest.mark.parametrize("chunk_rows", [1000, 3])
def test_rows_postgresql_refuses_are_isolated_and_dead_lettered_while_every_other_row_is_written(
    chunk_rows: int,
) -> None:
    # Before the fix one refused row failed the whole batch: nothing was written, and the sink stopped on
    # the same batch at every restart. With chunks written while the batch is read, the same.
    harness = Harness(chunk_rows=chunk_rows)
    trades = [build_trade(transaction_hash="0x" + f"{n:064x}", outcome_index=n) for n in range(8)]
    trades[5] = trades[5].model_copy(update={"outcome_index": 2**40})
    harness.send(RAW_TRADES, *trades)
    harness.send(ORDER_EVENTS, build_order_event(OrderStatus.PLACED, sequence=1))
    harness.writer.refuse = lambda row: row.get("outcome_index") == 2**40

    harness.run()

    [letter] = harness.publisher.on(DEAD_LETTERS)
    assert (letter.source_topic, letter.source_offset) == (topic(RAW_TRADES), 5)
    assert letter.reason == "PostgreSQL refused the row: rows refused: integer out of range"
    written = {row["transaction_hash"] for row in harness.writer.rows("trades")}
    assert written == {t.transaction_hash for n, t in enumerate(trades) if n != 5}
    assert len(harness.writer.rows("order_events")) == len(harness.writer.rows("orders")) == 1
    assert harness.broker.committed["postgres-sink"] == {
        (topic(RAW_TRADES), 0): 8,
        (topic(ORDER_EVENTS), 0): 1,
    }
    assert harness.metrics.rows_written.labels("trades")._value.get() == 7


def test_snapshots_and_positions_keep_the_newest_version_per_wallet_and_per_wallet_token() -> None:
    harness = Harness()
    opened = build_position_view(version=3)
    other = build_position_view(asset=OTHER_ASSET, version=3)
    settled = build_position_view(status=PositionStatus.SETTLED, payout=Decimal(1), version=5)
    stale = build_wallet_snapshot(version=4)  # lists the position open, at an older version than settled
    harness.send(POSITIONS, opened, other, settled)
    harness.send(WALLET_SNAPSHOTS, build_wallet_snapshot(version=2), stale)
    harness.send(RESOLUTIONS, build_resolution(ASSET))

    harness.run()

    [(_, upserts)] = harness.writer.batches
    assert upserts["positions"][:2] == ("wallet_id,asset", "version")
    rows = {row["asset"]: row for row in harness.writer.rows("positions")}
    assert (rows[ASSET]["status"], rows[ASSET]["version"]) == (PositionStatus.SETTLED, 5)
    assert rows[OTHER_ASSET]["version"] == 3
    [snapshot] = harness.writer.rows("wallet_snapshots")
    assert (snapshot["version"], snapshot["open_positions"], snapshot["open_orders"]) == (4, 1, 0)
    assert snapshot["orders"] == "[]"
    [resolution] = harness.writer.rows("market_resolutions")
    assert json.loads(resolution["payouts"]) == {ASSET: "1", OTHER_ASSET: "0"}


# --- chunks written while the batch is read (issue 11) -----------------------------------------------------
def test_a_batch_is_written_in_chunks_while_it_is_read_and_its_offsets_commit_after_the_last_chunk() -> None:
    harness = Harness(batch_size=5, chunk_rows=2)
    harness.send(RAW_TRADES, *[build_trade(transaction_hash="0x" + f"{n:064x}") for n in range(7)])

    sink = harness.run()

    assert harness.events == ["write 2", "write 2", "write 1", "commit", "write 2", "commit"]
    assert [commit[(topic(RAW_TRADES), 0)] for commit in harness.consumer.commits] == [5, 7]
    assert sink.rows_written == 7


def test_a_chunk_that_cannot_be_written_fails_the_flush_and_commits_nothing() -> None:
    harness = Harness(batch_size=6, chunk_rows=2)
    harness.send(RAW_TRADES, *[build_trade(transaction_hash="0x" + f"{n:064x}") for n in range(6)])
    write = FakeWriter.write
    calls: list[int] = []

    def second_fails(self, inserts, upserts=None):  # type: ignore[no-untyped-def]
        calls.append(1)
        if len(calls) == 2:
            raise DatabaseError("batch write failed: the database went away")
        write(self, inserts, upserts)

    harness.writer.write = second_fails.__get__(harness.writer)  # type: ignore[method-assign]

    with pytest.raises(SinkFlushError, match="the database went away"):
        harness.run()

    assert "commit" not in harness.events and "postgres-sink" not in harness.broker.committed
    assert harness.writer.closed


def test_rows_built_from_a_models_fields_hold_what_model_dump_holds() -> None:
    # `fields_row` reads the model's attribute dict instead of calling model_dump (a sixth of the cost): for
    # every routed model the scalar columns must be exactly what model_dump gives, types included.
    from sinks.postgres_sink import ROUTES, fields_row

    messages = [
        build_trade(),
        build_decision(),
        build_intent(),
        build_order_event(OrderStatus.PLACED, sequence=1),
        TraderReference(wallet=TRADER, name="n", updated_at_ms=1),
        build_wallet_snapshot(version=2),
        build_position_view(version=1),
        build_resolution(ASSET),
    ]
    assert {type(m) for m in messages} == {model for model, _, _ in ROUTES.values()}
    for message in messages:
        nested = {name for name, value in message.__dict__.items() if isinstance(value, tuple | dict)}
        row = fields_row(message, *nested)
        dumped = message.model_dump(exclude={"schema_version", *nested})
        assert row == dumped and [type(v) for v in row.values()] == [type(v) for v in dumped.values()]

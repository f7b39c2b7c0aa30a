"""The sinks' at-least-once consume loop with a fake consumer: offsets commit only after a successful flush,
a failed flush commits nothing (the batch is read again), bad records are dead-lettered and the next one is
processed, a stop or a rebalance flushes first."""

from __future__ import annotations

import itertools
from collections.abc import Sequence

import pytest
from pydantic import ValidationError

from polycopy.infra.kafka import Record
from polycopy.infra.metrics import PipelineMetrics
from schemas.deadletter import DeadLetter
from schemas.topics import DEAD_LETTERS
from schemas.trades import RawTrade
from sinks.base import ConsumeLoop, LoopPolicy, RecordRejected, Rejection, SinkFlushError
from tests.builders import build_trade
from tests.fakes import FakeBroker, FakeConsumer, FakePublisher

TOPIC = "t.polycopy.trades.raw.v1"
NEVER = 1e9  # a flush interval no test reaches: only the batch size, a stop or a rebalance flush


class RecordingSink:
    """A sink that decodes raw trades, keeps what it was given, and logs every call in `events`."""

    stage = "test-sink"

    def __init__(self, events: list[str] | None = None) -> None:
        self.events = events if events is not None else []
        self.batch: list[RawTrade] = []
        self.flushed: list[list[RawTrade]] = []
        self.fail_flushes = 0  # how many of the next flushes raise
        self.reject: set[str] = set()  # transaction hashes whose write raises RecordRejected
        self.give_up_on: set[str] = set()  # transaction hashes the flush returns as rejections
        self.crash_on: set[str] = set()  # transaction hashes whose write raises an unexpected error
        self.on_write = lambda trade: None
        self._records: dict[str, Record] = {}

    def topics(self) -> Sequence[str]:
        return [TOPIC]

    def decode(self, record: Record) -> RawTrade | None:
        if record.value is None:
            return None
        return RawTrade.model_validate_json(record.value)

    def write(self, value: RawTrade, record: Record) -> None:
        self.events.append(f"write {record.offset}")
        if value.transaction_hash in self.reject:
            raise RecordRejected("refused by the destination")
        if value.transaction_hash in self.crash_on:
            raise KeyError("a bug")
        self._records[value.transaction_hash] = record
        self.batch.append(value)
        self.on_write(value)

    def flush(self) -> Sequence[Rejection]:
        self.events.append("flush")
        batch, self.batch = self.batch, []
        if self.fail_flushes:
            self.fail_flushes -= 1
            raise ConnectionError("destination down")
        kept = [trade for trade in batch if trade.transaction_hash not in self.give_up_on]
        self.flushed.append(kept)
        return [
            Rejection(self._records[t.transaction_hash], "could not be written", "DataError")
            for t in batch
            if t.transaction_hash in self.give_up_on
        ]


def trade(number: int) -> RawTrade:
    return build_trade(transaction_hash="0x" + f"{number:064x}")


def hashes(trades: list[RawTrade]) -> list[int]:
    return [int(t.transaction_hash, 16) for t in trades]


def publish(broker: FakeBroker, *numbers: int, partition: int = 0) -> None:
    for number in numbers:
        broker.append_message(TOPIC, trade(number), partition=partition)


def build_loop(
    consumer: FakeConsumer,
    publisher: FakePublisher | None = None,
    *,
    batch_size: int = 100,
    flush_secs: float = NEVER,
    metrics: PipelineMetrics | None = None,
) -> ConsumeLoop:
    ticks = itertools.count()  # a clock that moves one second per reading: idle time passes without sleeping
    return ConsumeLoop(
        consumer,
        publisher or FakePublisher(),
        metrics or PipelineMetrics(),
        LoopPolicy(batch_size=batch_size, flush_secs=flush_secs),
        clock=lambda: float(next(ticks)),
        clock_ms=lambda: 1_790_000_000_000,
    )


def test_offsets_commit_only_after_the_batch_was_flushed() -> None:
    broker, events = FakeBroker(), []
    publish(broker, 1, 2)
    publish(broker, 3, partition=1)
    consumer = broker.consumer("g")
    consumer.events = events
    sink = RecordingSink(events)

    build_loop(consumer, batch_size=3).run(sink, max_idle_secs=0)

    assert events == ["write 0", "write 1", "write 0", "flush", "commit", "close"]
    assert consumer.commits == [{(TOPIC, 0): 2, (TOPIC, 1): 1}]  # the next offset to read, per partition
    assert [hashes(batch) for batch in sink.flushed] == [[1, 2, 3]]


def test_a_failed_flush_commits_nothing_and_the_next_run_reads_the_batch_again() -> None:
    broker = FakeBroker()
    publish(broker, 1, 2, 3)
    sink = RecordingSink()
    sink.fail_flushes = 1
    first = broker.consumer("g")

    with pytest.raises(SinkFlushError, match="nothing committed") as raised:
        build_loop(first, batch_size=3).run(sink, max_idle_secs=0)

    assert isinstance(raised.value.__cause__, ConnectionError)
    assert first.commits == [] and first.closed
    second = broker.consumer("g")  # the restarted process, same group
    build_loop(second, batch_size=3).run(sink, max_idle_secs=0)
    assert [hashes(batch) for batch in sink.flushed] == [[1, 2, 3]]
    assert second.commits == [{(TOPIC, 0): 3}]


def test_a_bad_record_is_dead_lettered_with_its_origin_and_the_next_one_is_processed() -> None:
    broker, publisher, metrics = FakeBroker(), FakePublisher(), PipelineMetrics()
    publish(broker, 1)
    broker.append(TOPIC, b'{"not": "a trade"}')
    publish(broker, 2)
    consumer = broker.consumer("g")

    loop = build_loop(consumer, publisher, metrics=metrics)
    loop.run(RecordingSink(), max_idle_secs=0)

    [letter] = publisher.on(DEAD_LETTERS)
    assert isinstance(letter, DeadLetter)
    assert (letter.stage, letter.error_type) == ("test-sink", "ValidationError")
    assert (letter.source_topic, letter.source_partition, letter.source_offset) == (TOPIC, 0, 1)
    assert letter.payload == '{"not": "a trade"}' and "validation error" in letter.reason
    assert publisher.keys(DEAD_LETTERS) == ["test-sink"]
    assert metrics.dead_letters.labels("test-sink")._value.get() == 1
    assert loop.dead_lettered == 1 and consumer.commits == [{(TOPIC, 0): 3}]


def test_a_record_the_sink_rejects_is_dead_lettered_and_the_rest_of_the_batch_is_flushed() -> None:
    broker, publisher = FakeBroker(), FakePublisher()
    publish(broker, 1, 2, 3)
    sink = RecordingSink()
    sink.reject = {trade(2).transaction_hash}

    build_loop(broker.consumer("g"), publisher).run(sink, max_idle_secs=0)

    [letter] = publisher.on(DEAD_LETTERS)
    assert (letter.reason, letter.error_type, letter.source_offset) == (
        "refused by the destination",
        "RecordRejected",
        1,
    )
    assert [hashes(batch) for batch in sink.flushed] == [[1, 3]]
    assert broker.committed["g"] == {(TOPIC, 0): 3}


def test_records_a_flush_gives_up_on_are_dead_lettered_before_the_offsets_commit() -> None:
    broker, publisher, events = FakeBroker(), FakePublisher(), []
    publish(broker, 1, 2)
    consumer = broker.consumer("g")
    consumer.events = events
    sink = RecordingSink(events)
    sink.give_up_on = {trade(1).transaction_hash}
    publisher.flush = lambda timeout=30.0: events.append("deliver dead letters") or 0  # type: ignore[method-assign]

    build_loop(consumer, publisher).run(sink, max_idle_secs=0)

    [letter] = publisher.on(DEAD_LETTERS)
    assert (letter.reason, letter.error_type, letter.source_offset) == (
        "could not be written",
        "DataError",
        0,
    )
    assert events[-4:] == ["flush", "deliver dead letters", "commit", "close"]


def test_undelivered_dead_letters_commit_nothing() -> None:
    broker = FakeBroker()
    broker.append(TOPIC, b"{broken")
    consumer = broker.consumer("g")

    with pytest.raises(SinkFlushError, match="1 messages not delivered"):
        build_loop(consumer, FakePublisher(undelivered=1)).run(RecordingSink(), max_idle_secs=0)

    assert consumer.commits == []


def test_an_unexpected_error_in_a_write_stops_the_loop_with_nothing_committed() -> None:
    broker = FakeBroker()
    publish(broker, 1, 2)
    sink = RecordingSink()
    sink.crash_on = {trade(2).transaction_hash}
    consumer = broker.consumer("g")

    with pytest.raises(KeyError):
        build_loop(consumer).run(sink, max_idle_secs=0)

    assert consumer.commits == [] and sink.flushed == [] and consumer.closed


def test_a_stop_flushes_and_commits_what_was_read() -> None:
    broker = FakeBroker()
    publish(broker, 1, 2, 3)
    publish(broker, 4, 5)
    sink = RecordingSink()
    consumer = broker.consumer("g")
    loop = build_loop(consumer, batch_size=3)  # polls of 3: the stop comes in the middle of the second
    sink.on_write = lambda t: loop.stop() if hashes([t]) == [4] else None

    loop.run(sink)  # no idle limit: only the stop ends it

    assert [hashes(batch) for batch in sink.flushed] == [[1, 2, 3], [4, 5]]
    assert consumer.commits[-1] == {(TOPIC, 0): 5} and consumer.closed
    assert loop.committed == 5


def test_a_full_batch_is_flushed_without_waiting_for_the_interval() -> None:
    broker = FakeBroker()
    publish(broker, *range(1, 6))
    sink = RecordingSink()

    build_loop(broker.consumer("g"), batch_size=2).run(sink, max_idle_secs=0)

    assert [hashes(batch) for batch in sink.flushed] == [[1, 2], [3, 4], [5]]


def test_a_partial_batch_is_flushed_once_the_interval_has_passed() -> None:
    broker = FakeBroker()
    publish(broker, 1)
    events: list[str] = []
    sink = RecordingSink(events)

    # The fake clock moves 1 s per reading, so the first check after the poll is past a 0.5 s interval.
    build_loop(broker.consumer("g"), batch_size=100, flush_secs=0.5).run(sink, max_idle_secs=10)

    assert events[:2] == ["write 0", "flush"]


def test_a_tombstone_is_not_written_but_its_offset_commits() -> None:
    broker = FakeBroker()
    broker.append(TOPIC, None)
    sink = RecordingSink()
    consumer = broker.consumer("g")

    build_loop(consumer).run(sink, max_idle_secs=0)

    assert sink.events == ["flush"] and sink.flushed == [[]]
    assert consumer.commits == [{(TOPIC, 0): 1}]


def test_a_rebalance_flushes_and_commits_before_the_partitions_move() -> None:
    broker = FakeBroker()
    publish(broker, 1, 2)
    sink = RecordingSink()
    consumer = broker.consumer("g", revoke_at_poll=2)

    build_loop(consumer).run(sink, max_idle_secs=0)

    # read in poll 1; saved when revoked in poll 2; then resumed from the committed offset: nothing re-read
    assert [hashes(batch) for batch in sink.flushed] == [[1, 2]]
    assert consumer.commits == [{(TOPIC, 0): 2}]


def test_a_revoke_after_a_failed_flush_does_not_flush_again() -> None:
    broker = FakeBroker()
    publish(broker, 1)
    sink = RecordingSink()
    sink.fail_flushes = 1

    class RevokingOnClose(FakeConsumer):
        def close(self) -> None:
            assert self._on_revoke is not None
            self._on_revoke()  # as confluent-kafka does when a member leaves its group
            super().close()

    consumer = RevokingOnClose(broker, "g")
    with pytest.raises(SinkFlushError):
        build_loop(consumer, batch_size=1).run(sink, max_idle_secs=0)

    assert sink.events == ["write 0", "flush"] and consumer.commits == []


def test_an_idle_loop_ends_with_a_last_flush_of_what_is_pending() -> None:
    broker = FakeBroker()
    publish(broker, 1)
    sink = RecordingSink()
    consumer = broker.consumer("g")

    build_loop(consumer, flush_secs=NEVER).run(sink, max_idle_secs=5)

    assert consumer.polls > 1  # it waited for more records before giving up
    assert sink.events == ["write 0", "flush"] and consumer.commits == [{(TOPIC, 0): 1}] and consumer.closed


def test_an_idle_loop_with_nothing_read_flushes_and_commits_nothing() -> None:
    broker = FakeBroker()
    sink = RecordingSink()
    consumer = broker.consumer("g")

    build_loop(consumer).run(sink, max_idle_secs=5)

    assert sink.events == [] and consumer.commits == [] and consumer.closed


def test_decode_errors_are_value_errors_so_pydantic_failures_are_caught() -> None:
    # The loop dead-letters ValueError; pydantic's ValidationError must stay one of them.
    assert issubclass(ValidationError, ValueError)

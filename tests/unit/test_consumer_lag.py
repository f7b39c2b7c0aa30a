"""Consumer lag and sink failures: the lag rule, the lag of a confluent-kafka consumer and of the Faust
worker's consumer measured with fakes, the consume loop exporting it while it reads, stale partitions dropped,
and a failed flush counted."""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Sequence

import pytest
from confluent_kafka import TopicPartition
from faust.types import TP

from polycopy.infra.kafka import Record, measure_lag, partition_lag
from polycopy.infra.metrics import PipelineMetrics
from processors.worker.observability import measure_lag as measure_worker_lag
from schemas.trades import RawTrade
from sinks.base import ConsumeLoop, LoopPolicy, Rejection, SinkFlushError
from tests.builders import build_trade
from tests.fakes import FakeBroker, FakeConsumer, FakePublisher

TOPIC = "t.polycopy.orders.intents.v1"
UNKNOWN = -1001  # confluent-kafka's OFFSET_INVALID


def lag_of(metrics: PipelineMetrics, group: str, topic: str, partition: int) -> float | None:
    return metrics.registry.get_sample_value(
        "polycopy_consumer_lag", {"group": group, "topic": topic, "partition": str(partition)}
    )


@pytest.mark.parametrize(
    ("high", "position", "committed", "low", "lag"),
    [
        (100, 40, None, 0, 60),  # the position is what the member reads next
        (100, 40, 90, 0, 60),  # ... even when the group committed further (another member, earlier)
        (100, UNKNOWN, 90, 0, 10),  # nothing read since assigned: the committed offset stands in
        (100, UNKNOWN, UNKNOWN, 30, 70),  # never committed: the group starts at the earliest record
        (100, UNKNOWN, 10, 30, 70),  # committed records deleted by retention: reset to the earliest
        (100, 100, None, 0, 0),  # caught up
        (100, 103, None, 0, 0),  # a watermark read before the position moved is never negative
        (UNKNOWN, 40, None, 0, None),  # no high watermark yet: unknown, not zero
        (None, 40, None, 0, None),
        (5, None, None, UNKNOWN, 5),
    ],
)
def test_the_lag_is_the_high_watermark_minus_where_the_member_reads_next(
    high: int | None, position: int | None, committed: int | None, low: int | None, lag: int | None
) -> None:
    assert partition_lag(high, position=position, committed=committed, low=low) == lag


class FakeKafkaConsumer:
    """confluent_kafka.Consumer's assignment, position, committed and watermark calls over fixed offsets."""

    def __init__(
        self,
        positions: dict[int, int],
        watermarks: dict[int, tuple[int, int]],
        committed: dict[int, int],
        *,
        fetched: Iterable[int] = (),
    ) -> None:
        self.positions, self.watermarks, self.committed_offsets = positions, watermarks, committed
        self.fetched = set(fetched)  # partitions with a cached high watermark (something was fetched)
        self.committed_calls: list[list[int]] = []
        self.uncached_watermark_calls: list[int] = []

    def assignment(self) -> list[TopicPartition]:
        return [TopicPartition(TOPIC, p) for p in sorted(self.positions)]

    def position(self, partitions: list[TopicPartition]) -> list[TopicPartition]:
        return [TopicPartition(tp.topic, tp.partition, self.positions[tp.partition]) for tp in partitions]

    def committed(self, partitions: list[TopicPartition], timeout: float) -> list[TopicPartition]:
        self.committed_calls.append([tp.partition for tp in partitions])
        return [
            TopicPartition(tp.topic, tp.partition, self.committed_offsets.get(tp.partition, UNKNOWN))
            for tp in partitions
        ]

    def get_watermark_offsets(self, tp: TopicPartition, timeout: float, cached: bool) -> tuple[int, int]:
        if cached and tp.partition not in self.fetched:
            return (UNKNOWN, UNKNOWN)
        if not cached:
            self.uncached_watermark_calls.append(tp.partition)
        return self.watermarks[tp.partition]


def test_a_confluent_consumer_lag_uses_positions_then_committed_offsets_read_once_per_assignment() -> None:
    consumer = FakeKafkaConsumer(
        positions={0: 40, 1: UNKNOWN, 2: UNKNOWN},
        watermarks={0: (0, 100), 1: (0, 50), 2: (20, 30)},
        committed={1: 45},  # partition 2 was never committed by the group
        fetched=[0, 1],
    )
    cache: dict[tuple[str, int], int] = {}

    assert measure_lag(consumer, cache) == {(TOPIC, 0): 60, (TOPIC, 1): 5, (TOPIC, 2): 10}
    assert consumer.committed_calls == [[1, 2]]  # only partitions not read since they were assigned
    assert consumer.uncached_watermark_calls == [2]  # only where no fetch cached the high watermark

    consumer.positions[0] = 100
    assert measure_lag(consumer, cache) == {(TOPIC, 0): 0, (TOPIC, 1): 5, (TOPIC, 2): 10}
    assert consumer.committed_calls == [[1, 2]]  # cached until the partitions are revoked


def test_a_consumer_with_no_partitions_has_no_lag() -> None:
    assert measure_lag(FakeKafkaConsumer({}, {}, {}), {}) == {}


class FakeFaustConsumer:
    """The Faust consumer's assignment, highwaters and position calls."""

    def __init__(self, highs: dict[TP, int], positions: dict[TP, int]) -> None:
        self.highs, self.positions = highs, positions
        self.position_calls: list[TP] = []

    def assignment(self) -> set[TP]:
        return set(self.highs)

    async def highwaters(self, *partitions: TP) -> dict[TP, int]:
        return {tp: self.highs[tp] for tp in partitions}

    async def position(self, tp: TP) -> int:
        self.position_calls.append(tp)
        return self.positions[tp]


class FakeMonitor:
    def __init__(self, read: dict[TP, int]) -> None:
        self.tp_read_offsets = read


async def test_the_worker_lag_counts_prefetched_records_as_unread_and_skips_changelogs() -> None:
    raw, targeted, changelog = TP("t.raw", 0), TP("t.targeted", 3), TP("app-wallet-state-changelog", 3)
    consumer = FakeFaustConsumer(
        highs={raw: 500, targeted: 80, changelog: 9_000},
        positions={raw: 480, targeted: 80, changelog: 9_000},  # the consumer fetched ahead on raw
    )
    monitor = FakeMonitor({raw: 299})  # the agents saw offset 299 of raw last; nothing of targeted yet

    lags = await measure_worker_lag(consumer, monitor, {"t.raw", "t.targeted"})

    assert lags == {("t.raw", 0): 200, ("t.targeted", 3): 0}
    assert consumer.position_calls == [targeted]  # asked only where the agents have seen nothing


def test_a_groups_lag_series_follow_its_assignment() -> None:
    metrics = PipelineMetrics()
    metrics.set_consumer_lag("g", {(TOPIC, 0): 3, (TOPIC, 1): 0})
    metrics.set_consumer_lag("other", {(TOPIC, 0): 7})
    metrics.set_consumer_lag("g", {(TOPIC, 1): 4})  # partition 0 moved to another member

    assert lag_of(metrics, "g", TOPIC, 0) is None
    assert lag_of(metrics, "g", TOPIC, 1) == 4
    assert lag_of(metrics, "other", TOPIC, 0) == 7


class LagWatchingSink:
    """Writes nothing anywhere; notes the exported lag of partition 0 as each record arrives."""

    stage = "executor"

    def __init__(self, metrics: PipelineMetrics, fail_flush: bool = False) -> None:
        self.metrics, self.fail_flush = metrics, fail_flush
        self.seen: list[float | None] = []

    def topics(self) -> Sequence[str]:
        return [TOPIC]

    def decode(self, record: Record) -> RawTrade:
        return RawTrade.model_validate_json(record.value or b"")

    def write(self, value: RawTrade, record: Record) -> None:
        self.seen.append(lag_of(self.metrics, "g", TOPIC, 0))

    def flush(self) -> Sequence[Rejection]:
        if self.fail_flush:
            raise ConnectionError("database down")
        return ()


def build_loop(consumer: FakeConsumer, metrics: PipelineMetrics, **policy: float) -> ConsumeLoop:
    ticks = itertools.count()  # one second per clock reading
    return ConsumeLoop(
        consumer,
        FakePublisher(),
        metrics,
        LoopPolicy(**policy),  # type: ignore[arg-type]
        clock=lambda: float(next(ticks)),
        clock_ms=lambda: 1_790_000_000_000,
    )


def test_the_consume_loop_exports_its_groups_lag_as_it_reads() -> None:
    broker, metrics = FakeBroker(), PipelineMetrics()
    for number in range(5):
        broker.append_message(TOPIC, build_trade(transaction_hash="0x" + f"{number:064x}"))
    sink = LagWatchingSink(metrics)

    build_loop(broker.consumer("g"), metrics, batch_size=2, lag_interval_secs=0).run(sink, max_idle_secs=0)

    # Measured after each poll: 3 left after the first two records, 1 after four, none at the end.
    assert sink.seen == [None, None, 3, 3, 1]
    assert lag_of(metrics, "g", TOPIC, 0) == 0


def test_a_lag_that_cannot_be_measured_never_stops_the_loop() -> None:
    broker, metrics = FakeBroker(), PipelineMetrics()
    broker.append_message(TOPIC, build_trade())
    consumer = broker.consumer("g")

    def unavailable() -> dict[tuple[str, int], int]:
        raise RuntimeError("broker unreachable")

    consumer.lag = unavailable  # type: ignore[method-assign]
    sink = LagWatchingSink(metrics)
    build_loop(consumer, metrics, lag_interval_secs=0).run(sink, max_idle_secs=0)
    assert sink.seen == [None] and consumer.commits == [{(TOPIC, 0): 1}]


def test_a_failed_flush_counts_as_a_sink_failure_of_its_stage() -> None:
    broker, metrics = FakeBroker(), PipelineMetrics()
    broker.append_message(TOPIC, build_trade())
    failures = {"stage": "executor"}
    assert metrics.registry.get_sample_value("polycopy_sink_failures_total", failures) == 0

    with pytest.raises(SinkFlushError):
        build_loop(broker.consumer("g"), metrics).run(
            LagWatchingSink(metrics, fail_flush=True), max_idle_secs=0
        )

    assert metrics.registry.get_sample_value("polycopy_sink_failures_total", failures) == 1

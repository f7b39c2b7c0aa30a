"""The at-least-once consume loop of the confluent-kafka sinks (the executor, the PostgreSQL sink).

Shape after quixstreams' `BatchingSink`: poll -> decode into the schema model (or dead-letter the record and
go on) -> hand it to the sink's `write` -> `flush` (the sink makes its effect durable: rows written, reports
delivered; dead letters are delivered too) -> commit the offsets, only after the flush succeeded. A failed
flush commits nothing and stops the loop, so the batch is read again by the next run (each sink makes
re-reading harmless). A stop (SIGTERM) or a rebalance flushes and commits what was already read.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol, TypeVar

from polycopy.infra.kafka import Record, now_ms
from polycopy.infra.logs import correlation_ids, log_context
from polycopy.infra.metrics import PipelineMetrics
from schemas.deadletter import DeadLetter, build_dead_letter

log = logging.getLogger(__name__)

T = TypeVar("T")


class SinkFlushError(RuntimeError):
    """A sink could not make its batch durable; nothing was committed, so the batch will be read again."""


class RecordRejected(Exception):  # noqa: N818 - an outcome for one record, raised from the write hook
    """Raised by a sink's `write` for one record it will never be able to handle: that record is
    dead-lettered with this reason, and the loop goes on."""


@dataclass(frozen=True)
class Rejection:
    """A record a sink gave up on during a flush: dead-lettered before the batch's offsets commit."""

    record: Record
    reason: str
    error_type: str = "RecordRejected"


class SinkConsumer(Protocol):
    """What the loop needs of a consumer (`polycopy.infra.kafka.RecordConsumer`, or a fake in tests)."""

    def subscribe(self, topics: Iterable[str], on_revoke: Callable[[], None] | None = None) -> None: ...

    def poll_batch(self, max_records: int, timeout_secs: float) -> list[Record]: ...

    def commit(self, offsets: Mapping[tuple[str, int], int]) -> bool: ...

    def lag(self) -> Mapping[tuple[str, int], int]: ...

    def close(self) -> None: ...

    @property
    def group(self) -> str: ...


class DeadLetterPublisher(Protocol):
    """Where dead letters go (`polycopy.infra.kafka.MessagePublisher`, or a fake in tests)."""

    delivery_failures: int  # messages the broker refused (or that timed out) so far

    def publish_dead_letter(self, letter: DeadLetter) -> None: ...

    def flush(self, timeout: float = 30.0) -> int: ...


class BatchSink(Protocol[T]):
    """A sink run by `ConsumeLoop`: it decodes, takes records one by one, and makes a batch durable."""

    @property
    def stage(self) -> str:
        """The stage name on its dead letters and in `polycopy_dead_letters_total`."""
        ...

    def topics(self) -> Sequence[str]:
        """The broker-side topic names to consume."""
        ...

    def decode(self, record: Record) -> T | None:
        """The record's schema model; None when there is nothing to write (e.g. a tombstone).
        Raises ValueError (pydantic's ValidationError is one) for a record to dead-letter."""
        ...

    def write(self, value: T, record: Record) -> None:
        """Handle one decoded record (add it to the batch, or act on it). Raise `RecordRejected` to
        dead-letter this record; any other exception stops the loop with nothing committed."""
        ...

    def flush(self) -> Sequence[Rejection]:
        """Make everything written since the last flush durable; return the records given up on (they are
        dead-lettered). Raise when the batch could not be made durable: nothing is committed."""
        ...


@dataclass(frozen=True)
class LoopPolicy:
    """When to flush: `batch_size` records pending, or `flush_secs` since the last flush (0: every poll)."""

    batch_size: int = 100
    flush_secs: float = 0.0
    poll_timeout_secs: float = 0.1
    dead_letter_timeout_secs: float = 30.0
    lag_interval_secs: float = 5.0  # how often the consumer lag is measured for `polycopy_consumer_lag`


class ConsumeLoop:
    """Runs one sink over one consumer: poll -> decode or dead-letter -> write -> flush -> commit."""

    def __init__(
        self,
        consumer: SinkConsumer,
        dead_letters: DeadLetterPublisher,
        metrics: PipelineMetrics,
        policy: LoopPolicy | None = None,
        *,
        clock: Callable[[], float] = time.monotonic,
        clock_ms: Callable[[], int] = now_ms,
    ) -> None:
        self._consumer, self._dead_letters, self._metrics = consumer, dead_letters, metrics
        self._policy = policy or LoopPolicy()
        self._clock, self._clock_ms = clock, clock_ms
        self._stop = threading.Event()
        self._pending: dict[tuple[str, int], int] = {}  # (topic, partition) -> next offset, not yet committed
        self._pending_records = 0
        self._failed = False
        self._failures_seen = dead_letters.delivery_failures
        self.committed = 0  # records whose offsets were committed
        self.dead_lettered = 0

    def stop(self, *_: object) -> None:
        """Ask the loop to end after a last flush (usable as a signal handler)."""
        self._stop.set()

    def is_stopping(self) -> bool:
        """True once a stop was asked for (a sink waiting on PostgreSQL gives up then)."""
        return self._stop.is_set()

    def run(
        self,
        sink: BatchSink[T],
        max_idle_secs: float | None = None,
        *,
        between_polls: Callable[[], None] | None = None,
    ) -> None:
        """Consume until stopped (or, with `max_idle_secs`, until nothing arrived for that long), then flush
        and commit what is pending. A failed flush raises `SinkFlushError` with nothing committed. Closes the
        consumer. `between_polls` is the sink's own periodic work (the executor's resting orders)."""
        self._consumer.subscribe(sink.topics(), on_revoke=lambda: self._on_revoke(sink))
        last_record = last_flush = last_lag = self._clock()
        try:
            while not self._stop.is_set():
                records = self._consumer.poll_batch(self._policy.batch_size, self._policy.poll_timeout_secs)
                for record in records:
                    self._handle(sink, record)
                if between_polls is not None:
                    between_polls()
                if records:
                    last_record = self._clock()
                if self._clock() - last_lag >= self._policy.lag_interval_secs:
                    self._report_lag()
                    last_lag = self._clock()
                if self._pending_records and (
                    self._pending_records >= self._policy.batch_size
                    or self._clock() - last_flush >= self._policy.flush_secs
                ):
                    self._checkpoint(sink)
                    last_flush = self._clock()
                if not records and max_idle_secs is not None and self._clock() - last_record > max_idle_secs:
                    break
            self._checkpoint(sink)  # the last flush of a clean stop (or of an idle end)
        except BaseException:
            self._failed = True  # a revoke during close must not flush a batch that failed half-way
            raise
        finally:
            self._consumer.close()

    def _handle(self, sink: BatchSink[T], record: Record) -> None:
        # The offset counts as handled whatever happens below: written, skipped, or dead-lettered.
        self._pending[(record.topic, record.partition)] = record.offset + 1
        self._pending_records += 1
        try:
            value = sink.decode(record)
        except ValueError as error:
            self._dead_letter(sink.stage, record, str(error), type(error).__name__)
            return
        if value is None:
            return
        with log_context(stage=sink.stage, **correlation_ids(value)):
            log.debug("%s: %s[%d]@%d", type(value).__name__, record.topic, record.partition, record.offset)
            try:
                sink.write(value, record)
            except RecordRejected as rejected:
                self._dead_letter(sink.stage, record, str(rejected), type(rejected).__name__)

    def _checkpoint(self, sink: BatchSink[T]) -> None:
        """Flush the sink and the dead letters; then, and only then, commit the offsets read so far."""
        if not self._pending_records:
            return
        try:
            rejections = sink.flush()
        except Exception as error:
            self._metrics.sink_failures.labels(sink.stage).inc()
            raise SinkFlushError(
                f"{sink.stage}: flush failed, nothing committed (the batch will be read again): {error}"
            ) from error
        for rejection in rejections:
            self._dead_letter(sink.stage, rejection.record, rejection.reason, rejection.error_type)
        undelivered = self._dead_letters.flush(self._policy.dead_letter_timeout_secs)
        failures = self._dead_letters.delivery_failures - self._failures_seen
        self._failures_seen = self._dead_letters.delivery_failures
        if undelivered or failures:
            self._metrics.sink_failures.labels(sink.stage).inc()
            raise SinkFlushError(
                f"{sink.stage}: {undelivered + failures} messages not delivered to Kafka, nothing committed "
                "(the batch will be read again)"
            )
        if self._consumer.commit(dict(self._pending)):
            self.committed += self._pending_records
        self._pending.clear()
        self._pending_records = 0

    def _report_lag(self) -> None:
        try:
            lags = self._consumer.lag()
        except Exception as error:  # noqa: BLE001 - a metric must never stop the sink; the next try may work
            log.debug("consumer lag not measured: %s", error)
            return
        self._metrics.set_consumer_lag(self._consumer.group, lags)

    def _on_revoke(self, sink: BatchSink[T]) -> None:
        # Partitions are about to move to another member: make what was read durable and commit it now, so
        # the new owner starts after it. After a failure there is nothing to save: the batch is re-read.
        if not self._failed:
            self._checkpoint(sink)

    def _dead_letter(self, stage: str, record: Record, reason: str, error_type: str) -> None:
        self._metrics.dead_letters.labels(stage).inc()
        self.dead_lettered += 1
        self._dead_letters.publish_dead_letter(
            build_dead_letter(
                stage,
                reason,
                record.value,
                error_type=error_type,
                occurred_at_ms=self._clock_ms(),
                topic=record.topic,
                partition=record.partition,
                offset=record.offset,
            )
        )
        log.warning(
            "%s: record %s[%d]@%d sent to the dead-letter topic: %s",
            stage,
            record.topic,
            record.partition,
            record.offset,
            reason,
        )

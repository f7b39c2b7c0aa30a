"""Reading topics without a consumer group: a bounded read (`read_topic`), a follower handing on every
record from a time on (`TopicFollower`), and the latest value per key of a compacted topic
(`CompactedTopicReader`)."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from typing import Any

from confluent_kafka import Consumer, KafkaError, KafkaException, TopicPartition

from polycopy.infra.kafka.admin import KafkaSetupError
from polycopy.infra.kafka.consume import Record
from polycopy.infra.kafka.publish import CLIENT_LOG
from polycopy.infra.settings import PolycopySettings
from schemas.topics import TopicSpec

# Answers that only mean "not yet" while a topic is new or a leader moves.
TRANSIENT_CODES = frozenset(
    {
        KafkaError.NOT_LEADER_FOR_PARTITION,
        KafkaError.LEADER_NOT_AVAILABLE,
        KafkaError.UNKNOWN_TOPIC_OR_PART,
        KafkaError.REQUEST_TIMED_OUT,
        KafkaError._TIMED_OUT,
        KafkaError._TRANSPORT,
    }
)

log = logging.getLogger(__name__)


def end_offsets(settings: PolycopySettings, spec: TopicSpec) -> dict[int, int]:
    """The next offset of every partition: where a reader that wants only newer records starts."""
    consumer = _reader(settings, "polycopy-reader", fetch_wait_ms=50)
    try:
        return {p: high for p, (_, high) in _partition_bounds(consumer, settings.topic_name(spec)).items()}
    finally:
        consumer.close()


def group_backlog(settings: PolycopySettings, group: str, specs: Iterable[TopicSpec]) -> int:
    """Records of `specs`' topics that consumer group `group` has not committed yet (a partition it never
    committed counts from its start): 0 once the group has made everything durable. Joins no group."""
    consumer = _reader(settings, group, fetch_wait_ms=50)
    try:
        total = 0
        for spec in specs:
            name = settings.topic_name(spec)
            bounds = _partition_bounds(consumer, name)
            committed = consumer.committed([TopicPartition(name, p) for p in bounds], timeout=10)
            for position in committed:
                low, high = bounds[position.partition]
                total += max(high - (position.offset if position.offset >= 0 else low), 0)
        return total
    finally:
        consumer.close()


def read_topic(
    settings: PolycopySettings,
    spec: TopicSpec,
    *,
    from_beginning: bool = True,
    limit: int | None = None,
    idle_secs: float = 10.0,
    since_ms: int | None = None,
    start_offsets: dict[int, int] | None = None,
) -> Iterator[Record]:
    """Read a topic, without a consumer group, up to its end as of the call (or `limit` records).

    Starts at `start_offsets`, else at the first record at or after `since_ms`, else at the beginning
    (`from_beginning`) or `limit` records before the end. Gives up after `idle_secs` without a record.
    """
    consumer = _reader(settings, "polycopy-reader", fetch_wait_ms=50)
    try:
        name = settings.topic_name(spec)
        bounds = _partition_bounds(consumer, name)
        starts = {}
        for partition, (low, high) in bounds.items():
            if start_offsets is not None:
                starts[partition] = max(start_offsets.get(partition, low), low)
            else:
                starts[partition] = low if from_beginning else max(high - (limit or 0), low)
        if since_ms is not None:
            starts = _offsets_at(consumer, name, since_ms, bounds)
        partitions = [TopicPartition(name, partition, offset) for partition, offset in starts.items()]
        remaining = {tp.partition for tp in partitions if tp.offset < bounds[tp.partition][1]}
        consumer.assign(partitions)
        count, last_seen = 0, time.monotonic()
        while remaining and (limit is None or count < limit):
            message = consumer.poll(0.2)
            if message is None:
                if time.monotonic() - last_seen > idle_secs:
                    return
                continue
            if message.error():
                continue
            last_seen = time.monotonic()
            if message.offset() + 1 >= bounds[message.partition()][1]:
                remaining.discard(message.partition())
            if message.offset() >= bounds[message.partition()][1]:
                continue
            count += 1
            yield Record.of(message)
    finally:
        consumer.close()


class TopicFollower:
    """Hands every record of a topic to `on_record`, from `since_ms` (or the beginning) on, following it in a
    background thread with no consumer group: each process that needs the whole stream runs one."""

    def __init__(
        self,
        settings: PolycopySettings,
        spec: TopicSpec,
        on_record: Callable[[Record], None],
        *,
        since_ms: int | None = None,
    ) -> None:
        self._settings, self._on_record, self._since_ms = settings, on_record, since_ms
        self._name = settings.topic_name(spec)
        self._caught_up = threading.Event()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"follower-{self._name}", daemon=True)
        self._error: Exception | None = None
        self.failures = 0

    @property
    def topic(self) -> str:
        """The broker-side name of the topic followed."""
        return self._name

    @property
    def started(self) -> bool:
        return self._thread.is_alive()

    @property
    def caught_up(self) -> bool:
        """True once the records on the topic when following began have been handed on (or it failed)."""
        return self._caught_up.is_set()

    def start(self, wait_secs: float = 30.0) -> TopicFollower:
        """Start following; wait until the records already on the topic have been handed on."""
        return self.begin().wait_caught_up(wait_secs)

    def begin(self) -> TopicFollower:
        """Start following without waiting (several followers catch up at once; `wait_caught_up` then)."""
        self._thread.start()
        return self

    def wait_caught_up(self, wait_secs: float = 30.0) -> TopicFollower:
        """Wait until the records that were on the topic when following began have been handed on."""
        if not self._caught_up.wait(wait_secs):
            raise KafkaSetupError(f"could not read {self._name} up to its end within {wait_secs} s")
        if self._error is not None:
            raise KafkaSetupError(f"cannot follow {self._name}: {self._error}") from self._error
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)

    def _run(self) -> None:
        consumer = _reader(self._settings, "polycopy-follower", fetch_wait_ms=10)
        try:
            bounds = _partition_bounds(consumer, self._name)
            ends = {partition: high for partition, (_, high) in bounds.items()}
            position = {partition: low for partition, (low, _) in bounds.items()}
            if self._since_ms is not None:
                position = _offsets_at(consumer, self._name, self._since_ms, bounds)
            consumer.assign([TopicPartition(self._name, p, offset) for p, offset in position.items()])
            while not self._stop.is_set():
                if not self._caught_up.is_set() and all(position[p] >= ends[p] for p in ends):
                    self._caught_up.set()
                message = consumer.poll(0.1)
                if message is None or message.error():
                    continue
                position[message.partition()] = message.offset() + 1
                try:
                    self._on_record(Record.of(message))
                except Exception:  # noqa: BLE001 - one bad record must not stop the stream; it is logged
                    self.failures += 1
                    log.exception(
                        "record %s/%d/%d not handled", self._name, message.partition(), message.offset()
                    )
        except Exception as error:  # noqa: BLE001 - a dead follower must be loud, never silent
            log.exception("follower of %s stopped", self._name)
            self._error = error
            self._caught_up.set()  # wake start(), which raises it
        finally:
            consumer.close()


class CompactedTopicReader:
    """Keeps the latest value per key of a compacted topic in memory, following it in a background thread.

    Every process that needs the whole table (e.g. all copy-wallet configs) runs one; no consumer group.
    """

    def __init__(
        self,
        settings: PolycopySettings,
        spec: TopicSpec,
        decode: Callable[[bytes], Any],
        on_change: Callable[[str, Any | None], None] | None = None,
    ) -> None:
        self._decode, self._on_change = decode, on_change
        self._values: dict[str, Any] = {}
        self._lock = threading.Lock()
        self._name = settings.topic_name(spec)
        self._follower = TopicFollower(settings, spec, lambda record: self._apply(record.key, record.value))
        self.decode_errors = 0

    def start(self, wait_secs: float = 30.0) -> CompactedTopicReader:
        """Start following; wait until the topic's current content is loaded."""
        self._follower.start(wait_secs)
        return self

    def begin(self) -> CompactedTopicReader:
        """Start following without waiting (`wait_caught_up` then)."""
        self._follower.begin()
        return self

    def wait_caught_up(self, wait_secs: float = 30.0) -> CompactedTopicReader:
        """Wait until the topic's content when following began is loaded."""
        self._follower.wait_caught_up(wait_secs)
        return self

    def stop(self) -> None:
        self._follower.stop()

    def snapshot(self) -> dict[str, Any]:
        with self._lock:
            return dict(self._values)

    def _apply(self, key: bytes | None, value: bytes | None) -> None:
        if key is None:
            return
        name = key.decode()
        try:
            decoded = self._decode(value) if value is not None else None
        except Exception:  # noqa: BLE001 - bad records are counted and skipped, the latest good value stays
            self.decode_errors += 1
            log.warning("undecodable record for key %s on %s", name, self._name)
            return
        with self._lock:
            if decoded is None:
                self._values.pop(name, None)
            else:
                self._values[name] = decoded
        if self._on_change is not None:
            self._on_change(name, decoded)


def _reader(settings: PolycopySettings, group: str, *, fetch_wait_ms: int) -> Consumer:
    # A consumer that is assigned partitions and never commits: the group id is only a label.
    return Consumer(
        {
            "bootstrap.servers": settings.kafka_bootstrap_servers,
            "group.id": group,
            "enable.auto.commit": False,
            "fetch.wait.max.ms": fetch_wait_ms,
            "logger": CLIENT_LOG,
        }
    )


def _partition_bounds(consumer: Consumer, name: str) -> dict[int, tuple[int, int]]:
    """(low, high) watermark offsets of every partition of a topic."""
    metadata = consumer.list_topics(name, timeout=10).topics[name]
    if metadata.error is not None:
        raise KafkaSetupError(f"topic {name}: {metadata.error}")
    return {p: _watermarks(consumer, TopicPartition(name, p)) for p in sorted(metadata.partitions)}


def _watermarks(consumer: Consumer, partition: TopicPartition, attempts: int = 20) -> tuple[int, int]:
    """A partition's (low, high) offsets; asked again while its leader moves (a new topic, a restarted
    broker answers NOT_LEADER_FOR_PARTITION for a moment), so a read never fails on a transient answer."""
    for attempt in range(1, attempts + 1):
        try:
            low, high = consumer.get_watermark_offsets(partition, timeout=10)
            return low, high
        except KafkaException as error:
            if attempt == attempts or not _is_transient(error.args[0]):
                raise
            time.sleep(min(0.1 * 2**attempt, 2.0))
    raise AssertionError("unreachable")


def _is_transient(error: KafkaError) -> bool:
    return error.retriable() or error.code() in TRANSIENT_CODES


def _offsets_at(
    consumer: Consumer, name: str, since_ms: int, bounds: dict[int, tuple[int, int]]
) -> dict[int, int]:
    """Per partition, the first offset at or after `since_ms` (record time), else its end."""
    found = consumer.offsets_for_times([TopicPartition(name, p, since_ms) for p in bounds], timeout=10)
    return {tp.partition: tp.offset if tp.offset >= 0 else bounds[tp.partition][1] for tp in found}

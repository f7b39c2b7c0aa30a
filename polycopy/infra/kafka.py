"""The one module that imports confluent-kafka: producers, consumers, topic admin, compacted-topic readers."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaError, KafkaException, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

from polycopy.infra.settings import PolycopySettings
from schemas.base import Message
from schemas.deadletter import DeadLetter
from schemas.topics import DEAD_LETTERS, TopicSpec

log = logging.getLogger(__name__)


class KafkaSetupError(RuntimeError):
    """The broker could not be reached or a topic could not be created."""


def now_ms() -> int:
    return time.time_ns() // 1_000_000


def producer_config(settings: PolycopySettings, **overrides: Any) -> dict[str, Any]:
    """An idempotent, acks=all producer that partitions like Java clients and aiokafka (Faust) do.

    murmur2 matters: librdkafka's default partitioner hashes keys differently, which would put a wallet's
    reports on another partition than its intents and break the co-partitioned processor state.
    """
    return {
        "bootstrap.servers": settings.kafka_bootstrap_servers,
        "enable.idempotence": True,
        "acks": "all",
        "linger.ms": 1,
        "compression.type": "lz4",
        "partitioner": "murmur2_random",
        "client.id": "polycopy",
    } | overrides


class MessagePublisher:
    """Publishes schema messages with explicit keys; counts delivery failures instead of dropping silently."""

    def __init__(self, settings: PolycopySettings, *, client_id: str = "polycopy", **overrides: Any) -> None:
        self._topic_name = settings.topic_name
        self._producer = Producer(producer_config(settings, **{"client.id": client_id} | overrides))
        self.delivery_failures = 0
        self.delivered = 0

    def _on_delivery(self, error: KafkaError | None, _message: Any) -> None:
        if error is not None:
            self.delivery_failures += 1
            log.error("delivery failed: %s", error)
        else:
            self.delivered += 1

    def publish(
        self, spec: TopicSpec, key: str | None, message: Message | None, *, timestamp_ms: int = 0
    ) -> None:
        """Queue one message (None = tombstone on a compacted topic); blocks briefly if the queue is full."""
        value = message.to_bytes() if message is not None else None
        while True:
            try:
                self._producer.produce(
                    self._topic_name(spec),
                    value=value,
                    key=key.encode() if key is not None else None,
                    timestamp=timestamp_ms,
                    on_delivery=self._on_delivery,
                )
                break
            except BufferError:
                self._producer.poll(0.05)
        self._producer.poll(0)

    def publish_dead_letter(self, letter: DeadLetter) -> None:
        self.publish(DEAD_LETTERS, letter.stage, letter)

    def poll(self, timeout: float = 0) -> None:
        self._producer.poll(timeout)

    def flush(self, timeout: float = 30.0) -> int:
        """Wait for every queued message; returns how many are still undelivered."""
        return int(self._producer.flush(timeout))


def consume_batch(consumer: Consumer, max_messages: int, timeout: float) -> list[Any]:
    """Wait up to `timeout` for one message, then take whatever else is already there.

    `Consumer.consume(n, timeout)` waits for n messages or the whole timeout, which adds the timeout to
    every message's latency at low rates.
    """
    first = consumer.poll(timeout)
    if first is None:
        return []
    return (
        [first, *consumer.consume(num_messages=max_messages - 1, timeout=0)] if max_messages > 1 else [first]
    )


def create_topics(settings: PolycopySettings, specs: Iterable[TopicSpec], timeout: float = 30.0) -> list[str]:
    """Create missing topics; existing ones are left alone. Returns the names created."""
    admin = AdminClient({"bootstrap.servers": settings.kafka_bootstrap_servers})
    try:
        existing = set(admin.list_topics(timeout=timeout).topics)
    except KafkaException as error:
        raise KafkaSetupError(f"cannot reach Kafka at {settings.kafka_bootstrap_servers}: {error}") from error
    wanted = [spec for spec in specs if settings.topic_name(spec) not in existing]
    if not wanted:
        return []
    futures = admin.create_topics(
        [
            NewTopic(
                settings.topic_name(s),
                num_partitions=s.partitions,
                replication_factor=1,
                config=s.broker_config(),
            )
            for s in wanted
        ],
        operation_timeout=timeout,
    )
    created = []
    for name, future in futures.items():
        try:
            future.result()
            created.append(name)
        except KafkaException as error:
            if error.args[0].code() != KafkaError.TOPIC_ALREADY_EXISTS:
                raise KafkaSetupError(f"cannot create topic {name}: {error}") from error
    return created


def wait_for_broker(settings: PolycopySettings, timeout_secs: float = 60.0) -> None:
    """Block until the broker answers metadata requests."""
    admin = AdminClient({"bootstrap.servers": settings.kafka_bootstrap_servers})
    deadline = time.monotonic() + timeout_secs
    while True:
        try:
            admin.list_topics(timeout=2)
            return
        except KafkaException as error:
            if time.monotonic() > deadline:
                raise KafkaSetupError(
                    f"Kafka at {settings.kafka_bootstrap_servers} not ready: {error}"
                ) from error
            time.sleep(0.5)


@dataclass(frozen=True)
class Record:
    """One consumed record, decoupled from the client library."""

    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    timestamp_ms: int

    @classmethod
    def of(cls, message: Any) -> Record:
        """The record of a confluent-kafka message."""
        return cls(
            message.topic(),
            message.partition(),
            message.offset(),
            message.key(),
            message.value(),
            message.timestamp()[1],
        )


def end_offsets(settings: PolycopySettings, spec: TopicSpec) -> dict[int, int]:
    """The next offset of every partition: where a reader that wants only newer records starts."""
    consumer = Consumer(
        {"bootstrap.servers": settings.kafka_bootstrap_servers, "group.id": "polycopy-reader"}
    )
    try:
        name = settings.topic_name(spec)
        metadata = consumer.list_topics(name, timeout=10).topics[name]
        return {
            p: consumer.get_watermark_offsets(TopicPartition(name, p), timeout=10)[1]
            for p in metadata.partitions
        }
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
    consumer = Consumer(
        {
            "bootstrap.servers": settings.kafka_bootstrap_servers,
            "group.id": "polycopy-reader",
            "enable.auto.commit": False,
            "fetch.wait.max.ms": 50,
        }
    )
    try:
        name = settings.topic_name(spec)
        metadata = consumer.list_topics(name, timeout=10).topics[name]
        if metadata.error is not None:
            raise KafkaSetupError(f"topic {name}: {metadata.error}")
        partitions = [TopicPartition(name, p) for p in sorted(metadata.partitions)]
        bounds = {tp.partition: consumer.get_watermark_offsets(tp, timeout=10) for tp in partitions}
        for tp in partitions:
            low, high = bounds[tp.partition]
            if start_offsets is not None:
                tp.offset = max(start_offsets.get(tp.partition, low), low)
            elif from_beginning or since_ms is not None:
                tp.offset = low
            else:
                tp.offset = max(high - (limit or 0), low)
        if since_ms is not None:
            for tp in partitions:
                tp.offset = since_ms
            partitions = consumer.offsets_for_times(partitions, timeout=10)
            partitions = [
                TopicPartition(
                    tp.topic, tp.partition, tp.offset if tp.offset >= 0 else bounds[tp.partition][1]
                )
                for tp in partitions
            ]
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


class RecordConsumer:
    """A consumer-group member for the sinks: batches of `Record`s in, explicit offsets committed out.

    Nothing is committed unless the caller says so (no auto-commit), and the caller names the offsets, so a
    commit covers exactly what it made durable, never what was merely fetched.
    """

    def __init__(self, settings: PolycopySettings, group: str, **overrides: Any) -> None:
        self.group = group
        self.topics: tuple[str, ...] = ()
        self._consumer = Consumer(
            {
                "bootstrap.servers": settings.kafka_bootstrap_servers,
                "group.id": group,
                "enable.auto.commit": False,
                "auto.offset.reset": "earliest",
                "enable.partition.eof": False,
                "fetch.wait.max.ms": 10,
            }
            | overrides
        )

    def subscribe(self, topics: Iterable[str], on_revoke: Callable[[], None] | None = None) -> None:
        """Join the group for `topics`; `on_revoke` runs (inside a poll) before partitions are taken away."""
        self.topics = tuple(topics)

        def revoked(_consumer: Consumer, _partitions: list[TopicPartition]) -> None:
            if on_revoke is not None:
                on_revoke()

        self._consumer.subscribe(list(self.topics), on_revoke=revoked)

    def poll_batch(self, max_records: int, timeout_secs: float) -> list[Record]:
        """Up to `max_records` records, waiting at most `timeout_secs` for the first (see `consume_batch`)."""
        records = []
        for message in consume_batch(self._consumer, max_records, timeout_secs):
            if message.error():
                log.warning("consumer error: %s", message.error())
            else:
                records.append(Record.of(message))
        return records

    def commit(self, offsets: Mapping[tuple[str, int], int]) -> bool:
        """Commit (topic, partition) -> next offset to read, synchronously. False when refused (e.g. during a
        rebalance): nothing is lost, the records are read again."""
        if not offsets:
            return True
        try:
            self._consumer.commit(
                offsets=[TopicPartition(topic, part, offset) for (topic, part), offset in offsets.items()],
                asynchronous=False,
            )
        except KafkaException as error:
            log.warning("offset commit refused, the records will be read again: %s", error)
            return False
        return True

    def close(self) -> None:
        """Leave the group without committing anything more."""
        self._consumer.close()


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
        self._settings, self._spec, self._decode, self._on_change = settings, spec, decode, on_change
        self._values: dict[str, Any] = {}
        self._lock = threading.Lock()
        self._caught_up = threading.Event()
        self._stop = threading.Event()
        self._name = settings.topic_name(spec)
        self._thread = threading.Thread(target=self._run, name=f"reader-{self._name}", daemon=True)
        self.decode_errors = 0

    def start(self, wait_secs: float = 30.0) -> CompactedTopicReader:
        """Start following; wait until the topic's current content is loaded."""
        self._thread.start()
        if not self._caught_up.wait(wait_secs):
            raise KafkaSetupError(f"could not load {self._name} within {wait_secs} s")
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)

    def snapshot(self) -> dict[str, Any]:
        with self._lock:
            return dict(self._values)

    def _run(self) -> None:
        consumer = Consumer(
            {
                "bootstrap.servers": self._settings.kafka_bootstrap_servers,
                "group.id": "polycopy-compacted-reader",
                "enable.auto.commit": False,
                "fetch.wait.max.ms": 100,
            }
        )
        try:
            metadata = consumer.list_topics(self._name, timeout=10).topics[self._name]
            partitions = [TopicPartition(self._name, p, OFFSET_BEGINNING) for p in metadata.partitions]
            ends = {tp.partition: consumer.get_watermark_offsets(tp, timeout=10)[1] for tp in partitions}
            consumer.assign(partitions)
            position = {p: 0 for p in ends}
            if all(end == 0 for end in ends.values()):
                self._caught_up.set()
            while not self._stop.is_set():
                message = consumer.poll(0.2)
                if message is None or message.error():
                    continue
                self._apply(message.key(), message.value())
                position[message.partition()] = message.offset() + 1
                if not self._caught_up.is_set() and all(position[p] >= ends[p] for p in ends):
                    self._caught_up.set()
        except Exception:  # noqa: BLE001 - a dead reader must be loud, never silent
            log.exception("compacted reader for %s stopped", self._name)
        finally:
            consumer.close()

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


def wait_for_consumer_group(settings: PolycopySettings, group: str, timeout_secs: float = 60.0) -> bool:
    """Wait until a consumer group is stable with members (its partitions assigned)."""
    admin = AdminClient({"bootstrap.servers": settings.kafka_bootstrap_servers})
    deadline = time.monotonic() + timeout_secs
    while time.monotonic() < deadline:
        try:
            description = admin.describe_consumer_groups([group])[group].result(timeout=5)
            if description.members and str(description.state).upper().endswith("STABLE"):
                return True
        except KafkaException:
            pass
        time.sleep(0.5)
    return False

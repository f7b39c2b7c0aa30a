"""Consuming in a consumer group: records decoupled from the client library, batches, explicit commits."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from confluent_kafka import Consumer, KafkaError, KafkaException, TopicPartition

from polycopy.infra.kafka.admin import KafkaSetupError
from polycopy.infra.kafka.lag import measure_lag
from polycopy.infra.kafka.publish import CLIENT_LOG
from polycopy.infra.settings import PolycopySettings

log = logging.getLogger(__name__)


class ConsumerFatalError(KafkaSetupError):
    """The consumer can never consume again: the process must restart (its supervisor restarts it)."""


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


# A member that stops heartbeating is out of its group after this long, and its partitions move: short, so a
# dead process without a restart (or a hot standby waiting) costs seconds, not the client default's 45.
SESSION_TIMEOUT_MS = 10_000
HEARTBEAT_INTERVAL_MS = 1_000


def consumer_config(settings: PolycopySettings, group: str) -> dict[str, Any]:
    """A consumer-group member that commits only what it is told to. With `POLYCOPY_INSTANCE_ID` it is a
    static member (`group.instance.id`): a restarted process rejoins as itself and gets its partitions back
    at once, with no rebalance, instead of waiting for the dead member's session to expire."""
    config: dict[str, Any] = {
        "bootstrap.servers": settings.kafka_bootstrap_servers,
        "group.id": group,
        "enable.auto.commit": False,
        "auto.offset.reset": "earliest",
        "enable.partition.eof": False,
        "fetch.wait.max.ms": 10,
        "session.timeout.ms": SESSION_TIMEOUT_MS,
        "heartbeat.interval.ms": HEARTBEAT_INTERVAL_MS,
        "logger": CLIENT_LOG,
    }
    if settings.instance_id:
        config["group.instance.id"] = f"{group}-{settings.instance_id}"
    return config


class RecordConsumer:
    """A consumer-group member for the sinks: batches of `Record`s in, explicit offsets committed out.

    Nothing is committed unless the caller says so (no auto-commit), and the caller names the offsets, so a
    commit covers exactly what it made durable, never what was merely fetched.
    """

    def __init__(self, settings: PolycopySettings, group: str, **overrides: Any) -> None:
        self.group = group
        self.topics: tuple[str, ...] = ()
        self._committed: dict[tuple[str, int], int] = {}  # per assignment, for partitions not read since
        self._consumer = Consumer(consumer_config(settings, group) | overrides)

    def subscribe(self, topics: Iterable[str], on_revoke: Callable[[], None] | None = None) -> None:
        """Join the group for `topics`; `on_revoke` runs (inside a poll) before partitions are taken away."""
        self.topics = tuple(topics)

        def revoked(_consumer: Consumer, _partitions: list[TopicPartition]) -> None:
            self._committed.clear()
            if on_revoke is not None:
                on_revoke()

        self._consumer.subscribe(list(self.topics), on_revoke=revoked)

    def poll_batch(self, max_records: int, timeout_secs: float) -> list[Record]:
        """Up to `max_records` records, waiting at most `timeout_secs` for the first (see `consume_batch`)."""
        records = []
        for message in consume_batch(self._consumer, max_records, timeout_secs):
            error = message.error()
            if error is None:
                records.append(Record.of(message))
            elif error.fatal() or error.code() == KafkaError._FATAL:
                # A static member whose session timed out (a broker restart longer than the session) can
                # rejoin as a new member and be fenced by its own earlier registration (librdkafka #3437):
                # the client is then dead, and every poll after returns nothing. Stopping says so, and the
                # restarted process rejoins as itself.
                raise ConsumerFatalError(f"consumer of group {self.group} cannot go on: {error.str()}")
            else:
                log.warning("consumer error: %s", error)
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

    def lag(self) -> dict[tuple[str, int], int]:
        """Records still to read per assigned (topic, partition) (`polycopy.infra.kafka.lag.measure_lag`)."""
        return measure_lag(self._consumer, self._committed)

    def close(self) -> None:
        """Leave the group without committing anything more."""
        self._consumer.close()

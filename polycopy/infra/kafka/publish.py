"""Publishing schema messages: the producer configuration every component shares, and the publisher."""

from __future__ import annotations

import logging
import time
from typing import Any

from confluent_kafka import KafkaError, Producer

from polycopy.infra.settings import PolycopySettings
from schemas.base import Message
from schemas.deadletter import DeadLetter
from schemas.topics import DEAD_LETTERS, TopicSpec

log = logging.getLogger(__name__)
# librdkafka's own lines (a broker down, a connection reset) go through Python logging, so they take the
# process's format (JSON stays JSON) instead of raw `%3|...|FAIL|...` lines on stderr. Delivered on poll.
CLIENT_LOG = logging.getLogger("librdkafka")


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
        "logger": CLIENT_LOG,
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

"""The sinks' consumer-group member: a client that can never consume again stops the process with one line,
instead of polling nothing forever."""

from __future__ import annotations

from typing import Any

import pytest
from confluent_kafka import KafkaError

from polycopy.infra.kafka import KafkaSetupError, RecordConsumer
from polycopy.infra.settings import PolycopySettings


class Message:
    def __init__(self, error: KafkaError | None = None, offset: int = 0) -> None:
        self._error, self._offset = error, offset

    def error(self) -> KafkaError | None:
        return self._error

    def topic(self) -> str:
        return "t"

    def partition(self) -> int:
        return 0

    def offset(self) -> int:
        return self._offset

    def key(self) -> bytes:
        return b"k"

    def value(self) -> bytes:
        return b"v"

    def timestamp(self) -> tuple[int, int]:
        return (1, 1_790_000_000_000)


class Client:
    def __init__(self, *messages: Message) -> None:
        self.messages = list(messages)

    def poll(self, timeout: float) -> Any:
        return self.messages.pop(0) if self.messages else None

    def consume(self, num_messages: int, timeout: float) -> list[Any]:
        taken, self.messages = self.messages[:num_messages], self.messages[num_messages:]
        return taken


def consumer_of(*messages: Message) -> RecordConsumer:
    consumer = RecordConsumer(PolycopySettings(kafka_bootstrap_servers="127.0.0.1:1"), "grp-postgres-sink")
    consumer._consumer = Client(*messages)  # type: ignore[assignment]
    return consumer


def test_a_passing_error_is_logged_and_the_records_around_it_are_kept(
    caplog: pytest.LogCaptureFixture,
) -> None:
    transient = KafkaError(KafkaError._TRANSPORT, "broker down")

    records = consumer_of(Message(offset=1), Message(transient), Message(offset=2)).poll_batch(10, 0.1)

    assert [record.offset for record in records] == [1, 2]
    assert "broker down" in caplog.text


def test_a_fatal_error_stops_the_consumer_with_a_line_the_cli_prints() -> None:
    """After a broker restart longer than the 10 s session, a static member can be fenced by its own earlier
    registration (librdkafka #3437). The client is dead then, and the sink polled nothing, forever, with a
    warning per poll: the suspect in a CI chaos run where PostgreSQL got no row for two minutes."""
    fenced = KafkaError(
        KafkaError._FATAL, "Static consumer fenced by other consumer with same group.instance.id", fatal=True
    )

    with pytest.raises(KafkaSetupError, match="grp-postgres-sink cannot go on: .*fenced"):
        consumer_of(Message(offset=1), Message(fenced)).poll_batch(10, 0.1)

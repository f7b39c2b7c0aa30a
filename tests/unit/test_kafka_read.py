"""Reading a topic's bounds survives a leader that moves: a new topic or a restarted broker answers
NOT_LEADER_FOR_PARTITION for a moment, which must not fail a read."""

from __future__ import annotations

import pytest
from confluent_kafka import KafkaError, KafkaException, TopicPartition

from polycopy.infra.kafka import read


class MovingLeader:
    """Answers `not_yet` to the first `failures` questions, then the partition's offsets."""

    def __init__(self, failures: int, not_yet: int = KafkaError.NOT_LEADER_FOR_PARTITION) -> None:
        self.failures, self.not_yet, self.asked = failures, not_yet, 0

    def get_watermark_offsets(self, partition: TopicPartition, timeout: float) -> tuple[int, int]:
        self.asked += 1
        if self.asked <= self.failures:
            raise KafkaException(KafkaError(self.not_yet))
        return 3, 9


def test_a_moving_leader_is_asked_again_until_it_answers(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(read.time, "sleep", lambda _: None)
    consumer = MovingLeader(failures=3)

    assert read._watermarks(consumer, TopicPartition("t", 0)) == (3, 9)  # type: ignore[arg-type]
    assert consumer.asked == 4


def test_an_error_that_is_not_transient_is_raised_at_once(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(read.time, "sleep", lambda _: None)
    consumer = MovingLeader(failures=1, not_yet=KafkaError.TOPIC_AUTHORIZATION_FAILED)

    with pytest.raises(KafkaException):
        read._watermarks(consumer, TopicPartition("t", 0))  # type: ignore[arg-type]
    assert consumer.asked == 1

"""The one package that imports confluent-kafka: publishing, consumer-group consumption, reading topics
without a group, and topic administration. Callers import from here."""

from polycopy.infra.kafka.admin import (
    KafkaSetupError,
    TopicLayout,
    create_named_topics,
    create_topics,
    delete_topics,
    group_assignment,
    wait_for_broker,
    wait_for_consumer_group,
)
from polycopy.infra.kafka.consume import Record, RecordConsumer, consume_batch, consumer_config
from polycopy.infra.kafka.lag import measure_lag, partition_lag
from polycopy.infra.kafka.publish import MessagePublisher, now_ms, producer_config
from polycopy.infra.kafka.read import (
    CompactedTopicReader,
    TopicFollower,
    end_offsets,
    group_backlog,
    read_topic,
)

__all__ = [
    "CompactedTopicReader",
    "KafkaSetupError",
    "MessagePublisher",
    "Record",
    "RecordConsumer",
    "TopicFollower",
    "TopicLayout",
    "consume_batch",
    "consumer_config",
    "create_named_topics",
    "create_topics",
    "delete_topics",
    "end_offsets",
    "group_assignment",
    "group_backlog",
    "measure_lag",
    "partition_lag",
    "now_ms",
    "producer_config",
    "read_topic",
    "wait_for_broker",
    "wait_for_consumer_group",
]

"""Topic administration: creating topics, waiting for the broker and for a consumer group to be ready, and
who in a group holds which partitions."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Any

from confluent_kafka import KafkaError, KafkaException, TopicPartition
from confluent_kafka.admin import (
    AdminClient,
    AlterConfigOpType,
    ConfigEntry,
    ConfigResource,
    NewTopic,
    OffsetSpec,
)

from polycopy.infra.settings import PolycopySettings
from schemas.topics import TopicSpec

BROKER_DEFAULT = -1  # in a CreateTopics request: the broker's own default (Kafka 2.4+, KIP-464)


class KafkaSetupError(RuntimeError):
    """The broker could not be reached or a topic could not be created."""


@dataclass(frozen=True)
class TopicLayout:
    """A topic as the broker is asked to create it: its full name, partitions and topic-level config."""

    name: str
    partitions: int
    config: Mapping[str, str] = field(default_factory=dict)


def create_topics(settings: PolycopySettings, specs: Iterable[TopicSpec], timeout: float = 30.0) -> list[str]:
    """Create missing topics of the registry in this deployment's namespace; existing ones are left alone.
    Returns the names created."""
    layouts = [TopicLayout(settings.topic_name(s), s.partitions, s.broker_config()) for s in specs]
    return create_named_topics(settings, layouts, timeout)


def create_named_topics(
    settings: PolycopySettings,
    layouts: Iterable[TopicLayout],
    timeout: float = 30.0,
    *,
    wait: bool = False,
    update_config: bool = False,
) -> list[str]:
    """Create missing topics by full name; existing ones are left alone, unless `update_config`: then their
    configuration is set to the layout's (only the keys it names). Returns the names created.

    With `wait`, return only once the broker's metadata lists every one of them with all its partitions: a
    topic is created on the controller before the broker serves it, and a client that asks at once (Faust,
    for its tables' changelogs) may be told it does not exist.
    """
    wanted = list(layouts)
    admin = AdminClient({"bootstrap.servers": settings.kafka_bootstrap_servers})
    try:
        existing = set(admin.list_topics(timeout=timeout).topics)
    except KafkaException as error:
        raise KafkaSetupError(f"cannot reach Kafka at {settings.kafka_bootstrap_servers}: {error}") from error
    missing = [layout for layout in wanted if layout.name not in existing]
    created = []
    if missing:
        futures = admin.create_topics(
            [
                NewTopic(
                    layout.name,
                    num_partitions=layout.partitions,
                    # The cluster's `default.replication.factor` (and its `min.insync.replicas` then gives
                    # acks=all its meaning): 1 on the local single broker, 3 on a production cluster.
                    replication_factor=BROKER_DEFAULT,
                    config=dict(layout.config),
                )
                for layout in missing
            ],
            operation_timeout=timeout,
        )
        for name, future in futures.items():
            try:
                future.result()
                created.append(name)
            except KafkaException as error:
                if error.args[0].code() != KafkaError.TOPIC_ALREADY_EXISTS:
                    raise KafkaSetupError(f"cannot create topic {name}: {error}") from error
    present = [layout for layout in wanted if layout.name in existing and layout.config]
    if update_config and present:
        _set_configs(admin, present, timeout)
    if wait:
        _wait_until_served(admin, wanted, timeout)
    return created


def _set_configs(admin: AdminClient, layouts: Sequence[TopicLayout], timeout: float) -> None:
    resources = [
        ConfigResource(
            ConfigResource.Type.TOPIC,
            layout.name,
            incremental_configs=[
                ConfigEntry(key, value, incremental_operation=AlterConfigOpType.SET)
                for key, value in layout.config.items()
            ],
        )
        for layout in layouts
    ]
    for resource, future in admin.incremental_alter_configs(resources, request_timeout=timeout).items():
        try:
            future.result()
        except KafkaException as error:
            raise KafkaSetupError(f"cannot configure topic {resource.name}: {error}") from error


def _wait_until_served(admin: AdminClient, layouts: list[TopicLayout], timeout: float) -> None:
    """Until the metadata lists every partition and each partition's leader answers for its offsets: in
    KRaft a partition is in the metadata a moment before its leader serves it, and asked then it answers
    NOT_LEADER (which aiokafka, restoring a changelog, logs as an ERROR)."""
    deadline = time.monotonic() + timeout
    pending = {layout.name: layout.partitions for layout in layouts}
    unserved: set[TopicPartition] = set()
    while pending or unserved:
        topics = admin.list_topics(timeout=timeout).topics
        for name, partitions in list(pending.items()):
            metadata = topics.get(name)
            if metadata is not None and metadata.error is None and len(metadata.partitions) >= partitions:
                del pending[name]
                unserved |= {TopicPartition(name, p) for p in metadata.partitions}
        if unserved:
            futures = admin.list_offsets(
                {tp: OffsetSpec.latest() for tp in unserved}, request_timeout=timeout
            )
            unserved = {tp for tp, future in futures.items() if not _answers(future)}
        if not (pending or unserved):
            return
        if time.monotonic() > deadline:
            names = sorted(set(pending) | {tp.topic for tp in unserved})
            raise KafkaSetupError(f"topics not served within {timeout} s: {', '.join(names)}")
        time.sleep(0.1)


def _answers(future: Future[Any]) -> bool:
    try:
        future.result()
        return True
    except KafkaException:
        return False


def delete_topics(
    settings: PolycopySettings, select: Callable[[str], bool], timeout: float = 30.0
) -> list[str]:
    """Delete every topic whose name `select` accepts (a finished test's or bench's namespace); returns them.

    Topics already gone are not an error. A broker keeps a few open files per partition, so namespaces that
    are never deleted pile up until it runs out of file descriptors.
    """
    admin = AdminClient({"bootstrap.servers": settings.kafka_bootstrap_servers})
    try:
        names = [name for name in admin.list_topics(timeout=timeout).topics if select(name)]
    except KafkaException as error:
        raise KafkaSetupError(f"cannot reach Kafka at {settings.kafka_bootstrap_servers}: {error}") from error
    if names:
        for future in admin.delete_topics(names, operation_timeout=timeout).values():
            with contextlib.suppress(KafkaException):
                future.result()
    return names


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


def group_assignment(settings: PolycopySettings, group: str) -> dict[str, set[tuple[str, int]]] | None:
    """The partitions each member of a stable group holds, by its static instance id (its member id when it
    has none); None while the group rebalances or the broker does not answer."""
    admin = AdminClient({"bootstrap.servers": settings.kafka_bootstrap_servers})
    try:
        description = admin.describe_consumer_groups([group])[group].result(timeout=5)
    except KafkaException:
        return None
    if not description.members or not str(description.state).upper().endswith("STABLE"):
        return None
    return {
        member.group_instance_id or member.member_id: {
            (tp.topic, tp.partition)
            for tp in (member.assignment.topic_partitions if member.assignment else [])
        }
        for member in description.members
    }

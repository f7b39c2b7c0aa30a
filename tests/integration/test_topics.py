"""Topic creation against the real broker: idempotent, with the registry's layout; topics by full name (the
worker's changelogs) created and served before anyone asks for them."""

from __future__ import annotations

import pytest

from polycopy.infra.kafka import TopicLayout, create_named_topics, create_topics
from polycopy.infra.settings import PolycopySettings
from schemas.topics import ALL_TOPICS

pytestmark = pytest.mark.integration


def test_creating_topics_twice_creates_nothing_the_second_time(settings: PolycopySettings) -> None:
    # The fixture already created them once.
    assert create_topics(settings, ALL_TOPICS) == []


def test_topics_have_the_registry_partitions_and_cleanup_policy(settings: PolycopySettings) -> None:
    from confluent_kafka.admin import AdminClient, ConfigResource

    admin = AdminClient({"bootstrap.servers": settings.kafka_bootstrap_servers})
    metadata = admin.list_topics(timeout=10).topics
    resources = [ConfigResource(ConfigResource.Type.TOPIC, settings.topic_name(s)) for s in ALL_TOPICS]
    configs = {r.name: f.result() for r, f in admin.describe_configs(resources).items()}
    for spec in ALL_TOPICS:
        name = settings.topic_name(spec)
        assert len(metadata[name].partitions) == spec.partitions
        expected = "compact" if spec.compacted else "delete"
        assert configs[name]["cleanup.policy"].value == expected


def test_named_topics_are_served_with_their_partitions_and_config_when_creation_returns(
    settings: PolycopySettings,
) -> None:
    from confluent_kafka.admin import AdminClient, ConfigResource

    layouts = [
        TopicLayout(
            f"{settings.consumer_group_prefix}-processor-t{n}-changelog", 4, {"cleanup.policy": policy}
        )
        for n, policy in enumerate(("compact", "compact,delete"))
    ]

    created = create_named_topics(settings, layouts, wait=True)

    admin = AdminClient({"bootstrap.servers": settings.kafka_bootstrap_servers})
    metadata = admin.list_topics(timeout=10).topics
    assert sorted(created) == sorted(layout.name for layout in layouts)
    assert all(len(metadata[layout.name].partitions) == 4 for layout in layouts)
    resources = [ConfigResource(ConfigResource.Type.TOPIC, layout.name) for layout in layouts]
    configs = {r.name: f.result() for r, f in admin.describe_configs(resources).items()}
    assert [configs[layout.name]["cleanup.policy"].value for layout in layouts] == [
        "compact",
        "compact,delete",
    ]
    assert create_named_topics(settings, layouts, wait=True) == []  # already there: nothing to create


def test_an_existing_changelog_gets_the_compaction_settings_added_since_it_was_created(
    settings: PolycopySettings,
) -> None:
    """A worker upgraded in place: its changelogs were created with the broker's defaults (a segment closes
    after 7 days, so nothing is compacted and a restart replays every write)."""
    from confluent_kafka.admin import AdminClient, ConfigResource

    name = f"{settings.consumer_group_prefix}-processor-old-changelog"
    create_named_topics(settings, [TopicLayout(name, 2, {"cleanup.policy": "compact"})], wait=True)
    tuned = TopicLayout(name, 2, {"cleanup.policy": "compact", "segment.ms": "60000"})

    assert create_named_topics(settings, [tuned], wait=True) == []  # left alone without update_config
    create_named_topics(settings, [tuned], wait=True, update_config=True)

    admin = AdminClient({"bootstrap.servers": settings.kafka_bootstrap_servers})
    resource = ConfigResource(ConfigResource.Type.TOPIC, name)
    [config] = [f.result() for f in admin.describe_configs([resource]).values()]
    assert (config["segment.ms"].value, config["cleanup.policy"].value) == ("60000", "compact")


def test_every_partition_of_a_created_topic_answers_its_leader_at_once(settings: PolycopySettings) -> None:
    """The worker asks for each changelog partition's offsets the moment it starts: a partition listed in
    the metadata before its leader serves it answers NOT_LEADER, which aiokafka logs as an ERROR."""
    from confluent_kafka import TopicPartition
    from confluent_kafka.admin import AdminClient, OffsetSpec

    layouts = [
        TopicLayout(f"{settings.consumer_group_prefix}-processor-fresh{n}-changelog", 8, {}) for n in range(6)
    ]

    create_named_topics(settings, layouts, wait=True)

    admin = AdminClient({"bootstrap.servers": settings.kafka_bootstrap_servers})
    requests = {TopicPartition(t.name, p): OffsetSpec.latest() for t in layouts for p in range(t.partitions)}
    # A partition whose leader does not serve it yet raises NOT_LEADER here.
    answers = {tp: future.result() for tp, future in admin.list_offsets(requests).items()}
    assert {answer.offset for answer in answers.values()} == {0}

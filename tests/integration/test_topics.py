"""Topic creation against the real broker: idempotent, with the registry's layout."""

from __future__ import annotations

import pytest

from polycopy.infra.kafka import create_topics
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

"""Topic creation asks for the cluster's default replication factor (polycopy/infra/kafka/admin.py): a
topic created with 1 on a three-broker cluster has no copy to fail over to, and acks=all waits for one."""

from __future__ import annotations

from concurrent.futures import Future
from typing import Any

import pytest

from polycopy.infra.kafka import TopicLayout, admin, create_named_topics
from polycopy.infra.settings import PolycopySettings


class RecordingAdmin:
    """What `create_named_topics` asks the broker for, answered as a broker with no topics would."""

    requests: list[Any] = []

    def __init__(self, config: dict[str, str]) -> None:
        pass

    def list_topics(self, timeout: float) -> Any:
        return type("Metadata", (), {"topics": {}})()

    def create_topics(self, topics: list[Any], operation_timeout: float) -> dict[str, Future[None]]:
        RecordingAdmin.requests.extend(topics)
        done: dict[str, Future[None]] = {}
        for topic in topics:
            done[topic.topic] = Future()
            done[topic.topic].set_result(None)
        return done


def test_topics_are_created_with_the_brokers_default_replication_factor(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Any
) -> None:
    monkeypatch.setattr(admin, "AdminClient", RecordingAdmin)
    settings = PolycopySettings(data_dir=tmp_path)

    created = create_named_topics(settings, [TopicLayout("t.v1", 3, {"cleanup.policy": "compact"})])

    [request] = RecordingAdmin.requests
    assert created == ["t.v1"] and (request.num_partitions, request.replication_factor) == (3, -1)

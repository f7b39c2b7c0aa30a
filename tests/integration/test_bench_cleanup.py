"""A bench or soak run cleans up after itself on the broker it was given: 25 to 46 topics were left per
run, and a dev broker had gathered 2,875 topics (8,949 partitions) whose metadata slowed every test."""

from __future__ import annotations

import pytest
from confluent_kafka.admin import AdminClient

from polycopy.infra.kafka import TopicLayout, create_named_topics, create_topics
from polycopy.infra.settings import PolycopySettings
from polycopy.tools.bench import BenchOptions, bench_settings, clean_up_run
from schemas.topics import ALL_TOPICS
from tests.integration.helpers import wait_until

pytestmark = pytest.mark.integration


def topics_of(run: PolycopySettings) -> list[str]:
    names = AdminClient({"bootstrap.servers": run.kafka_bootstrap_servers}).list_topics(timeout=30).topics
    return sorted(n for n in names if n.startswith((run.topic_prefix, run.consumer_group_prefix + "-")))


@pytest.mark.parametrize("keep_topics", [False, True])
def test_a_bench_run_deletes_its_topics_and_changelogs_unless_told_to_keep_them(
    settings: PolycopySettings, keep_topics: bool
) -> None:
    run, database = bench_settings(settings, BenchOptions(ports=(0, 0)), f"cleanup{int(keep_topics)}")
    create_topics(run, ALL_TOPICS)
    changelog = TopicLayout(f"{run.consumer_group('processor')}-wallet-state-changelog", 2)
    create_named_topics(run, [changelog], wait=True)
    assert len(topics_of(run)) == len(ALL_TOPICS) + 1

    said = clean_up_run(settings, run, database, keep_topics=keep_topics)

    if keep_topics:
        assert len(topics_of(run)) == len(ALL_TOPICS) + 1 and run.topic_prefix in said
        clean_up_run(settings, run, database)
    else:
        assert said == f"{len(ALL_TOPICS) + 1} topics deleted"
    wait_until(lambda: topics_of(run) == [], what="the run's topics gone from the metadata")

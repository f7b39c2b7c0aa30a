"""A restarted worker keeps its tables on local disk (issue 8): after kill -9 or SIGTERM it reads only the
changelog records written since, not a day of them from the start. Shown the hard way: every changelog
record is deleted while the worker is down, and the restarted worker still knows which fills it saw, which
trades it decided and how much capital its wallet has left.
A worker whose tables are in memory forgets all three."""

from __future__ import annotations

import time
from collections import Counter
from decimal import Decimal
from pathlib import Path

import pytest
from confluent_kafka import Consumer, KafkaException, TopicPartition
from confluent_kafka.admin import AdminClient, AlterConfigOpType, ConfigEntry, ConfigResource

from polycopy.infra.kafka import group_backlog
from polycopy.infra.settings import PolycopySettings
from schemas.decisions import Decision
from schemas.topics import DECISIONS, RAW_TRADES, TARGETED_TRADES, WALLET_CONFIG
from schemas.trades import RawTrade
from tests.builders import build_trade
from tests.integration.helpers import WorkerProcess, build_buying_wallet, publish, read_all, wait_until

pytestmark = pytest.mark.integration

LEADER = "0x" + "4c" * 20


def build_trades(venue, count: int) -> list[RawTrade]:  # type: ignore[no-untyped-def]
    market = venue.simulator.markets[0]
    token = market.token_ids[0]
    price = venue.simulator.midpoint(token).quantize(Decimal("0.01"))
    now = time.time()
    return [
        build_trade(
            proxy_wallet=LEADER,
            asset=token,
            condition_id=market.condition_id,
            price=price,
            size=Decimal("40"),
            transaction_hash="0x" + f"{0x7100 + n:064x}",
            timestamp=int(now),
            received_at_ms=int(now * 1000),
        )
        for n in range(count)
    ]


def decisions(settings: PolycopySettings) -> list[Decision]:
    return read_all(settings, DECISIONS, Decision)


def empty_the_changelogs(settings: PolycopySettings) -> int:
    """Delete every record of the worker's table changelogs; how many partitions had some."""
    admin = AdminClient({"bootstrap.servers": settings.kafka_bootstrap_servers})
    prefix = settings.consumer_group("processor") + "-"
    names = [name for name in admin.list_topics(timeout=30).topics if name.startswith(prefix)]
    assert names, "no changelog topics"
    metadata = admin.list_topics(timeout=30).topics
    consumer = Consumer({"bootstrap.servers": settings.kafka_bootstrap_servers, "group.id": "probe"})
    ends = []
    for name in names:
        for partition in metadata[name].partitions:
            _, high = consumer.get_watermark_offsets(TopicPartition(name, partition), timeout=30)
            if high > 0:
                ends.append(TopicPartition(name, partition, high))
    consumer.close()
    # The broker deletes records only where its policy deletes (`compact` alone refuses): the restarted
    # worker lays its changelogs out again as they were.
    policy = ConfigEntry("cleanup.policy", "compact,delete", incremental_operation=AlterConfigOpType.SET)
    resources = [ConfigResource("topic", name, incremental_configs=[policy]) for name in names]
    for future in admin.incremental_alter_configs(resources).values():
        future.result(60)

    def deleted() -> bool:  # refused until the broker applies the new policy
        try:
            for future in admin.delete_records(ends).values():
                future.result(60)
        except KafkaException:
            return False
        return True

    wait_until(deleted, timeout_secs=60, what="the changelogs' records deleted")
    return len(ends)


@pytest.mark.timeout(900)
@pytest.mark.parametrize("stop", ["kill -9", "SIGTERM"])
def test_a_worker_stopped_and_restarted_keeps_its_tables_without_reading_its_changelogs_again(
    settings_factory, simulator_factory, tmp_path: Path, stop: str
) -> None:  # type: ignore[no-untyped-def]
    venue = simulator_factory(seed=9, auto_trades=False, drift_interval_secs=3600.0)
    settings = settings_factory(clob_url=venue.server.clob_url, instance_id="w1")
    wallet = build_buying_wallet(LEADER).model_copy(
        update={"capital_usdc": Decimal("25"), "max_signal_age_secs": None}
    )
    publish(settings, WALLET_CONFIG, [(wallet.id, wallet)])
    first, new = build_trades(venue, 5)[:4], build_trades(venue, 5)[4]

    with WorkerProcess(settings, tmp_path / "worker-1.log") as worker:
        publish(settings, RAW_TRADES, [(t.proxy_wallet, t) for t in first])
        wait_until(lambda: len(decisions(settings)) >= len(first), timeout_secs=240, what="the decisions")
        before = decisions(settings)
        assert before[-1].reason == "capital_exhausted", [d.reason for d in before]  # the capital is spent
        if stop == "kill -9":
            worker.process.kill()
        else:
            worker.process.terminate()
        worker.process.wait(60)
    assert empty_the_changelogs(settings) > 0

    with WorkerProcess(settings, tmp_path / "worker-2.log"):
        # The same fills again (the poller's overlap), then a new one.
        publish(settings, RAW_TRADES, [(t.proxy_wallet, t) for t in [*first, new]])
        wait_until(lambda: len(decisions(settings)) > len(before), timeout_secs=240, what="the new decision")
        group, inputs = settings.consumer_group("processor"), (RAW_TRADES, TARGETED_TRADES)
        wait_until(lambda: group_backlog(settings, group, inputs) == 0, timeout_secs=120, what="no backlog")
        after = decisions(settings)

    per_trade = Counter(decision.dedup_key for decision in after)
    assert all(count == 1 for count in per_trade.values()), "a fill decided twice"
    assert len(after) == len(first) + 1
    assert after[-1].dedup_key == new.dedup_key and after[-1].reason == "capital_exhausted"

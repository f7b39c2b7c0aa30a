"""A short demo as an operator runs it, with JSON logs at DEBUG and secrets configured (a signer key in the
environment, CLOB API credentials in the settings, a password in the database URL): one trade is followed
through every stage's log lines by its dedup key; no secret shows up in the logs, the printed output, the
metrics pages, the topics or the child processes' environments; the metrics pages carry the consumer lag of
every consumer group, every stage's latency, Faust's own sensor and the sink failure counter."""

from __future__ import annotations

import json
import os
import re
import threading
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import pytest
from confluent_kafka import Consumer, TopicPartition
from confluent_kafka.admin import AdminClient
from prometheus_client.parser import text_string_to_metric_families
from pydantic import SecretStr

from polycopy.infra.kafka import create_topics, delete_topics, wait_for_broker
from polycopy.infra.logs import REDACTED
from polycopy.infra.metrics import DEFAULT_PORTS, component_port
from polycopy.infra.postgres import create_database, drop_database, migrate
from polycopy.infra.settings import LogFormat, PolycopySettings
from polycopy.tools.demo import DemoOptions, DemoResult, run_demo
from schemas.topics import ALL_TOPICS
from sinks import MIGRATIONS
from tests.ops.helpers import free_port_block

pytestmark = pytest.mark.e2e

KEY = "0x" + "5eed" * 16
API_KEY, API_SECRET, API_PASSPHRASE = (
    "00000000-demo-api-key",
    "ZGVtby1hcGktc2VjcmV0LWJhc2U2NA==",
    "demo-passphrase-9",
)
PASSWORD = "demo-Pa55w0rd"
SECRETS = (KEY, KEY.removeprefix("0x"), API_KEY, API_SECRET, API_PASSPHRASE, PASSWORD)
COMPONENTS = ("books", "worker", "executor", "sink", "producer")  # the demo's pipeline processes


@dataclass
class ObservedDemo:
    """Everything the demo left behind that a user or an attacker could read."""

    settings: PolycopySettings
    result: DemoResult
    printed: str
    logs: dict[str, str]  # log file name -> content
    pages: dict[str, list[str]] = field(default_factory=dict)  # component -> /metrics bodies, in order
    environs: dict[int, bytes] = field(default_factory=dict)  # child pid -> its environment
    topics: dict[str, list[bytes]] = field(default_factory=dict)  # topic -> keys and values

    def lines(self, component: str) -> list[dict[str, Any]]:
        """The component's log lines (stderr); its printed result (stdout) shares the file."""
        return [
            json.loads(line) for line in self.logs[f"{component}.log"].splitlines() if line.startswith("{")
        ]

    def printed_by(self, component: str) -> list[str]:
        return [line for line in self.logs[f"{component}.log"].splitlines() if not line.startswith("{")]


def with_password(url: str, password: str) -> str:
    parts = urlsplit(url)
    return urlunsplit(parts._replace(netloc=f"{parts.username}:{password}@{parts.hostname}:{parts.port}"))


class Watcher(threading.Thread):
    """While the demo runs: every second, each component's /metrics page, and the environment of every
    process started for this demo (found by its topic prefix)."""

    def __init__(self, settings: PolycopySettings, observed: ObservedDemo) -> None:
        super().__init__(name="demo-watcher", daemon=True)
        self._settings, self._observed, self.done = settings, observed, threading.Event()
        self._marker = f"POLYCOPY_TOPIC_PREFIX={settings.topic_prefix}\0".encode()

    def run(self) -> None:
        while not self.done.wait(1.0):
            for component in COMPONENTS:
                port = component_port(component, self._settings.metrics_base_port)
                try:
                    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=3) as response:
                        self._observed.pages.setdefault(component, []).append(response.read().decode())
                except (urllib.error.URLError, ConnectionError, TimeoutError):
                    pass  # not started yet, or already stopped
            for proc in Path("/proc").iterdir():
                if proc.name.isdigit() and int(proc.name) != os.getpid():
                    try:
                        environ = (proc / "environ").read_bytes()
                    except OSError:
                        continue
                    if self._marker in environ:
                        self._observed.environs[int(proc.name)] = environ


def read_topics(bootstrap: str, names: list[str]) -> dict[str, list[bytes]]:
    """Every key and value of the named topics, from the beginning to their ends now."""
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": "unused", "enable.auto.commit": False})
    content: dict[str, list[bytes]] = {}
    try:
        metadata = consumer.list_topics(timeout=30).topics
        for name in names:
            for partition in metadata[name].partitions:
                low, high = consumer.get_watermark_offsets(TopicPartition(name, partition), timeout=30)
                if high <= low:
                    continue
                consumer.assign([TopicPartition(name, partition, low)])
                last = low - 1  # read up to the end by offset: compaction leaves holes in the changelogs
                while last < high - 1:
                    message = consumer.poll(10)
                    assert message is not None, f"{name}[{partition}] stopped before its end"
                    if message.error():
                        continue
                    last = message.offset()
                    content.setdefault(name, []).extend(
                        part for part in (message.key(), message.value()) if part is not None
                    )
    finally:
        consumer.close()
    return content


@pytest.fixture(scope="module")
def observed_demo(
    servers: tuple[str, str], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ObservedDemo]:
    kafka, admin_url = servers
    namespace = "t" + uuid.uuid4().hex[:10]
    database = f"polycopy_{namespace}"
    clob_port = free_port_block(2)
    settings = PolycopySettings(
        kafka_bootstrap_servers=kafka,
        database_url=with_password(create_database(admin_url, database), PASSWORD),
        topic_prefix=f"{namespace}.",
        consumer_group_prefix=namespace,
        data_dir=tmp_path_factory.mktemp("observed-demo"),
        rtds_url=f"ws://127.0.0.1:{clob_port + 1}",
        clob_url=f"http://127.0.0.1:{clob_port}",
        clob_market_ws_url=f"ws://127.0.0.1:{clob_port}/ws/market",
        metrics_enabled=True,
        faust_metrics=True,  # off by default; its series are checked on the worker's page below
        metrics_base_port=free_port_block(len(DEFAULT_PORTS)),
        sink_flush_secs=0.2,
        log_format=LogFormat.JSON,
        log_level="DEBUG",
        private_key=SecretStr(KEY),
        clob_api_key=SecretStr(API_KEY),
        clob_api_secret=SecretStr(API_SECRET),
        clob_api_passphrase=SecretStr(API_PASSPHRASE),
    )
    try:
        wait_for_broker(settings)
        create_topics(settings, ALL_TOPICS)
        migrate(settings.database_url, MIGRATIONS)
        printed: list[str] = []
        observed = ObservedDemo(settings, None, "", {})  # type: ignore[arg-type]
        watcher = Watcher(settings, observed)
        # The key as a deployment configures it: in the environment the components start from.
        with pytest.MonkeyPatch.context() as patch:
            patch.setenv("POLYCOPY_PRIVATE_KEY", KEY)
            watcher.start()
            try:
                observed.result = run_demo(
                    settings, DemoOptions(duration_secs=20, drain_secs=20), out=printed.append
                )
            finally:
                watcher.done.set()
                watcher.join(30)
        observed.printed = "\n".join(printed)
        observed.logs = {path.name: path.read_text() for path in (settings.data_dir / "logs").glob("*.log")}
        topics = AdminClient({"bootstrap.servers": kafka}).list_topics(timeout=30).topics
        ours = sorted(name for name in topics if name.startswith((namespace + ".", namespace + "-")))
        observed.topics = read_topics(kafka, ours)
        yield observed
    finally:
        drop_database(admin_url, database)
        delete_topics(settings, lambda name: name.startswith((namespace + ".", namespace + "-")))


def test_one_trade_is_followed_through_every_stages_json_lines_by_its_dedup_key(observed_demo) -> None:  # type: ignore[no-untyped-def]
    demo = observed_demo
    assert demo.result.summary.orders > 0
    lines = {component: demo.lines(component) for component in COMPONENTS}

    def trail(component: str, stage: str, dedup_key: str) -> list[dict[str, Any]]:
        return [r for r in lines[component] if r.get("stage") == stage and r.get("dedup_key") == dedup_key]

    copies = [r for r in lines["worker"] if r["message"] == "decided copy: copy"]
    assert copies, "no copy decision was logged"
    followed = None
    for copy in copies:  # the first copied trade whose order got through every stage before the demo ended
        key, wallet, intent_id = copy["dedup_key"], copy["wallet_id"], copy["intent_id"]
        # Several demo wallets may follow the same leader: past the target filter, follow this copy's wallet
        # and intent only.
        stages = {
            "publish": trail("producer", "publish", key),
            "target-filter": trail("worker", "target-filter", key),
            "evaluate": [r for r in trail("worker", "evaluate", key) if r.get("wallet_id") == wallet],
            "executor": [r for r in trail("executor", "executor", key) if r.get("intent_id") == intent_id],
            "order-lifecycle": [
                r for r in trail("worker", "order-lifecycle", key) if r.get("intent_id") == intent_id
            ],
            "postgres-sink": trail("sink", "postgres-sink", key),
        }
        if all(stages.values()):
            followed = copy, stages
            break
    assert followed is not None, "no copied trade reached every stage's log"
    copy, stages = followed
    intent_id = copy["intent_id"]

    assert {r["component"] for r in stages["publish"]} == {"producer"}
    assert any(r["message"].startswith("rtds trade published") for r in stages["publish"])
    assert all("intent_id" not in r for r in stages["publish"] + stages["target-filter"])
    assert {r.get("intent_id") for r in stages["evaluate"]} >= {intent_id}
    # Every executor and lifecycle line of this trade names the wallet whose intent it handles.
    assert all("wallet_id" in r for r in trail("executor", "executor", copy["dedup_key"]))
    # The executor knows the order id once it has derived it; the lifecycle from the report.
    [order_id] = {r["order_id"] for r in stages["executor"] if "order_id" in r}
    assert {r["order_id"] for r in stages["order-lifecycle"]} == {order_id}
    assert any(r["message"].startswith("OrderPlaced") for r in stages["order-lifecycle"])
    # The sink wrote the trade, its decision and its intent; the order's events carry the intent and order.
    assert {r["message"].split(":")[0] for r in stages["postgres-sink"]} >= {
        "RawTrade",
        "Decision",
        "OrderIntent",
    }
    assert any(
        r["message"].startswith("OrderEvent")
        and r.get("order_id") == order_id
        and r.get("intent_id") == intent_id
        for r in lines["sink"]
    )


def test_every_component_writes_json_lines_with_its_name_and_no_error(observed_demo) -> None:  # type: ignore[no-untyped-def]
    # Besides its log lines, a component's file holds only what its command prints when it ends.
    printed = {c: observed_demo.printed_by(c) for c in COMPONENTS if observed_demo.printed_by(c)}
    assert list(printed) == ["producer"]
    [summary] = printed["producer"]
    assert re.fullmatch(r"rtds producer stopped: \d+ trades published, 0 dead letters", summary)
    for component in COMPONENTS:
        records = observed_demo.lines(component)  # each line parses as JSON, or this raises
        assert records, component
        assert {r["component"] for r in records} == {component}
        assert all({"time", "level", "logger", "message"} <= set(r) for r in records)
        # Among them the CLOB client's ERROR line on a missing book (404), which is an ordinary answer.
        errors = [r for r in records if r["level"] in ("ERROR", "CRITICAL")]
        assert errors == [], f"{component}: {errors[:3]}"


def test_no_secret_shows_in_logs_output_metrics_topics_or_child_environments(observed_demo) -> None:  # type: ignore[no-untyped-def]
    demo = observed_demo
    assert set(demo.pages) == set(COMPONENTS), "some component's /metrics page was never scraped"
    assert len(demo.environs) >= len(COMPONENTS) + 1  # the simulator, the pipeline and the producer
    assert demo.topics and demo.logs.keys() >= {f"{c}.log" for c in COMPONENTS}
    places = {
        "the printed output": [demo.printed],
        **{f"log {name}": [text] for name, text in demo.logs.items()},
        **{f"{component} /metrics": pages for component, pages in demo.pages.items()},
        **{
            f"topic {name}": [b.decode("utf-8", "replace") for b in parts]
            for name, parts in demo.topics.items()
        },
    }
    for place, texts in places.items():
        for secret in SECRETS:
            assert not any(secret in text for text in texts), f"{secret!r} found in {place}"
    # The database URL the demo prints is the real one, password masked.
    assert f"polycopy:{REDACTED}@" in demo.printed
    # A paper demo's children need no key: neither the configured signer key nor the API credentials reach
    # any of them (only a live executor is handed a key, and only its own).
    for pid, environ in demo.environs.items():
        for secret in (KEY, API_KEY, API_SECRET, API_PASSPHRASE):
            assert secret.encode() not in environ, f"process {pid} was handed {secret!r}"


def samples(page: str) -> list[tuple[str, dict[str, str], float]]:
    return [
        (sample.name, sample.labels, sample.value)
        for family in text_string_to_metric_families(page)
        for sample in family.samples
    ]


def test_the_metrics_pages_carry_lag_stage_latency_faust_and_sink_failures(observed_demo) -> None:  # type: ignore[no-untyped-def]
    demo, settings = observed_demo, observed_demo.settings
    last = {component: samples(pages[-1]) for component, pages in demo.pages.items()}

    def lag_topics(component: str, group: str) -> set[str]:
        return {
            labels["topic"]
            for name, labels, _ in last[component]
            if name == "polycopy_consumer_lag" and labels["group"] == group
        }

    prefix = settings.topic_prefix
    assert lag_topics("worker", settings.consumer_group("processor")) == {
        prefix + "polycopy.trades.raw.v1",
        prefix + "polycopy.trades.targeted.v1",
        prefix + "polycopy.orders.reports.v1",
    }
    assert lag_topics("executor", settings.consumer_group("executor")) == {
        prefix + "polycopy.orders.intents.v1"
    }
    assert prefix + "polycopy.trades.raw.v1" in lag_topics("sink", settings.consumer_group("postgres-sink"))

    def observations(component: str, stage: str) -> float:
        [count] = [
            value
            for name, labels, value in last[component]
            if name == "polycopy_stage_latency_seconds_count" and labels["stage"] == stage
        ]
        return count

    assert observations("producer", "feed") > 0
    assert observations("worker", "decision") > 0
    assert min(observations("executor", stage) for stage in ("order", "ack", "signal")) > 0

    faust = {name: value for name, labels, value in last["worker"] if name.startswith("faust_")}
    assert faust["faust_messages_received_total"] > 0 and faust["faust_total_events_total"] > 0
    failures = {
        labels["stage"]: value
        for name, labels, value in last["sink"]
        if name == "polycopy_sink_failures_total"
    }
    assert failures["postgres-sink"] == 0

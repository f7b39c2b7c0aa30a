"""The composition root: each builder returns its component wired from settings (namespace, consumer group,
URLs, batching, client names). Clients are replaced by fakes of our own, so nothing connects; one test builds
the real clients, still without connecting, to prove the builders call them as they are."""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

import polycopy.infra.postgres
import polycopy.polymarket.http
from polycopy import wiring
from polycopy.infra.kafka import MessagePublisher, RecordConsumer, now_ms
from polycopy.infra.metrics import PipelineMetrics
from polycopy.infra.postgres import BatchWriter, ExecutionJournal, LiveExecutionJournal
from polycopy.infra.settings import PolycopySettings
from polycopy.polymarket.rtds import RtdsFeed
from polycopy.wiring import common, live, pipeline, producers
from processors.worker.runtime import changelog_topics
from producers.poller import SafetyNetPoller
from producers.reference import SyncSummary
from schemas.base import Message
from schemas.orders import ExecutionReport, ReportKind
from schemas.reference import TraderReference
from schemas.topics import (
    BOOKS,
    DEAD_LETTERS,
    DECISIONS,
    EXECUTION_REPORTS,
    ORDER_INTENTS,
    POLLER_WATERMARKS,
    RAW_TRADES,
    TARGETED_TRADES,
    TRADERS,
    WALLET_CONFIG,
    TopicSpec,
)
from sinks.executor import Executor
from sinks.postgres_sink import PostgresSink
from tests.builders import (
    TRADER,
    build_book,
    build_decision,
    build_intent_on_book,
    build_trade_payload,
)
from tests.builders import build_wallet as build_wallet_config
from tests.fakes import FakeBroker, FakeJournal, FakePublisher, FakeTable, FakeWriter

BOOK = build_book(asks=[("0.50", "100")], bids=[("0.48", "100")])


@dataclass
class Clients:
    """The fakes the builders were given, by what they were built from."""

    broker: FakeBroker = field(default_factory=FakeBroker)
    consumers: dict[str, Any] = field(default_factory=dict)  # group -> FakeConsumer
    publishers: dict[str, FakePublisher] = field(default_factory=dict)  # client id -> publisher
    journals: list[FakeJournal] = field(default_factory=list)
    writers: list[FakeWriter] = field(default_factory=list)
    book_readers: list[str] = field(default_factory=list)  # CLOB hosts
    tables: dict[str, FakeTable] = field(default_factory=dict)  # broker-side topic name -> table
    venue_clients: list[dict[str, Any]] = field(default_factory=list)
    feeds: list[dict[str, Any]] = field(default_factory=list)
    table_values: dict[TopicSpec, dict[str, Any]] = field(default_factory=dict)


def patch_client(monkeypatch: pytest.MonkeyPatch, name: str, value: Any) -> None:
    """Replace a client class wherever the composition root's modules use it (the PostgreSQL clients are
    imported where built, from their home module)."""
    homes = (common, pipeline, producers, live, polycopy.infra.postgres)
    modules = [module for module in homes if hasattr(module, name)]
    assert modules, f"no wiring module uses {name}"
    for module in modules:
        monkeypatch.setattr(module, name, value)


@pytest.fixture
def clients(monkeypatch: pytest.MonkeyPatch) -> Clients:
    found = Clients()

    def consumer(settings: PolycopySettings, group: str) -> Any:
        found.consumers[group] = found.broker.consumer(group)
        return found.consumers[group]

    def publisher(settings: PolycopySettings, *, client_id: str) -> FakePublisher:
        return found.publishers.setdefault(client_id, FakePublisher(client_id))

    def journal(url: str, **_options: Any) -> FakeJournal:
        found.journals.append(FakeJournal(url))
        return found.journals[-1]

    def writer(url: str, **_options: Any) -> FakeWriter:
        found.writers.append(FakeWriter(url))
        return found.writers[-1]

    def book_reader(host: str, **_options: Any) -> object:
        found.book_readers.append(host)
        return object()

    def table(settings: PolycopySettings, spec: TopicSpec, decode: Any) -> FakeTable:
        name = settings.topic_name(spec)
        return found.tables.setdefault(name, FakeTable(found.table_values.get(spec, {})))

    class VenueClient:
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            found.venue_clients.append({"args": args, **kwargs})

        def __enter__(self) -> VenueClient:
            return self

        def __exit__(self, *exc: object) -> None:
            found.venue_clients[-1]["closed"] = True

    def feed(url: str, on_frame: Any, metrics: PipelineMetrics, **options: Any) -> dict[str, Any]:
        found.feeds.append({"url": url, "on_frame": on_frame, **options})
        return found.feeds[-1]

    patch_client(monkeypatch, "RecordConsumer", consumer)
    patch_client(monkeypatch, "MessagePublisher", publisher)
    patch_client(monkeypatch, "LiveExecutionJournal", journal)
    patch_client(monkeypatch, "BatchWriter", writer)
    patch_client(monkeypatch, "CompactedTopicReader", table)
    patch_client(monkeypatch, "VenueHttpClient", VenueClient)
    patch_client(monkeypatch, "RtdsFeed", feed)
    monkeypatch.setattr(polycopy.polymarket.http, "ClobBookReader", book_reader)  # imported where it is used
    return found


@pytest.fixture
def settings(tmp_path: Path) -> PolycopySettings:
    return PolycopySettings(
        topic_prefix="ns.",
        consumer_group_prefix="grp",
        database_url="postgresql://polycopy@db.test:5432/polycopy",
        clob_url="http://clob.test",
        data_api_url="http://data.test",
        gamma_url="http://gamma.test",
        rtds_url="ws://rtds.test",
        rtds_ping_secs=3,
        rtds_watchdog_secs=9,
        poll_requests_per_sec=7,
        sink_batch_size=2,
        sink_flush_secs=3600,
        chain_id=80002,
        metrics_enabled=False,
        data_dir=tmp_path,
    )


def topic(settings: PolycopySettings, spec: TopicSpec) -> str:
    return settings.topic_name(spec)


def append(clients: Clients, settings: PolycopySettings, spec: TopicSpec, message: Message) -> None:
    clients.broker.append_message(topic(settings, spec), message)


def test_the_executor_reads_intents_in_its_own_group_and_fills_on_their_levels_without_a_clob_client(
    clients: Clients, settings: PolycopySettings
) -> None:
    append(clients, settings, ORDER_INTENTS, build_intent_on_book(BOOK, created_at_ms=now_ms()))
    append(clients, settings, DECISIONS, build_decision())  # another topic: not the executor's

    executor = wiring.build_executor(settings, PipelineMetrics())
    executor.run(max_idle_secs=0)

    assert isinstance(executor, Executor) and executor.handled == 1
    assert list(clients.consumers) == ["grp-executor"]
    assert clients.consumers["grp-executor"].topics == (topic(settings, ORDER_INTENTS),)
    assert clients.book_readers == []  # paper fills take the intent's levels: no GET /book
    assert [journal.url for journal in clients.journals] == [settings.database_url]
    [report] = clients.publishers["polycopy-executor"].on(EXECUTION_REPORTS)
    assert isinstance(report, ExecutionReport) and report.kind is ReportKind.FILL
    assert clients.broker.committed["grp-executor"] == {(topic(settings, ORDER_INTENTS), 0): 1}


def test_the_postgres_sink_batches_as_configured_and_dead_letters_as_itself(
    clients: Clients, settings: PolycopySettings
) -> None:
    for number in range(3):
        append(clients, settings, DECISIONS, build_decision(dedup_key=f"{number:032x}"))
    clients.broker.append(topic(settings, DECISIONS), b"{broken")

    sink = wiring.build_postgres_sink(settings, PipelineMetrics())
    sink.run(max_idle_secs=0)

    assert isinstance(sink, PostgresSink)
    assert list(clients.consumers) == ["grp-postgres-sink"]
    assert set(clients.consumers["grp-postgres-sink"].topics) >= {
        topic(settings, DECISIONS),
        topic(settings, RAW_TRADES),
    }
    [writer] = clients.writers
    assert writer.url == settings.database_url
    assert [len(inserts["decisions"]) for inserts, _ in writer.batches] == [2, 1]  # sink_batch_size = 2
    [letter] = clients.publishers["polycopy-postgres-sink"].on(DEAD_LETTERS)
    assert letter.stage == "postgres-sink" and letter.source_topic == topic(settings, DECISIONS)


def test_the_executor_and_the_sink_never_share_a_consumer_group(
    clients: Clients, settings: PolycopySettings
) -> None:
    wiring.build_executor(settings, PipelineMetrics())
    wiring.build_postgres_sink(settings, PipelineMetrics())

    assert sorted(clients.consumers) == ["grp-executor", "grp-postgres-sink"]


def test_the_poller_reads_its_three_tables_in_the_namespace_and_publishes_as_the_poller(
    clients: Clients, settings: PolycopySettings
) -> None:
    clients.table_values[WALLET_CONFIG] = {"copier": build_wallet_config(id="copier", targets=(TRADER,))}
    clients.table_values[TRADERS] = {TRADER: TraderReference(wallet=TRADER, updated_at_ms=1)}

    class DataApi:
        def fetch_user_trades(self, wallet: str, **options: Any) -> list[dict[str, Any]]:
            return [build_trade_payload(proxyWallet=wallet, timestamp=1_790_000_000)]

    poller = wiring.build_poller(
        settings,
        PipelineMetrics(),
        DataApi(),
        clock_ms=lambda: 1_790_000_100_000,  # type: ignore[arg-type]
    ).start()
    summary = poller.run_once()

    assert isinstance(poller, SafetyNetPoller)
    assert set(clients.tables) == {topic(settings, s) for s in (WALLET_CONFIG, TRADERS, POLLER_WATERMARKS)}
    published = clients.publishers["polycopy-poller"]
    assert summary.published == 1 and published.keys(RAW_TRADES) == [TRADER]
    assert [mark.wallet for mark in published.on(POLLER_WATERMARKS)] == [TRADER]


def test_the_venue_client_reads_the_configured_hosts_and_counts_each_response(
    clients: Clients, settings: PolycopySettings
) -> None:
    metrics = PipelineMetrics()
    wiring.build_venue_client(settings, metrics)
    wiring.build_venue_client(settings)

    counted, uncounted = clients.venue_clients
    assert counted["args"] == ("http://data.test", "http://gamma.test", 7)
    counted["on_response"]("429")
    assert metrics.poller_requests.labels("429")._value.get() == 1
    assert uncounted["on_response"] is None


def test_the_rtds_feed_uses_the_configured_socket_unless_told_another(
    clients: Clients, settings: PolycopySettings
) -> None:
    def handler(frame: str | bytes, received_at_ms: int) -> None:
        return None

    wiring.build_rtds_feed(settings, handler, PipelineMetrics())
    wiring.build_rtds_feed(settings, handler, PipelineMetrics(), url="ws://elsewhere.test")

    assert [(f["url"], f["ping_secs"], f["watchdog_secs"]) for f in clients.feeds] == [
        ("ws://rtds.test", 3, 9),
        ("ws://elsewhere.test", 3, 9),
    ]


def test_a_publish_kafka_did_not_confirm_is_an_error_naming_what_was_lost(
    clients: Clients, settings: PolycopySettings
) -> None:
    clients.publishers["polycopy-cli"] = FakePublisher("polycopy-cli", undelivered=2)

    with pytest.raises(wiring.NotDeliveredError, match="^wallet configuration not delivered to Kafka$"):
        wiring.run_publish(settings, "polycopy-cli", "wallet configuration", lambda publisher: None)


def test_a_reference_sync_gets_a_venue_client_and_a_publisher_and_closes_the_client(
    clients: Clients, settings: PolycopySettings
) -> None:
    seen: list[tuple[Any, Any]] = []

    def sync(client: Any, publisher: Any) -> SyncSummary:
        seen.append((client, publisher))
        return SyncSummary(published=3, refused=0, pages=1)

    summary = wiring.run_reference_sync(settings, "markets", sync)

    assert summary.published == 3
    assert seen[0][1] is clients.publishers["polycopy-reference"]
    assert clients.venue_clients[0]["closed"] and clients.venue_clients[0]["on_response"] is None


def test_the_worker_is_built_in_its_group_and_namespace_without_starting_anything(
    settings: PolycopySettings,
) -> None:
    worker = wiring.build_worker(settings, PipelineMetrics())

    assert worker.app.conf.id == "grp-processor"
    assert str(worker.app.conf.datadir).startswith(str(settings.data_dir))
    assert set(worker.app.agents) == {
        "target-filter",
        "evaluate",
        "order-lifecycle",
        "resolution-fanout",
        "settlement",
    }
    assert worker.reference.wallets() == {}  # its readers have not started: nothing was read
    assert worker.books.topic == topic(settings, BOOKS) and not worker.books.started
    # The tables' changelogs, laid out as Faust declares them: run_worker creates them before Faust starts.
    assert {(t.name, t.partitions, t.config.get("cleanup.policy")) for t in changelog_topics(worker.app)} == {
        ("grp-processor-recent-fills-changelog", RAW_TRADES.partitions, "compact,delete"),
        ("grp-processor-recent-decisions-changelog", TARGETED_TRADES.partitions, "compact,delete"),
        ("grp-processor-wallet-state-changelog", TARGETED_TRADES.partitions, "compact"),
        ("grp-processor-leader-positions-changelog", TARGETED_TRADES.partitions, "compact"),
        ("grp-processor-followed-positions-changelog", TARGETED_TRADES.partitions, "compact"),
        ("grp-processor-recent-closed-orders-changelog", TARGETED_TRADES.partitions, "compact,delete"),
        ("grp-processor-wallet-tokens-changelog", TARGETED_TRADES.partitions, "compact"),
    }
    # ... compacted within minutes, not after the broker's default 7 days: a restart replays them whole.
    assert all(t.config["segment.ms"] == "15000" for t in changelog_topics(worker.app))
    # The recent keys' changelogs keep the buckets the tables keep (5 of 6 hours), the others every key.
    retention = {t.name.split("-", 2)[-1]: t.config.get("retention.ms") for t in changelog_topics(worker.app)}
    assert {name for name, ms in retention.items() if ms == str(30 * 3600 * 1000)} == {
        "recent-fills-changelog",
        "recent-decisions-changelog",
        "recent-closed-orders-changelog",
    }
    assert {ms for ms in retention.values()} == {str(30 * 3600 * 1000), None}


@pytest.fixture
def real_clients(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[Any]]:
    """The real client classes, recorded as the builders create them, and closed afterwards."""
    made: list[Any] = []

    def recording(cls: type) -> Any:
        def build(*args: Any, **kwargs: Any) -> Any:
            made.append(cls(*args, **kwargs))
            return made[-1]

        return build

    for name, cls in [
        ("RecordConsumer", RecordConsumer),
        ("MessagePublisher", MessagePublisher),
        ("LiveExecutionJournal", LiveExecutionJournal),
        ("BatchWriter", BatchWriter),
        ("RtdsFeed", RtdsFeed),
    ]:
        patch_client(monkeypatch, name, recording(cls))
    yield made
    for client in made:
        if isinstance(client, RecordConsumer | LiveExecutionJournal | BatchWriter):
            client.close()


def test_the_builders_accept_the_real_clients_without_a_broker_or_a_database(
    real_clients: list[Any], settings: PolycopySettings
) -> None:
    # Nothing listens on these: building must not need them (the database connects when a component runs).
    offline = settings.model_copy(
        update={"kafka_bootstrap_servers": "127.0.0.1:9", "database_url": "postgresql://nobody@127.0.0.1:9/x"}
    )
    wiring.build_executor(offline, PipelineMetrics())
    wiring.build_postgres_sink(offline, PipelineMetrics())
    wiring.build_rtds_feed(offline, lambda frame, at: None, PipelineMetrics())
    with wiring.build_venue_client(offline) as client:
        wiring.build_poller(offline, PipelineMetrics(), client)

    consumers = [c for c in real_clients if isinstance(c, RecordConsumer)]
    assert sorted(c.group for c in consumers) == ["grp-executor", "grp-postgres-sink"]
    assert {c.url for c in real_clients if isinstance(c, ExecutionJournal | BatchWriter)} == {
        offline.database_url
    }
    assert any(isinstance(c, RtdsFeed) for c in real_clients)


def test_the_worker_never_imports_the_clob_client_whose_signing_libraries_take_seconds_to_import() -> None:
    """py-clob-client-v2 imports eth-account, whose import computes BLS pairing constants: 2-3 s of CPU
    before a restarted worker could decide anything. The worker only reads books."""
    import subprocess
    import sys

    program = (
        "import sys\n"
        "from polycopy.infra.settings import PolycopySettings\n"
        "from polycopy.wiring.pipeline import build_metrics, build_worker\n"
        "settings = PolycopySettings(metrics_enabled=False)\n"
        "build_worker(settings, build_metrics(settings, 'worker'))\n"
        "print(sorted(m for m in ('py_clob_client_v2', 'eth_account') if m in sys.modules))\n"
    )
    done = subprocess.run([sys.executable, "-c", program], capture_output=True, text=True, timeout=120)

    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"


def test_the_worker_runs_faust_without_waiting_for_the_recent_books(
    settings: PolycopySettings, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Loading the books topic's last two minutes took 2-4 s of every restart in the chaos runs; it now
    overlaps Faust's start and table restore, and the first trades wait for it instead (`BookCache`)."""
    import processors.worker.runtime

    events: list[str] = []

    class Reference:
        def wait_caught_up(self) -> None:
            events.append("reference loaded")

    class Books:
        def wait_caught_up(self, wait_secs: float = 30.0) -> None:
            events.append("waited for the books")

        def stop(self) -> None: ...

    parts = pipeline.WorkerParts(app=object(), reference=Reference(), books=Books())  # type: ignore[arg-type]
    monkeypatch.setattr(pipeline, "build_worker", lambda *a, **k: parts)
    monkeypatch.setattr(pipeline, "create_named_topics", lambda *a, **k: events.append("changelogs"))
    monkeypatch.setattr(processors.worker.runtime, "changelog_topics", lambda app: [])
    monkeypatch.setattr(processors.worker.runtime, "use_uvloop", lambda: True)
    monkeypatch.setattr(processors.worker.runtime, "run_app", lambda *a, **k: events.append("faust runs"))

    pipeline.run_worker(settings)

    assert events == ["changelogs", "reference loaded", "faust runs"]


def test_a_process_knows_how_long_ago_it_started() -> None:
    """For the worker's start-up line: its whole start, from the spawn (Linux /proc)."""
    assert 0 < pipeline.process_age_secs() < time.monotonic()  # started after the machine did

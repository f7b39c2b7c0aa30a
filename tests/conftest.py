"""Session fixtures: a real Kafka broker and a real PostgreSQL, and isolated settings per test.

The servers come from KAFKA_BOOTSTRAP_SERVERS / DATABASE_URL when set, from testcontainers when
POLYCOPY_TESTCONTAINERS=1 and a Docker engine runs, else from infra/local.sh (started if not running).
Every test gets its own topic namespace, consumer groups and database, so tests never see each other's data.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import threading
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from polycopy.infra.kafka import create_topics, delete_topics, wait_for_broker
from polycopy.infra.postgres import create_database, drop_database, migrate
from polycopy.infra.settings import PolycopySettings
from schemas.topics import ALL_TOPICS
from sinks import MIGRATIONS

REPO_ROOT = Path(__file__).resolve().parent.parent


def _local_servers() -> tuple[str, str]:
    result = subprocess.run(
        ["bash", str(REPO_ROOT / "infra" / "local.sh"), "up"], capture_output=True, text=True, timeout=600
    )
    if result.returncode != 0:
        pytest.exit(
            f"could not start local Kafka/PostgreSQL:\n{result.stdout}\n{result.stderr}", returncode=3
        )
    defaults = PolycopySettings()
    return defaults.kafka_bootstrap_servers, defaults.database_url


@pytest.fixture(scope="session")
def servers() -> Iterator[tuple[str, str]]:
    """(Kafka bootstrap servers, PostgreSQL admin URL) of running servers."""
    kafka, database = os.environ.get("KAFKA_BOOTSTRAP_SERVERS"), os.environ.get("DATABASE_URL")
    if kafka and database:
        yield kafka, database
        return
    if os.environ.get("POLYCOPY_TESTCONTAINERS") == "1":
        from testcontainers.kafka import KafkaContainer
        from testcontainers.postgres import PostgresContainer

        with (
            KafkaContainer("confluentinc/cp-kafka:7.6.0").with_kraft() as kafka_box,
            PostgresContainer("postgres:16", driver=None) as pg_box,
        ):
            yield kafka_box.get_bootstrap_server(), pg_box.get_connection_url()
        return
    yield _local_servers()


@pytest.fixture
def settings_factory(servers: tuple[str, str], tmp_path: Path) -> Iterator[Callable[..., PolycopySettings]]:
    """Build settings in a fresh namespace: own topics (created), consumer groups and migrated database."""
    kafka, admin_url = servers
    databases: list[str] = []
    namespaces: list[str] = []

    def build(**overrides: object) -> PolycopySettings:
        namespace = "t" + uuid.uuid4().hex[:10]
        database = f"polycopy_{namespace}"
        databases.append(database)
        namespaces.append(namespace)
        values: dict[str, object] = {
            "kafka_bootstrap_servers": kafka,
            "database_url": create_database(admin_url, database),
            "topic_prefix": f"{namespace}.",
            "consumer_group_prefix": namespace,
            "data_dir": tmp_path / namespace,
            "metrics_enabled": False,
            "sink_flush_secs": 0.2,
        } | overrides
        settings = PolycopySettings(**values)  # type: ignore[arg-type]
        wait_for_broker(settings)
        create_topics(settings, ALL_TOPICS)
        migrate(settings.database_url, MIGRATIONS)
        return settings

    yield build
    for database in databases:
        drop_database(admin_url, database)
    # The namespace's topics, Faust's changelogs (`<namespace>-processor-...`) and what-if sandboxes
    # (`<sandbox>.<namespace>.`): left behind, they pile up until the shared broker runs out of files.
    if namespaces:
        delete_topics(
            PolycopySettings(kafka_bootstrap_servers=kafka),
            lambda name: any(name.startswith((ns + ".", ns + "-")) or f".{ns}." in name for ns in namespaces),
        )


@pytest.fixture
def settings(settings_factory: Callable[..., PolycopySettings]) -> PolycopySettings:
    return settings_factory()


class SimulatorThread:
    """The market simulator's servers on free ports, on an event loop of their own."""

    def __init__(self, seed: int = 3, **server_options: object) -> None:
        from polycopy.simulator.market import MarketSimulator
        from polycopy.simulator.server import SimulatorServer

        self.simulator = MarketSimulator(seed)
        self.server = SimulatorServer(self.simulator, rtds_port=0, clob_port=0, **server_options)  # type: ignore[arg-type]
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, daemon=True)

    def call(self, coroutine):  # type: ignore[no-untyped-def]
        """Run a coroutine on the simulator's loop and wait for its result."""
        return asyncio.run_coroutine_threadsafe(coroutine, self.loop).result(timeout=30)

    def __enter__(self) -> SimulatorThread:
        self._thread.start()
        self.call(self.server.start())
        return self

    def __exit__(self, *exc: object) -> None:
        self.call(self.server.stop())
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(timeout=5)


@pytest.fixture
def simulator_factory() -> Iterator[Callable[..., SimulatorThread]]:
    """Start simulators (stopped after the test); options go to SimulatorServer."""
    started: list[SimulatorThread] = []

    def start(seed: int = 3, **options: object) -> SimulatorThread:
        simulator = SimulatorThread(seed, **options).__enter__()
        started.append(simulator)
        return simulator

    yield start
    for simulator in started:
        simulator.__exit__(None, None, None)

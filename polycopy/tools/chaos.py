"""`polycopy chaos` / `make chaos`: the whole pipeline (simulator, RTDS producer, books producer, Faust
worker, executor, PostgreSQL sink) on a Kafka and a PostgreSQL of its own, under faults from a seeded
schedule: kill -9 and SIGTERM of each process, broker restarts, PostgreSQL stopped, and venue faults
(`chaos_venue`: RTDS silence and disconnects, malformed frames, CLOB book 5xx and slow answers; with
`--live-fake`, a live wallet whose signed orders go to the fake CLOB, and POST /order faults). After the
faults the safety-net poller runs once (what the RTDS outages lost), the pipeline drains, and the invariants
(`chaos_check`) are checked over everything that happened, then printed as a table. It restarts its
servers: never the shared ones."""

from __future__ import annotations

import os
import random
import secrets
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import yaml

from polycopy.infra.kafka import (
    MessagePublisher,
    create_topics,
    end_offsets,
    group_backlog,
    read_topic,
    wait_for_broker,
    wait_for_consumer_group,
)
from polycopy.infra.postgres import migrate, query
from polycopy.infra.settings import PolycopySettings
from polycopy.simulator.market import MarketSimulator
from polycopy.tools import chaos_check as check
from polycopy.tools.chaos_servers import REPO, ChaosServers, free_port
from polycopy.tools.chaos_venue import (
    LIVE_VENUE_FAULTS,
    MALFORMED_STAGE,
    VENUE_FAULTS,
    VENUE_OUTPUT,
    VenueFaults,
)
from polycopy.tools.demo import Processes, build_demo_wallets, build_live_wallet, wait_for_http
from schemas.base import Message
from schemas.deadletter import DeadLetter
from schemas.decisions import Decision
from schemas.orders import ExecutionReport, OrderEvent, OrderIntent
from schemas.topics import (
    ALL_TOPICS,
    BOOKS,
    DEAD_LETTERS,
    DECISIONS,
    EXECUTION_REPORTS,
    ORDER_EVENTS,
    ORDER_INTENTS,
    RAW_TRADES,
    TARGETED_TRADES,
    WALLET_CONFIG,
    TopicSpec,
)
from schemas.trades import RawTrade
from schemas.wallets import WalletConfigFile
from sinks import MIGRATIONS

COMPONENTS = ("books", "worker", "executor", "sink")  # started with `polycopy <name>`; then the producer
# What each process kind's recovery is measured by: the topic its output goes to grows again.
OUTPUT_OF = {
    "worker": DECISIONS,
    "executor": EXECUTION_REPORTS,
    "books": BOOKS,
    "producer": RAW_TRADES,
    **VENUE_OUTPUT,
}
PROCESS_FAULTS = [
    f"{how} {kind}" for how in ("kill -9", "SIGTERM") for kind in ("worker", "executor", "sink", "producer")
] + ["kill -9 books"]
SERVER_FAULTS = ["broker restart", "postgres stopped"]
RECOVERY_LIMIT_SECS = 120.0
# The outputs whose growth marks a kind back ("sink": decision rows in PostgreSQL); other kinds, their own.
RECOVERED_BY = {
    "broker": ("worker", "executor", "sink"),
    "postgres": ("sink",),
}
LAST_WARNINGS = 8  # a process's last warning lines printed when it does not come back
# Short enough that an RTDS silence (chaos_venue) outlasts it: the producer must reconnect on its own.
RTDS_WATCHDOG_SECS = 5.0
LOST_WATCH_SECS = 30.0


@dataclass(frozen=True)
class ChaosOptions:
    """What a chaos run does."""

    faults: int = 50
    seed: int = 8
    trades_per_sec: float = 5.0
    postgres_outage_secs: float = 30.0
    data_dir: Path = REPO / ".data" / "chaos"
    live_fake: bool = (
        False  # a live wallet too: the executor signs its orders and sends them to the fake CLOB
    )


class Chaos:
    """One run: servers, processes, the fault schedule, the drain, the checks."""

    def __init__(self, options: ChaosOptions, out: Callable[[str], None] = print) -> None:
        self.options, self.out = options, out
        self.random = random.Random(options.seed)
        self.servers = ChaosServers(options.data_dir / f"run-{options.seed}-{os.getpid()}")
        self.findings = check.ChaosFindings()
        rtds, venue = free_port(), free_port()
        self.settings = PolycopySettings(
            kafka_bootstrap_servers=self.servers.bootstrap,
            database_url=self.servers.database_url,
            data_dir=options.data_dir / f"state-{os.getpid()}",
            topic_prefix=f"chaos{options.seed}.",
            consumer_group_prefix=f"chaos{options.seed}",
            metrics_enabled=False,
            rtds_url=f"ws://127.0.0.1:{rtds}",
            clob_url=f"http://127.0.0.1:{venue}",
            clob_market_ws_url=f"ws://127.0.0.1:{venue}/ws/market",
            clob_user_ws_url=f"ws://127.0.0.1:{venue}/ws/user",
            data_api_url=f"http://127.0.0.1:{venue}",
            gamma_url=f"http://127.0.0.1:{venue}",
            rtds_watchdog_secs=RTDS_WATCHDOG_SECS,
            # A LOST live order is watched for late fills this long, open until then: the drain waits for it.
            live_lost_watch_secs=LOST_WATCH_SECS,
        )
        self.venue = VenueFaults(self.settings.clob_url)
        # The live executor's key: made for this run, handed to the executor alone, never printed or stored.
        self._key = "0x" + secrets.token_hex(32)
        self.processes = Processes(self.settings.data_dir / "logs")
        self.sim_ports = (rtds, venue)
        self.started_at = time.monotonic()
        self.initial_venue: dict[str, object] = {}

    # --- set-up ---------------------------------------------------------------------------------------------
    def start(self) -> list[WalletConfigFile]:
        self.out(
            f"chaos: own Kafka {self.servers.bootstrap}, own PostgreSQL port {self.servers.ports['postgres']}"
        )
        self.started_at = time.monotonic()
        self.servers.run("up")
        wait_for_broker(self.settings)
        create_topics(self.settings, ALL_TOPICS)
        migrate(self.settings.database_url, MIGRATIONS)
        targets = MarketSimulator(self.options.seed).top_wallets(10)
        document = build_demo_wallets(targets)
        if self.options.live_fake:
            document["wallets"].append(build_live_wallet(targets))  # type: ignore[attr-defined]
        for wallet in document["wallets"]:  # type: ignore[union-attr]
            wallet["order_type"] = "FAK"  # every order ends at once: a reservation left at the end is leaked
        config = WalletConfigFile.model_validate(document)
        publisher = MessagePublisher(self.settings, client_id="polycopy-chaos")
        for wallet in config.wallets:
            publisher.publish(WALLET_CONFIG, wallet.id, wallet)
        publisher.flush(30)
        (self.settings.data_dir / "wallets.yaml").write_text(yaml.safe_dump(document))
        rtds, venue = self.sim_ports
        self.processes.start(
            "simulator",
            *("-m", "polycopy.simulator", "--seed", str(self.options.seed)),
            *("--trades-per-sec", str(self.options.trades_per_sec)),
            *("--rtds-port", str(rtds), "--clob-port", str(venue)),
            env=self.env(),
        )
        wait_for_http(self.settings.clob_url + "/time")  # a live executor derives its API key from it
        self.initial_venue = self.venue.stats()
        for name in (*COMPONENTS, "producer"):
            self.launch(name)
        return [config]

    def env(self, name: str = "") -> dict[str, str]:
        # Static membership: a restarted process rejoins as itself and gets its partitions back at once.
        servers = {
            "KAFKA_BOOTSTRAP_SERVERS": self.servers.bootstrap,
            "DATABASE_URL": self.servers.database_url,
        }
        instance = {"POLYCOPY_INSTANCE_ID": f"{name}-1"} if name else {}
        return self.settings.to_env() | servers | instance

    def launch(self, name: str) -> None:
        command = "rtds" if name == "producer" else name
        if name == "executor" and self.options.live_fake:
            live = self.env(name) | {"POLYCOPY_EXECUTION_MODE": "live"}
            secret = {"POLYCOPY_PRIVATE_KEY": self._key}
            self.processes.start(name, "-m", "polycopy.cli", command, env=live, secret_env=secret)
        else:
            self.processes.start(name, "-m", "polycopy.cli", command, env=self.env(name))

    def wait_for_groups(self, limit_secs: float = 600.0) -> None:
        """Until the worker, executor and sink groups have their partitions (a busy broker may time a
        question out: ask again)."""
        started = time.monotonic()
        for component in ("processor", "executor", "postgres-sink"):
            group = self.settings.consumer_group(component)
            while time.monotonic() - started < limit_secs:
                self.supervise()
                try:
                    if wait_for_consumer_group(self.settings, group, timeout_secs=30):
                        break
                except Exception:  # noqa: BLE001 - the broker answered too slowly: ask again
                    time.sleep(1)

    # --- faults ---------------------------------------------------------------------------------------------
    def inject(self, fault: str) -> tuple[str, float]:
        """Inject one fault and undo it; returns the kind whose recovery is measured and when it restarted."""
        if fault == "broker restart":
            self.servers.run("kafka-down")
            self.servers.run("kafka-up")
            return "broker", time.monotonic()
        if fault == "postgres stopped":
            self.servers.run("postgres-down")
            time.sleep(self.options.postgres_outage_secs)
            self.servers.run("postgres-up")
            return "postgres", time.monotonic()
        if fault in VENUE_FAULTS or fault in LIVE_VENUE_FAULTS:
            return fault, self.venue.inject(fault)
        name = fault.split()[-1]
        process = self.processes.running.pop(name)
        if fault.startswith("kill -9"):
            process.kill()
        else:
            process.terminate()
        try:
            process.wait(30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(10)
        self.launch(name)
        return name, time.monotonic()

    def supervise(self) -> None:
        """Restart every process that exited on its own (as an orchestrator would): a component started
        while the broker is down exits with one line instead of waiting. Counted, never hidden."""
        for name, process in list(self.processes.running.items()):
            if name != "simulator" and process.poll() is not None:
                self.out(f"    {name} exited ({process.returncode}); restarted by the supervisor")
                self.findings.supervisor_restarts[name] += 1
                self.launch(name)

    def output_size(self, output: str) -> int:
        """How much of an output there is: "sink", the decision rows in PostgreSQL; else a kind's topic."""
        if output == "sink":
            try:
                return int(query(self.settings.database_url, "SELECT count(*) FROM decisions")[0][0])
            except Exception:  # noqa: BLE001 - PostgreSQL still starting: no progress yet
                return -1
        spec = OUTPUT_OF.get(output, DECISIONS)
        try:
            return sum(end_offsets(self.settings, spec).values())
        except Exception:  # noqa: BLE001 - the broker still starting: no progress yet
            return -1

    def measure_recovery(self, kind: str, restarted: float) -> None:
        """Seconds from the restart until the kind's outputs all grow again. A server is back when every
        stage downstream of it is: after a broker restart, the worker, the executor and the sink."""
        outputs = RECOVERED_BY.get(kind, (kind,))
        before = {output: self.output_size(output) for output in outputs}
        while time.monotonic() - restarted < RECOVERY_LIMIT_SECS:
            time.sleep(0.2)
            self.supervise()
            for output in list(before):
                now = self.output_size(output)
                if now > before[output] >= 0:
                    del before[output]
                elif before[output] < 0:
                    before[output] = now
            if not before:
                self.findings.recovery_secs[kind].append(time.monotonic() - restarted)
                return
        self.findings.not_recovered[kind] += 1
        for output in before:  # what the stuck process said last: the reason, in the run's own output
            self.out(f"    {kind}: {output} not back within {RECOVERY_LIMIT_SECS:.0f} s; its last warnings:")
            for line in self.processes.last_warnings(output, LAST_WARNINGS):
                self.out(f"      {line}")

    def schedule(self) -> list[str]:
        """The seeded fault list: the kinds that matter most first, then every other process kind once (a
        short run of 10 has all of these), then every venue kind once, then random kinds."""
        first = ["kill -9 worker", "kill -9 executor", "SIGTERM worker", *SERVER_FAULTS]
        others = [kind for kind in PROCESS_FAULTS if kind not in first]
        venue = VENUE_FAULTS + (LIVE_VENUE_FAULTS if self.options.live_fake else [])
        for part in (first, others, venue):
            self.random.shuffle(part)
        pool = PROCESS_FAULTS * 3 + SERVER_FAULTS + venue
        rest = [self.random.choice(pool) for _ in range(self.options.faults)]
        return (first + others + venue + rest)[: self.options.faults]

    # --- the run --------------------------------------------------------------------------------------------
    def run(self) -> check.ChaosFindings:
        try:
            [config] = self.start()
            self.wait_for_groups()
            for number, fault in enumerate(self.schedule(), 1):
                time.sleep(self.random.uniform(1.0, 4.0))
                self.supervise()
                self.out(f"  fault {number:3}: {fault}")
                kind, restarted = self.inject(fault)
                self.findings.faults[fault] += 1
                self.measure_recovery(kind, restarted)
            self.out("  faults done; stopping the feed and draining ...")
            self.processes.stop("producer")
            self.poll_once()
            self.drain()
            self.check(config)
        finally:
            self.processes.stop_all()
            try:
                self.servers.run("down")
            except subprocess.SubprocessError as error:
                self.out(f"  could not stop the chaos servers: {error}")
        return self.findings

    def poll_once(self) -> None:
        """One run of the safety-net poller, as production runs it every few minutes: the followed traders'
        fills the RTDS outages lost reach the raw topic late (and are decided, mostly as stale signals)."""
        # Its first run looks back one interval: make that the whole run, so every lost fill is in reach.
        lookback = {"POLYCOPY_POLL_INTERVAL_SECS": str(int(time.monotonic() - self.started_at) + 60)}
        poller = self.processes.start("poller", "-m", "polycopy.cli", "poll", env=self.env() | lookback)
        try:
            poller.wait(300)
        except subprocess.TimeoutExpired:
            poller.kill()
        self.processes.running.pop("poller", None)
        self.findings.poller_exit = poller.returncode

    def drain(self, limit_secs: float = 900.0) -> None:
        """Wait until the worker, the executor and the sink have committed everything there is to read, twice
        in a row (a worker that just committed may have sent new intents). A busy machine makes this slow:
        the limit is generous, and a run that does not drain fails its invariants rather than hanging."""
        groups = {
            "processor": (RAW_TRADES, TARGETED_TRADES, EXECUTION_REPORTS),
            "executor": (ORDER_INTENTS,),
            "postgres-sink": (DECISIONS, ORDER_EVENTS),
        }
        started, quiet = time.monotonic(), 0
        while time.monotonic() - started < limit_secs and quiet < 2:
            time.sleep(3)
            self.supervise()
            try:
                backlog = sum(
                    group_backlog(self.settings, self.settings.consumer_group(group), specs)
                    for group, specs in groups.items()
                )
            except Exception:  # noqa: BLE001 - the broker still busy: ask again
                backlog = -1
            quiet = quiet + 1 if backlog == 0 and self.open_live_orders() == 0 else 0
        self.findings.drain_secs = time.monotonic() - started
        self.findings.drained = quiet >= 2

    def open_live_orders(self) -> int:
        """Live orders the executor still reconciles (0 in a paper run): a drained live run has none."""
        if not self.options.live_fake:
            return 0
        try:
            return int(query(self.settings.database_url, "SELECT count(*) FROM live_orders WHERE open")[0][0])
        except Exception:  # noqa: BLE001 - PostgreSQL still starting: not drained yet
            return -1

    def read(self, spec: TopicSpec, model: type[Message]) -> list:  # type: ignore[type-arg]
        return [
            model.model_validate_json(r.value)
            for r in read_topic(self.settings, spec, idle_secs=5)
            if r.value
        ]

    def check(self, config: WalletConfigFile) -> None:
        trades, decisions = self.read(RAW_TRADES, RawTrade), self.read(DECISIONS, Decision)
        intents, reports = (
            self.read(ORDER_INTENTS, OrderIntent),
            self.read(EXECUTION_REPORTS, ExecutionReport),
        )
        events = self.read(ORDER_EVENTS, OrderEvent)
        url = self.settings.database_url
        rows = dict(query(url, "SELECT intent_id, count(*) FROM orders GROUP BY 1"))
        stored = {row[0] for row in query(url, "SELECT event_id FROM order_events")}
        check.check_decisions(self.findings, trades, decisions, config.wallets)
        check.check_orders(self.findings, decisions, intents, reports, rows)
        check.check_events(self.findings, events, stored)
        check.check_reservations(self.findings, self.read_ledgers())
        letters = self.read(DEAD_LETTERS, DeadLetter)
        check.check_malformed(self.findings, self.venue.malformed_sent, letters, MALFORMED_STAGE)
        check.count_venue(self.findings, trades, self.initial_venue, self.venue.stats())
        if self.options.live_fake:
            journal = query(url, "SELECT intent_id, order_id FROM live_orders")
            check.check_venue_orders(self.findings, self.venue.venue_orders(), reports, journal)

    def read_ledgers(self) -> dict[str, dict[str, object]]:
        app_id = self.settings.consumer_group("processor")
        changelog = TopicSpec(f"{app_id}-wallet-state-changelog", "wallet id", Message, 0)
        unprefixed = self.settings.model_copy(update={"topic_prefix": ""})
        records = read_topic(unprefixed, changelog, idle_secs=5)
        return check.decode_wallet_ledgers((r.key, r.value) for r in records)


def run_chaos(options: ChaosOptions, out: Callable[[str], None] = print) -> check.ChaosFindings:
    """Run the chaos suite and print its table."""
    findings = Chaos(options, out).run()
    out(findings.render())
    return findings

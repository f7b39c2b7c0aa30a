"""`make run`: the simulator and the pipeline as separate processes, for a bounded demo with a summary."""

from __future__ import annotations

import json
import os
import re
import secrets
import signal
import subprocess
import sys
import time
import urllib.request
from collections import Counter, deque
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

import yaml

from polycopy.infra.kafka import (
    KafkaSetupError,
    MessagePublisher,
    create_topics,
    end_offsets,
    group_backlog,
    read_topic,
    wait_for_broker,
    wait_for_consumer_group,
)
from polycopy.infra.logs import redact_url
from polycopy.infra.metrics import DEFAULT_PORTS, component_port
from polycopy.infra.postgres import migrate, query
from polycopy.infra.settings import PolycopySettings, without_secrets
from polycopy.simulator.market import MarketSimulator
from polycopy.tools.summary import RunSummary, is_replayed
from producers.replay import read_capture
from schemas.decisions import Decision
from schemas.orders import OrderEvent
from schemas.topics import ALL_TOPICS, DEAD_LETTERS, DECISIONS, ORDER_EVENTS, RAW_TRADES, WALLET_CONFIG
from schemas.trades import RawTrade
from schemas.wallets import WalletConfigFile
from sinks import MIGRATIONS
from sinks.postgres_sink import ROUTES

PROGRESS_SECS = 5.0
STOP_ORDER = ("producer", "executor", "worker", "books", "sink", "simulator")  # others first
# Kafka clients log each reconnection attempt, thousands while a broker is down.
NOISY_LOGGERS = re.compile(r"\b(librdkafka|aiokafka[\w.]*):")


@dataclass(frozen=True)
class DemoOptions:
    """What the demo runs."""

    duration_secs: float = 60.0
    capture: Path | None = None
    seed: int = 7
    trades_per_sec: float = 20.0
    drain_secs: float = 30.0
    wallets: Path | None = None  # a wallet file to use instead of the three demo wallets
    live_fake: bool = False  # one more wallet in live mode, its orders signed and sent to the fake CLOB


@dataclass
class DemoResult:
    """What a demo run produced: its summary, and the table counts at its start (to scope the run)."""

    summary: RunSummary
    baseline: dict[str, int]
    started_ms: int


def build_demo_wallets(targets: list[str]) -> dict[str, object]:
    """Three paper wallets with different styles, following the most active traders."""
    return {
        "wallets": [
            {
                "id": "demo-fixed",
                "capital_usdc": "1000",
                "targets": targets[:5],
                "sides": ["BUY"],
                "sizing": {"mode": "fixed_usdc", "value": "10"},
                "price_min": "0.05",
                "price_max": "0.95",
                "max_slippage": "0.02",
                "order_type": "FAK",
            },
            {
                "id": "demo-ratio",
                "capital_usdc": "2000",
                "targets": targets[:10],
                "sides": ["BUY", "SELL"],
                "sizing": {"mode": "ratio", "value": "0.25"},
                "max_order_usdc": "50",
                "max_market_exposure_usdc": "200",
                "max_slippage": "0.03",
                "order_type": "FAK",
            },
            {
                "id": "demo-cautious",
                "capital_usdc": "500",
                "targets": targets[:8],
                "sides": ["BUY"],
                "sizing": {"mode": "percent_of_capital", "value": "2"},
                "min_leader_usdc": "20",
                "price_min": "0.2",
                "price_max": "0.8",
                "max_slippage": "0.01",
                "max_open_orders": 20,
                "order_type": "GTC",
            },
        ]
    }


def build_live_wallet(targets: list[str]) -> dict[str, object]:
    """The `--live-fake` wallet: live mode, so the executor signs its orders and sends them to the fake CLOB;
    GTC limits, so some match at once and some rest on the book."""
    return {
        "id": "demo-live",
        "mode": "live",
        "capital_usdc": "500",
        "targets": targets[:5],
        "sides": ["BUY"],
        "sizing": {"mode": "fixed_usdc", "value": "5"},
        "price_min": "0.05",
        "price_max": "0.95",
        "max_slippage": "0.02",
        "order_type": "GTC",
    }


def wait_for_http(url: str, timeout_secs: float = 60.0) -> None:
    """Wait until `url` answers (the fake CLOB, before the live executor derives its API key from it)."""
    deadline = time.monotonic() + timeout_secs
    while True:
        try:
            with urllib.request.urlopen(url, timeout=2):  # noqa: S310 - the demo's own local simulator
                return
        except OSError as error:
            if time.monotonic() > deadline:
                raise RuntimeError(f"{url} did not answer within {timeout_secs:g} s: {error}") from error
            time.sleep(0.5)


def capture_top_traders(capture: Path, count: int) -> list[str]:
    """The most active traders in a capture file."""
    activity: Counter[str] = Counter()
    for item in read_capture(capture):
        try:
            payload = json.loads(item.frame).get("payload") or {}
            activity[str(payload["proxyWallet"]).lower()] += 1
        except (ValueError, KeyError, AttributeError, TypeError):
            continue
    return [wallet for wallet, _ in activity.most_common(count)]


class Processes:
    """Child processes with their logs under the data dir; stopped politely, then firmly."""

    def __init__(self, log_dir: Path) -> None:
        self._log_dir = log_dir
        log_dir.mkdir(parents=True, exist_ok=True)
        self.running: dict[str, subprocess.Popen[bytes]] = {}

    def start(
        self,
        name: str,
        *args: str,
        env: dict[str, str] | None = None,
        secret_env: dict[str, str] | None = None,
    ) -> subprocess.Popen[bytes]:
        """Start one child; no secret of ours reaches it except `secret_env` (the one child that needs it)."""
        log = (self._log_dir / f"{name}.log").open("ab")
        process = subprocess.Popen(
            [sys.executable, *args],
            stdout=log,
            stderr=subprocess.STDOUT,
            env=without_secrets(os.environ | (env or {})) | (secret_env or {}),
            start_new_session=True,
        )
        self.running[name] = process
        return process

    def check(self) -> None:
        for name, process in self.running.items():
            if process.poll() not in (None, 0):
                raise RuntimeError(
                    f"{name} exited with code {process.returncode}; see {self._log_dir / (name + '.log')}"
                )

    def last_warnings(self, name: str, count: int) -> list[str]:
        """The last `count` WARNING/ERROR lines of a child's log, without the Kafka clients' reconnection
        lines (thousands while a broker is down, and never the reason a stage is stuck)."""
        path = self._log_dir / f"{name}.log"
        if not path.exists():
            return []
        with path.open(errors="replace") as log:
            lines = (line.rstrip()[:300] for line in log if " WARNING " in line or " ERROR " in line)
            kept = deque((line for line in lines if not NOISY_LOGGERS.search(line)), maxlen=count)
        return list(kept)

    def stop(self, name: str, timeout: float = 20.0) -> None:
        process = self.running.pop(name, None)
        if process is None or process.poll() is not None:
            return
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(5)

    def stop_all(self, before_sink: Callable[[], None] | None = None) -> None:
        """Stop along the flow (`STOP_ORDER`): the PostgreSQL sink after every component whose events it
        writes (`before_sink` runs just before it), and the simulator last (a live executor would otherwise
        find the fake venue gone and open its breakers on the way out)."""
        for name in sorted(self.running, key=lambda n: STOP_ORDER.index(n) if n in STOP_ORDER else -1):
            if name == "sink" and before_sink is not None:
                before_sink()
            self.stop(name)


def wait_for_sink(settings: PolycopySettings, wait_secs: float = 30.0) -> None:
    """Until the sink has committed all that the stopped components wrote: the worker's last rate-limited
    snapshot can come after the drain, and a sink stopped before reading it left its table one behind."""
    deadline = time.monotonic() + wait_secs
    while time.monotonic() < deadline:
        try:
            if group_backlog(settings, settings.consumer_group("postgres-sink"), ROUTES) == 0:
                return
        except KafkaSetupError:
            return  # the broker is gone: there is nothing more the sink could read
        time.sleep(0.5)


def table_counts(settings: PolycopySettings) -> dict[str, int]:
    tables = ("trades", "decisions", "order_intents", "orders", "order_events")
    row = query(settings.database_url, "SELECT " + ", ".join(f"(SELECT count(*) FROM {t})" for t in tables))[
        0
    ]
    return dict(zip(tables, (int(v) for v in row), strict=True))


def run_demo(settings: PolycopySettings, options: DemoOptions, out=print) -> DemoResult:  # type: ignore[no-untyped-def]
    """Set up, run and summarise one demo. Returns the summary for tests to check against the tables."""
    out(
        f"polycopy demo: Kafka {settings.kafka_bootstrap_servers}, "
        f"PostgreSQL {redact_url(settings.database_url)}"
    )
    wait_for_broker(settings)
    created = create_topics(settings, ALL_TOPICS)
    out(f"  topics ready ({len(created)} created)")
    applied = migrate(settings.database_url, MIGRATIONS)
    out(f"  database migrated ({', '.join(applied) or 'up to date'})")

    data_dir = settings.data_dir / "demo"
    data_dir.mkdir(parents=True, exist_ok=True)
    if options.capture is not None:
        targets = capture_top_traders(options.capture, 10)
    else:
        targets = MarketSimulator(options.seed).top_wallets(10)
    wallet_file = options.wallets or data_dir / "wallets.yaml"
    if options.wallets is None:
        wallets = build_demo_wallets(targets)
        if options.live_fake:
            wallets["wallets"].append(build_live_wallet(targets))  # type: ignore[attr-defined]
        wallet_file.write_text(yaml.safe_dump(wallets, sort_keys=False))
    config = WalletConfigFile.model_validate(yaml.safe_load(wallet_file.read_text()))
    publisher = MessagePublisher(settings, client_id="polycopy-demo")
    for wallet in config.wallets:
        publisher.publish(WALLET_CONFIG, wallet.id, wallet)
    publisher.flush(30)
    out(f"  {len(config.wallets)} wallets applied from {wallet_file}")

    starts = {
        spec.name: end_offsets(settings, spec) for spec in (RAW_TRADES, DECISIONS, ORDER_EVENTS, DEAD_LETTERS)
    }
    baseline = table_counts(settings)
    started_ms = time.time_ns() // 1_000_000
    processes = Processes(settings.data_dir / "logs")
    env = settings.to_env()
    sim_args = [
        "-m",
        "polycopy.simulator",
        "--seed",
        str(options.seed),
        "--trades-per-sec",
        str(options.trades_per_sec),
        "--rtds-port",
        str(urlsplit(settings.rtds_url).port or 18765),
        "--clob-port",
        str(urlsplit(settings.clob_url).port or 18080),
    ]
    if options.capture is not None:
        sim_args += ["--capture", str(options.capture)]
    try:
        processes.start("simulator", *sim_args, env=env)
        for component in ("books", "worker", "sink"):
            processes.start(component, "-m", "polycopy.cli", component, env=env)
        if options.live_fake:
            # A throwaway key made for this run, handed to the executor alone and never printed or stored.
            key = "0x" + secrets.token_hex(32)
            wait_for_http(settings.clob_url + "/time")
            processes.start(
                "executor",
                "-m",
                "polycopy.cli",
                "executor",
                env=env | {"POLYCOPY_EXECUTION_MODE": "live"},
                secret_env={"POLYCOPY_PRIVATE_KEY": key},
            )
            out(f"  live executor: signed orders of the live wallet go to the fake CLOB {settings.clob_url}")
        else:
            processes.start("executor", "-m", "polycopy.cli", "executor", env=env)
        out("  starting simulator, books producer, Faust worker, executor and PostgreSQL sink ...")
        for group in (
            settings.consumer_group("processor"),
            settings.consumer_group("executor"),
            settings.consumer_group("postgres-sink"),
        ):
            if not wait_for_consumer_group(settings, group, timeout_secs=90):
                processes.check()
                raise RuntimeError(
                    f"consumer group {group} did not become ready; see {settings.data_dir / 'logs'}"
                )
        if options.capture is not None:
            processes.start(
                "producer", "-m", "polycopy.cli", "replay", str(options.capture), "--speed", "max", env=env
            )
            out(f"  replaying {options.capture}")
        else:
            processes.start("producer", "-m", "polycopy.cli", "rtds", env=env)
            out(
                f"  RTDS producer connected to the simulator at {settings.rtds_url}; "
                f"running for {options.duration_secs:.0f} s"
            )
        _watch(settings, processes, options, baseline, out)
    finally:
        processes.stop_all(before_sink=lambda: wait_for_sink(settings))

    trades = [
        RawTrade.model_validate_json(r.value)
        for r in read_topic(settings, RAW_TRADES, start_offsets=starts[RAW_TRADES.name])
        if r.value
    ]
    decisions = [
        Decision.model_validate_json(r.value)
        for r in read_topic(settings, DECISIONS, start_offsets=starts[DECISIONS.name])
        if r.value
    ]
    events = [
        OrderEvent.model_validate_json(r.value)
        for r in read_topic(settings, ORDER_EVENTS, start_offsets=starts[ORDER_EVENTS.name])
        if r.value
    ]
    letters = sum(1 for _ in read_topic(settings, DEAD_LETTERS, start_offsets=starts[DEAD_LETTERS.name]))
    summary = RunSummary.build(trades, decisions, events, dead_letters=letters)
    out("\n== summary " + "=" * 60)
    out(summary.render(replayed=is_replayed(trades)))
    if options.live_fake:
        for line in live_order_lines(settings, started_ms):
            out(line)
    for line in where_to_look(settings, wallet_file):
        out(line)
    return DemoResult(summary, baseline, started_ms)


def live_order_lines(settings: PolycopySettings, since_ms: int) -> list[str]:
    """The live orders of this run by status (the lifecycle's view, from PostgreSQL), with their fills."""
    rows = query(
        settings.database_url,
        "SELECT status, count(*), coalesce(sum(matched_size), 0) FROM orders "
        "WHERE mode = 'live' AND sent_at_ms >= %s GROUP BY status ORDER BY status",
        (since_ms,),
    )
    lines = ["\n== live orders at the fake CLOB (signed, sent, reconciled) " + "=" * 12]
    if not rows:
        return [*lines, "  none: no trade of the live wallet's targets passed its rules in this run"]
    lines += [f"  {status:18} {count:5} orders   {matched} shares matched" for status, count, matched in rows]
    return lines


def where_to_look(settings: PolycopySettings, wallet_file: Path) -> list[str]:
    """The demo's closing lines: tables, topics, metrics and logs. Never a password: the output ends up in
    terminals, CI logs and issue reports."""
    ports = {name: component_port(name, settings.metrics_base_port) for name in DEFAULT_PORTS}
    return [
        "\n== where to look next " + "=" * 49,
        f"  tables   psql {redact_url(settings.database_url)} "
        "-c 'SELECT reason, count(*) FROM decisions GROUP BY 1'",
        "           (trades, decisions, order_intents, orders, order_events)",
        "  topics   polycopy topics dump decisions --limit 5   (polycopy topics list for all)",
        f"  metrics  http://127.0.0.1:{ports['worker']}/metrics (worker), "
        f":{ports['executor']} executor, :{ports['producer']} producer, "
        f":{ports['sink']} sink, while the components run",
        f"  logs     {settings.data_dir / 'logs'}/   wallets {wallet_file}",
    ]


def _watch(
    settings: PolycopySettings, processes: Processes, options: DemoOptions, baseline: dict[str, int], out
) -> None:  # type: ignore[no-untyped-def]
    """Progress lines while trades flow; then stop the producer and wait until the pipeline is drained."""
    started = time.monotonic()
    replaying = options.capture is not None

    def progress() -> dict[str, int]:
        now = {k: v - baseline[k] for k, v in table_counts(settings).items()}
        out(
            f"  [{time.monotonic() - started:5.0f} s] trades {now['trades']:6} | "
            f"decisions {now['decisions']:5} | "
            f"intents {now['order_intents']:4} | orders {now['orders']:4} | events {now['order_events']:5}"
        )
        return now

    while time.monotonic() - started < options.duration_secs:
        time.sleep(PROGRESS_SECS)
        processes.check()
        if replaying and processes.running["producer"].poll() is not None:
            break
        progress()
    if not replaying:
        processes.stop("producer")
    else:
        processes.running["producer"].wait(options.drain_secs)
    out("  feed stopped; draining the pipeline ...")
    deadline, previous, stable_since = time.monotonic() + options.drain_secs, None, time.monotonic()
    while time.monotonic() < deadline:
        time.sleep(1)
        current = {k: v - baseline[k] for k, v in table_counts(settings).items()}
        if current != previous:
            previous, stable_since = current, time.monotonic()
        elif time.monotonic() - stable_since >= 3:
            break
    progress()

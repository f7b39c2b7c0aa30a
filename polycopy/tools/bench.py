"""`make bench`: pipeline latency over the real broker, the same decisions in-process, producer throughput."""

from __future__ import annotations

import shutil
import socket
import time
from urllib.parse import urlsplit

from polycopy.infra.kafka import (
    MessagePublisher,
    create_topics,
    end_offsets,
    read_topic,
    wait_for_broker,
    wait_for_consumer_group,
)
from polycopy.infra.postgres import create_database, drop_database, migrate
from polycopy.infra.settings import PolycopySettings
from polycopy.simulator.market import MarketSimulator
from polycopy.tools.bench_figures import (
    BenchOptions,
    BenchResult,
    LatencyStats,
    Out,
    build_bench_wallets,
    describe_machine,
    first_report_per_order,
    format_ms,
    print_table,
    print_tax,
    ratio,
    split_by_receive_time,
    unique_in_receive_order,
)
from polycopy.tools.bench_live import run_live
from polycopy.tools.bench_local import run_in_process, run_producer
from polycopy.tools.demo import Processes
from schemas.decisions import Decision, DecisionAction
from schemas.orders import ExecutionReport
from schemas.topics import ALL_TOPICS, DECISIONS, EXECUTION_REPORTS, RAW_TRADES, WALLET_CONFIG, TopicSpec
from schemas.trades import RawTrade
from schemas.wallets import WalletConfig
from sinks import MIGRATIONS

__all__ = ["BenchOptions", "BenchResult", "run_bench"]

PROGRESS_SECS = 5.0
DRAIN_SECS = 30.0


def run_bench(settings: PolycopySettings, options: BenchOptions, out: Out = print) -> BenchResult:
    """Run every benchmark once and print labelled figures, ending with a table for the README."""
    stamp = int(time.time())
    rtds_port, clob_port = (_free_port(port) for port in options.ports)
    database = f"polycopy_bench{stamp}"
    bench = settings.model_copy(
        update={
            "topic_prefix": f"bench{stamp}.",
            "consumer_group_prefix": f"bench{stamp}",
            "metrics_enabled": False,
            "database_url": create_database(settings.database_url, database),
            "data_dir": settings.data_dir / "bench",
            "rtds_url": f"ws://127.0.0.1:{rtds_port}",
            "clob_url": f"http://127.0.0.1:{clob_port}",
            "clob_market_ws_url": f"ws://127.0.0.1:{clob_port}/ws/market",
        }
    )
    out(f"polycopy bench: {describe_machine()}")
    out(
        f"  options: rate {options.rate:g} trades/s, {options.duration_secs:g} s, seed {options.seed}; "
        f"topics {bench.topic_prefix}*, database {database}, simulator ports {rtds_port}/{clob_port}"
    )
    result = BenchResult()
    try:
        migrate(bench.database_url, MIGRATIONS)
        wallets = build_bench_wallets(MarketSimulator(options.seed).top_wallets(20))
        trades = _run_pipeline(bench, options, wallets, result, out)
        run_in_process(trades, wallets, options.seed, result, out)
        print_tax(result, out)
        run_producer(bench, options, result, out)
        run_live(bench, options.seed, out)
    finally:
        drop_database(settings.database_url, database)
        shutil.rmtree(bench.data_dir / "faust" / bench.consumer_group("processor"), ignore_errors=True)
    out(
        f"\n  bench topics are left on the broker under the prefix {bench.topic_prefix!r}; "
        f"database {database} dropped"
    )
    print_table(result, options, out)
    return result


def _run_pipeline(
    bench: PolycopySettings, options: BenchOptions, wallets: list[WalletConfig], result: BenchResult, out: Out
) -> list[RawTrade]:
    out("\n== 1. pipeline over the real broker " + "=" * 40)
    wait_for_broker(bench)
    create_topics(bench, ALL_TOPICS)
    publisher = MessagePublisher(bench, client_id="polycopy-bench")
    for wallet in wallets:
        publisher.publish(WALLET_CONFIG, wallet.id, wallet)
    if publisher.flush(30):
        raise RuntimeError("bench wallet configuration not delivered")
    out(f"  {len(wallets)} paper wallets (FAK, liquidity ratio 0.5) following the simulator's top 20 traders")
    processes, env = Processes(bench.data_dir / "logs"), bench.to_env()
    try:
        ports = (str(urlsplit(bench.rtds_url).port), str(urlsplit(bench.clob_url).port))
        simulator = ["--seed", str(options.seed), "--trades-per-sec", str(options.rate)]
        simulator += ["--rtds-port", ports[0], "--clob-port", ports[1]]
        processes.start("simulator", "-m", "polycopy.simulator", *simulator, env=env)
        for component in ("books", "worker", "executor"):
            processes.start(component, "-m", "polycopy.cli", component, env=env)
        out(
            "  simulator, books producer, Faust worker, executor started "
            "(no PostgreSQL sink: it is not on the order path)"
        )
        for group in (bench.consumer_group("processor"), bench.consumer_group("executor")):
            if not wait_for_consumer_group(bench, group, timeout_secs=90):
                processes.check()
                raise RuntimeError(f"consumer group {group} not ready; see {bench.data_dir / 'logs'}")
        processes.start("producer", "-m", "polycopy.cli", "rtds", env=env)
        out(f"  RTDS producer started; feeding for {options.duration_secs:g} s")
        started = time.monotonic()
        while time.monotonic() - started < options.duration_secs:
            time.sleep(min(PROGRESS_SECS, max(options.duration_secs - (time.monotonic() - started), 0.1)))
            processes.check()
            out(f"  [{time.monotonic() - started:4.0f} s] {_progress(bench)}")
        processes.stop("producer")
        _drain(bench, out)
    finally:
        processes.stop_all()

    def read(spec: TopicSpec) -> list[bytes]:
        return [record.value for record in read_topic(bench, spec) if record.value]

    raw = [RawTrade.model_validate_json(value) for value in read(RAW_TRADES)]
    trades = unique_in_receive_order(raw)
    decided: dict[str, Decision] = {}
    for value in read(DECISIONS):
        decision = Decision.model_validate_json(value)
        decided.setdefault(decision.decision_id, decision)
    reports = first_report_per_order(ExecutionReport.model_validate_json(v) for v in read(EXECUTION_REPORTS))
    reports = [report for report in reports if report.received_at_ms > 0]
    result.unique_trades, result.decisions, result.orders = len(trades), len(decided), len(reports)
    result.feed_secs = (trades[-1].received_at_ms - trades[0].received_at_ms) / 1000 if trades else 0.0
    decided_ms = sorted(d.decided_at_ms for d in decided.values()) or [0]
    result.decide_secs = (decided_ms[-1] - decided_ms[0]) / 1000
    result.order_latency_ms = LatencyStats.of([float(r.sent_at_ms - r.received_at_ms) for r in reports])
    result.decision_latency_ms = LatencyStats.of(
        [float(d.decided_at_ms - d.received_at_ms) for d in decided.values()]
    )
    copies = sum(1 for d in decided.values() if d.action is DecisionAction.COPY)
    out(
        f"  counts: {len(raw)} raw messages, {len(trades)} unique trades, {len(decided)} decisions "
        f"({copies} copies), {len(reports)} orders sent"
    )
    out(
        f"  fed {ratio(len(trades), result.feed_secs):.1f} trades/s over {result.feed_secs:.1f} s "
        f"({ratio(len(decided), result.feed_secs):.1f} decisions/s due); decided "
        f"{ratio(len(decided), result.decide_secs):.1f} decisions/s over {result.decide_secs:.1f} s"
    )
    out("  receive -> order sent     " + format_ms(result.order_latency_ms))
    out("  receive -> decision       " + format_ms(result.decision_latency_ms))
    # Where the time goes: the worker's part, the intents hop + executor claim, the executor's book + fill.
    stages = {
        "decision -> order sent": [
            float(r.sent_at_ms - decided[r.intent_id].decided_at_ms)
            for r in reports
            if r.intent_id in decided
        ],
        "order sent -> reported": [float(r.reported_at_ms - r.sent_at_ms) for r in reports],
    }
    for name, values in stages.items():
        out(f"    {name:24}{format_ms(LatencyStats.of(values))}")
    early, late = split_by_receive_time(
        [(d.received_at_ms, float(d.decided_at_ms - d.received_at_ms)) for d in decided.values()],
        int(PROGRESS_SECS * 1000),
    )
    if early is not None and late is not None:
        verdict = "the worker fell behind (a backlog)" if late > 2 * early + 100 else "the worker kept up"
        out(
            f"  receive -> decision p50: {early:.0f} ms in the first {PROGRESS_SECS:.0f} s of feed, "
            f"{late:.0f} ms in the last: {verdict}"
        )
    return trades


def _progress(bench: PolycopySettings) -> str:
    counts = {
        spec: sum(end_offsets(bench, spec).values()) for spec in (RAW_TRADES, DECISIONS, EXECUTION_REPORTS)
    }
    return (
        f"raw trades {counts[RAW_TRADES]:6} | decisions {counts[DECISIONS]:5} | "
        f"reports {counts[EXECUTION_REPORTS]:5}"
    )


def _drain(bench: PolycopySettings, out: Out) -> None:
    """Wait until the decision and report topics stop growing for 3 s (at most DRAIN_SECS)."""
    out("  producer stopped; draining ...")
    deadline, previous, stable_since = time.monotonic() + DRAIN_SECS, "", time.monotonic()
    while time.monotonic() < deadline:
        time.sleep(1)
        current = _progress(bench)
        if current != previous:
            previous, stable_since = current, time.monotonic()
        elif time.monotonic() - stable_since >= 3:
            break
    out(f"  drained: {previous}")


def _free_port(preferred: int) -> int:
    """The preferred port if nothing listens on it, else one the OS picks."""
    with socket.socket() as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # a closed run's TIME_WAIT is not busy
        try:
            probe.bind(("127.0.0.1", preferred))
            return preferred
        except OSError:
            probe.bind(("127.0.0.1", 0))
            return int(probe.getsockname()[1])

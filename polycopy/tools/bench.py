"""`make bench`: pipeline latency over the real broker, the same decisions in-process, producer throughput."""

from __future__ import annotations

import os
import platform
import shutil
import socket
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from polycopy.infra.kafka import (
    MessagePublisher,
    create_topics,
    end_offsets,
    read_topic,
    wait_for_broker,
    wait_for_consumer_group,
)
from polycopy.infra.metrics import PipelineMetrics
from polycopy.infra.postgres import create_database, drop_database, migrate
from polycopy.infra.settings import PolycopySettings
from polycopy.polymarket.books import parse_book
from polycopy.simulator.market import MarketSimulator
from polycopy.tools.demo import Processes
from polycopy.tools.summary import percentile
from processors.core.books import simulate_fill
from processors.core.ledger import WalletLedger
from processors.core.policy import MarketInfo, day_of, evaluate_trade
from processors.core.targeting import select_followers
from producers.parsing import parse_rtds_frame
from producers.publisher import TradePublisher
from producers.replay import wrap_as_rtds_frame
from schemas.books import OrderBook
from schemas.decisions import Decision, DecisionAction
from schemas.orders import ExecutionReport, OrderIntent
from schemas.topics import ALL_TOPICS, DECISIONS, EXECUTION_REPORTS, RAW_TRADES, WALLET_CONFIG, TopicSpec
from schemas.trades import RawTrade, TradeSource
from schemas.wallets import WalletConfig
from sinks import MIGRATIONS

PROGRESS_SECS = 5.0
DRAIN_SECS = 30.0
VENUE_TRADES_PER_SEC = 50.0  # the venue's observed fill rate; the producer must keep up with 100x that
Out = Callable[[str], None]


@dataclass(frozen=True)
class BenchOptions:
    """What the benchmark runs: the simulated feed rate, how long it flows, the simulator seed."""

    rate: float = 50
    duration_secs: float = 30
    seed: int = 11
    producer_frames: int = 20_000
    ports: tuple[int, int] = (18865, 18180)  # RTDS, CLOB: away from the demo's 18765/18080


@dataclass(frozen=True)
class LatencyStats:
    """Nearest-rank p50/p99 and the maximum of a sample, in its own unit."""

    p50: float
    p99: float
    max: float
    count: int

    @classmethod
    def of(cls, values: list[float]) -> LatencyStats | None:
        """Stats of a sample; None when it is empty."""
        if not values:
            return None
        return cls(percentile(values, 0.5) or 0.0, percentile(values, 0.99) or 0.0, max(values), len(values))


@dataclass
class BenchResult:
    """Every figure the run printed, for callers that want numbers rather than text."""

    unique_trades: int = 0
    decisions: int = 0
    orders: int = 0
    feed_secs: float = 0.0
    decide_secs: float = 0.0
    order_latency_ms: LatencyStats | None = None
    decision_latency_ms: LatencyStats | None = None
    inprocess_ms: LatencyStats | None = None
    inprocess_followed_ms: LatencyStats | None = None
    inprocess_trades_per_sec: float = 0.0
    publish_frames_per_sec: float = 0.0
    parse_frames_per_sec: float = 0.0


def build_bench_wallets(targets: list[str]) -> list[WalletConfig]:
    """Four paper wallets on the top traders: FAK, liquidity ratio 0.5, capital that never runs out."""
    common = {"capital_usdc": "1000000", "order_type": "FAK", "liquidity_min_fill_ratio": "0.5"}
    specs = [
        {"id": "bench-fixed", "targets": targets[:5], "sizing": {"mode": "fixed_usdc", "value": "10"}},
        {
            "id": "bench-ratio",
            "targets": targets[:10],
            "sides": ["BUY", "SELL"],
            "sizing": {"mode": "ratio", "value": "0.25"},
            "max_order_usdc": "50",
            "max_slippage": "0.03",
        },
        {
            "id": "bench-percent",
            "targets": targets[:8],
            "sizing": {"mode": "percent_of_capital", "value": "0.01"},
        },
        {
            "id": "bench-wide",
            "targets": targets[:20],
            "sides": ["BUY", "SELL"],
            "sizing": {"mode": "fixed_usdc", "value": "5"},
        },
    ]
    return [WalletConfig.model_validate(common | spec) for spec in specs]


def unique_in_receive_order(trades: Iterable[RawTrade]) -> list[RawTrade]:
    """The first copy of every fill (by dedup key), ordered by receive time (stable across partitions)."""
    first: dict[str, RawTrade] = {}
    for trade in trades:
        first.setdefault(trade.dedup_key, trade)
    return sorted(first.values(), key=lambda trade: trade.received_at_ms)


def first_report_per_order(reports: Iterable[ExecutionReport]) -> list[ExecutionReport]:
    """One report per order: the first read (an order's reports share a key, hence a partition and order)."""
    first: dict[str, ExecutionReport] = {}
    for report in reports:
        first.setdefault(report.order_id, report)
    return list(first.values())


def ratio(numerator: float, denominator: float) -> float:
    """numerator / denominator, or infinity for a zero denominator (a tax over nothing)."""
    return numerator / denominator if denominator > 0 else float("inf")


def split_by_receive_time(samples: list[tuple[int, float]], window_ms: int) -> tuple[float | None, ...]:
    """p50 of the (received_at_ms, latency) samples in the first and in the last `window_ms` of the feed.

    A pipeline that keeps up shows about the same figure twice; a growing one means a backlog.
    """
    if not samples:
        return None, None
    first, last = min(t for t, _ in samples), max(t for t, _ in samples)
    return (
        percentile([v for t, v in samples if t < first + window_ms], 0.5),
        percentile([v for t, v in samples if t > last - window_ms], 0.5),
    )


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
    out(f"polycopy bench: {_machine()}")
    out(
        f"  options: rate {options.rate:g} trades/s, {options.duration_secs:g} s, seed {options.seed}; "
        f"topics {bench.topic_prefix}*, database {database}, simulator ports {rtds_port}/{clob_port}"
    )
    result = BenchResult()
    try:
        migrate(bench.database_url, MIGRATIONS)
        wallets = build_bench_wallets(MarketSimulator(options.seed).top_wallets(20))
        trades = _run_pipeline(bench, options, wallets, result, out)
        _run_in_process(trades, wallets, options.seed, result, out)
        _print_tax(result, out)
        _run_producer(bench, options, result, out)
    finally:
        drop_database(settings.database_url, database)
        shutil.rmtree(bench.data_dir / "faust" / bench.consumer_group("processor"), ignore_errors=True)
    out(
        f"\n  bench topics are left on the broker under the prefix {bench.topic_prefix!r}; "
        f"database {database} dropped"
    )
    _print_table(result, options, out)
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
        for component in ("worker", "executor"):
            processes.start(component, "-m", "polycopy.cli", component, env=env)
        out("  simulator, Faust worker, executor started (no PostgreSQL sink: it is not on the order path)")
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
    out("  receive -> order sent     " + _format_ms(result.order_latency_ms))
    out("  receive -> decision       " + _format_ms(result.decision_latency_ms))
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
        out(f"    {name:24}{_format_ms(LatencyStats.of(values))}")
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


def _run_in_process(
    trades: list[RawTrade], wallets: list[WalletConfig], seed: int, result: BenchResult, out: Out
) -> None:
    out("\n== 2. the same decision code in-process, without Kafka " + "=" * 21)
    # Books come from a fresh simulator with the same seed, so they are the live books before any drift or
    # fills: the decisions may differ a little from the pipeline's, which does not matter for timing.
    simulator = MarketSimulator(seed)
    _decide_all(trades, wallets, simulator)  # warm-up: first calls fill caches and would skew the tail
    elapsed_ns, followed_ns = _decide_all(trades, wallets, simulator)
    result.inprocess_ms = LatencyStats.of([ns / 1e6 for ns in elapsed_ns])
    result.inprocess_followed_ms = LatencyStats.of([ns / 1e6 for ns in followed_ns])
    result.inprocess_trades_per_sec = ratio(len(trades), sum(elapsed_ns) / 1e9)
    out(
        f"  {len(trades)} trades read back from the bench raw topic ({len(followed_ns)} with followers), "
        f"the same {len(wallets)} wallets, books parsed from an in-process simulator"
    )
    out("  per trade (all)          " + _format_ms(result.inprocess_ms, digits=3))
    out("  per trade (followed)     " + _format_ms(result.inprocess_followed_ms, digits=3))
    out(
        f"  throughput               {result.inprocess_trades_per_sec:,.0f} trades/s (one core, one process, "
        "timed part only)"
    )


def _decide_all(
    trades: list[RawTrade], wallets: list[WalletConfig], simulator: MarketSimulator
) -> tuple[list[float], list[float]]:
    """Per-trade decision times in ns, for all trades and for those with followers; fresh ledgers."""
    ledgers = {wallet.id: WalletLedger(capital_usdc=wallet.capital_usdc) for wallet in wallets}
    by_id = {wallet.id: wallet for wallet in wallets}
    elapsed_ns: list[float] = []
    followed_ns: list[float] = []
    for trade in trades:
        payload = simulator.book(trade.asset)  # stands in for the venue's answer: not ours to time
        started = time.perf_counter_ns()
        # The worker's per-trade work: target filter, then the book parsed (no HTTP, no cache) and the
        # policy with its liquidity gate for each follower.
        followers = select_followers(trade, wallets)
        evaluations, book = [], None
        if followers:
            book = parse_book(payload) if payload else None
            market = MarketInfo.combine(None, book)  # the bench namespace has no reference-market data
            evaluations = [
                evaluate_trade(
                    trade,
                    by_id[wallet_id],
                    ledgers[wallet_id],
                    market=market,
                    book=book,
                    now_ms=trade.received_at_ms,
                )
                for wallet_id in followers
            ]
        elapsed_ns.append(float(time.perf_counter_ns() - started))
        if followers:
            followed_ns.append(elapsed_ns[-1])
        for evaluation in evaluations:
            _settle(evaluation.intent, book, ledgers)
    return elapsed_ns, followed_ns


def _settle(intent: OrderIntent | None, book: OrderBook | None, ledgers: dict[str, WalletLedger]) -> None:
    # The pipeline's order lifecycle fills and closes FAK orders within milliseconds; do the same here so
    # open reservations do not pile up (and slow the ledger sums) as they never would live.
    if intent is None or book is None:
        return
    ledger = ledgers[intent.wallet_id]
    fill = simulate_fill(book, intent.side, intent.limit_price, intent.size)
    if fill.matched_size > 0 and fill.average_price is not None:
        day = day_of(intent.created_at_ms)
        ledger.apply_fill(intent.intent_id, fill.matched_size, fill.average_price, day)
    ledger.release(intent.intent_id)


def _print_tax(result: BenchResult, out: Out) -> None:
    out("\n== 3. Kafka tax " + "=" * 60)
    pipeline, local = result.order_latency_ms, result.inprocess_followed_ms
    if pipeline is None or local is None:
        out("  n/a: no orders were sent or no trade had followers")
        return
    out("  pipeline receive -> order sent, against the decision code per followed trade in-process")
    for name in ("p50", "p99"):
        a, b = getattr(pipeline, name), getattr(local, name)
        out(f"  Kafka tax ({name}): {a:.0f} ms vs {b:.2f} ms in-process = {ratio(a, b):,.0f}x")


def _run_producer(bench: PolycopySettings, options: BenchOptions, result: BenchResult, out: Out) -> None:
    out("\n== 4. producer throughput " + "=" * 50)
    simulator = MarketSimulator(options.seed)
    fills = simulator.next_trades(options.producer_frames, time.time_ns() // 1_000_000)
    frames = [wrap_as_rtds_frame(fill.payload, fill.feed_types[0]) for fill in fills]
    started = time.perf_counter()
    parsed = sum(len(parse_rtds_frame(frame, 1, TradeSource.RTDS).trades) for frame in frames)
    result.parse_frames_per_sec = ratio(len(frames), time.perf_counter() - started)
    publisher = TradePublisher(MessagePublisher(bench, client_id="polycopy-bench"), PipelineMetrics())
    started = time.perf_counter()
    for frame in frames:
        publisher.publish_frame(frame, time.time_ns() // 1_000_000, TradeSource.RTDS)
    undelivered = publisher.flush(60)
    result.publish_frames_per_sec = ratio(len(frames), time.perf_counter() - started)
    out(f"  {len(frames)} RTDS frames ({parsed} trades) from a seeded simulator")
    venue = f"x the venue's ~{VENUE_TRADES_PER_SEC:.0f} trades/s"
    out(
        f"  parse only               {result.parse_frames_per_sec:,.0f} frames/s "
        f"({result.parse_frames_per_sec / VENUE_TRADES_PER_SEC:,.0f}{venue})"
    )
    out(
        f"  parse + publish + flush  {result.publish_frames_per_sec:,.0f} frames/s "
        f"({result.publish_frames_per_sec / VENUE_TRADES_PER_SEC:,.0f}{venue})"
        + (f"; {undelivered} NOT delivered" if undelivered else f" to {bench.topic_name(RAW_TRADES)}")
    )


def _print_table(result: BenchResult, options: BenchOptions, out: Out) -> None:
    def cell(stats: LatencyStats | None, digits: int = 0, with_max: bool = False) -> str:
        parts = ((stats.p50, stats.p99, stats.max) if with_max else (stats.p50, stats.p99)) if stats else ()
        return " / ".join(f"{value:.{digits}f}" for value in parts) + " ms" if parts else "n/a"

    tax = (
        "n/a"
        if result.order_latency_ms is None or result.inprocess_followed_ms is None
        else f"{ratio(result.order_latency_ms.p50, result.inprocess_followed_ms.p50):,.0f}x / "
        f"{ratio(result.order_latency_ms.p99, result.inprocess_followed_ms.p99):,.0f}x"
    )
    rows = [
        (
            f"receive -> order sent, p50 / p99 / max ({result.orders} orders)",
            cell(result.order_latency_ms, 0, True),
        ),
        ("receive -> decision, p50 / p99", cell(result.decision_latency_ms)),
        (
            f"throughput at {options.rate:g} trades/s offered",
            f"{ratio(result.unique_trades, result.feed_secs):.1f} trades/s fed, "
            f"{ratio(result.decisions, result.decide_secs):.1f} decisions/s decided",
        ),
        ("in-process decision per followed trade, p50 / p99", cell(result.inprocess_followed_ms, 3)),
        ("in-process decision throughput", f"{result.inprocess_trades_per_sec:,.0f} trades/s"),
        ("Kafka tax, p50 / p99", tax),
        (
            "producer parse + publish",
            f"{result.publish_frames_per_sec:,.0f} frames/s "
            f"({result.publish_frames_per_sec / VENUE_TRADES_PER_SEC:,.0f}x venue)",
        ),
        ("producer parse only", f"{result.parse_frames_per_sec:,.0f} frames/s"),
    ]
    width = max(len(name) for name, _ in rows)
    out("\n== table for the README " + "=" * 52)
    out(f"| {'figure':{width}} | value |\n|{'-' * (width + 2)}|-------|")
    for name, value in rows:
        out(f"| {name:{width}} | {value} |")


def _format_ms(stats: LatencyStats | None, digits: int = 0) -> str:
    if stats is None:
        return "n/a (no samples)"
    return (
        f"p50 {stats.p50:.{digits}f} ms, p99 {stats.p99:.{digits}f} ms, max {stats.max:.{digits}f} ms "
        f"(n={stats.count})"
    )


def _machine() -> str:
    model = platform.processor()
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.exists():
        model = next(
            (
                line.split(":", 1)[1].strip()
                for line in cpuinfo.read_text().splitlines()
                if line.startswith("model name")
            ),
            model,
        )
    load = ", load average {:.1f} {:.1f} {:.1f}".format(*os.getloadavg()) if hasattr(os, "getloadavg") else ""
    return f"{os.cpu_count()} CPUs ({model or 'unknown CPU'}), Python {platform.python_version()}{load}"


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

"""The bench's in-process parts: the copy engine without Kafka on the trades the pipeline saw, and the
producer's parse and publish throughput."""

from __future__ import annotations

import time

from polycopy.infra.kafka import MessagePublisher
from polycopy.infra.metrics import PipelineMetrics
from polycopy.infra.settings import PolycopySettings
from polycopy.polymarket.books import parse_book
from polycopy.simulator.market import MarketSimulator
from polycopy.tools.bench_figures import (
    VENUE_TRADES_PER_SEC,
    BenchOptions,
    BenchResult,
    LatencyStats,
    Out,
    format_ms,
    ratio,
)
from processors.core.books import stamp_book
from processors.core.engine import StaticReference
from processors.core.local import LocalPipeline
from producers.parsing import parse_rtds_frame
from producers.publisher import TradePublisher
from producers.replay import wrap_as_rtds_frame
from schemas.books import BookSource, OrderBook
from schemas.topics import RAW_TRADES
from schemas.trades import RawTrade, TradeSource
from schemas.wallets import WalletConfig


def run_in_process(
    trades: list[RawTrade], wallets: list[WalletConfig], options: BenchOptions, result: BenchResult, out: Out
) -> None:
    out("\n== 2. the same decision code in-process, without Kafka " + "=" * 21)
    # Books come from a fresh simulator with the same seed, so they are the live books before any drift or
    # fills: the decisions may differ a little from the pipeline's, which does not matter for timing.
    simulator = MarketSimulator(options.seed, wallet_count=options.simulator_wallets)
    _decide_all(trades, wallets, simulator)  # warm-up: first calls fill caches and would skew the tail
    elapsed_ns, followed_ns = _decide_all(trades, wallets, simulator)
    result.inprocess_ms = LatencyStats.of([ns / 1e6 for ns in elapsed_ns])
    result.inprocess_followed_ms = LatencyStats.of([ns / 1e6 for ns in followed_ns])
    result.inprocess_trades_per_sec = ratio(len(trades), sum(elapsed_ns) / 1e9)
    out(
        f"  {len(trades)} trades read back from the bench raw topic ({len(followed_ns)} with followers), "
        f"the same {len(wallets)} wallets, books parsed from an in-process simulator"
    )
    out("  per trade (all)          " + format_ms(result.inprocess_ms, digits=3))
    out("  per trade (followed)     " + format_ms(result.inprocess_followed_ms, digits=3))
    out(
        f"  throughput               {result.inprocess_trades_per_sec:,.0f} trades/s (one core, one process, "
        "timed part only)"
    )


def _decide_all(
    trades: list[RawTrade], wallets: list[WalletConfig], simulator: MarketSimulator
) -> tuple[list[float], list[float]]:
    """Per-trade decision times in ns, for all trades and for those with followers; fresh wallet states."""
    pipeline = LocalPipeline(StaticReference.build(wallets))  # the bench namespace has no market data
    elapsed_ns: list[float] = []
    followed_ns: list[float] = []
    for trade in trades:
        payload = simulator.book(trade.asset)  # stands in for the venue's answer: not ours to time

        def choose_book(payload: object = payload, at_ms: int = trade.received_at_ms) -> OrderBook | None:
            # The book parsed and stamped (no HTTP, no cache), as the target filter's REST fallback does.
            if not isinstance(payload, dict):
                return None
            return stamp_book(parse_book(payload), BookSource.REST, at_ms)

        started = time.perf_counter_ns()
        # The worker's per-trade work, on the same engine: target filter, book, each follower's evaluation.
        evaluations = pipeline.decide_choosing(trade, choose_book, trade.received_at_ms)
        elapsed_ns.append(float(time.perf_counter_ns() - started))
        if evaluations:
            followed_ns.append(elapsed_ns[-1])
        # The pipeline fills and closes FAK orders within milliseconds; settle here too (untimed), so open
        # reservations do not pile up (and slow the ledger sums) as they never would live.
        pipeline.settle(evaluations, trade.received_at_ms)
    return elapsed_ns, followed_ns


def run_producer(bench: PolycopySettings, options: BenchOptions, result: BenchResult, out: Out) -> None:
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

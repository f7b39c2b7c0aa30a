"""The bench's figures: latency statistics, the pure helpers that read the pipeline's output, and the
printed table."""

from __future__ import annotations

import os
import platform
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

from polycopy.tools.summary import percentile
from schemas.orders import ExecutionReport
from schemas.trades import RawTrade
from schemas.wallets import WalletConfig

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


def print_tax(result: BenchResult, out: Out) -> None:
    out("\n== 3. Kafka tax " + "=" * 60)
    pipeline, local = result.order_latency_ms, result.inprocess_followed_ms
    if pipeline is None or local is None:
        out("  n/a: no orders were sent or no trade had followers")
        return
    out("  pipeline receive -> order sent, against the decision code per followed trade in-process")
    for name in ("p50", "p99"):
        a, b = getattr(pipeline, name), getattr(local, name)
        out(f"  Kafka tax ({name}): {a:.0f} ms vs {b:.2f} ms in-process = {ratio(a, b):,.0f}x")


def print_table(result: BenchResult, options: BenchOptions, out: Out) -> None:
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


def format_ms(stats: LatencyStats | None, digits: int = 0) -> str:
    if stats is None:
        return "n/a (no samples)"
    return (
        f"p50 {stats.p50:.{digits}f} ms, p99 {stats.p99:.{digits}f} ms, max {stats.max:.{digits}f} ms "
        f"(n={stats.count})"
    )


def describe_machine() -> str:
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
